package integration

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
)

// spoofNames are every header name session_auth injects or owns on the
// default-prefix routes of TestHostileSpoofMatrix: the nine defaults, a
// name made of the prefix and any suffix, the bare prefix, a custom
// `header`, and both presets' names.
var spoofNames = []string{
	"X-Session-User", "X-Session-User-Id", "X-Session-Email", "X-Session-Name",
	"X-Session-Org", "X-Session-Org-Id", "X-Session-Roles", "X-Session-Perms",
	"X-Session-Admin", "X-Session-Kind", "X-Session-App", "X-Session-App-Id", "X-Session-Anything-Else", "X-Session-",
	"X-Custom-Ident",
	"X-Forwarded-User", "X-Forwarded-Email", "X-Forwarded-Preferred-Username", "X-Forwarded-Groups",
	"X-Auth-Request-User", "X-Auth-Request-Email", "X-Auth-Request-Preferred-Username", "X-Auth-Request-Groups",
	"Remote-User", "Remote-Groups", "Remote-Email", "Remote-Name",
	"X-Forwarded-Access-Token", "X-Auth-Request-Access-Token", "GAP-Auth",
}

// prefixSpoofNames are the names owned by the route with header_prefix
// X-Auth-: its prefix with any suffix, and the presets' names, which every
// session_auth strips whatever it emits.
var prefixSpoofNames = []string{
	"X-Auth-User", "X-Auth-Roles", "X-Auth-Admin", "X-Auth-Kind", "X-Auth-App", "X-Auth-Whatever",
	"X-Forwarded-User", "Remote-User", "Remote-Groups",
}

// spoofForms are the spellings under which an upstream could read a forged
// header as the real one. Each turns a canonical name into raw header
// lines.
var spoofForms = []struct {
	name  string
	lines func(n string) []string
}{
	{"canonical", func(n string) []string { return []string{n + ": mallory"} }},
	{"lower case", func(n string) []string { return []string{strings.ToLower(n) + ": mallory"} }},
	{"upper case", func(n string) []string { return []string{strings.ToUpper(n) + ": mallory"} }},
	{"underscores", func(n string) []string { return []string{strings.ReplaceAll(n, "-", "_") + ": mallory"} }},
	{"lower underscores", func(n string) []string {
		return []string{strings.ToLower(strings.ReplaceAll(n, "-", "_")) + ": mallory"}
	}},
	{"upper underscores", func(n string) []string {
		return []string{strings.ToUpper(strings.ReplaceAll(n, "-", "_")) + ": mallory"}
	}},
	{"dots", func(n string) []string { return []string{strings.ReplaceAll(n, "-", ".") + ": mallory"} }},
	{"tildes", func(n string) []string { return []string{strings.Replace(n, "-", "~", 1) + ": mallory"} }},
	{"mixed separators", func(n string) []string { return []string{strings.Replace(n, "-", "_", 1) + ": mallory"} }},
	{"repeated lines", func(n string) []string {
		return []string{n + ": mallory", n + ": mallory2", strings.ToLower(n) + ": mallory3"}
	}},
	{"list value", func(n string) []string { return []string{n + ": mallory, admin"} }},
	{"empty value", func(n string) []string { return []string{n + ":"} }},
	{"padded value", func(n string) []string { return []string{n + ":   mallory   "} }},
}

// trustedAlice is what the /auth/ route must send upstream for
// aliceSession: these exact lines, each once, and no other line under a
// protected name.
var trustedAlice = []string{
	"X-Session-User: alice", "X-Session-User-Id: u-1", "X-Session-Email: alice@example.com",
	"X-Session-Name: Alice Ä", "X-Session-Org: acme", "X-Session-Org-Id: o-1",
	"X-Session-Roles: admin,dev", "X-Session-Perms: read,write", "X-Session-Admin: true", "X-Session-Kind: user",
	"X-Custom-Ident: alice",
	"X-Forwarded-User: alice", "X-Forwarded-Email: alice@example.com",
	"X-Forwarded-Preferred-Username: alice", "X-Forwarded-Groups: admin,dev",
	"X-Auth-Request-User: alice", "X-Auth-Request-Email: alice@example.com",
	"X-Auth-Request-Preferred-Username: alice", "X-Auth-Request-Groups: admin,dev",
	"Remote-User: alice", "Remote-Groups: admin,dev", "Remote-Email: alice@example.com",
	"Remote-Name: Alice Ä",
}

