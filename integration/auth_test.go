package integration

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestInjectAndStrip(t *testing.T) {
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	up := newUpstream(t)
	tester := startCaddy(t, fmt.Sprintf(`
:%d {
	session_auth {
		backend http %s
		header X-Who "{session.user}/{session.roles}/{session.attrs.none}"
		headers authelia
	}
	request_header X-Auth-Id {http.auth.user.id}
	reverse_proxy %s
}`, httpPort, svc.URL, up.Listener.Addr()))

	forged := bearer("tok-alice")
	forged.Set("X-Session-User", "mallory")
	forged["X_Session_Admin"] = []string{"true"}
	forged["x-session-org"] = []string{"evil"}
	forged.Set("X-Session-Anything", "forged")
	forged.Set("X-Who", "forged")
	forged.Set("Remote-User", "forged")
	forged.Set("X-Forwarded-User", "forged")

	resp, body := do(t, tester, "GET", "/app?x=1", forged)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, body %q", resp.StatusCode, body)
	}
	got := upstreamSaw(t, body).Headers
	want := map[string]string{
		"X-Session-User":    "alice",
		"X-Session-User-Id": "u-1",
		"X-Session-Email":   "alice@example.com",
		"X-Session-Name":    "Alice Ä",
		"X-Session-Org":     "acme",
		"X-Session-Org-Id":  "o-1",
		"X-Session-Roles":   "admin,dev",
		"X-Session-Perms":   "read,write",
		"X-Session-Admin":   "true",
		"X-Who":             "alice/admin,dev/",
		"Remote-User":       "alice",
		"Remote-Groups":     "admin,dev",
		"X-Auth-Id":         "u-1",
	}
	for k, v := range want {
		if g := got[k]; len(g) != 1 || g[0] != v {
			t.Errorf("upstream got %s = %q, want exactly [%q]", k, g, v)
		}
	}
	for k := range got {
		lk := strings.ToLower(strings.ReplaceAll(k, "_", "-"))
		if strings.HasPrefix(lk, "x-session-anything") || lk == "x-forwarded-user" || (strings.Contains(k, "_") && strings.HasPrefix(lk, "x-session-")) {
			t.Errorf("forged header %s reached the upstream: %q", k, got[k])
		}
	}
	if got.Get("Authorization") == "" {
		t.Errorf("without strip_token the upstream should still see the token")
	}
}

// header_fields keeps the injected headers to those named; forged ones of
// the others are still stripped, not passed through.
func TestHeaderFieldsNarrowInjection(t *testing.T) {
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	up := newUpstream(t)
	tester := startCaddy(t, fmt.Sprintf(`
:%d {
	session_auth http %s {
		header_fields user roles
	}
	reverse_proxy %s
}`, httpPort, svc.URL, up.Listener.Addr()))

	forged := bearer("tok-alice")
	forged.Set("X-Session-Email", "mallory@example.com")
	forged.Set("X-Session-Admin", "true")
	resp, body := do(t, tester, "GET", "/", forged)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, body %q", resp.StatusCode, body)
	}
	got := map[string][]string{}
	for k, v := range upstreamSaw(t, body).Headers {
		if strings.HasPrefix(k, "X-Session-") {
			got[k] = v
		}
	}
	if len(got) != 2 || strings.Join(got["X-Session-User"], "|") != "alice" || strings.Join(got["X-Session-Roles"], "|") != "admin,dev" {
		t.Errorf("upstream got identity headers %v, want only X-Session-User alice and X-Session-Roles admin,dev", got)
	}
}

// TestServiceFailuresAre503: answers that are not a session service's
// word on the session (a redirect to a login page, JSON of the wrong
// shape or naming no user) are failures: 503 with Retry-After, the
// upstream untouched, and never cached, so the same token passes once the
// service recovers. TestHostileFaults runs the transport faults (refused,
// timeout, 5xx, 429, HTML, huge, cut off, TLS), each behind its own route.
func TestServiceFailuresAre503(t *testing.T) {
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	up := newUpstream(t)
	faults := map[string]func(w http.ResponseWriter, r *http.Request) bool{
		"json array": func(w http.ResponseWriter, r *http.Request) bool { w.Write([]byte(`[1,2]`)); return true },
		"status 302": func(w http.ResponseWriter, r *http.Request) bool {
			http.Redirect(w, r, "/login", http.StatusFound)
			return true
		},
		"no user": func(w http.ResponseWriter, r *http.Request) bool { w.Write([]byte(`{"email":"x@y"}`)); return true },
	}
	tester := startCaddy(t, fmt.Sprintf(`
:%d {
	session_auth http %s
	reverse_proxy %s
}`, httpPort, svc.URL, up.Listener.Addr()))

	for name, f := range faults {
		svc.setFault(f)
		before := up.hits.Load()
		resp, _ := do(t, tester, "GET", "/", bearer("tok-alice"))
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("%s: status %d, want 503", name, resp.StatusCode)
		}
		if resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s: no Retry-After", name)
		}
		if up.hits.Load() != before {
			t.Errorf("%s: the upstream was reached", name)
		}
	}
	// Service errors are never cached: once the service recovers, the
	// same token passes.
	svc.setFault(nil)
	if resp, _ := do(t, tester, "GET", "/", bearer("tok-alice")); resp.StatusCode != http.StatusOK {
		t.Errorf("after recovery: status %d, want 200", resp.StatusCode)
	}
}

