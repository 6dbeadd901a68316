package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/fcgi"
	"strings"
	"testing"
)

// layoutNames are the names the session_auth handlers of
// TestLayoutNestedStripUnion inject, one set per layout, and the presets.
var layoutNames = []string{
	"X-Session-User", "X-Session-Admin",
	"X-Auth-User", "X-Auth-Roles", "X-Auth-Whatever",
	"X-Remote-User", "X-Path-User", "X-Route-User", "X-Named-User", "X-Snippet-User",
	"X-Forwarded-User", "X-Auth-Request-User", "Remote-User", "Remote-Groups",
}

// layoutProtected reports whether an upstream reading names leniently
// would take name for one that a session_auth of the config injects.
func layoutProtected(name string) bool {
	for _, p := range []string{"X-Session-", "X-Auth-", "X-Path-"} {
		if protectedBy(p, layoutNames)(name) {
			return true
		}
	}
	return false
}

// newFastCGIApp is a PHP-like app behind php_fastcgi: Go's own FastCGI
// server, which reads the HTTP_* parameters back as headers, as PHP's
// $_SERVER does. It answers the headers it got as JSON.
func newFastCGIApp(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go fcgi.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { //nolint:errcheck // ends when the listener closes
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"headers": r.Header})
	}))
	return ln.Addr().String()
}

// layoutSite is a site whose session_auth handlers sit in every kind of
// block, each with its own names (a prefix, custom headers, presets, a
// prefix written with underscores), and whose other routes proxy: to a
// raw upstream and to a FastCGI app. Only `session_strip` at the top
// protects those.
func layoutSite(svc, up, php string) string {
	return fmt.Sprintf(`
(nested_auth) {
	session_auth http %[2]s {
		header_prefix X-Auth-
		header X-Remote-User {session.user}
		headers oauth2-proxy authelia
	}
}

&(named) {
	route {
		session_auth http %[2]s {
			header X-Named-User {session.user}
		}
		reverse_proxy %[3]s
	}
}

:%[1]d {
	session_strip
	handle /app/* {
		import nested_auth
		reverse_proxy %[3]s
	}
	handle_path /hp/* {
		session_auth http %[2]s {
			header_prefix x-path-
		}
		reverse_proxy %[3]s
	}
	handle /r/* {
		route {
			session_auth http %[2]s {
				header X-Route-User {session.user}
			}
			reverse_proxy %[3]s
		}
	}
	handle /named/* {
		invoke named
	}
	handle /php/* {
		php_fastcgi %[4]s
	}
	handle /snip/* {
		session_auth http %[2]s {
			header X-Snippet-User {session.user}
			optional
		}
		request_header X-Uid "{http.auth.user.id}"
		reverse_proxy %[3]s
	}
	handle {
		request_header X-User "{session.user}"
		request_header X-Uid "{http.auth.user.id}"
		request_header X-Roles "r={session.roles}"
		reverse_proxy %[3]s
	}
}`, httpPort, svc, up, php)
}