var trustedAlicePrefix = []string{
	"X-Auth-User: alice", "X-Auth-User-Id: u-1", "X-Auth-Email: alice@example.com",
	"X-Auth-Name: Alice Ä", "X-Auth-Org: acme", "X-Auth-Org-Id: o-1",
	"X-Auth-Roles: admin,dev", "X-Auth-Perms: read,write", "X-Auth-Admin: true", "X-Auth-Kind: user",
}

// protectedBy reports whether an upstream reading names leniently would
// take name for one of the handler's own headers.
func protectedBy(prefix string, names []string) func(string) bool {
	fp := fold(prefix)
	set := map[string]bool{}
	for _, n := range names {
		set[fold(n)] = true
	}
	for _, ps := range []string{"X-Forwarded-User", "X-Forwarded-Email", "X-Forwarded-Preferred-Username",
		"X-Forwarded-Groups", "X-Auth-Request-User", "X-Auth-Request-Email",
		"X-Auth-Request-Preferred-Username", "X-Auth-Request-Groups",
		"Remote-User", "Remote-Groups", "Remote-Email", "Remote-Name",
		"X-Forwarded-Access-Token", "X-Auth-Request-Access-Token", "GAP-Auth"} {
		set[fold(ps)] = true
	}
	return func(name string) bool {
		fn := fold(name)
		return strings.HasPrefix(fn, fp) || set[fn]
	}
}

// checkRawHeaders fails unless the only header lines under a protected
// name are the trusted ones, each exactly once, and (when want is set)
// every trusted line is there. Nothing the client sent as "mallory" may
// appear in any header or trailer line at all.
func checkRawHeaders(t *testing.T, what string, seen rawSeen, protected func(string) bool, want []string) {
	t.Helper()
	count := map[string]int{}
	for _, l := range want {
		count[l] = 0
	}
	for _, l := range seen.Lines {
		name, _, ok := strings.Cut(l, ":")
		if !ok || !protected(name) {
			continue
		}
		if _, trusted := count[l]; !trusted {
			t.Errorf("%s: forged or unexpected line reached the upstream: %q", what, l)
			continue
		}
		count[l]++
	}
	for l, n := range count {
		if n != 1 {
			t.Errorf("%s: trusted line %q reached the upstream %d times, want once", what, l, n)
		}
	}
	for _, l := range append(append([]string{}, seen.Lines...), seen.Trailer...) {
		if strings.Contains(strings.ToLower(l), "mallory") {
			t.Errorf("%s: a forged value reached the upstream: %q", what, l)
		}
	}
}

func spoofSite(svcURL, up string) string {
	return fmt.Sprintf(`
:%d {
	handle /auth/* {
		session_auth http %[2]s {
			header X-Custom-Ident "{session.user}"
			headers oauth2-proxy authelia
		}
		reverse_proxy %[3]s
	}
	handle /anon/* {
		session_auth http %[2]s {
			optional
			header X-Custom-Ident "{session.user}"
			headers oauth2-proxy authelia
		}
		reverse_proxy %[3]s
	}
	handle /reject/* {
		session_auth http %[2]s {
			header X-Custom-Ident "{session.user}"
			headers oauth2-proxy authelia
		}
		reverse_proxy %[3]s
	}
	handle /prefix/* {
		session_auth http %[2]s {
			header_prefix X-Auth-
		}
		reverse_proxy %[3]s
	}
	handle /info {
		session_auth http %[2]s {
			optional
		}
		session_info
	}
	handle /info-alone {
		session_info
	}
}`, httpPort, svcURL, up)
}

