package caddymodule

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

const benchToken = "ok-0123456789abcdef0123456789abcdef"

// benchService is an http-dialect session service that knows one session.
func benchService(b *testing.B) (*httptest.Server, *atomic.Int64) {
	b.Helper()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Header.Get("Authorization") != "Bearer "+benchToken {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"s1","user_id":"u1","user":"alice","email":"alice@example.com","name":"Alice Doe","org_id":"o1","org":"Acme","roles":["admin","dev"],"perms":["read","write"],"admin":true}`)
	}))
	b.Cleanup(srv.Close)
	return srv, &calls
}

// caddyRequest is a request as Caddy's server hands it to a handler: its
// own header map, a fresh replacer with the http vars provider mapped, and
// the vars map in its context. It is built field by field, as net/http's
// server fills it in, not with httptest.NewRequest, whose 4 KiB read
// buffer per request (a server has one per connection) would make the
// garbage collector, and so every allocation in the timed handler, busier
// than in a server.
func caddyRequest(hdr http.Header) *http.Request {
	r := &http.Request{
		Method:     http.MethodGet,
		URL:        &url.URL{Path: "/app/page", RawQuery: "x=1"},
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     make(http.Header, len(hdr)),
		Body:       http.NoBody,
		Host:       "example.com",
		RemoteAddr: "192.0.2.1:41234",
		RequestURI: "/app/page?x=1",
	}
	for k, v := range hdr {
		r.Header[k] = v
	}
	repl := caddy.NewReplacer()
	repl.Map(func(string) (any, bool) { return nil, false }) // the server's http vars
	ctx := context.WithValue(context.Background(), caddy.ReplacerCtxKey, repl)
	ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{
		caddyhttp.TrustedProxyVarKey: false,
		caddyhttp.ClientIPVarKey:     "192.0.2.1",
	})
	return r.WithContext(ctx)
}

func clientHeaders() http.Header {
	return http.Header{
		"Authorization":   {"Bearer " + benchToken},
		"Accept":          {"text/html,application/xhtml+xml"},
		"Accept-Encoding": {"gzip, deflate, br"},
		"Cookie":          {"theme=dark; lang=en"},
		"User-Agent":      {"Mozilla/5.0 (bench)"},
		"X-Session-User":  {"mallory"}, // forged: must be stripped
	}
}

type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}

var nextOK = caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
	if _, ok := requestSession(r.Context()); !ok {
		return fmt.Errorf("no session in context")
	}
	return nil
})

// serveBatches runs ServeHTTP once per iteration on requests prepared in
// batches with the timer stopped, so the figures are the handler's alone:
// building the request, its header map and its replacer is the server's
// cost, not sessiongate's.
func serveBatches(b *testing.B, h caddyhttp.MiddlewareHandler, hdr http.Header) {
	b.Helper()
	serveBatchesGC(b, h, hdr, false)
}

// serveBatchesGC is serveBatches; with collectOutside, the garbage of the
// batch just served (the harness's and the handler's) is collected while
// the timer is stopped, so the figure is the handler's CPU work without
// the collector's.
func serveBatchesGC(b *testing.B, h caddyhttp.MiddlewareHandler, hdr http.Header, collectOutside bool) {
	b.Helper()
	if a, ok := h.(*SessionAuth); ok && a.sole != nil {
		// The only session_auth of its config, as markSole finds it
		// when the config starts.
		a.sole.Store(true)
	}
	w := &discardWriter{h: http.Header{}}
	_, base := h.(passThrough)
	next := nextOK
	if base {
		// The same lookup, its answer (none) not checked.
		next = caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			requestSession(r.Context())
			return nil
		})
	}
	// Warm the cache: the first request is the one service call.
	if err := h.ServeHTTP(w, caddyRequest(hdr), next); err != nil {
		b.Fatal(err)
	}
	batch := make([]*http.Request, 512)
	fill := func() {
		for i := range batch {
			batch[i] = caddyRequest(hdr)
		}
		if collectOutside {
			runtime.GC()
		}
	}
	fill()
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		if i == len(batch) {
			b.StopTimer()
			fill()
			i = 0
			b.StartTimer()
		}
		r := batch[i]
		if err := h.ServeHTTP(w, r, next); err != nil {
			b.Fatal(err)
		}
		if !base && r.Header.Get("X-Session-User") != "alice" {
			b.Fatalf("X-Session-User = %q", r.Header.Get("X-Session-User"))
		}
		i++
	}
}

// BenchmarkCachedRequest is the whole session_auth hot path on a cache
// hit: strip, extract, hash, cache lookup, placeholders, header injection,
// the session put in the context.
func BenchmarkCachedRequest(b *testing.B) {
	srv, calls := benchService(b)
	h := provisionAuth(b, &SessionAuth{}, srv.URL)
	serveBatches(b, h, clientHeaders())
	if calls.Load() != 1 {
		b.Errorf("session-service calls = %d, want 1", calls.Load())
	}
}

// BenchmarkCachedRequestAssertion is BenchmarkCachedRequest with an
// assertion block: the assertion is signed once, on the first request,
// and every later one reuses it (the benchmark's clock does not reach
// half its lifetime).
func BenchmarkCachedRequestAssertion(b *testing.B) {
	srv, calls := benchService(b)
	key := writePKCS8(b, b.TempDir(), "ec.pem", newECKey(b))
	h := provisionAuth(b, &SessionAuth{Assertion: &AssertionConfig{Keys: []string{key}, TTL: caddy.Duration(time.Hour)}}, srv.URL)
	serveBatches(b, h, clientHeaders())
	if calls.Load() != 1 || h.assertion.signed.Load() != 1 {
		b.Errorf("session-service calls = %d, signatures = %d, want 1 and 1", calls.Load(), h.assertion.signed.Load())
	}
}

// BenchmarkCachedRequestAssertionGCOutside is
// BenchmarkCachedRequestAssertion with garbage collection kept out of the
// timed part, to compare with BenchmarkCachedRequestGCOutside.
func BenchmarkCachedRequestAssertionGCOutside(b *testing.B) {
	srv, _ := benchService(b)
	key := writePKCS8(b, b.TempDir(), "ec.pem", newECKey(b))
	h := provisionAuth(b, &SessionAuth{Assertion: &AssertionConfig{Keys: []string{key}, TTL: caddy.Duration(time.Hour)}}, srv.URL)
	serveBatchesGC(b, h, clientHeaders(), true)
}

// BenchmarkCachedRequestOneMoreHeader is BenchmarkCachedRequest with one
// constant custom header: what one more header costs, whatever it holds,
// to set BenchmarkCachedRequestAssertion against. Go grows a header map
// past 14 entries (and again past 28): one more header costs the growth
// when it is the one that crosses that line.
func BenchmarkCachedRequestOneMoreHeader(b *testing.B) {
	srv, _ := benchService(b)
	h := provisionAuth(b, &SessionAuth{Headers: map[string]string{"X-Extra": "constant"}}, srv.URL)
	serveBatches(b, h, clientHeaders())
}

// browserHeaders is clientHeaders with the rest of what a browser sends
// on a navigation: a second header count, so that a comparison does not
// hang on where Go's header map happens to grow (past 14 entries).
func browserHeaders() http.Header {
	h := clientHeaders()
	for k, v := range map[string]string{
		"Accept-Language":           "en-US,en;q=0.9",
		"Referer":                   "https://example.com/app/",
		"Sec-Fetch-Dest":            "document",
		"Sec-Fetch-Mode":            "navigate",
		"Sec-Fetch-Site":            "same-origin",
		"Upgrade-Insecure-Requests": "1",
	} {
		h[k] = []string{v}
	}
	return h
}

// BenchmarkCachedRequestBrowser is BenchmarkCachedRequest with a
// browser's twelve headers, the baseline of
// BenchmarkCachedRequestAssertionBrowser.
func BenchmarkCachedRequestBrowser(b *testing.B) {
	srv, _ := benchService(b)
	h := provisionAuth(b, &SessionAuth{}, srv.URL)
	serveBatches(b, h, browserHeaders())
}

// BenchmarkCachedRequestAssertionBrowser is
// BenchmarkCachedRequestAssertion with a browser's twelve headers.
func BenchmarkCachedRequestAssertionBrowser(b *testing.B) {
	srv, _ := benchService(b)
	key := writePKCS8(b, b.TempDir(), "ec.pem", newECKey(b))
	h := provisionAuth(b, &SessionAuth{Assertion: &AssertionConfig{Keys: []string{key}, TTL: caddy.Duration(time.Hour)}}, srv.URL)
	serveBatches(b, h, browserHeaders())
}

// BenchmarkCachedRequestGCOutside is BenchmarkCachedRequest with garbage
// collection kept out of the timed part: the handler's own CPU work. The
// collector's share is what its 888 bytes a hit cost on top.
func BenchmarkCachedRequestGCOutside(b *testing.B) {
	srv, _ := benchService(b)
	h := provisionAuth(b, &SessionAuth{}, srv.URL)
	serveBatchesGC(b, h, clientHeaders(), true)
}

// BenchmarkCachedRequestTwoHeaders is BenchmarkCachedRequest with
// header_fields user roles: the difference is the header map work of the
// seven headers left out.
func BenchmarkCachedRequestTwoHeaders(b *testing.B) {
	srv, _ := benchService(b)
	h := provisionAuth(b, &SessionAuth{HeaderFields: []string{"user", "roles"}}, srv.URL)
	serveBatches(b, h, clientHeaders())
}

// passThrough is a handler that does nothing but call the next one.
type passThrough struct{}

func (passThrough) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	return next.ServeHTTP(w, r)
}

// BenchmarkCachedRequestBaseline is serveBatches around a handler that
// does nothing: what the harness itself costs per iteration, mostly the
// collection of the requests it prepared, which happens while the timer
// runs. BenchmarkCachedRequest less this is session_auth's own cost, its
// share of garbage collection included.
func BenchmarkCachedRequestBaseline(b *testing.B) {
	serveBatches(b, passThrough{}, clientHeaders())
}

// BenchmarkCachedRequestPresetAndCustom adds a header preset and a custom
// header template, the per-request replacer work.
func BenchmarkCachedRequestPresetAndCustom(b *testing.B) {
	srv, _ := benchService(b)
	h := provisionAuth(b, &SessionAuth{
		HeaderPresets: []string{"oauth2-proxy"},
		Headers:       map[string]string{"X-Remote-User": "{session.user}@{session.org}"},
	}, srv.URL)
	serveBatches(b, h, clientHeaders())
}

// BenchmarkCachedRequestStripToken adds strip_token (bearer).
func BenchmarkCachedRequestStripToken(b *testing.B) {
	srv, _ := benchService(b)
	h := provisionAuth(b, &SessionAuth{StripToken: true}, srv.URL)
	serveBatches(b, h, clientHeaders())
}

// siteRoute is one route of a site as the Caddyfile adapter emits it:
// its handler runs on the requests whose path starts with prefix ("" for
// every request), and next is the rest of the site.
type siteRoute struct {
	prefix string
	h      caddyhttp.MiddlewareHandler
	next   caddyhttp.Handler
}

func (s *siteRoute) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	if !strings.HasPrefix(r.URL.Path, s.prefix) {
		return s.next.ServeHTTP(w, r)
	}
	return s.h.ServeHTTP(w, r, s.next)
}

// siteRoutes runs routes in order, then nextOK (the next handler given
// to ServeHTTP is not used: the chain is built once).
type siteRoutes struct{ first caddyhttp.Handler }

func newSiteRoutes(routes ...siteRoute) siteRoutes {
	var next caddyhttp.Handler = nextOK
	for i := len(routes) - 1; i >= 0; i-- {
		rt := routes[i]
		rt.next = next
		next = &rt
	}
	return siteRoutes{next}
}

func (s siteRoutes) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	return s.first.ServeHTTP(w, r)
}

// BenchmarkCachedRequestTwoSessionAuth is a site with two `session_auth
// <matcher>`, on a request the first one handles and on one only the
// second handles: as adapted, with a strip before each session_auth, and
// with the strip before the first only. The strip after a session_auth
// that handled the request costs a context lookup; on a request the
// first one skips, it strips again what the first strip left clean.
func BenchmarkCachedRequestTwoSessionAuth(b *testing.B) {
	srv, _ := benchService(b)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	b.Cleanup(cancel)
	strip := new(SessionStrip)
	if err := strip.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	first := provisionAuth(b, &SessionAuth{}, srv.URL)
	second := provisionAuth(b, &SessionAuth{}, srv.URL+"/second")
	for _, c := range []struct {
		name            string
		firstPrefix     string // the request's path is /app/page
		secondPrefix    string
		stripBeforeEach bool
	}{
		{"handled-by-first/strip-before-each", "/app/", "/other/", true},
		{"handled-by-first/strip-before-first-only", "/app/", "/other/", false},
		{"handled-by-second/strip-before-each", "/other/", "/app/", true},
		{"handled-by-second/strip-before-first-only", "/other/", "/app/", false},
	} {
		b.Run(c.name, func(b *testing.B) {
			routes := []siteRoute{{h: strip}, {prefix: c.firstPrefix, h: first}}
			if c.stripBeforeEach {
				routes = append(routes, siteRoute{h: strip})
			}
			routes = append(routes, siteRoute{prefix: c.secondPrefix, h: second})
			serveBatches(b, newSiteRoutes(routes...), clientHeaders())
		})
	}
}

// BenchmarkRequestSetup is what serveBatches keeps out of the timing, for
// reference: Caddy pays it per request with or without the plugin.
func BenchmarkRequestSetup(b *testing.B) {
	hdr := clientHeaders()
	b.ReportAllocs()
	for b.Loop() {
		caddyRequest(hdr)
	}
}

// BenchmarkCacheHit is Client.Authenticate on a hit, as the handler
// calls it: reading the token, hashing it and the cache lookup.
func BenchmarkCacheHit(b *testing.B) {
	srv, _ := benchService(b)
	h := provisionAuth(b, &SessionAuth{}, srv.URL)
	r := caddyRequest(clientHeaders())
	if _, err := h.client.Authenticate(r); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if res, err := h.client.Authenticate(r); err != nil || !res.Hit {
			b.Fatal(err)
		}
	}
}