// TestLayoutNestedStripUnion: a bare session_strip at the top of a site
// strips every name any session_auth of the config injects (a nested
// header_prefix, custom header names, presets, in every spelling),
// wherever those session_auth sit (handle, handle_path, route, a snippet,
// a named route), on the site's other routes (a plain proxy, a PHP app
// behind php_fastcgi) and on the requests a session_auth leaves
// anonymous; and every placeholder sessiongate provides is empty there,
// never the literal. It used to strip only the default prefix and the
// presets: `X-Auth-User: mallory` and `X-Remote-User: mallory` reached
// the app on every other route, and `{http.auth.user.id}` arrived as
// written.
func TestLayoutNestedStripUnion(t *testing.T) {
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	up := newRawUpstream(t)
	php := newFastCGIApp(t)
	startCaddy(t, layoutSite(svc.URL, up.addr(), php))

	forged := forgedLines(layoutNames)
	for _, path := range []string{"/other", "/", "/application/x", "/public/..;/app/x"} {
		resp, body := rawRequest(t, rawGet(path, forged...))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d: %s", path, resp.StatusCode, body)
		}
		s := decodeRawSeen(t, body)
		checkRawHeaders(t, path, s, layoutProtected, nil)
		checkNoLiteralPlaceholders(t, path, s.Lines)
		for _, l := range s.Lines {
			name, val, _ := strings.Cut(l, ":")
			if (name == "X-User" || name == "X-Uid") && strings.TrimSpace(val) != "" {
				t.Errorf("%s: %s, want it empty on a request without a session", path, l)
			}
		}
	}

	// The FastCGI app reads headers as PHP does.
	resp, body := rawRequest(t, rawGet("/php/index.php", forged...))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("php: status %d: %s", resp.StatusCode, body)
	}
	if strings.Contains(strings.ToLower(body), "mallory") {
		t.Errorf("php: a forged header reached the FastCGI app: %s", body)
	}

	// Anonymous under optional: nothing forged, the id placeholder empty.
	for _, tok := range []string{"", "Authorization: Bearer tok-unknown"} {
		lines := forged
		if tok != "" {
			lines = append([]string{tok}, forged...)
		}
		resp, body := rawRequest(t, rawGet("/snip/x", lines...))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/snip/x (token %q): status %d: %s", tok, resp.StatusCode, body)
		}
		s := decodeRawSeen(t, body)
		checkRawHeaders(t, "anonymous /snip/x", s, layoutProtected, nil)
		checkNoLiteralPlaceholders(t, "anonymous /snip/x", s.Lines)
	}

	// Each block's session_auth sets its own names, and only those.
	auth := "Authorization: Bearer tok-alice"
	for _, c := range []struct {
		path string
		want []string
	}{
		{"/app/x", []string{"X-Auth-User: alice", "X-Remote-User: alice", "X-Forwarded-User: alice", "Remote-User: alice"}},
		{"/hp/x", []string{"X-Path-User: alice"}},
		{"/r/x", []string{"X-Session-User: alice", "X-Route-User: alice"}},
		{"/named/x", []string{"X-Session-User: alice", "X-Named-User: alice"}},
		{"/snip/x", []string{"X-Session-User: alice", "X-Snippet-User: alice", "X-Uid: u-1"}},
	} {
		resp, body := rawRequest(t, rawGet(c.path, append([]string{auth}, forged...)...))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d: %s", c.path, resp.StatusCode, body)
		}
		s := decodeRawSeen(t, body)
		for _, w := range c.want {
			if !containsLine(s.Lines, w) {
				t.Errorf("%s: no %q in %q", c.path, w, s.Lines)
			}
		}
		for _, l := range append(append([]string{}, s.Lines...), s.Trailer...) {
			if strings.Contains(strings.ToLower(l), "mallory") {
				t.Errorf("%s: a forged value reached the upstream: %q", c.path, l)
			}
		}
	}
	// Without a token the required ones answer 401.
	for _, path := range []string{"/app/x", "/hp/x", "/r/x", "/named/x"} {
		if resp, _ := rawRequest(t, rawGet(path, forged...)); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s without a token: status %d, want 401", path, resp.StatusCode)
		}
	}
}

func checkNoLiteralPlaceholders(t *testing.T, what string, lines []string) {
	t.Helper()
	for _, l := range lines {
		if strings.Contains(l, "{session.") || strings.Contains(l, "{http.auth.") {
			t.Errorf("%s: a placeholder reached the upstream literally: %q", what, l)
		}
	}
}

// TestLayoutTwoMatchedSessionAuth: two `session_auth <matcher>` in one
// site, optional on /public and required elsewhere, keep each other's
// identity. The strip the second one emitted used to remove what the
// first had set: /public reached the app with no user at all.
func TestLayoutTwoMatchedSessionAuth(t *testing.T) {
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	up := newRawUpstream(t)
	startCaddy(t, fmt.Sprintf(`
:%d {
	@public path /public/*
	@private not path /public/*
	session_auth @public http %[2]s {
		optional
		header X-Public-User {session.user}
	}
	session_auth @private http %[2]s {
		header X-Private-User {session.user}
	}
	request_header X-Uid "{http.auth.user.id}"
	reverse_proxy %[3]s
}`, httpPort, svc.URL, up.addr()))

	auth := "Authorization: Bearer tok-alice"
	forged := forgedLines([]string{"X-Session-User", "X-Public-User", "X-Private-User"})
	for _, c := range []struct {
		path string
		want []string
	}{
		{"/public/x", []string{"X-Session-User: alice", "X-Public-User: alice", "X-Uid: u-1"}},
		{"/private/x", []string{"X-Session-User: alice", "X-Private-User: alice", "X-Uid: u-1"}},
	} {
		resp, body := rawRequest(t, rawGet(c.path, append([]string{auth}, forged...)...))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d: %s", c.path, resp.StatusCode, body)
		}
		s := decodeRawSeen(t, body)
		for _, w := range c.want {
			if !containsLine(s.Lines, w) {
				t.Errorf("%s: no %q in %q", c.path, w, s.Lines)
			}
		}
		for _, l := range s.Lines {
			if strings.Contains(strings.ToLower(l), "mallory") {
				t.Errorf("%s: a forged value reached the upstream: %q", c.path, l)
			}
		}
	}
	resp, body := rawRequest(t, rawGet("/public/x", forged...))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("anonymous /public/x: status %d: %s", resp.StatusCode, body)
	}
	s := decodeRawSeen(t, body)
	checkNoLiteralPlaceholders(t, "anonymous /public/x", s.Lines)
	for _, l := range s.Lines {
		if strings.Contains(strings.ToLower(l), "mallory") || strings.HasPrefix(l, "X-Uid: ") && l != "X-Uid: " {
			t.Errorf("anonymous /public/x: %q", l)
		}
	}
	if resp, _ := rawRequest(t, rawGet("/private/x", forged...)); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous /private/x: status %d, want 401", resp.StatusCode)
	}
}

