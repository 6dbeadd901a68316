package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// forgedLines are the forged identity headers a client sends, every name
// in several spellings an upstream reads as the same.
func forgedLines(names []string) []string {
	var lines []string
	for _, n := range names {
		for _, f := range spoofForms {
			if f.name == "repeated lines" || f.name == "canonical" || f.name == "dots" ||
				f.name == "underscores" || f.name == "tildes" || f.name == "lower case" {
				lines = append(lines, f.lines(n)...)
			}
		}
	}
	return lines
}

// checkNoLiteralPlaceholder fails if a {session.*} placeholder reached the
// upstream as written.
func checkNoLiteralPlaceholder(t *testing.T, what string, s rawSeen) {
	t.Helper()
	for _, l := range s.Lines {
		if strings.Contains(l, "{session.") {
			t.Errorf("%s: placeholder reached the upstream literally: %q", what, l)
		}
	}
}

// TestStripSkippedPaths: with `session_auth <matcher>`, the requests the
// matcher skips lose forged identity headers too, including paths that
// servlet containers route to the protected area (`..;`, `%5c`).
func TestStripSkippedPaths(t *testing.T) {
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	up := newRawUpstream(t)
	startCaddy(t, fmt.Sprintf(`
:%d {
	@protected not path /login /public/*
	session_auth @protected http %s {
		headers oauth2-proxy authelia
		header X-Custom-Ident {session.user}
	}
	request_header X-User {session.user}
	reverse_proxy %s
}`, httpPort, svc.URL, up.addr()))

	forged := forgedLines(spoofNames)
	protected := protectedBy("X-Session-", []string{"X-Custom-Ident"})
	for _, path := range []string{"/public/x", "/login", "/public/..;/admin", "/public/x%5c..%5cadmin"} {
		resp, body := rawRequest(t, rawGet(path, forged...))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d, want 200 (skipped by the matcher): %s", path, resp.StatusCode, body)
		}
		s := decodeRawSeen(t, body)
		checkRawHeaders(t, path, s, protected, nil)
		checkNoLiteralPlaceholder(t, path, s)
	}

	// A protected path still gets the trusted values, once each.
	resp, body := rawRequest(t, rawGet("/admin", append([]string{"Authorization: Bearer tok-alice"}, forged...)...))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/admin: status %d: %s", resp.StatusCode, body)
	}
	s := decodeRawSeen(t, body)
	checkRawHeaders(t, "/admin", s, protected, trustedAlice)
	if !containsLine(s.Lines, "X-User: alice") {
		t.Errorf("/admin: want X-User: alice, got %q", s.Lines)
	}
}

// TestSessionStripHandleLayout: session_auth inside a handle block strips
// only there; session_strip at the top of the site covers the rest.
func TestSessionStripHandleLayout(t *testing.T) {
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	up := newRawUpstream(t)
	startCaddy(t, fmt.Sprintf(`
:%d {
	session_strip {
		header_prefix X-Auth-
		header X-Custom-Ident
	}
	handle /app/* {
		session_auth http %s {
			header_prefix X-Auth-
			header X-Custom-Ident {session.user}
		}
		reverse_proxy %s
	}
	handle {
		request_header X-User {session.user}
		reverse_proxy %s
	}
}`, httpPort, svc.URL, up.addr(), up.addr()))

	names := append(append([]string{}, prefixSpoofNames...), "X-Custom-Ident", "X-Auth-Request-Access-Token", "GAP-Auth")
	forged := forgedLines(names)
	protected := protectedBy("X-Auth-", []string{"X-Custom-Ident"})
	for _, path := range []string{"/other", "/application/x", "/"} {
		resp, body := rawRequest(t, rawGet(path, forged...))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d: %s", path, resp.StatusCode, body)
		}
		s := decodeRawSeen(t, body)
		checkRawHeaders(t, path, s, protected, nil)
		checkNoLiteralPlaceholder(t, path, s)
	}
	resp, body := rawRequest(t, rawGet("/app/x", append([]string{"Authorization: Bearer tok-alice"}, forged...)...))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/app/x: status %d: %s", resp.StatusCode, body)
	}
	checkRawHeaders(t, "/app/x", decodeRawSeen(t, body), protected, append(append([]string{}, trustedAlicePrefix...), "X-Custom-Ident: alice"))
}

func containsLine(lines []string, want string) bool {
	for _, l := range lines {
		if l == want {
			return true
		}
	}
	return false
}
