package integration

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// legacyApp behaves like a header-auth app such as Miniflux: on a request
// with no session cookie of its own it reads X-Session-User once, creates
// a session for that name and sets its cookie; afterwards it trusts only
// the cookie. It answers "user=<name>" (or "user=" when it knows nobody).
type legacyApp struct {
	*httptest.Server
	created atomic.Int64

	mu       sync.Mutex
	sessions map[string]string // app cookie value -> user
	logouts  []http.Header     // the headers of each logout request
}

const appCookie = "app_sid"

func newLegacyApp(t *testing.T) *legacyApp {
	t.Helper()
	a := &legacyApp{sessions: map[string]string{}}
	a.Server = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.Close)
	return a
}

func (a *legacyApp) serve(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var user string
	known := false
	if c, err := r.Cookie(appCookie); err == nil {
		user, known = a.sessions[c.Value]
	}
	switch r.URL.Path {
	case "/logout":
		// The app ends its own session and redirects, leaving its
		// cookie in the browser as many apps do.
		a.logouts = append(a.logouts, r.Header.Clone())
		if c, err := r.Cookie(appCookie); err == nil {
			delete(a.sessions, c.Value)
		}
		w.Header().Set("Location", "/")
		w.WriteHeader(http.StatusFound)
		return
	case "/cart":
		// Anonymous visitors get a session too (a cart, a CSRF token).
		if !known {
			user, known = "", true
			a.newSession(w, "")
		}
	}
	if !known {
		if u := r.Header.Get("X-Session-User"); u != "" {
			user = u
			a.newSession(w, u)
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "user=%s", user) //nolint:gosec // G705: a fake app answering the test's client, as text, never a browser
}

func (a *legacyApp) newSession(w http.ResponseWriter, user string) {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	a.sessions[id] = user
	a.created.Add(1)
	// Not Secure: the test site is plain HTTP.
	http.SetCookie(w, &http.Cookie{Name: appCookie, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode}) //nolint:gosec // G124: plain-HTTP test site
}

// browser is one browser profile: a cookie jar the tests can edit, as a
// user (or an attacker) can.
type browser struct {
	t      *testing.T
	jar    *cookiejar.Jar
	client *http.Client
	base   *url.URL
}

func newBrowser(t *testing.T, site string) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	base, _ := url.Parse(site)
	return &browser{t: t, jar: jar, base: base, client: &http.Client{
		Jar:           jar,
		Transport:     &http.Transport{DisableKeepAlives: true},
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// signIn puts the SSO cookie (the session token) in the jar; "" drops it.
func (b *browser) signIn(token string) {
	c := &http.Cookie{Name: "sso", Value: token, Path: "/"} //nolint:gosec // G124: a cookie in the test's own jar
	if token == "" {
		c.MaxAge = -1
	}
	b.jar.SetCookies(b.base, []*http.Cookie{c})
}

func (b *browser) cookie(name string) string {
	for _, c := range b.jar.Cookies(b.base) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

func (b *browser) setCookie(name, value string) {
	b.jar.SetCookies(b.base, []*http.Cookie{{Name: name, Value: value, Path: "/"}}) //nolint:gosec // G124: a cookie in the test's own jar
}

// answer is a response, its body read and closed.
type answer struct {
	StatusCode int
	Header     http.Header
}

func (b *browser) do(method, path string) (answer, string) {
	b.t.Helper()
	req, err := http.NewRequest(method, b.base.String()+path, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header}, string(body)
}

// expectUser checks which user the app says it is serving, and returns
// the answer's header.
func (b *browser) expectUser(path, want, when string) http.Header {
	b.t.Helper()
	resp, body := b.do("GET", path)
	if resp.StatusCode != http.StatusOK || body != "user="+want {
		b.t.Errorf("%s: GET %s answered %d %q, want the app serving %q", when, path, resp.StatusCode, body, want)
	}
	return resp.Header
}

// expired lists the cookies an answer's header expires (Max-Age=0).
func expired(h http.Header) map[string]string {
	out := map[string]string{}
	for _, line := range h.Values("Set-Cookie") {
		c, err := http.ParseSetCookie(line)
		if err == nil && c.MaxAge < 0 {
			out[c.Name] = c.Path
		}
	}
	return out
}

func legacyAppSessions(t *testing.T) *sessionService {
	svc := newSessionService(t)
	for tok, user := range map[string]string{"tok-jose": "josé", "tok-bob": "bob"} {
		svc.addSession(tok, map[string]any{"user_id": "id-" + user, "user": user})
	}
	return svc
}

// TestAppSessionFollowsIdentity: behind app_session, the app's own
// session cookie is good only for the identity it was made for. In one
// cookie jar, switching users, dropping the session, a forged binding, a
// binding replayed from another user or for another cookie value: each
// time the app no longer sees the old cookie and starts a session for the
// identity it is given now. Without app_session the app kept serving the
// first user.
func TestAppSessionFollowsIdentity(t *testing.T) {
	svc := legacyAppSessions(t)
	app := newLegacyApp(t)
	startCaddy(t, fmt.Sprintf(`
:%d {
	session_auth http %s {
		token cookie sso
		optional
		app_session %s
		app_session_secret 0123456789abcdef0123456789abcdef
	}
	reverse_proxy %s
}
:%d {
	session_auth http %s {
		token cookie sso
		app_session %s
		app_session_secret 0123456789abcdef0123456789abcdef
	}
	reverse_proxy %s
}`, httpPort, svc.URL, appCookie, app.URL, altPort, svc.URL, appCookie, app.URL))

	b := newBrowser(t, siteURL)
	b.signIn("tok-jose")
	hdr := b.expectUser("/", "josé", "josé's first visit")
	if b.cookie(appCookie) == "" || b.cookie("sessiongate_"+appCookie) == "" {
		t.Fatalf("after josé's first visit the jar holds no app cookie and binding: %v", hdr.Values("Set-Cookie"))
	}
	for _, line := range hdr.Values("Set-Cookie") {
		if strings.HasPrefix(line, "sessiongate_") {
			if !strings.Contains(line, "HttpOnly") || !strings.Contains(line, "Path=/") || !strings.Contains(line, "SameSite=Lax") {
				t.Errorf("binding cookie without the app cookie's attributes: %q", line)
			}
			for _, clear := range []string{"josé", "jos%C3%A9", "id-josé", b.cookie(appCookie), "tok-jose"} {
				if strings.Contains(line, clear) {
					t.Errorf("binding cookie shows %q in clear: %q", clear, line)
				}
			}
		}
	}
	joseCookie, joseBinding := b.cookie(appCookie), b.cookie("sessiongate_"+appCookie)

	// A matching binding: the app keeps its session, nothing is expired.
	hdr = b.expectUser("/", "josé", "josé again")
	if len(hdr.Values("Set-Cookie")) != 0 {
		t.Errorf("a bound request got Set-Cookie %q", hdr.Values("Set-Cookie"))
	}
	if got := app.created.Load(); got != 1 {
		t.Errorf("the app made %d sessions for josé's two visits, want 1", got)
	}

	// Another user signs in in the same browser.
	b.signIn("tok-bob")
	b.expectUser("/", "bob", "bob after josé in the same browser")
	bobCookie, bobBinding := b.cookie(appCookie), b.cookie("sessiongate_"+appCookie)
	if bobCookie == joseCookie || bobBinding == joseBinding {
		t.Errorf("bob's app cookie or binding is josé's")
	}
	b.expectUser("/", "bob", "bob again")

	// The session goes (signed out of the SSO, optional route).
	b.signIn("")
	hdr = b.expectUser("/", "", "no session on an optional route")
	if exp := expired(hdr); exp[appCookie] != "/" || exp["sessiongate_"+appCookie] != "/" {
		t.Errorf("dropping the session expired %v, want the app cookie and its binding at Path=/", exp)
	}
	if b.cookie(appCookie) != "" {
		t.Errorf("the app cookie survived the expiry")
	}

	// A forged binding next to a real app cookie of bob's.
	b.signIn("tok-bob")
	b.setCookie(appCookie, bobCookie)
	b.setCookie("sessiongate_"+appCookie, strings.Repeat("A", 43))
	b.expectUser("/", "bob", "forged binding (the app must start over)")
	if b.cookie(appCookie) == bobCookie {
		t.Errorf("the app kept the cookie that came with a forged binding")
	}

	// josé's cookie and binding, replayed by bob.
	b.setCookie(appCookie, joseCookie)
	b.setCookie("sessiongate_"+appCookie, joseBinding)
	b.expectUser("/", "bob", "josé's pair replayed by bob")

	// josé's binding with another app cookie value.
	other := newBrowser(t, siteURL)
	other.signIn("tok-jose")
	other.expectUser("/", "josé", "josé in a second browser")
	b.signIn("tok-jose")
	b.setCookie(appCookie, other.cookie(appCookie))
	b.setCookie("sessiongate_"+appCookie, joseBinding)
	before := app.created.Load()
	b.expectUser("/", "josé", "josé's binding for another cookie value")
	if app.created.Load() != before+1 {
		t.Errorf("a binding for another cookie value let the app reuse a session")
	}

	// A cookie the app sets for an anonymous visitor is bound to nobody:
	// kept while anonymous, gone once the visitor signs in.
	anon := newBrowser(t, siteURL)
	anon.expectUser("/cart", "", "anonymous cart")
	cart := anon.cookie(appCookie)
	anon.expectUser("/cart", "", "anonymous cart again")
	if anon.cookie(appCookie) != cart {
		t.Errorf("an anonymous app session was not kept for the next anonymous request")
	}
	anon.signIn("tok-bob")
	anon.expectUser("/", "bob", "signing in after an anonymous app session")

	// A rejected token where a session is required: 401, and the app
	// cookie and binding the browser holds are expired.
	b.signIn("tok-unknown")
	alt := newBrowser(t, altURL)
	alt.jar = b.jar
	alt.client.Jar = b.jar
	resp, _ := alt.do("GET", "/")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("rejected token: %d, want 401", resp.StatusCode)
	}
	if exp := expired(resp.Header); exp[appCookie] == "" || exp["sessiongate_"+appCookie] == "" {
		t.Errorf("a rejected session expired %v, want the app cookie and its binding", exp)
	}
}

// TestAppSessionCookieAttributes: the binding follows the app cookie's
// own path, domain, lifetime, Secure and SameSite, each of several
// Set-Cookie lines is bound on its own, and a cookie the app deletes
// loses its binding too. Streaming answers keep streaming.
func TestAppSessionCookieAttributes(t *testing.T) {
	svc := legacyAppSessions(t)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/grafana/login":
			w.Header().Add("Set-Cookie", "grafana_session=g1; Path=/grafana; Max-Age=3600; Secure; HttpOnly; SameSite=Strict")
			w.Header().Add("Set-Cookie", "theme=dark; Path=/")
			w.Header().Add("Set-Cookie", "grafana_session_expiry=99; Path=/grafana; SameSite=None; Secure")
		case "/grafana/logout":
			w.Header().Add("Set-Cookie", "grafana_session=; Path=/grafana; Max-Age=0")
		case "/stream":
			w.Header().Add("Set-Cookie", "grafana_session=s1; Path=/")
			w.WriteHeader(http.StatusOK)
			fmt.Fprint(w, "first\n")
			w.(http.Flusher).Flush()
			time.Sleep(300 * time.Millisecond)
			fmt.Fprint(w, "second\n")
			return
		}
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(app.Close)
	startCaddy(t, fmt.Sprintf(`
:%d {
	session_auth http %s {
		token cookie sso
		app_session grafana_session grafana_session_expiry
	}
	reverse_proxy %s {
		flush_interval -1
	}
}`, httpPort, svc.URL, app.URL))

	h := http.Header{"Cookie": {"sso=tok-bob"}}
	resp, _ := do(t, nil, "GET", "/grafana/login", h)
	bindings := map[string]*http.Cookie{}
	for _, line := range resp.Header.Values("Set-Cookie") {
		c, err := http.ParseSetCookie(line)
		if err != nil {
			t.Fatalf("bad Set-Cookie %q: %v", line, err)
		}
		if strings.HasPrefix(c.Name, "sessiongate_") {
			bindings[c.Name] = c
		}
	}
	if len(bindings) != 2 || bindings["sessiongate_theme"] != nil {
		t.Fatalf("bindings %v, want one for each app_session cookie set", resp.Header.Values("Set-Cookie"))
	}
	g := bindings["sessiongate_grafana_session"]
	if g == nil || g.Path != "/grafana" || g.MaxAge != 3600 || !g.Secure || !g.HttpOnly || g.SameSite != http.SameSiteStrictMode {
		t.Errorf("grafana_session's binding %+v: want Path=/grafana, Max-Age=3600, Secure, HttpOnly, SameSite=Strict", g)
	}
	if e := bindings["sessiongate_grafana_session_expiry"]; e == nil || e.SameSite != http.SameSiteNoneMode || !e.Secure {
		t.Errorf("grafana_session_expiry's binding %+v: want SameSite=None, Secure", e)
	}

	// The bound pair reaches the app; the app deletes its cookie on its
	// logout page, and the binding goes with it.
	h = http.Header{"Cookie": {"sso=tok-bob; grafana_session=g1; sessiongate_grafana_session=" + g.Value}}
	resp, _ = do(t, nil, "GET", "/grafana/logout", h)
	if exp := expired(resp.Header); exp["sessiongate_grafana_session"] != "/grafana" {
		t.Errorf("the app deleted its cookie; bindings expired: %v, want sessiongate_grafana_session at /grafana", exp)
	}

	// A streamed answer: the first line arrives before the app's pause
	// ends, with the binding in its header.
	req, _ := http.NewRequest("GET", siteURL+"/stream", nil)
	req.Header.Set("Cookie", "sso=tok-bob")
	start := time.Now()
	sresp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer sresp.Body.Close()
	line := make([]byte, 6)
	if _, err := io.ReadFull(sresp.Body, line); err != nil || string(line) != "first\n" {
		t.Fatalf("stream: %q, %v", line, err)
	}
	if waited := time.Since(start); waited > 250*time.Millisecond {
		t.Errorf("the first line took %v: the answer was buffered", waited)
	}
	if !strings.Contains(strings.Join(sresp.Header.Values("Set-Cookie"), "\n"), "sessiongate_grafana_session=") {
		t.Errorf("streamed answer without its binding: %q", sresp.Header.Values("Set-Cookie"))
	}
}

// TestLogoutCompletes: a logout the app answers with a redirect ends the
// session in sessiongate (the cache entry goes, so the next request asks
// the session service); a logout the app refuses does not. With
// strip_token the logout request, and only it, reaches the app with its
// token, so the app can revoke it. With app_session, the completed logout
// also expires the app cookie and its binding.
func TestLogoutCompletes(t *testing.T) {
	svc := legacyAppSessions(t)
	app := newLegacyApp(t)
	site := `
:%d {
	session_auth http %s {
		token cookie sso
		strip_token
		logout POST /logout
		logout POST /refused
		%s
	}
	route /refused {
		respond "no" 403
	}
	reverse_proxy %s
}`
	startCaddy(t, fmt.Sprintf(site, httpPort, svc.URL, "", app.URL))

	b := newBrowser(t, siteURL)
	b.signIn("tok-jose")
	b.expectUser("/", "josé", "first visit")
	b.expectUser("/", "josé", "second visit")
	expectCalls(t, svc, 1, "two visits")

	resp, _ := b.do("POST", "/refused")
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("refused logout: %d, want 403", resp.StatusCode)
	}
	b.expectUser("/", "josé", "after a refused logout")
	expectCalls(t, svc, 1, "a refused logout keeps the session cached")

	resp, _ = b.do("POST", "/logout")
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("logout: %d, want the app's 302", resp.StatusCode)
	}
	app.mu.Lock()
	logouts := app.logouts
	app.mu.Unlock()
	if len(logouts) != 1 || !strings.Contains(logouts[0].Get("Cookie"), "sso=tok-jose") {
		t.Errorf("the app's logout saw Cookie %q, want the token kept for it", logouts)
	}
	b.do("GET", "/")
	expectCalls(t, svc, 2, "the logout answered 302 evicted the token")

	// Elsewhere strip_token holds: the app never sees the token.
	up := newUpstream(t)
	startCaddy(t, fmt.Sprintf(site, httpPort, svc.URL, "", up.URL))
	_, body := do(t, nil, "GET", "/", http.Header{"Cookie": {"sso=tok-bob; other=1"}})
	if c := upstreamSaw(t, body).Headers.Get("Cookie"); strings.Contains(c, "sso") {
		t.Errorf("strip_token: the app saw Cookie %q on a request that is no logout", c)
	}
	_, body = do(t, nil, "POST", "/logout", http.Header{"Cookie": {"sso=tok-bob"}})
	if c := upstreamSaw(t, body).Headers.Get("Cookie"); c != "sso=tok-bob" {
		t.Errorf("strip_token: the app's logout saw Cookie %q, want the token", c)
	}

	// app_session: the logout answered 302 unbinds; a refused one not.
	startCaddy(t, fmt.Sprintf(site, httpPort, svc.URL, "app_session "+appCookie, app.URL))
	b = newBrowser(t, siteURL)
	b.signIn("tok-bob")
	b.expectUser("/", "bob", "bob's first visit")
	resp, _ = b.do("POST", "/refused")
	if exp := expired(resp.Header); len(exp) != 0 {
		t.Errorf("a refused logout expired %v", exp)
	}
	resp, _ = b.do("POST", "/logout")
	if exp := expired(resp.Header); exp["sessiongate_"+appCookie] != "/" || exp[appCookie] != "/" {
		t.Errorf("logout answered 302 expired %v, want the app cookie and its binding", exp)
	}
	if b.cookie(appCookie) != "" || b.cookie("sessiongate_"+appCookie) != "" {
		t.Errorf("after logout the jar still holds the app cookie or its binding")
	}
}