// loadRefused loads site and fails unless the load is refused with an
// error that holds every want.
func loadRefused(t *testing.T, what, contentType, config string, want ...string) {
	t.Helper()
	status, body := loadConfig(t, contentType, config)
	if status == http.StatusOK {
		t.Errorf("%s: the config loaded; want it refused", what)
		return
	}
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("%s: the error does not say %q: %s", what, w, body)
		}
	}
}

// TestLayoutRefused: a config where some request reaches a proxy
// around every session_auth, or where a session_auth cannot run, is
// refused when it loads, saying what to add or move. Each used to start
// silently: forged identity headers and literal placeholders reached the
// proxied app on the sibling routes, and the orders below left every
// request unauthenticated or answered valid sessions 401.
func TestLayoutRefused(t *testing.T) {
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	up := newRawUpstream(t)
	php := newFastCGIApp(t)
	startCaddy(t, fmt.Sprintf(":%d {\n\trespond ok\n}\n", httpPort))

	auth := fmt.Sprintf("session_auth http %s", svc.URL)
	unstripped := map[string]string{
		"handle":         "handle /app/* {\n\t\t%[1]s\n\t\treverse_proxy %[2]s\n\t}\n\thandle {\n\t\treverse_proxy %[2]s\n\t}",
		"handle_path":    "handle_path /app/* {\n\t\t%[1]s\n\t\treverse_proxy %[2]s\n\t}\n\treverse_proxy %[2]s",
		"route":          "route /app/* {\n\t\t%[1]s\n\t\treverse_proxy %[2]s\n\t}\n\treverse_proxy %[2]s",
		"request_header": "handle /app/* {\n\t\t%[1]s\n\t\treverse_proxy %[2]s\n\t}\n\thandle {\n\t\trequest_header X-User {session.user}\n\t\treverse_proxy %[2]s\n\t}",
		"php_fastcgi":    "handle /app/* {\n\t\t%[1]s\n\t\treverse_proxy %[2]s\n\t}\n\thandle {\n\t\tphp_fastcgi %[3]s\n\t}",
		// An error from a sibling route goes to handle_errors with the
		// request as the client sent it.
		"handle_errors": "handle /app/* {\n\t\t%[1]s\n\t\treverse_proxy %[2]s\n\t}\n\thandle {\n\t\terror 404\n\t}\n\thandle_errors {\n\t\trequest_header X-User {session.user}\n\t\treverse_proxy %[2]s\n\t}",
		"a proxy before the strip of a matched session_auth": "route {\n\t\treverse_proxy /x %[2]s\n\t\tsession_auth /app/* http %[4]s\n\t\treverse_proxy %[2]s\n\t}",
	}
	for name, body := range unstripped {
		site := fmt.Sprintf(":%d {\n\t%s\n}\n", httpPort, fmt.Sprintf(body, auth, up.addr(), php, svc.URL))
		loadRefused(t, name, "text/caddyfile", globalOptions+site, "session_strip", "reverse_proxy")
	}

	// Caddy keeps only a named route's first handler unless they sit in
	// one route block.
	named := fmt.Sprintf("&(named) {\n\troute {\n\t\t%s\n\t\treverse_proxy %s\n\t}\n}\n:%d {\n\thandle /app/* {\n\t\tinvoke named\n\t}\n\treverse_proxy %s\n}\n", auth, up.addr(), httpPort, up.addr())
	loadRefused(t, "named route", "text/caddyfile", globalOptions+named, "session_strip")

	for name, c := range map[string]struct{ body, want string }{
		"reverse_proxy before session_auth": {"route {\n\t\treverse_proxy %[2]s\n\t\t%[1]s\n\t}", "never runs"},
		"respond before session_auth":       {"route {\n\t\trespond ok\n\t\t%[1]s\n\t\treverse_proxy %[2]s\n\t}", "never runs"},
		"session_require before":            {"route {\n\t\tsession_require role admin\n\t\t%[1]s\n\t\treverse_proxy %[2]s\n\t}", "session_require"},
		"session_require in an outer route": {"route {\n\t\tsession_require /admin* role admin\n\t\troute {\n\t\t\t%[1]s\n\t\t}\n\t\treverse_proxy %[2]s\n\t}", "session_require"},
	} {
		site := fmt.Sprintf(":%d {\n\tsession_strip\n\t%s\n}\n", httpPort, fmt.Sprintf(c.body, auth, up.addr()))
		loadRefused(t, name, "text/caddyfile", globalOptions+site, c.want)
	}

	// Sites are judged apart: a host's site without session_auth needs
	// no strip; one with a nested session_auth does, and is named.
	hosts := fmt.Sprintf("http://localhost:%[1]d {\n\thandle /app/* {\n\t\t%[2]s\n\t\treverse_proxy %[3]s\n\t}\n\treverse_proxy %[3]s\n}\nhttp://127.0.0.1:%[1]d {\n\treverse_proxy %[3]s\n}\n", httpPort, auth, up.addr())
	loadRefused(t, "host sites", "text/caddyfile", globalOptions+hosts, "site localhost", "session_strip")
	hosts = strings.Replace(hosts, "http://localhost:"+fmt.Sprint(httpPort)+" {\n", "http://localhost:"+fmt.Sprint(httpPort)+" {\n\tsession_strip\n", 1)
	if status, out := loadConfig(t, "text/caddyfile", globalOptions+hosts); status != http.StatusOK {
		t.Errorf("host sites, the one with session_auth stripped: refused: %s", out)
	}

	// A host's handle_errors is judged with its own site: refused where
	// the site's errors come unstripped, accepted where the site's
	// session_auth ran on every request.
	errHosts := fmt.Sprintf("http://localhost:%[1]d {\n\t%[2]s\n\treverse_proxy %[3]s\n\thandle_errors {\n\t\treverse_proxy %[3]s\n\t}\n}\nhttp://127.0.0.1:%[1]d {\n\thandle /app/* {\n\t\t%[2]s\n\t\treverse_proxy %[3]s\n\t}\n\thandle {\n\t\terror 404\n\t}\n\thandle_errors {\n\t\treverse_proxy %[3]s\n\t}\n}\n", httpPort, auth, up.addr())
	loadRefused(t, "host sites, handle_errors", "text/caddyfile", globalOptions+errHosts, "site 127.0.0.1", "errors/routes", "session_strip")
	errHosts = strings.Replace(errHosts, "http://127.0.0.1:"+fmt.Sprint(httpPort)+" {\n", "http://127.0.0.1:"+fmt.Sprint(httpPort)+" {\n\tsession_strip\n", 1)
	if status, out := loadConfig(t, "text/caddyfile", globalOptions+errHosts); status != http.StatusOK {
		t.Errorf("host sites, handle_errors, both stripped: refused: %s", out)
	}

	// A token read from a header the config strips would never arrive.
	for name, c := range map[string]struct{ body, want string }{
		"own prefix":            {"session_auth http %[1]s {\n\t\ttoken header X-Session-Token\n\t}", "X-Session-Token"},
		"another's custom name": {"handle /a/* {\n\t\tsession_auth http %[1]s {\n\t\t\theader X-Api-Key {session.user}\n\t\t}\n\t}\n\thandle {\n\t\tsession_auth http %[1]s {\n\t\t\ttoken header x_api_key\n\t\t}\n\t}", "api_key"},
		"a preset's token name": {"session_auth http %[1]s {\n\t\ttoken header X-Forwarded-Access-Token\n\t}", "X-Forwarded-Access-Token"},
	} {
		site := fmt.Sprintf(":%d {\n\t%s\n\trespond ok\n}\n", httpPort, fmt.Sprintf(c.body, svc.URL))
		loadRefused(t, name, "text/caddyfile", globalOptions+site, c.want, "strips")
	}

	// Layouts that leave no way around: accepted, and safe.
	for name, body := range map[string]string{
		"site strip":                       "session_strip\n\thandle /app/* {\n\t\t%[1]s\n\t\treverse_proxy %[2]s\n\t}\n\treverse_proxy %[2]s",
		"session_auth in every handle":     "handle /app/* {\n\t\t%[1]s\n\t\treverse_proxy %[2]s\n\t}\n\thandle {\n\t\t%[1]s {\n\t\t\toptional\n\t\t}\n\t\treverse_proxy %[2]s\n\t}",
		"matched session_auth":             "session_auth /app/* http %[3]s\n\treverse_proxy %[2]s",
		"matched session_auth in a route":  "route {\n\t\tsession_auth /app/* http %[3]s\n\t\treverse_proxy %[2]s\n\t}",
		"an exempted path in a route":      "route {\n\t\trespond /health ok\n\t\t%[1]s\n\t\treverse_proxy %[2]s\n\t}",
		"site strip, handle_errors":        "session_strip\n\thandle /app/* {\n\t\t%[1]s\n\t\treverse_proxy %[2]s\n\t}\n\thandle {\n\t\terror 404\n\t}\n\thandle_errors {\n\t\treverse_proxy %[2]s\n\t}",
		"site session_auth, handle_errors": "%[1]s\n\treverse_proxy %[2]s\n\thandle_errors {\n\t\treverse_proxy %[2]s\n\t}",
		"session_require after the auth":   "route {\n\t\t%[1]s\n\t\tsession_require role admin\n\t\treverse_proxy %[2]s\n\t}",
	} {
		site := fmt.Sprintf(":%d {\n\t%s\n}\n", httpPort, fmt.Sprintf(body, auth, up.addr(), svc.URL))
		if status, out := loadConfig(t, "text/caddyfile", globalOptions+site); status != http.StatusOK {
			t.Errorf("%s: refused: %s", name, out)
			continue
		}
		resp, out := rawRequest(t, rawGet("/other", "X-Session-User: mallory"))
		if strings.Contains(out, "mallory") {
			t.Errorf("%s: /other answered %d with the forged header: %s", name, resp.StatusCode, out)
		}
	}
}

