package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

func poolHolds(url string) int {
	n := 0
	for _, p := range liveResolvers() {
		if p.url == redactURL(url) {
			n++
		}
	}
	return n
}

func TestOpsPoolSharesAndReleases(t *testing.T) {
	srv, _ := whoami(t)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	provision := func(h *SessionAuth) *SessionAuth {
		t.Helper()
		h.Backend = BackendConfig{Dialect: "http", URL: srv.URL}
		if err := h.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		return h
	}
	// Two handlers with the same backend and cache (as the old and the
	// new config during a reload) share one resolver; another cache
	// setting gets its own.
	a := provision(&SessionAuth{Optional: true})
	b := provision(&SessionAuth{StripToken: true})
	c := provision(&SessionAuth{CacheTTL: caddy.Duration(time.Minute)})
	if a.client != b.client {
		t.Errorf("same backend and cache config, different resolvers")
	}
	if a.client == c.client {
		t.Errorf("different cache_ttl, same resolver")
	}
	if n := poolHolds(srv.URL); n != 2 {
		t.Fatalf("pool holds %d resolvers for the backend, want 2", n)
	}
	for _, h := range []*SessionAuth{a, c, a} { // a twice: Cleanup must be idempotent
		if err := h.Cleanup(); err != nil {
			t.Fatal(err)
		}
	}
	if n := poolHolds(srv.URL); n != 1 || b.pooled.Client != b.client {
		t.Fatalf("after releasing a and c the pool holds %d resolvers, want b's", n)
	}
	if err := b.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if n := poolHolds(srv.URL); n != 0 {
		t.Fatalf("after every handler is gone the pool still holds %d resolvers", n)
	}
}

func TestOpsFailedProvisionHoldsNothing(t *testing.T) {
	srv, _ := whoami(t)
	// Held by a running config: a failed Provision must neither take
	// a reference nor give back one it did not take.
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	running := &SessionAuth{Backend: BackendConfig{Dialect: "http", URL: srv.URL}}
	if err := running.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer cleanup(t, running)
	key := running.poolKey
	for name, h := range map[string]*SessionAuth{
		"bad url":              {Backend: BackendConfig{Dialect: "http", URL: "ftp://nowhere"}},
		"empty url":            {Backend: BackendConfig{Dialect: "http", URL: "{env.SESSIONGATE_UNSET_FOR_TEST}"}},
		"bad header after key": {Backend: BackendConfig{Dialect: "http", URL: srv.URL}, Headers: map[string]string{"X Bad": "v"}},
		"bad token after key":  {Backend: BackendConfig{Dialect: "http", URL: srv.URL}, Tokens: []sessionctx.TokenSource{{From: "body"}}},
	} {
		before := len(liveResolvers())
		if err := h.Provision(ctx); err == nil {
			t.Errorf("%s: Provision succeeded", name)
		}
		for range 2 {
			if err := h.Cleanup(); err != nil {
				t.Errorf("%s: Cleanup after a failed Provision: %v", name, err)
			}
		}
		if after := len(liveResolvers()); after != before {
			t.Errorf("%s: the pool went from %d to %d resolvers", name, before, after)
		}
		if refs, ok := resolvers.References(key); !ok || refs != 1 {
			t.Errorf("%s: the running config's resolver has %d references (present %v), want 1", name, refs, ok)
		}
	}
}