func BenchmarkStripHeaders(b *testing.B) {
	f := newHeaderFolder(DefaultHeaderPrefix, []string{"X-Forwarded-User", "Remote-User", "X-Auth-Request-Email"})
	hdr := clientHeaders()
	delete(hdr, "X-Session-User")
	b.ReportAllocs()
	for b.Loop() {
		f.strip(hdr)
	}
}

func BenchmarkInjectHeaders(b *testing.B) {
	srv, _ := benchService(b)
	h := provisionAuth(b, &SessionAuth{HeaderPresets: []string{"authelia"}}, srv.URL)
	s := &sessionctx.Session{User: "alice", UserID: "u1", Email: "alice@example.com", Name: "Alice Doe",
		Org: "Acme", OrgID: "o1", Roles: []string{"admin", "dev"}, Perms: []string{"read"}}
	id := prepareIdentity(s).(*identity)
	hdr := make(http.Header, 32)
	b.ReportAllocs()
	for b.Loop() {
		h.injectHeaders(hdr, id, nil)
	}
}

// BenchmarkPlaceholders is the replacer work per request as ServeHTTP
// does it (the {session.*} and user-id provider made once per session,
// mapped) and one template rendered; making the replacer itself, the
// server's cost, is included.
func BenchmarkPlaceholders(b *testing.B) {
	s := &sessionctx.Session{User: "alice", UserID: "u1", Org: "Acme"}
	id := prepareIdentity(s).(*identity)
	b.ReportAllocs()
	for b.Loop() {
		repl := caddy.NewReplacer()
		repl.Map(id.in(encodingRaw).placeholders)
		if v := repl.ReplaceAll("{session.user}@{session.org} {http.auth.user.id}", ""); v != "alice@Acme u1" {
			b.Fatal(v)
		}
	}
}

// BenchmarkNewReplacer is the baseline of BenchmarkPlaceholders.
func BenchmarkNewReplacer(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		caddy.NewReplacer()
	}
}

// BenchmarkPrepareIdentity is what each new session (a cold lookup or an
// L2 hit) costs in header values: made at once only in the encodings the
// process's handlers use (raw, the default), against all three.
func BenchmarkPrepareIdentity(b *testing.B) {
	s := &sessionctx.Session{
		User: "alice", UserID: "u1", Email: "alice@example.com", Name: "Alice Doe",
		Org: "Acme", OrgID: "o1", Roles: []string{"admin", "dev"}, Perms: []string{"read", "write"},
	}
	defer encodingsUsed.Store(encodingsUsed.Load())
	for _, tc := range []struct {
		name string
		used uint32
	}{{"raw", 1 << encodingRaw}, {"all", 1<<numEncodings - 1}} {
		b.Run(tc.name, func(b *testing.B) {
			encodingsUsed.Store(tc.used)
			b.ReportAllocs()
			for b.Loop() {
				if id := newIdentity(s); id.in(encodingRaw).vals[fieldUser] != "alice" {
					b.Fatal("no user")
				}
			}
		})
	}
}
