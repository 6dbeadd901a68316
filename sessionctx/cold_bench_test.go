package sessionctx

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// coldAnswer is the session a typical "who am I" endpoint gives.
var coldAnswer = []byte(`{"id":"s1","user_id":"u1","user":"alice","email":"alice@example.com","name":"Alice Doe","org_id":"o1","org":"Acme","roles":["admin","dev"],"perms":["read","write"],"admin":false}`)

// coldService is a session service on loopback answering coldAnswer for
// every token.
func coldService(b *testing.B) *httptest.Server {
	body := coldAnswer
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	b.Cleanup(svc.Close)
	return svc
}

// BenchmarkColdLookup is a request with a token never seen before: one
// call to a real HTTP session service through the real transport, the
// decode, and the cache insert. Its allocations are the cold path's
// (the service's own, in the same process, count in ns/op only).
func BenchmarkColdLookup(b *testing.B) {
	c, err := New(Config{Dialect: "http", URL: coldService(b).URL})
	if err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		r.Header.Set("Authorization", "Bearer tok-"+strconv.Itoa(i))
		if _, err := c.Authenticate(r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkColdLookupParallel is the cold path with many lookups at
// once: each must find an idle connection to reuse, not dial.
func BenchmarkColdLookupParallel(b *testing.B) {
	c, err := New(Config{Dialect: "http", URL: coldService(b).URL})
	if err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		for pb.Next() {
			r.Header.Set("Authorization", "Bearer tok-"+strconv.FormatInt(n.Add(1), 10))
			if _, err := c.Authenticate(r); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkMappingDecode is the http dialect's decode of coldAnswer with
// the default mapping: part of every cold lookup.
func BenchmarkMappingDecode(b *testing.B) {
	m := defaultMapping()
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if s, err := m.Decode(coldAnswer, now); err != nil || s.User != "alice" {
			b.Fatal(s, err)
		}
	}
}