// TestHostileSpoofMatrix sends every owned header name in every spelling
// an upstream could merge with it, over raw HTTP/1.1 so nothing
// canonicalizes on the way in, on the authenticated, anonymous, rejected,
// custom-prefix and session_info paths. Only the trusted values may reach
// the upstream.
func TestHostileSpoofMatrix(t *testing.T) {
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	up := newRawUpstream(t)
	startCaddy(t, spoofSite(svc.URL, up.addr()))

	defProtected := protectedBy("X-Session-", []string{"X-Custom-Ident"})
	preProtected := protectedBy("X-Auth-", nil)
	formLines := func(names []string, form func(string) []string) []string {
		var lines []string
		for _, n := range names {
			lines = append(lines, form(n)...)
		}
		return lines
	}

	for _, form := range spoofForms {
		forged := formLines(spoofNames, form.lines)
		auth := "Authorization: Bearer tok-alice"

		// Authenticated: exactly the trusted lines.
		resp, body := rawRequest(t, rawGet("/auth/x", append([]string{auth}, forged...)...))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("authenticated, %s: status %d: %s", form.name, resp.StatusCode, body)
		}
		checkRawHeaders(t, "authenticated, "+form.name, decodeRawSeen(t, body), defProtected, trustedAlice)

		// Anonymous (optional), without a token and with a rejected one:
		// nothing under a protected name.
		for _, tok := range []string{"", "Authorization: Bearer tok-unknown"} {
			lines := forged
			what := "anonymous, " + form.name
			if tok != "" {
				lines = append([]string{tok}, forged...)
				what = "anonymous rejected token, " + form.name
			}
			resp, body = rawRequest(t, rawGet("/anon/x", lines...))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: status %d: %s", what, resp.StatusCode, body)
			}
			checkRawHeaders(t, what, decodeRawSeen(t, body), defProtected, nil)
		}

		// Rejected (not optional): 401, and the upstream untouched.
		before := up.hits.Load()
		for _, lines := range [][]string{forged, append([]string{"Authorization: Bearer tok-unknown"}, forged...)} {
			resp, _ = rawRequest(t, rawGet("/reject/x", lines...))
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("rejected, %s: status %d, want 401", form.name, resp.StatusCode)
			}
		}
		if n := up.hits.Load() - before; n != 0 {
			t.Errorf("rejected, %s: the upstream was reached %d times", form.name, n)
		}

		// A custom header_prefix owns its own names.
		resp, body = rawRequest(t, rawGet("/prefix/x", append([]string{auth}, formLines(prefixSpoofNames, form.lines)...)...))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("custom prefix, %s: status %d: %s", form.name, resp.StatusCode, body)
		}
		checkRawHeaders(t, "custom prefix, "+form.name, decodeRawSeen(t, body), preProtected, trustedAlicePrefix)

		// session_info answers from the session, never from headers.
		for _, c := range []struct {
			path, tok string
			status    int
			user      string
		}{
			{"/info", auth, 200, `"user":"alice"`},
			{"/info", "", 401, ""},
			{"/info", "Authorization: Bearer tok-unknown", 401, ""},
			{"/info-alone", auth, 401, ""},
		} {
			lines := forged
			if c.tok != "" {
				lines = append([]string{c.tok}, forged...)
			}
			resp, body = rawRequest(t, rawGet(c.path, lines...))
			what := fmt.Sprintf("session_info %s (token %q), %s", c.path, c.tok, form.name)
			if resp.StatusCode != c.status {
				t.Errorf("%s: status %d, want %d: %s", what, resp.StatusCode, c.status, body)
			}
			if strings.Contains(body, "mallory") || !strings.Contains(body, c.user) {
				t.Errorf("%s: answer %s", what, body)
			}
		}
	}
}

