// Command sessionsvc is the benchmark's emulated session service and
// upstream, in one process apart from Caddy so that Caddy's CPU figures
// are Caddy's alone.
//
// The session service accepts any bearer token that starts with the
// configured prefix (so a load generator can make up new valid tokens),
// answering sessiongate's normalized session JSON for session_auth's http
// dialect, and, for forward_auth, a 200 with identity headers to copy (on
// /verify-nobody, a 204 with the headers and no body, which forward_auth
// reads to the end and so keeps its connection).
// Anything else is a 401 with a JSON error. The upstream answers a short "ok".
package main

import (
	"encoding/json"
	"flag"
	"log"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

func main() {
	svcAddr := flag.String("session", "127.0.0.1:18090", "session service listen address")
	upAddr := flag.String("upstream", "127.0.0.1:18091", "upstream listen address")
	prefix := flag.String("prefix", "bench-", "accepted token prefix")
	slowAddr := flag.String("slow", "", "listen address of a second session service, answering after -slow-delay (bench/protect.sh)")
	slowDelay := flag.Duration("slow-delay", 300*time.Millisecond, "how long the slow session service takes per answer")
	flag.Parse()

	session := []byte(`{"id":"s1","user_id":"u1","user":"alice","email":"alice@example.com","name":"Alice Doe","org_id":"o1","org":"Acme","roles":["admin","dev"],"perms":["read","write"],"admin":false}`)
	svc := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || !strings.HasPrefix(tok, *prefix) {
			// A rejection counts only with the service's own (JSON) answer.
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"unauthenticated"}`))
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/json")
		// forward_auth copies these onto the request.
		h.Set("X-User", "alice")
		h.Set("X-User-Id", "u1")
		h.Set("X-Email", "alice@example.com")
		h.Set("X-Roles", "admin,dev")
		if r.URL.Path == "/verify-nobody" {
			h.Del("Content-Type")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Write(session)
	})
	fast := newCounted(svc, 0)
	ok := []byte("ok\n")
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(ok)
	})

	servers := []*http.Server{
		{Addr: *svcAddr, Handler: fast, ReadHeaderTimeout: 5 * time.Second},
		{Addr: *upAddr, Handler: up, ReadHeaderTimeout: 5 * time.Second},
	}
	if *slowAddr != "" {
		slow := newCounted(svc, *slowDelay)
		servers = append(servers, &http.Server{Addr: *slowAddr, Handler: slow, ReadHeaderTimeout: 5 * time.Second, ConnState: slow.connState})
	}
	servers[0].ConnState = fast.connState
	errc := make(chan error, len(servers))
	for _, s := range servers {
		go func() { errc <- s.ListenAndServe() }()
	}
	log.Fatal(<-errc)
}

// counted wraps a session service with counters that GET /_stats answers
// (and POST /_stats resets): calls, and the most calls and connections at
// once.
type counted struct {
	next                                      http.Handler
	delay                                     time.Duration
	calls, active, maxActive, conns, maxConns atomic.Int64
}

func newCounted(next http.Handler, delay time.Duration) *counted {
	return &counted{next: next, delay: delay}
}

func raise(m *atomic.Int64, v int64) {
	for cur := m.Load(); v > cur && !m.CompareAndSwap(cur, v); cur = m.Load() {
	}
}

func (c *counted) connState(_ net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		raise(&c.maxConns, c.conns.Add(1))
	case http.StateClosed, http.StateHijacked:
		c.conns.Add(-1)
	}
}

func (c *counted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/_stats" {
		if r.Method == http.MethodPost {
			c.calls.Store(0)
			c.maxActive.Store(c.active.Load())
			c.maxConns.Store(c.conns.Load())
		}
		_ = json.NewEncoder(w).Encode(map[string]int64{
			"calls": c.calls.Load(), "max_active": c.maxActive.Load(), "max_conns": c.maxConns.Load(),
		})
		return
	}
	c.calls.Add(1)
	raise(&c.maxActive, c.active.Add(1))
	defer c.active.Add(-1)
	if c.delay > 0 {
		time.Sleep(c.delay)
	}
	c.next.ServeHTTP(w, r)
}