// TestHeaderEncodingNames: names as users typed them, in several scripts
// and with '+', '%', spaces, control characters and invalid UTF-8 from the
// session service, through each header_encoding, in the injected headers,
// a roles list, a custom header and a {session.user} placeholder, each
// read back with the decoder the docs name. A value the encoding cannot
// carry exactly is not sent at all, and the request still goes through.
func TestHeaderEncodingNames(t *testing.T) {
	users := []string{"josé", "zoë ångström", "山田太郎", "a+b", "100%", "a%2Bb", " padded", "ctl\x01x", "tab\tx", "bad\xffutf8", "=?UTF-8?B?YWRtaW4=?="}
	svc := newSessionService(t)
	svc.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		// Raw bytes in the JSON, as a sloppy service sends them.
		var i int
		if _, err := fmt.Sscanf(r.Header.Get("Authorization"), "Bearer tok-%d", &i); err != nil || i >= len(users) {
			return false
		}
		w.Header().Set("Content-Type", "application/json")
		u := users[i]
		q := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\x01", `\u0001`, "\t", `\t`).Replace(u)
		fmt.Fprintf(w, `{"user_id":"id-%d","user":"%s","email":"e%d@example.com","roles":["équipe","r+%%"]}`, i, q, i)
		return true
	})
	// What raw cannot carry exactly: control characters, invalid UTF-8
	// and white space at either end (which HTTP parsers trim); what
	// rfc2047 cannot: invalid UTF-8, as its words say UTF-8.
	refused := map[string]map[string]bool{
		"raw":     {" padded": true, "ctl\x01x": true, "tab\tx": true, "bad\xffutf8": true},
		"rfc2047": {"bad\xffutf8": true},
	}
	decoders := map[string]func(string) (string, error){
		"raw":     func(v string) (string, error) { return v, nil },
		"percent": url.PathUnescape,
		"rfc2047": new(mime.WordDecoder).DecodeHeader,
	}
	for _, enc := range []string{"", "percent", "rfc2047"} {
		name := enc
		line := "header_encoding " + enc
		if enc == "" {
			name, line = "raw", ""
		}
		t.Run(name, func(t *testing.T) {
			up := newRawUpstream(t)
			startCaddy(t, fmt.Sprintf(`
:%d {
	session_auth http %s {
		%s
		header X-Remote-User "{session.user}"
	}
	request_header X-Placeholder-User {session.user}
	reverse_proxy %s
}`, httpPort, svc.URL, line, up.addr()))
			decode := decoders[name]
			seenAs := map[string]string{}
			for i, u := range users {
				resp, body := rawRequest(t, rawGet("/", fmt.Sprintf("Authorization: Bearer tok-%d", i)))
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("user %q: status %d: %s", u, resp.StatusCode, body)
				}
				got := map[string]string{}
				for _, l := range decodeRawSeen(t, body).Lines {
					k, v, _ := strings.Cut(l, ":")
					got[k] = strings.TrimSpace(v)
				}
				if got["X-Session-Email"] != fmt.Sprintf("e%d@example.com", i) {
					t.Errorf("user %q: X-Session-Email %q: the other fields must still be sent", u, got["X-Session-Email"])
				}
				want := u
				hv, sent := got["X-Session-User"]
				if sent == refused[name][u] {
					t.Errorf("%s: user %q sent=%v (as %q), want sent=%v", name, u, sent, hv, !refused[name][u])
				}
				if !sent {
					for _, k := range []string{"X-Remote-User", "X-Placeholder-User"} {
						if got[k] != "" {
							t.Errorf("user %q: refused as X-Session-User but %s = %q", u, k, got[k])
						}
					}
					continue
				}
				dec, err := decode(hv)
				if err != nil || dec != want {
					t.Errorf("%s: user %q arrived as %q, decoding to %q (%v)", name, u, hv, dec, err)
				}
				if name == "raw" && hv != want {
					t.Errorf("raw: user %q arrived as %q", u, hv)
				}
				for _, k := range []string{"X-Remote-User", "X-Placeholder-User"} {
					if got[k] != hv {
						t.Errorf("user %q: %s = %q, want %q as X-Session-User", u, k, got[k], hv)
					}
				}
				roles := strings.Split(got["X-Session-Roles"], ",")
				if len(roles) != 2 {
					t.Errorf("user %q: X-Session-Roles %q, want two roles", u, got["X-Session-Roles"])
				} else {
					for j, r := range []string{"équipe", "r+%"} {
						if d, err := decode(roles[j]); err != nil || d != r {
							t.Errorf("user %q: role %d arrived as %q, decoding to %q (%v)", u, j, roles[j], d, err)
						}
					}
				}
				if prev, dup := seenAs[hv]; dup {
					t.Errorf("users %q and %q both reached the app as %q", prev, u, hv)
				}
				seenAs[hv] = u
			}
			for _, u := range []string{"josé", "zoë ångström", "山田太郎", "a+b"} {
				if name == "raw" {
					if _, ok := seenAs[u]; !ok {
						t.Errorf("raw: %q did not reach the app as typed (seen: %q)", u, seenAs)
					}
				}
			}
		})
	}
}