// loadConfig posts a config to the admin API's /load. A refused load
// makes Caddy restore the running config, whose admin endpoint may drop
// the next connection: admin sends it again then (afterLoad).
func loadConfig(t *testing.T, contentType, config string) (int, string) {
	t.Helper()
	return admin(t, http.MethodPost, "/load", contentType, config)
}

// layoutJSON is a JSON config whose one server has the given routes.
func layoutJSON(routes string) string {
	return fmt.Sprintf(`{
	"admin": {"listen": "localhost:%d"},
	"apps": {"http": {"http_port": %d, "https_port": %d, "grace_period": 1000000000, "servers": {"srv0": {
		"listen": [":%d"],
		"automatic_https": {"disable": true},
		"routes": %s
	}}}}
}`, adminPort, httpPort, httpsPort, httpPort, routes)
}

// TestLayoutJSON: the same holds for a JSON config. A session_strip
// handler with no names strips what the config's session_auth handlers
// inject (here a custom header name and a prefix it does not repeat);
// without it, a session_auth behind a matcher with a proxy beside it is
// refused.
func TestLayoutJSON(t *testing.T) {
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	up := newRawUpstream(t)
	startCaddy(t, fmt.Sprintf(":%d {\n\trespond ok\n}\n", httpPort))

	auth := fmt.Sprintf(`{"match": [{"path": ["/app/*"]}], "handle": [
		{"handler": "session_auth", "backend": {"dialect": "http", "url": %q},
		 "header_prefix": "X-Auth-", "headers": {"X-Remote-User": "{session.user}"}},
		{"handler": "reverse_proxy", "upstreams": [{"dial": %q}]}], "terminal": true}`, svc.URL, up.addr())
	rest := fmt.Sprintf(`{"handle": [
		{"handler": "headers", "request": {"set": {"X-Uid": ["{http.auth.user.id}"], "X-User": ["{session.user}"]}}},
		{"handler": "reverse_proxy", "upstreams": [{"dial": %q}]}]}`, up.addr())

	loadRefused(t, "JSON without a strip", "application/json", layoutJSON("["+auth+","+rest+"]"), "session_strip")
	early := fmt.Sprintf(`{"match": [{"path": ["/x"]}], "handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": %q}]}]}`, up.addr())
	loadRefused(t, "JSON with a proxy before the strip", "application/json",
		layoutJSON("["+auth+","+early+","+`{"handle": [{"handler": "session_strip"}]}`+","+rest+"]"), "session_strip")

	if status, out := loadConfig(t, "application/json",
		layoutJSON("["+`{"handle": [{"handler": "session_strip"}]}`+","+auth+","+rest+"]")); status != http.StatusOK {
		t.Fatalf("JSON with a bare session_strip first: refused: %s", out)
	}
	forged := forgedLines([]string{"X-Auth-User", "X-Remote-User", "Remote-User"})
	resp, body := rawRequest(t, rawGet("/other", forged...))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/other: status %d: %s", resp.StatusCode, body)
	}
	s := decodeRawSeen(t, body)
	checkRawHeaders(t, "JSON /other", s, func(n string) bool {
		return protectedBy("X-Auth-", []string{"X-Remote-User"})(n)
	}, nil)
	checkNoLiteralPlaceholders(t, "JSON /other", s.Lines)

	resp, body = rawRequest(t, rawGet("/app/x", append([]string{"Authorization: Bearer tok-alice"}, forged...)...))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/app/x: status %d: %s", resp.StatusCode, body)
	}
	s = decodeRawSeen(t, body)
	for _, w := range []string{"X-Auth-User: alice", "X-Remote-User: alice"} {
		if !containsLine(s.Lines, w) {
			t.Errorf("/app/x: no %q in %q", w, s.Lines)
		}
	}
	if strings.Contains(strings.ToLower(body), "mallory") {
		t.Errorf("/app/x: a forged value reached the upstream: %s", body)
	}
}

