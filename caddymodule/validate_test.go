package caddymodule

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// TestValidateJSON is the JSON path, with no Caddyfile parser in front:
// each bad value is refused by Provision (before it builds anything) with
// an error that names the setting and the value.
func TestValidateJSON(t *testing.T) {
	t.Setenv("SESSIONGATE_TEST_SHORT_KEY", "short")
	be := BackendConfig{Dialect: "http", URL: "http://127.0.0.1:1/whoami"}
	withTransport := func(raw string) BackendConfig {
		b := be
		b.Transport = new(reverseproxy.HTTPTransport)
		if err := json.Unmarshal([]byte(raw), b.Transport); err != nil {
			t.Fatalf("transport %s: %v", raw, err)
		}
		return b
	}
	for _, tc := range []struct {
		name string
		h    SessionAuth
		want []string
	}{
		{"no backend", SessionAuth{}, []string{"needs a backend", "dialect"}},
		{"unknown dialect", SessionAuth{Backend: BackendConfig{Dialect: "ldap", URL: be.URL}}, []string{`unknown dialect "ldap"`}},
		{"no url", SessionAuth{Backend: BackendConfig{Dialect: "http"}}, []string{"backend url", "http://"}},
		{"ftp url", SessionAuth{Backend: BackendConfig{Dialect: "http", URL: "ftp://a.example/x"}}, []string{`backend url "ftp://a.example/x"`}},
		{"url without host", SessionAuth{Backend: BackendConfig{Dialect: "http", URL: "http:///whoami"}}, []string{`backend url "http:///whoami"`}},
		{"url from an unset variable", SessionAuth{Backend: BackendConfig{Dialect: "http", URL: "{env.SESSIONGATE_TEST_UNSET}"}}, []string{"SESSIONGATE_TEST_UNSET", "not set"}},
		{"negative timeout", SessionAuth{Backend: be, Timeout: -1}, []string{"timeout must not be negative"}},
		{"negative cache_ttl", SessionAuth{Backend: be, CacheTTL: -1}, []string{"cache_ttl must not be negative"}},
		{"negative negative_ttl", SessionAuth{Backend: be, NegativeTTL: -1}, []string{"negative_ttl must not be negative"}},
		{"negative stale_if_error", SessionAuth{Backend: be, StaleIfError: -1}, []string{"stale_if_error must not be negative"}},
		{"negative retry_after", SessionAuth{Backend: be, RetryAfter: -1}, []string{"retry_after must not be negative"}},
		{"negative cache_max", SessionAuth{Backend: be, CacheMax: -2}, []string{`cache_max "-2" must not be negative`}},
		{"unknown token source", SessionAuth{Backend: be, Tokens: []sessionctx.TokenSource{{From: "body"}}}, []string{"tokens 0", `"body"`}},
		{"cookie without a name", SessionAuth{Backend: be, Tokens: []sessionctx.TokenSource{{From: "bearer"}, {From: "cookie"}}}, []string{"tokens 1", "cookie needs a name"}},
		{"header_prefix with a colon", SessionAuth{Backend: be, HeaderPrefix: "X-A:"}, []string{`header_prefix "X-A:"`}},
		{"header name with a space", SessionAuth{Backend: be, Headers: map[string]string{"X Bad": "v"}}, []string{`header "X Bad"`}},
		{"backend_header name with a colon", SessionAuth{Backend: be, BackendHeaders: http.Header{"X-Key:": {"v"}}}, []string{`backend_header "X-Key:"`}},
		{"unknown header field", SessionAuth{Backend: be, HeaderFields: []string{"user", "groups"}}, []string{`header_fields: unknown field "groups"`}},
		{"header field twice", SessionAuth{Backend: be, HeaderFields: []string{"user", "user"}}, []string{"header_fields: user given twice"}},
		{"unknown preset", SessionAuth{Backend: be, HeaderPresets: []string{"nginx"}}, []string{`unknown header preset "nginx"`}},
		{"unknown header_encoding", SessionAuth{Backend: be, HeaderEncoding: "base64"}, []string{`header_encoding "base64"`, "raw, percent, rfc2047"}},
		{"app_session not a cookie name", SessionAuth{Backend: be, AppSession: []string{"a;b"}}, []string{`app_session "a;b"`, "not a cookie name"}},
		{"app_session a binding's name", SessionAuth{Backend: be, AppSession: []string{"sessiongate_x"}}, []string{`app_session "sessiongate_x"`}},
		{"app_session the token cookie", SessionAuth{Backend: be, AppSession: []string{"sid"}, Tokens: []sessionctx.TokenSource{{From: "cookie", Name: "sid"}}}, []string{`app_session "sid"`, "token"}},
		{"short app_session_secret", SessionAuth{Backend: be, AppSession: []string{"sid"}, AppSessionSecret: "short"}, []string{"app_session_secret is 5 bytes", "32"}},
		{"short app_session_secret from env", SessionAuth{Backend: be, AppSession: []string{"sid"}, AppSessionSecret: "{env.SESSIONGATE_TEST_SHORT_KEY}"}, []string{"app_session_secret is 5 bytes"}},
		{"app_session a default token cookie", SessionAuth{Backend: BackendConfig{Dialect: "amplify", URL: "http://127.0.0.1:1"}, AppSession: []string{"connect.sid"}}, []string{`app_session "connect.sid"`, "token"}},
		{"app_session_secret alone", SessionAuth{Backend: be, AppSessionSecret: strings.Repeat("k", 32)}, []string{"app_session_secret without app_session"}},
		{"5xx status", SessionAuth{Backend: be, OnUnauthenticated: &Unauthenticated{Status: 500}}, []string{"on_unauthenticated status", "500", "4xx"}},
		{"3xx status", SessionAuth{Backend: be, OnUnauthenticated: &Unauthenticated{Status: 302}}, []string{"on_unauthenticated status", "302", "4xx"}},
		{"logout without method", SessionAuth{Backend: be, Logout: []LogoutRoute{{Path: "/logout"}}}, []string{"logout 0: no method"}},
		{"logout path without slash", SessionAuth{Backend: be, Logout: []LogoutRoute{{Method: "POST", Path: "logout"}}}, []string{`logout path "logout" must start with /`}},
		{"short log_hash_key", SessionAuth{Backend: be, LogHashKey: "short"}, []string{"log_hash_key", "at least 16"}},
		{"short log_hash_key from the environment", SessionAuth{Backend: be, LogHashKey: "{env.SESSIONGATE_TEST_SHORT_KEY}"}, []string{"log_hash_key", "at least 16", "is 5 bytes"}},
		{"unset log_hash_key", SessionAuth{Backend: be, LogHashKey: "{env.SESSIONGATE_TEST_UNSET_KEY}"}, []string{"SESSIONGATE_TEST_UNSET_KEY", "not set"}},
		{"cluster without secret", SessionAuth{Backend: be, Cluster: &ClusterConfig{URL: "redis://127.0.0.1:1"}}, []string{"cluster needs a secret"}},
		{"cluster short secret", SessionAuth{Backend: be, Cluster: &ClusterConfig{URL: "redis://127.0.0.1:1", Secret: "short"}}, []string{"cluster secret is 5 bytes"}},
		{"cluster not redis", SessionAuth{Backend: be, Cluster: &ClusterConfig{URL: "http://127.0.0.1:1", Secret: strings.Repeat("s", 32)}}, []string{"cluster url", "redis://"}},
		{"cluster negative timeout", SessionAuth{Backend: be, Cluster: &ClusterConfig{URL: "redis://127.0.0.1:1", Secret: strings.Repeat("s", 32), Timeout: -1}}, []string{"cluster timeout must not be negative"}},
		{"transport HTTP/3", SessionAuth{Backend: withTransport(`{"versions":["3"]}`)}, []string{"versions 3"}},
		{"transport unknown HTTP version", SessionAuth{Backend: withTransport(`{"versions":["1.0"]}`)}, []string{"backend transport", "1.0"}},
		{"transport proxy protocol", SessionAuth{Backend: withTransport(`{"proxy_protocol":"v2"}`)}, []string{"proxy_protocol"}},
		{"transport missing CA file", SessionAuth{Backend: withTransport(`{"tls":{"ca":{"provider":"file","pem_files":["/nonexistent/ca.pem"]}}}`)}, []string{"backend transport", "/nonexistent/ca.pem"}},
		{"transport unknown trust pool", SessionAuth{Backend: withTransport(`{"tls":{"ca":{"provider":"nosuch"}}}`)}, []string{"backend transport", "nosuch"}},
		{"transport client certificate without key", SessionAuth{Backend: withTransport(`{"tls":{"client_certificate_file":"/x/cert.pem"}}`)}, []string{"backend transport", "client_certificate_key_file"}},
		{"transport missing client certificate", SessionAuth{Backend: withTransport(`{"tls":{"client_certificate_file":"/nonexistent/c.pem","client_certificate_key_file":"/nonexistent/k.pem"}}`)}, []string{"backend transport", "/nonexistent/c.pem"}},
		{"deprecated CA file missing", SessionAuth{Backend: be, TLSTrustedCACerts: []string{"/nonexistent/ca.pem"}}, []string{"tls_trusted_ca_certs", "/nonexistent/ca.pem"}},
		{"deprecated CAs beside a trust pool", SessionAuth{Backend: withTransport(`{"tls":{"ca":{"provider":"file","pem_files":["/a.pem"]}}}`), TLSTrustedCACerts: []string{"/b.pem"}}, []string{"tls_trusted_ca_certs", "tls_trust_pool", "give one"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.h
			before := len(liveResolvers())
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			err := h.Provision(ctx)
			if cerr := h.Cleanup(); cerr != nil {
				t.Errorf("Cleanup after a failed Provision: %v", cerr)
			}
			if err == nil {
				t.Fatalf("Provision accepted it; want an error saying %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if after := len(liveResolvers()); after != before {
				t.Errorf("a refused config changed the pool from %d to %d resolvers", before, after)
			}
		})
	}
}

// TestValidateJSONAccepts is the other side: zero values (the defaults)
// and values waiting for a set variable pass.
func TestValidateJSONAccepts(t *testing.T) {
	srv, _ := whoami(t)
	t.Setenv("SESSIONGATE_TEST_URL", srv.URL)
	t.Setenv("SESSIONGATE_TEST_KEY", strings.Repeat("k", 16))
	for name, h := range map[string]*SessionAuth{
		"defaults":           {Backend: BackendConfig{Dialect: "http", URL: srv.URL}},
		"url from env":       {Backend: BackendConfig{Dialect: "http", URL: "{env.SESSIONGATE_TEST_URL}"}},
		"key from env":       {Backend: BackendConfig{Dialect: "http", URL: srv.URL}, LogHashKey: "{env.SESSIONGATE_TEST_KEY}"},
		"4xx and a redirect": {Backend: BackendConfig{Dialect: "http", URL: srv.URL}, OnUnauthenticated: &Unauthenticated{Status: 403, Redirect: "/login"}},
		"header_fields none": {Backend: BackendConfig{Dialect: "http", URL: srv.URL}, HeaderFields: []string{"none"}},
	} {
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		if err := h.Provision(ctx); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		cleanup(t, h)
		cancel()
	}
}

// TestTransportPoolKey: the transport settings are part of the resolver's
// identity; the same settings share one, even when one handler gave them
// as the older top-level field and the other in the transport.
func TestTransportPoolKey(t *testing.T) {
	srv, _ := whoami(t)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	provision := func(h *SessionAuth) *SessionAuth {
		t.Helper()
		if err := h.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cleanup(t, h) })
		return h
	}
	be := func(transport string) BackendConfig {
		b := BackendConfig{Dialect: "http", URL: srv.URL}
		if transport != "" {
			b.Transport = new(reverseproxy.HTTPTransport)
			if err := json.Unmarshal([]byte(transport), b.Transport); err != nil {
				t.Fatal(err)
			}
		}
		return b
	}
	plain := provision(&SessionAuth{Backend: be("")})
	named := provision(&SessionAuth{Backend: be(`{"tls":{"server_name":"auth.internal"}}`)})
	skip := provision(&SessionAuth{Backend: be(`{"tls":{"insecure_skip_verify":true}}`)})
	skipOld := provision(&SessionAuth{Backend: be(""), TLSInsecureSkipVerify: true})
	if plain.poolKey == named.poolKey || plain.poolKey == skip.poolKey || named.poolKey == skip.poolKey {
		t.Errorf("different TLS settings share a resolver: %s %s %s", plain.poolKey, named.poolKey, skip.poolKey)
	}
	if skip.poolKey != skipOld.poolKey {
		t.Errorf("tls_insecure_skip_verify at the top and in the transport: two resolvers")
	}
}