// TestBrowserErrorPages: a browser that gets sessiongate's 401 (no
// redirect configured) or 503 sees a page saying to sign in or to retry,
// with the same status, WWW-Authenticate and Retry-After; an API client
// keeps the empty body; a site with handle_errors renders its own.
func TestBrowserErrorPages(t *testing.T) {
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	down := newSessionService(t)
	down.setFault(func(w http.ResponseWriter, _ *http.Request) bool {
		w.WriteHeader(http.StatusBadGateway)
		return true
	})
	up := newUpstream(t)
	startCaddy(t, fmt.Sprintf(`
:%d {
	@down path /down*
	session_auth @down http %s {
		retry_after 7s
	}
	session_auth http %s
	reverse_proxy %s
}
:%d {
	session_auth http %s
	reverse_proxy %s
	handle_errors {
		respond "site page {err.status_code}"
	}
}`, httpPort, down.URL, svc.URL, up.URL, altPort, svc.URL, up.URL))

	browser := http.Header{"Accept": {"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}}
	api := http.Header{"Accept": {"application/json"}}

	resp, body := do(t, nil, "GET", "/", browser)
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("browser without a session: %d, WWW-Authenticate %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, "sign in") || !strings.Contains(body, "<html") {
		t.Errorf("browser without a session got %q %q, want a page saying to sign in", resp.Header.Get("Content-Type"), body)
	}
	resp, body = do(t, nil, "GET", "/", api)
	if resp.StatusCode != http.StatusUnauthorized || body != "" {
		t.Errorf("API client without a session: %d %q, want 401 with no body", resp.StatusCode, body)
	}
	// A client that lists text/html below another type, or refuses it
	// in any spelling of q, is no browser.
	for _, accept := range []string{"application/json, text/html;q=0.1", "application/json;q=0.9, text/html;q=0.5", "text/html;Q=0", "text/html;level=1;q=0"} {
		resp, body = do(t, nil, "GET", "/", http.Header{"Accept": {accept}})
		if resp.StatusCode != http.StatusUnauthorized || body != "" {
			t.Errorf("Accept %q without a session: %d %q, want 401 with no body", accept, resp.StatusCode, body)
		}
	}
	resp, body = do(t, nil, "HEAD", "/", browser)
	if resp.StatusCode != http.StatusUnauthorized || body != "" {
		t.Errorf("HEAD from a browser: %d %q", resp.StatusCode, body)
	}

	h := bearer("tok-alice")
	h["Accept"] = browser["Accept"]
	resp, body = do(t, nil, "GET", "/down", h)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "7" {
		t.Errorf("browser, service down: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if !strings.Contains(body, "try again in 7 seconds") || strings.Contains(body, "tok-alice") {
		t.Errorf("browser, service down: %q, want a page saying to retry", body)
	}
	h["Accept"] = api["Accept"]
	resp, body = do(t, nil, "GET", "/down", h)
	if resp.StatusCode != http.StatusServiceUnavailable || body != "" {
		t.Errorf("API client, service down: %d %q, want 503 with no body", resp.StatusCode, body)
	}

	// handle_errors takes over.
	req, _ := http.NewRequest("GET", altURL+"/", nil)
	req.Header = browser.Clone()
	aresp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	ab, _ := io.ReadAll(aresp.Body)
	aresp.Body.Close()
	if aresp.StatusCode != http.StatusUnauthorized || string(ab) != "site page 401" {
		t.Errorf("with handle_errors: %d %q, want the site's own page", aresp.StatusCode, ab)
	}

	// session_require's 401 on an optional route: the same page.
	startCaddy(t, fmt.Sprintf(`
:%d {
	session_auth http %s {
		optional
	}
	session_require
	reverse_proxy %s
}`, httpPort, svc.URL, up.URL))
	resp, body = do(t, nil, "GET", "/", browser)
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" || !strings.Contains(body, "sign in") {
		t.Errorf("session_require, browser without a session: %d %q %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
	}
	resp, body = do(t, nil, "GET", "/", api)
	if resp.StatusCode != http.StatusUnauthorized || body != "" {
		t.Errorf("session_require, API client without a session: %d %q", resp.StatusCode, body)
	}
}