func TestOpsErrorKinds(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer slow.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	answer := func(status int, body string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
			w.Write([]byte(body))
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	cut := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, buf, _ := w.(http.Hijacker).Hijack()
		_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n{\"user\":") // a bufio write fails at Flush
		buf.Flush()
		conn.Close()
	}))
	defer cut.Close()
	untrusted := httptest.NewTLSServer(http.NotFoundHandler())
	defer untrusted.Close()

	for _, c := range []struct {
		url, want string
	}{
		{closed.URL, "refused"},
		{slow.URL, "timeout"},
		{answer(500, "oops"), "status"},
		{answer(429, ""), "status"},
		{answer(200, "<html>login</html>"), "garbage"},
		{answer(200, `{"email":"x@y"}`), "garbage"},
		{cut.URL, "garbage"},
		{answer(200, `{"user":"`+strings.Repeat("a", 2<<20)+`"}`), "too_large"},
		{untrusted.URL, "tls"},
	} {
		// Only the slow service needs a short timeout; the others get
		// room, so a TLS handshake on a busy machine (CI under -race)
		// fails on the certificate, not on the clock.
		timeout := 5 * time.Second
		if c.url == slow.URL {
			timeout = 200 * time.Millisecond
		}
		client, err := sessionctx.New(sessionctx.Config{Dialect: "http", URL: c.url, Timeout: timeout})
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", "Bearer tok-secret")
		_, err = client.Authenticate(r)
		if !errors.Is(err, sessionctx.ErrUnavailable) {
			t.Fatalf("%s: error %v, want a service error", c.want, err)
		}
		if got := errorKind(err); got != c.want {
			t.Errorf("errorKind(%q) = %s, want %s", err, got, c.want)
		}
	}
}

func TestOpsMetricsRegisterTwice(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	for range 2 {
		if err := registerMetrics(reg); err != nil {
			t.Fatalf("registering again: %v", err)
		}
	}
	observeServiceCall("http", time.Millisecond, errors.New("session service unavailable: session service answered 500"))
	observeServiceCall("http", time.Millisecond, sessionctx.ErrUnauthenticated)
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("the pedantic registry rejects the collectors: %v", err)
	}
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
	}
	for _, want := range []string{
		"caddy_sessiongate_requests_total", "caddy_sessiongate_service_request_duration_seconds",
		"caddy_sessiongate_service_errors_total",
	} {
		if !names[want] {
			t.Errorf("no %s after registration and a service call (have %v)", want, names)
		}
	}
}