func TestCacheOneCallPerToken(t *testing.T) {
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	up := newUpstream(t)
	tester := startCaddy(t, fmt.Sprintf(`
:%d {
	session_auth http %s
	reverse_proxy %s
}`, httpPort, svc.URL, up.Listener.Addr()))
	for i := 0; i < 20; i++ {
		if resp, _ := do(t, tester, "GET", "/", bearer("tok-alice")); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		do(t, tester, "GET", "/", bearer("tok-bad"))
	}
	if n := svc.calls.Load(); n != 2 {
		t.Errorf("session service called %d times for 2 tokens over 40 requests, want 2", n)
	}
}

func TestHandleErrorsRendersOutcomes(t *testing.T) {
	svc := newSessionService(t)
	up := newUpstream(t)
	tester := startCaddy(t, fmt.Sprintf(`
:%d {
	handle /down/* {
		session_auth http http://127.0.0.1:1/closed
		reverse_proxy %s
	}
	handle {
		session_auth http %s
		reverse_proxy %s
	}
	handle_errors {
		respond "sessiongate says {err.status_code}" {err.status_code}
	}
}`, httpPort, up.Listener.Addr(), svc.URL, up.Listener.Addr()))

	resp, body := do(t, tester, "GET", "/", nil)
	if resp.StatusCode != 401 || body != "sessiongate says 401" {
		t.Errorf("no token: %d %q", resp.StatusCode, body)
	}
	if resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("handle_errors lost WWW-Authenticate")
	}
	resp, body = do(t, tester, "GET", "/down/x", bearer("t"))
	if resp.StatusCode != 503 || body != "sessiongate says 503" {
		t.Errorf("service down: %d %q", resp.StatusCode, body)
	}
	if resp.Header.Get("Retry-After") == "" {
		t.Errorf("handle_errors lost Retry-After")
	}
}

// TestRedirectForBrowsers: on_unauthenticated redirect sends a browser
// (Accept: text/html, not an XHR) to the login page and keeps the 401 for
// API clients and XHRs. On the route for X-Route: esc, a placeholder in the redirect URL's
// query is query-escaped, so the login service gets exactly one
// return_to whose decoded value is the request URI, and a query token
// never travels into the login URL (strip_token is not set there).
func TestRedirectForBrowsers(t *testing.T) {
	svc := newSessionService(t)
	up := newUpstream(t)
	tester := startCaddy(t, fmt.Sprintf(`
:%d {
	@esc header X-Route esc
	handle @esc {
		session_auth http %[2]s {
			token query tok
			on_unauthenticated redirect "https://login.example.com/?return_to={http.request.uri}&q={query.x}&t={query.tok}"
		}
		reverse_proxy %[3]s
	}
	handle {
		session_auth http %[2]s {
			on_unauthenticated redirect "/login?next={http.request.uri.path}"
		}
		reverse_proxy %[3]s
	}
}`, httpPort, svc.URL, up.Listener.Addr()))

	resp, _ := do(t, tester, "GET", "/reports", http.Header{"Accept": {"text/html,application/xhtml+xml,*/*;q=0.8"}})
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/login?next=%2Freports" {
		t.Errorf("browser: status %d Location %q, want 302 to /login?next=%%2Freports", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = do(t, tester, "GET", "/reports", http.Header{"Accept": {"application/json"}})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("API client: status %d, want 401", resp.StatusCode)
	}
	resp, _ = do(t, tester, "GET", "/reports", http.Header{"Accept": {"text/html"}, "X-Requested-With": {"XMLHttpRequest"}})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("XHR: status %d, want 401", resp.StatusCode)
	}

	for _, tc := range []struct{ path, want, x string }{
		{"/a?x=1&return_to=https://evil.example/", "/a?x=1&return_to=https://evil.example/", "1"},
		{"//evil.example/path", "//evil.example/path", ""},
		{"/b?tok=forged-secret&x=a%26b", "/b?x=a%26b", "a&b"},
		{"/c?x=2&%74ok=forged-secret", "/c?x=2", "2"},
	} {
		resp, _ := do(t, tester, "GET", tc.path, http.Header{"Accept": {"text/html"}, "X-Route": {"esc"}})
		if resp.StatusCode != http.StatusFound {
			t.Errorf("%s: status %d, want 302", tc.path, resp.StatusCode)
			continue
		}
		loc := resp.Header.Get("Location")
		if strings.Contains(loc, "forged-secret") {
			t.Errorf("%s: the query token went into the login URL: %q", tc.path, loc)
		}
		u, err := url.Parse(loc)
		if err != nil || u.Host != "login.example.com" {
			t.Errorf("%s: Location %q (%v)", tc.path, loc, err)
			continue
		}
		q := u.Query()
		if got := q["return_to"]; len(got) != 1 || got[0] != tc.want {
			t.Errorf("%s: return_to %q in %q, want exactly [%q]", tc.path, got, loc, tc.want)
		}
		if len(q) != 3 || q.Get("q") != tc.x || q.Get("t") != "" {
			t.Errorf("%s: parameters %v in %q", tc.path, q, loc)
		}
	}
	if up.hits.Load() != 0 {
		t.Errorf("the upstream was reached %d times", up.hits.Load())
	}
}

