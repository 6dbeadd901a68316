package caddymodule

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// whoami is an http-dialect session service with one session, "tok-a".
func whoami(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Header.Get("Authorization") != "Bearer tok-a" {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"unauthenticated"}`))
			return
		}
		w.Write([]byte(`{"user_id":"u1","user":"ann","roles":["dev"],"kind":"user"}`))
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

// provisionAuth provisions h for real against the session service at url,
// with a no-op logger (a test caddy.Context logs at debug level;
// production's default is info, where the per-request line costs a level
// check).
func provisionAuth(t testing.TB, h *SessionAuth, url string) *SessionAuth {
	t.Helper()
	h.Backend = BackendConfig{Dialect: "http", URL: url}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cleanup(t, h) })
	h.logger = zap.NewNop()
	return h
}

// cleanup releases h, failing the test if its Cleanup fails.
func cleanup(t testing.TB, h *SessionAuth) {
	t.Helper()
	if err := h.Cleanup(); err != nil {
		t.Error(err)
	}
}

func requestWithReplacer(method, target string, hdr http.Header) (*http.Request, *caddy.Replacer) {
	r := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		r.Header[k] = v
	}
	repl := caddy.NewReplacer()
	return r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)), repl
}

// nextRecorder is the next handler: it remembers the request it got and
// answers status.
type nextRecorder struct {
	got    *http.Request
	status int
}

func (n *nextRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	n.got = r
	if n.status != 0 {
		w.WriteHeader(n.status)
	}
	return nil
}

func statusOf(err error) int {
	var he caddyhttp.HandlerError
	if errors.As(err, &he) {
		return he.StatusCode
	}
	return 0
}

func TestServeHTTPAuthenticated(t *testing.T) {
	srv, _ := whoami(t)
	h := provisionAuth(t, &SessionAuth{}, srv.URL)
	r, repl := requestWithReplacer("GET", "/", http.Header{"Authorization": {"Bearer tok-a"}})
	next := &nextRecorder{}
	if err := h.ServeHTTP(httptest.NewRecorder(), r, next); err != nil {
		t.Fatal(err)
	}
	s, ok := requestSession(next.got.Context())
	if !ok || s.User != "ann" {
		t.Fatalf("session in the upstream request's context: %+v %v", s, ok)
	}
	for key, want := range map[string]string{
		"session.user": "ann", "session.user_id": "u1", "session.roles": "dev", "session.admin": "false",
		"session.kind": "user", "session.attrs.missing": "", "http.auth.user.id": "u1",
	} {
		if got, _ := repl.GetString(key); got != want {
			t.Errorf("{%s} = %q, want %q", key, got, want)
		}
	}
	if _, ok := repl.Get("session.nope"); ok {
		t.Error("{session.nope} should be unknown")
	}
}

// In a Caddy server the session travels in the request's vars map: the
// request reaches the next handler uncopied, FromContext finds it there,
// and the vars placeholder shows the user, never the service's answer.
func TestServeHTTPSessionInVars(t *testing.T) {
	srv, _ := whoami(t)
	h := provisionAuth(t, &SessionAuth{}, srv.URL)
	r, _ := requestWithReplacer("GET", "/", http.Header{"Authorization": {"Bearer tok-a"}})
	vars := map[string]any{}
	r = r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, vars))
	next := &nextRecorder{}
	if err := h.ServeHTTP(httptest.NewRecorder(), r, next); err != nil {
		t.Fatal(err)
	}
	if next.got != r {
		t.Error("the request was copied on its way to the next handler")
	}
	s, ok := requestSession(next.got.Context())
	if !ok || s.User != "ann" {
		t.Fatalf("FromContext = %+v, %v", s, ok)
	}
	if got := caddy.ToString(vars[sessionVar]); got != "ann" {
		t.Errorf("vars value prints %q, want the user", got)
	}

	// Something else in the vars under that name is no session.
	vars[sessionVar] = "forged"
	if s, ok := requestSession(r.Context()); ok {
		t.Errorf("FromContext found %+v in a string var", s)
	}
}

func TestServeHTTPRejections(t *testing.T) {
	srv, _ := whoami(t)
	tests := []struct {
		name     string
		h        *SessionAuth
		header   http.Header
		status   int  // the error's status, 0 for none
		passes   bool // reaches next
		location string
	}{
		{name: "no token", h: &SessionAuth{}, status: 401},
		{name: "rejected", h: &SessionAuth{}, header: http.Header{"Authorization": {"Bearer nope"}}, status: 401},
		{name: "custom status", h: &SessionAuth{OnUnauthenticated: &Unauthenticated{Status: 403}}, status: 403},
		{name: "optional, no token", h: &SessionAuth{Optional: true}, passes: true},
		{name: "optional, rejected token", h: &SessionAuth{Optional: true}, header: http.Header{"Authorization": {"Bearer nope"}}, passes: true},
		{name: "redirect for a browser", h: &SessionAuth{OnUnauthenticated: &Unauthenticated{Redirect: "/login?to={http.request.uri}"}},
			header: http.Header{"Accept": {"text/html"}}, location: "/login?to="},
		{name: "no redirect when html is refused", h: &SessionAuth{OnUnauthenticated: &Unauthenticated{Redirect: "/login"}},
			header: http.Header{"Accept": {"text/html;q=0, application/json"}}, status: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := provisionAuth(t, tt.h, srv.URL)
			r, _ := requestWithReplacer("GET", "/", tt.header)
			w := httptest.NewRecorder()
			next := &nextRecorder{}
			err := h.ServeHTTP(w, r, next)
			if got := statusOf(err); got != tt.status {
				t.Errorf("error status %d (%v), want %d", got, err, tt.status)
			}
			if (next.got != nil) != tt.passes {
				t.Errorf("reached next: %v, want %v", next.got != nil, tt.passes)
			}
			if tt.status == 401 && w.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if tt.location != "" && (w.Code != http.StatusFound || w.Header().Get("Location") != tt.location) {
				t.Errorf("redirect: %d to %q, want 302 to %q", w.Code, w.Header().Get("Location"), tt.location)
			}
			if next.got != nil {
				if _, ok := requestSession(next.got.Context()); ok {
					t.Error("an anonymous request carries a session")
				}
			}
		})
	}
}

// header_fields picks the default headers injected; the forged ones are
// stripped all the same, and presets still follow their fields.
func TestServeHTTPHeaderFields(t *testing.T) {
	srv, _ := whoami(t)
	forged := http.Header{
		"Authorization":     {"Bearer tok-a"},
		"X-Session-User":    {"mallory"},
		"X-Session-Email":   {"mallory@example.com"},
		"X-Session-User-Id": {"u666"},
	}
	for _, tc := range []struct {
		fields []string
		want   map[string]string // every X-Session-* and Remote-* header the upstream gets
	}{
		{nil, map[string]string{"X-Session-User": "ann", "X-Session-User-Id": "u1", "X-Session-Roles": "dev", "X-Session-Admin": "false", "X-Session-Kind": "user", "Remote-User": "ann", "Remote-Groups": "dev"}},
		{[]string{"user", "roles"}, map[string]string{"X-Session-User": "ann", "X-Session-Roles": "dev", "Remote-User": "ann", "Remote-Groups": "dev"}},
		{[]string{"none"}, map[string]string{"Remote-User": "ann", "Remote-Groups": "dev"}},
	} {
		h := provisionAuth(t, &SessionAuth{HeaderFields: tc.fields, HeaderPresets: []string{"authelia"}}, srv.URL)
		r, _ := requestWithReplacer("GET", "/", forged.Clone())
		next := &nextRecorder{}
		if err := h.ServeHTTP(httptest.NewRecorder(), r, next); err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for k, v := range next.got.Header {
			if strings.HasPrefix(k, "X-Session-") || strings.HasPrefix(k, "Remote-") {
				got[k] = strings.Join(v, "|")
			}
		}
		if !maps.Equal(got, tc.want) {
			t.Errorf("header_fields %v: upstream got %v, want %v", tc.fields, got, tc.want)
		}
	}
}

func TestServeHTTPLogoutEvicts(t *testing.T) {
	srv, calls := whoami(t)
	h := provisionAuth(t, &SessionAuth{Logout: []LogoutRoute{{Method: "post", Path: "/logout"}}}, srv.URL)
	auth := http.Header{"Authorization": {"Bearer tok-a"}}
	serve := func(method, path string, status int) {
		t.Helper()
		r, _ := requestWithReplacer(method, path, auth)
		if err := h.ServeHTTP(httptest.NewRecorder(), r, &nextRecorder{status: status}); err != nil {
			t.Fatal(err)
		}
	}
	serve("GET", "/", 0)
	serve("POST", "/logout", http.StatusInternalServerError) // failed logout keeps the entry
	serve("GET", "/", 0)
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d calls, want 1 before a successful logout", n)
	}
	serve("POST", "/logout", http.StatusNoContent)
	serve("GET", "/", 0)
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d calls, want 2: a 2xx logout evicts the token", n)
	}
}

func TestProvisionRejectsBadConfig(t *testing.T) {
	for name, h := range map[string]*SessionAuth{
		"no dialect":         {},
		"unknown dialect":    {Backend: BackendConfig{Dialect: "nope", URL: "http://x"}},
		"bad url":            {Backend: BackendConfig{Dialect: "http", URL: "not a url"}},
		"negative ttl":       {Backend: BackendConfig{Dialect: "http", URL: "http://x"}, CacheTTL: -1},
		"bad token":          {Backend: BackendConfig{Dialect: "http", URL: "http://x"}, Tokens: []sessionctx.TokenSource{{From: "body"}}},
		"unknown preset":     {Backend: BackendConfig{Dialect: "http", URL: "http://x"}, HeaderPresets: []string{"nginx"}},
		"bad status":         {Backend: BackendConfig{Dialect: "http", URL: "http://x"}, OnUnauthenticated: &Unauthenticated{Status: 500}},
		"bad header name":    {Backend: BackendConfig{Dialect: "http", URL: "http://x"}, Headers: map[string]string{"X Bad": "v"}},
		"bad header field":   {Backend: BackendConfig{Dialect: "http", URL: "http://x"}, HeaderFields: []string{"user", "groups"}},
		"short log_hash_key": {Backend: BackendConfig{Dialect: "http", URL: "http://x"}, LogHashKey: "short"},
		"unset log_hash_key": {Backend: BackendConfig{Dialect: "http", URL: "http://x"}, LogHashKey: "{env.SESSIONGATE_TEST_UNSET_KEY}"},
		"negative retry":     {Backend: BackendConfig{Dialect: "http", URL: "http://x"}, RetryAfter: -1},
	} {
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		err := h.Provision(ctx)
		if err == nil {
			t.Errorf("%s: Provision succeeded", name)
		}
		if cerr := h.Cleanup(); cerr != nil {
			t.Errorf("%s: Cleanup after a failed Provision: %v", name, cerr)
		}
		cancel()
	}
}