// TestHostileHopByHopAndTrailers covers two ways around header stripping
// that need no forged header at all, or put one where stripping does not
// look: a Connection header naming an identity header (a proxy drops the
// headers Connection lists, so the client could delete the trusted value
// injected after stripping), and a forged header sent as a trailer of a
// chunked body (which reverse_proxy forwards).
func TestHostileHopByHopAndTrailers(t *testing.T) {
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	up := newRawUpstream(t)
	startCaddy(t, spoofSite(svc.URL, up.addr()))
	protected := protectedBy("X-Session-", []string{"X-Custom-Ident"})

	conn := []string{"Authorization: Bearer tok-alice"}
	for _, n := range spoofNames {
		conn = append(conn, "Connection: "+n, "Connection: keep-alive, "+strings.ToLower(n))
	}
	resp, body := rawRequest(t, rawGet("/auth/x", conn...))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("Connection naming identity headers: status %d: %s", resp.StatusCode, body)
	}
	checkRawHeaders(t, "Connection naming identity headers", decodeRawSeen(t, body), protected, trustedAlice)

	for _, c := range []struct {
		path     string
		announce bool
	}{{"/auth/x", true}, {"/anon/x", true}, {"/auth/x", false}} {
		path := c.path
		var b strings.Builder
		fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: localhost:%d\r\nConnection: close\r\n", path, httpPort)
		b.WriteString("Authorization: Bearer tok-alice\r\nTransfer-Encoding: chunked\r\n")
		names := append([]string(nil), spoofNames...)
		sort.Strings(names)
		if c.announce {
			b.WriteString("Trailer: " + strings.Join(names, ", ") + "\r\n")
		}
		b.WriteString("\r\n5\r\nhello\r\n0\r\n")
		for _, n := range names {
			b.WriteString(n + ": mallory\r\n")
		}
		b.WriteString("\r\n")
		resp, body := rawRequest(t, b.String())
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("trailers on %s: status %d: %s", path, resp.StatusCode, body)
		}
		seen := decodeRawSeen(t, body)
		for _, l := range seen.Trailer {
			if name, _, _ := strings.Cut(l, ":"); protected(name) {
				t.Errorf("trailers on %s: forged trailer reached the upstream: %q", path, l)
			}
		}
		checkRawHeaders(t, "trailers on "+path, seen, protected, trustedAlice)
	}
}