// TestTransportLifecycle: the resolver's connections to the session
// service are closed when the last handler using it is gone, and a
// handler provisioned onto a live resolver (a reload with the same
// config) installs its own transport, closing the previous one's idle
// connections, so files such as certificates are read again.
func TestTransportLifecycle(t *testing.T) {
	var open atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"user":"ann"}`))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	srv.Start()
	defer srv.Close()
	waitOpen := func(want int64, why string) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for open.Load() != want && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := open.Load(); n != want {
			t.Fatalf("%s: %d connections open to the session service, want %d", why, n, want)
		}
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	resolve := func(h *SessionAuth, tok string) {
		t.Helper()
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		if _, err := h.client.Authenticate(r); err != nil {
			t.Fatal(err)
		}
	}

	old := &SessionAuth{Backend: BackendConfig{Dialect: "http", URL: srv.URL}}
	if err := old.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	resolve(old, "a")
	waitOpen(1, "after a lookup")

	reloaded := &SessionAuth{Backend: BackendConfig{Dialect: "http", URL: srv.URL}}
	if err := reloaded.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if reloaded.client != old.client {
		t.Fatal("the same config did not share the resolver")
	}
	waitOpen(0, "after a handler installed its transport")
	resolve(reloaded, "b")
	waitOpen(1, "after a lookup on the new transport")

	cleanup(t, old)
	waitOpen(1, "while a handler still uses the resolver")
	cleanup(t, reloaded)
	waitOpen(0, "after the last handler is gone")
}