func TestOpsDecodePurge(t *testing.T) {
	for body, want := range map[string]string{
		`{"token": "t"}`:               "",
		`{"all": true}`:                "",
		``:                             "empty body",
		`   `:                          "empty body",
		`nope`:                         "is not",
		`{}`:                           "non-empty",
		`{"all": false}`:               "non-empty",
		`{"token": "t", "all": true}`:  "not both",
		`{"token": ["t"]}`:             "is not",
		`{"purge": "t"}`:               "unknown key",
		`{"All": true}`:                "unknown key",
		`{"TOKEN": "t"}`:               "unknown key",
		`{"token": "t", "token": "u"}`: "twice",
		`["all"]`:                      "not a JSON object",
		`{"token": "t"`:                "is not",
		`{"all": true}{}`:              "more than one",
		`{"token": "` + strings.Repeat("x", maxPurgeBody) + `"}`: "larger than",
	} {
		_, err := decodePurge(strings.NewReader(body))
		switch {
		case want == "" && err != nil:
			t.Errorf("decodePurge(%.40q): %v", body, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("decodePurge(%.40q) = %v, want an error saying %q", body, err, want)
		}
	}
}

// flakyService answers one session, "tok-secret-value", until told to
// fail; cookie requests carry it as a cookie.
type flakyService struct {
	*httptest.Server
	mu   sync.Mutex
	down bool
}

func newFlakyService(t *testing.T) *flakyService {
	f := &flakyService{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		down := f.down
		f.mu.Unlock()
		switch {
		case down:
			w.WriteHeader(http.StatusServiceUnavailable)
		case r.Header.Get("Authorization") == "Bearer tok-secret-value":
			w.Write([]byte(`{"user_id":"u1","user":"ann"}`))
		default:
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *flakyService) setDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

// TestOpsLogsNeverCarryToken drives the operations features (a stale
// serve, an outage past the window, a logout, purges) with a Debug-level
// log captured, and checks each is logged, by hash, never by token.
func TestOpsLogsNeverCarryToken(t *testing.T) {
	const token = "tok-secret-value"
	svc := newFlakyService(t)
	core, logs := observer.New(zapcore.DebugLevel)
	logger := zap.New(core)

	h := &SessionAuth{
		Backend:      BackendConfig{Dialect: "http", URL: svc.URL},
		Tokens:       []sessionctx.TokenSource{{From: "cookie", Name: "sid"}},
		CacheTTL:     caddy.Duration(50 * time.Millisecond),
		StaleIfError: caddy.Duration(time.Second),
		Logout:       []LogoutRoute{{Method: "POST", Path: "/logout"}},
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer cleanup(t, h)
	h.logger = logger
	// Real time, in small steps: the cache's clock is its own.
	advance := time.Sleep

	cookie := http.Header{"Cookie": {"theme=dark; sid=" + token}}
	serve := func(method, path string, upstream int) (int, *http.Request) {
		t.Helper()
		r, _ := requestWithReplacer(method, path, cookie)
		next := &nextRecorder{status: upstream}
		err := h.ServeHTTP(httptest.NewRecorder(), r, next)
		if err != nil {
			return statusOf(err), nil
		}
		return http.StatusOK, next.got
	}

	if st, _ := serve("GET", "/", 0); st != 200 {
		t.Fatalf("authenticated: %d", st)
	}
	svc.setDown(true)
	advance(100 * time.Millisecond) // past the TTL, within the stale window
	st, got := serve("GET", "/", 0)
	if st != 200 || got == nil || got.Header.Get("X-Session-User") != "ann" {
		t.Fatalf("stale: status %d; want 200 with the identity headers", st)
	}
	advance(1100 * time.Millisecond) // past the window
	if st, _ := serve("GET", "/", 0); st != http.StatusServiceUnavailable {
		t.Fatalf("after the stale window: %d, want 503", st)
	}
	svc.setDown(false)
	if st, _ := serve("POST", "/logout", http.StatusNoContent); st != 200 {
		t.Fatalf("logout: %d", st)
	}
	api := &AdminAPI{logger: logger}
	for _, body := range []string{`{"token": "` + token + `"}`, `{"all": true}`} {
		r := httptest.NewRequest("POST", "/sessiongate/purge", strings.NewReader(body))
		if err := api.handlePurge(httptest.NewRecorder(), r); err != nil {
			t.Fatalf("purge %s: %v", body, err)
		}
	}

	key := sessionctx.TokenSource{From: "cookie", Name: "sid"}.Key(token)
	want := map[string]bool{"stale": false, "service unavailable": false, "logout": false, "purge": false}
	for _, e := range logs.All() {
		text := e.Message
		for k, v := range e.ContextMap() {
			text += " " + k + "=" + fmt.Sprint(v)
		}
		if strings.Contains(text, token) || strings.Contains(text, "sid=") || strings.Contains(text, "theme=dark") {
			t.Errorf("a log entry carries the token or the cookie header: %s", text)
		}
		m := e.ContextMap()
		switch {
		case e.Message == "session" && m["outcome"] == "stale":
			want["stale"] = m["token_hash"] == logHash(h.hashKey, key) && m["user"] == "ann"
		case e.Level == zapcore.WarnLevel && strings.Contains(e.Message, "unavailable"):
			want["service unavailable"] = m["token_hash"] == logHash(h.hashKey, key)
		case e.Message == "session logout":
			want["logout"] = m["token_hash"] == logHash(h.hashKey, key) && m["evicted"] == true
		case e.Message == "sessiongate cache purged":
			want["purge"] = true
		}
	}
	for what, ok := range want {
		if !ok {
			t.Errorf("no (or an incomplete) log entry for %s", what)
		}
	}
}

func TestOpsAdminModuleRegistered(t *testing.T) {
	// What `caddy list-modules` lists, and what Caddy's admin endpoint
	// loads by itself: every module in the admin.api namespace.
	found := false
	for _, m := range caddy.GetModules("admin.api") {
		if m.ID == "admin.api.sessiongate" {
			found = true
		}
	}
	if !found {
		t.Fatalf("admin.api.sessiongate is not registered in the admin.api namespace")
	}
	if _, ok := caddy.Module(new(AdminAPI)).(caddy.AdminRouter); !ok {
		t.Fatalf("AdminAPI is not a caddy.AdminRouter")
	}
}

func TestOpsCaddyfileDisableMetrics(t *testing.T) {
	for input, want := range map[string]string{
		"session_auth http http://auth {\n disable_metrics\n}":                   "",
		"session_auth http http://auth {\n disable_metrics yes\n}":               "argument",
		"session_auth http http://auth {\n disable_metrics\n disable_metrics\n}": "given twice",
	} {
		h := new(SessionAuth)
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
		switch {
		case want == "" && (err != nil || !h.DisableMetrics):
			t.Errorf("%q: err %v, DisableMetrics %v", input, err, h.DisableMetrics)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%q: err %v, want one saying %q", input, err, want)
		}
	}
}

// TestOpsMetricsResolverStats scrapes the values read from the resolvers'
// stats: each value of each metric once per dialect, summed over the
// dialect's resolvers, and only those of handlers that count in the
// metrics.
func TestOpsMetricsResolverStats(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	if err := registerMetrics(reg); err != nil {
		t.Fatal(err)
	}
	sample := func(name string, labels ...string) float64 {
		t.Helper()
		families, err := reg.Gather()
		if err != nil {
			t.Fatalf("the pedantic registry rejects the collectors: %v", err)
		}
		want := map[string]string{"dialect": "http"}
		for i := 0; i+1 < len(labels); i += 2 {
			want[labels[i]] = labels[i+1]
		}
		var sum float64
		for _, f := range families {
			if f.GetName() != "caddy_sessiongate_"+name {
				continue
			}
		next:
			for _, m := range f.GetMetric() {
				if len(m.GetLabel()) != len(want) {
					t.Fatalf("%s has labels %v, want %v", name, m.GetLabel(), want)
				}
				for _, l := range m.GetLabel() {
					if want[l.GetName()] != l.GetValue() {
						continue next
					}
				}
				sum += m.GetGauge().GetValue() + m.GetCounter().GetValue()
			}
		}
		return sum
	}
	before := sample("cache_entries", "kind", "session")
	srv, _ := whoami(t)
	for _, u := range []string{srv.URL, srv.URL + "/other"} {
		h := provisionAuth(t, &SessionAuth{}, u)
		r, _ := requestWithReplacer("GET", "/", http.Header{"Authorization": {"Bearer tok-a"}})
		if err := h.ServeHTTP(httptest.NewRecorder(), r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })); err != nil {
			t.Fatal(err)
		}
	}
	uncounted := provisionAuth(t, &SessionAuth{DisableMetrics: true}, srv.URL+"/uncounted")
	r, _ := requestWithReplacer("GET", "/", http.Header{"Authorization": {"Bearer tok-a"}})
	if err := uncounted.ServeHTTP(httptest.NewRecorder(), r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })); err != nil {
		t.Fatal(err)
	}
	if got := sample("cache_entries", "kind", "session") - before; got != 2 {
		t.Errorf("cache_entries{kind=session} rose by %v, want 2 (one session in each counted resolver)", got)
	}
	for _, m := range []struct{ name, label, value string }{
		{"cache_entries", "kind", "rejection"},
		{"lookups_refused_total", "limit", "lookup_limit"},
		{"lookups_refused_total", "limit", "client_miss_limit"},
		{"lookups_waiting", "", ""},
		{"lookups_in_flight", "", ""},
		{"refreshes_total", "", ""},
		{"refreshes_skipped_total", "", ""},
		{"lookups_waited_total", "", ""},
	} {
		var labels []string
		if m.label != "" {
			labels = []string{m.label, m.value}
		}
		families, _ := reg.Gather()
		found := false
		for _, f := range families {
			found = found || f.GetName() == "caddy_sessiongate_"+m.name
		}
		if !found {
			t.Errorf("no %s %v with two live resolvers", m.name, labels)
		}
		sample(m.name, labels...) // the labels are the metric's own
	}
	if got := sample("lookups_waited_total"); got < 2 {
		t.Errorf("lookups_waited_total = %v, want at least the 2 requests that waited on a call", got)
	}
}