// TestHostileSessionDataInjection: a session service answering CR, LF
// and NUL inside the user name, a role and an attribute cannot add a
// header line for the upstream, neither through the injected headers nor
// through placeholders in request_header (the use the docs show),
// {http.auth.user.id} included. Under the default raw encoding those
// fields are not sent at all (the request goes through with the others);
// under percent they are encoded. Before placeholders were encoded, the
// proxied request was invalid and the user got a 502.
func TestHostileSessionDataInjection(t *testing.T) {
	svc := newSessionService(t)
	s := aliceSession()
	s["user"] = "ali\r\nX-Evil: 1\x00ce"
	s["roles"] = []string{"dev\r\nX-Evil-Role: 2", "ops"}
	s["name"] = "Al\nX-Evil-Name: 3"
	s["user_id"] = "u-1\r\nX-Evil-Id: 4"
	svc.addSession("tok-alice", s)
	wants := map[string]map[string]string{
		"percent": {
			"X-Session-User":        "ali%0D%0AX-Evil: 1%00ce",
			"X-Custom-Ident":        "ali%0D%0AX-Evil: 1%00ce",
			"X-Session-Roles":       "dev%0D%0AX-Evil-Role: 2,ops",
			"X-Session-Name":        "Al%0AX-Evil-Name: 3",
			"X-Placeholder-User":    "ali%0D%0AX-Evil: 1%00ce",
			"X-Placeholder-Roles":   "dev%0D%0AX-Evil-Role: 2,ops",
			"X-Placeholder-Name":    "Al%0AX-Evil-Name: 3",
			"X-Placeholder-Auth-Id": "u-1%0D%0AX-Evil-Id: 4",
			"X-Session-User-Id":     "u-1%0D%0AX-Evil-Id: 4",
			"X-Session-Email":       "alice@example.com",
		},
		"raw": {
			"X-Session-User": "", "X-Custom-Ident": "", "X-Session-Roles": "", "X-Session-Name": "",
			"X-Placeholder-User": "", "X-Placeholder-Roles": "", "X-Placeholder-Name": "",
			"X-Placeholder-Auth-Id": "", "X-Session-User-Id": "",
			"X-Session-Email": "alice@example.com", "X-Session-Org": "acme",
		},
	}
	for enc, want := range wants {
		t.Run(enc, func(t *testing.T) {
			up := newRawUpstream(t)
			startCaddy(t, fmt.Sprintf(`
:%d {
	session_auth http %s {
		header X-Custom-Ident "{session.user}"
		header_encoding %s
	}
	request_header X-Placeholder-User {session.user}
	request_header X-Placeholder-Roles {session.roles}
	request_header X-Placeholder-Name {session.name}
	request_header X-Placeholder-Auth-Id {http.auth.user.id}
	reverse_proxy %s
}`, httpPort, svc.URL, enc, up.addr()))

			resp, body := rawRequest(t, rawGet("/", "Authorization: Bearer tok-alice"))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200: %s", resp.StatusCode, body)
			}
			seen := decodeRawSeen(t, body)
			got := map[string]string{}
			for _, l := range seen.Lines {
				name, val, _ := strings.Cut(l, ":")
				if strings.HasPrefix(fold(name), "x-evil") {
					t.Errorf("the session data added a header line: %q", l)
				}
				got[name] = strings.TrimSpace(val)
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

// TestHostileLookAlikeUsers: users that differ only by control characters
// or surrounding spaces once reached the upstream as one name ("admin");
// each must now arrive distinct, in the injected header and in a
// {session.user} placeholder alike: under percent encoded and decoding
// to exactly the session's value, under raw exactly as given or not at
// all.
func TestHostileLookAlikeUsers(t *testing.T) {
	svc := newSessionService(t)
	users := []string{"admin", " admin ", "ad\x00min", "ad\tmin", "\x1badmin\x1b", "admin%20", "u-1\x00", "admin\u00a0", "\u2003admin", "admin\u0085"}
	for i, u := range users {
		s := aliceSession()
		s["user"] = u
		svc.addSession(fmt.Sprintf("tok-%d", i), s)
	}
	for _, enc := range []string{"raw", "percent"} {
		t.Run(enc, func(t *testing.T) {
			up := newRawUpstream(t)
			startCaddy(t, fmt.Sprintf(`
:%d {
	session_auth http %s {
		header_encoding %s
	}
	request_header X-Placeholder-User {session.user}
	reverse_proxy %s
}`, httpPort, svc.URL, enc, up.addr()))

			seenAs := map[string]string{}
			for i, u := range users {
				resp, body := rawRequest(t, rawGet("/", fmt.Sprintf("Authorization: Bearer tok-%d", i)))
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("user %q: status %d: %s", u, resp.StatusCode, body)
				}
				got := map[string]string{}
				for _, l := range decodeRawSeen(t, body).Lines {
					name, val, _ := strings.Cut(l, ":")
					got[name] = strings.TrimPrefix(val, " ")
				}
				hv, pv := got["X-Session-User"], got["X-Placeholder-User"]
				if hv != pv {
					t.Errorf("user %q: header %q, placeholder %q: want the same value", u, hv, pv)
				}
				dec := hv
				if enc == "percent" {
					var err error
					if dec, err = url.PathUnescape(hv); err != nil {
						t.Errorf("user %q: header %q does not decode: %v", u, hv, err)
					}
				}
				if hv == "" && enc == "raw" {
					continue // refused: no header, which no other user reads as
				}
				if dec != u {
					t.Errorf("user %q: header %q decodes to %q", u, hv, dec)
				}
				if prev, dup := seenAs[hv]; dup {
					t.Errorf("users %q and %q both reached the upstream as %q", prev, u, hv)
				}
				seenAs[hv] = u
			}
		})
	}
}

// TestHostileAnonymousPlaceholders: with optional, an anonymous request
// reached the app as `X-User: {session.user}`, literally; every
// {session.*} must be empty there, with no token and with a rejected one.
func TestHostileAnonymousPlaceholders(t *testing.T) {
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	up := newRawUpstream(t)
	startCaddy(t, fmt.Sprintf(`
:%d {
	session_auth http %s {
		optional
	}
	request_header X-User {session.user}
	request_header X-Roles "r={session.roles}"
	request_header X-Attr "a={session.attrs.tenant}"
	reverse_proxy %s
}`, httpPort, svc.URL, up.addr()))

	for _, tok := range []string{"", "Authorization: Bearer tok-unknown"} {
		var lines []string
		if tok != "" {
			lines = append(lines, tok)
		}
		resp, body := rawRequest(t, rawGet("/", lines...))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("token %q: status %d: %s", tok, resp.StatusCode, body)
		}
		for _, l := range decodeRawSeen(t, body).Lines {
			if strings.Contains(l, "{session.") {
				t.Errorf("token %q: a placeholder reached the upstream literally: %q", tok, l)
			}
			if name, val, _ := strings.Cut(l, ":"); name == "X-User" && strings.TrimSpace(val) != "" {
				t.Errorf("token %q: X-User = %q, want empty", tok, val)
			}
		}
	}
}