// TestLayoutLaterSessionAuthDecides: when two session_auth run on one
// request, the later one decides, for the placeholders as for the
// headers. The earlier one's placeholders used to win: the app got
// `X-Session-User: bob` beside `X-P: alice`.
func TestLayoutLaterSessionAuthDecides(t *testing.T) {
	svcA := newSessionService(t)
	svcA.addSession("tok-a", aliceSession())
	svcB := newSessionService(t)
	svcB.addSession("tok-b", map[string]any{"user_id": "u-2", "user": "bob"})
	up := newRawUpstream(t)
	startCaddy(t, fmt.Sprintf(`
:%d {
	session_auth http %s {
		optional
	}
	route /b/* {
		session_auth http %s {
			token header X-Token-B
		}
		request_header X-P "{session.user}/{http.auth.user.id}"
		reverse_proxy %s
	}
	reverse_proxy %[4]s
}`, httpPort, svcA.URL, svcB.URL, up.addr()))

	resp, body := rawRequest(t, rawGet("/b/x", "Authorization: Bearer tok-a", "X-Token-B: tok-b"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/b/x: status %d: %s", resp.StatusCode, body)
	}
	s := decodeRawSeen(t, body)
	for _, w := range []string{"X-Session-User: bob", "X-P: bob/u-2"} {
		if !containsLine(s.Lines, w) {
			t.Errorf("/b/x: no %q in %q", w, s.Lines)
		}
	}
	for _, l := range s.Lines {
		if strings.Contains(l, "alice") {
			t.Errorf("/b/x: the earlier session's value reached the upstream: %q", l)
		}
	}
}

// TestLayoutDefaultPrefixAlwaysStripped: the default prefix is stripped
// even where the only session_auth injects under a prefix of its own: an
// app may still read X-Session-*, and no client-sent name under it is
// ever sessiongate's.
func TestLayoutDefaultPrefixAlwaysStripped(t *testing.T) {
	svc := newSessionService(t)
	svc.addSession("tok-own-prefix", aliceSession())
	up := newUpstream(t)
	tester := startCaddy(t, fmt.Sprintf(`
:%d {
	session_auth http %s {
		header_prefix X-Auth-
		optional
	}
	reverse_proxy %s
}`, httpPort, svc.URL, up.Listener.Addr()))
	for _, tok := range []string{"tok-own-prefix", ""} {
		h := http.Header{"X-Session-User": {"mallory"}, "X_session_roles": {"admin"}}
		if tok != "" {
			h.Set("Authorization", "Bearer "+tok)
		}
		_, body := do(t, tester, "GET", "/", h)
		saw := upstreamSaw(t, body).Headers
		for name := range saw {
			if strings.HasPrefix(strings.ToLower(strings.ReplaceAll(name, "_", "-")), "x-session-") {
				t.Errorf("token %q: the app got %s: %q", tok, name, saw[name])
			}
		}
		if tok != "" && saw.Get("X-Auth-User") != "alice" {
			t.Errorf("the app got X-Auth-User %q, want alice", saw.Get("X-Auth-User"))
		}
	}
}