// TestRedirectEscapesPathPlaceholders: a placeholder before the login
// URL's query is path-escaped, so a request path cannot add a query of its
// own, and a redirect the template keeps on this host never becomes a
// protocol-relative one to another host.
func TestRedirectEscapesPathPlaceholders(t *testing.T) {
	svc := newSessionService(t)
	up := newUpstream(t)
	tester := startCaddy(t, fmt.Sprintf(`
:%d {
	session_auth http %s {
		on_unauthenticated redirect "{http.request.uri.path}/signin"
	}
	reverse_proxy %s
}`, httpPort, svc.URL, up.Listener.Addr()))

	for _, tc := range []struct{ path, wantPath string }{
		{"//evil.example/x", "/evil.example/x/signin"},
		{"/a%3Fnext=https:%2F%2Fevil.example", "/a?next=https://evil.example/signin"},
		{"/plain", "/plain/signin"},
	} {
		resp, _ := do(t, tester, "GET", tc.path, http.Header{"Accept": {"text/html"}})
		loc := resp.Header.Get("Location")
		u, err := url.Parse(loc)
		if resp.StatusCode != http.StatusFound || err != nil {
			t.Errorf("%s: status %d, Location %q (%v)", tc.path, resp.StatusCode, loc, err)
			continue
		}
		if u.Host != "" || u.Scheme != "" || strings.HasPrefix(loc, "//") || u.RawQuery != "" || u.Path != tc.wantPath {
			t.Errorf("%s: Location %q: host %q query %q path %q, want a path of this host, %q", tc.path, loc, u.Host, u.RawQuery, u.Path, tc.wantPath)
		}
	}
	if up.hits.Load() != 0 {
		t.Errorf("the upstream was reached %d times", up.hits.Load())
	}
}

// TestRetryAfterSetting: retry_after sets the Retry-After of a 503, in
// whole seconds rounded up; without it, 5.
func TestRetryAfterSetting(t *testing.T) {
	downURL := refusingURL(t)
	up := newUpstream(t)
	tester := startCaddy(t, fmt.Sprintf(`
:%d {
	handle /thirty {
		session_auth http %s {
			retry_after 30s
		}
		reverse_proxy %s
	}
	handle /short {
		session_auth http %s {
			retry_after 1500ms
		}
		reverse_proxy %s
	}
	handle {
		session_auth http %s
		reverse_proxy %s
	}
}`, httpPort, downURL, up.Listener.Addr(), downURL, up.Listener.Addr(), downURL, up.Listener.Addr()))

	for path, want := range map[string]string{"/thirty": "30", "/short": "2", "/": "5"} {
		resp, _ := do(t, tester, "GET", path, bearer("tok-alice"))
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != want {
			t.Errorf("%s: %d Retry-After %q, want 503 with %q", path, resp.StatusCode, resp.Header.Get("Retry-After"), want)
		}
	}
}
