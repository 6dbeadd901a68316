package integration

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/sessiongate/caddy-sessiongate/internal/emulator"
)

// maxTokenLen is the longest token sessiongate reads (4 KiB): one byte
// more is refused before any hash or service call.
const maxTokenLen = 4096

// absurdToken is one hostile token form and what must come of it.
type absurdToken struct {
	name  string
	path  string
	lines []string
	// status is the wanted answer; user, for a 200, the session the
	// upstream must see.
	status int
	user   string
	// noCall: the session service must not be asked at all.
	noCall bool
	// challenge: the 401 must carry a Bearer WWW-Authenticate challenge.
	challenge bool
}

// absurdTokens are sent raw, so no client library tidies them first.
// Routes: /cbqh/ reads cookie sid, then bearer, then query tok, then
// header X-Token with prefix "Token "; /bc/ reads bearer, then cookie sid;
// /plain/ has the defaults.
var absurdTokens = []absurdToken{
	{name: "defaults, no token", path: "/plain/", lines: []string{"X-Session-User: mallory"}, status: 401, noCall: true, challenge: true},
	{name: "defaults, rejected token", path: "/plain/", lines: []string{"Authorization: Bearer tok-unknown", "X-Session-User: mallory"}, status: 401, challenge: true},
	{name: "defaults, empty bearer", path: "/plain/", lines: []string{"Authorization: Bearer ", "X-Session-User: mallory"}, status: 401, noCall: true, challenge: true},
	{name: "defaults, other scheme", path: "/plain/", lines: []string{"Authorization: Basic YWxhZGRpbjpvcGVuc2VzYW1l", "X-Session-User: mallory"}, status: 401, noCall: true, challenge: true},
	{name: "defaults, oversized token", path: "/plain/", lines: []string{"Authorization: Bearer " + strings.Repeat("t", 5000), "X-Session-User: mallory"}, status: 401, noCall: true, challenge: true},
	{name: "no token at all", path: "/cbqh/", status: 401, noCall: true},
	{name: "empty bearer", path: "/cbqh/", lines: []string{"Authorization: Bearer "}, status: 401, noCall: true},
	{name: "bearer scheme without token", path: "/cbqh/", lines: []string{"Authorization: Bearer"}, status: 401, noCall: true},
	{name: "bearer, spaces only", path: "/cbqh/", lines: []string{"Authorization: Bearer       "}, status: 401, noCall: true},
	{name: "empty cookie", path: "/cbqh/", lines: []string{"Cookie: sid="}, status: 401, noCall: true},
	{name: `empty quoted cookie`, path: "/cbqh/", lines: []string{`Cookie: sid=""`}, status: 401, noCall: true},
	{name: "empty query", path: "/cbqh/?tok=", status: 401, noCall: true},
	{name: "empty custom header", path: "/cbqh/", lines: []string{"X-Token: Token "}, status: 401, noCall: true},
	{name: "token one byte over MaxTokenLen", path: "/cbqh/", lines: []string{"Authorization: Bearer " + strings.Repeat("t", maxTokenLen+1)}, status: 401, noCall: true},
	{name: "8 KB cookie token", path: "/cbqh/", lines: []string{"Cookie: sid=" + strings.Repeat("c", 8<<10)}, status: 401, noCall: true},
	{name: "64 KB bearer (past Caddy's header limit)", path: "/cbqh/", lines: []string{"Authorization: Bearer " + strings.Repeat("t", 64<<10)}, status: 431, noCall: true},
	{name: "64 KB query token (past the header limit)", path: "/cbqh/?tok=" + strings.Repeat("q", 64<<10), status: 431, noCall: true},
	{name: "8 KB query token", path: "/cbqh/?tok=" + strings.Repeat("q", 8<<10), status: 401, noCall: true},
	{name: "token exactly MaxTokenLen (asked, unknown)", path: "/cbqh/", lines: []string{"Authorization: Bearer " + strings.Repeat("t", maxTokenLen)}, status: 401},
	{name: "non-ASCII UTF-8 token", path: "/cbqh/", lines: []string{"Authorization: Bearer tök-ålice-日本"}, status: 401},
	{name: "invalid UTF-8 token", path: "/cbqh/", lines: []string{"Authorization: Bearer \xff\xfe\xfd"}, status: 401},
	{name: "tab inside token", path: "/cbqh/", lines: []string{"Authorization: Bearer tok\talice"}, status: 401, noCall: true},
	{name: "NUL inside token (rejected by the HTTP server)", path: "/cbqh/", lines: []string{"Authorization: Bearer tok\x00alice"}, status: 400, noCall: true},
	{name: "percent-encoded NUL in query token", path: "/cbqh/?tok=tok%00alice", status: 401, noCall: true},
	{name: "percent-encoded CRLF in query token", path: "/cbqh/?tok=tok%0D%0AX-Session-User:%20mallory", status: 401, noCall: true},
	{name: "bad escape in query token", path: "/cbqh/?tok=%zz", status: 401, noCall: true},
	{name: "1000 unrelated cookies", path: "/cbqh/", lines: []string{"Cookie: " + strings.Repeat("x=1; ", 1000)}, status: 401, noCall: true},
	{name: "bearer with extra spaces", path: "/cbqh/", lines: []string{"Authorization: Bearer     tok-alice   "}, status: 200, user: "alice"},
	{name: "bearer in lower case", path: "/cbqh/", lines: []string{"Authorization: bearer tok-alice"}, status: 200, user: "alice"},
	{name: "bearer in upper case", path: "/cbqh/", lines: []string{"Authorization: BEARER tok-alice"}, status: 200, user: "alice"},
	{name: "other scheme", path: "/cbqh/", lines: []string{"Authorization: Basic dG9rLWFsaWNlOg=="}, status: 401, noCall: true},
	{name: "quoted cookie", path: "/cbqh/", lines: []string{`Cookie: sid="tok-alice"`}, status: 200, user: "alice"},
	{name: "two cookies of one name: the first wins", path: "/cbqh/", lines: []string{"Cookie: sid=tok-bob; sid=tok-alice"}, status: 200, user: "bob"},
	{name: "two Cookie lines: the first wins", path: "/cbqh/", lines: []string{"Cookie: sid=tok-bob", "Cookie: sid=tok-alice"}, status: 200, user: "bob"},
	{name: "an empty cookie, then a real one of the same name", path: "/cbqh/", lines: []string{"Cookie: sid=; sid=tok-alice"}, status: 200, user: "alice"},
	{name: "two Authorization lines: the first bearer wins", path: "/cbqh/", lines: []string{"Authorization: Bearer tok-bob", "Authorization: Bearer tok-alice"}, status: 200, user: "bob"},
	{name: "a rejected cookie does not fall through to a good bearer", path: "/cbqh/", lines: []string{"Cookie: sid=tok-unknown", "Authorization: Bearer tok-alice"}, status: 401},
	{name: "an oversized cookie does not fall through to a good bearer", path: "/cbqh/", lines: []string{"Cookie: sid=" + strings.Repeat("c", maxTokenLen+1), "Authorization: Bearer tok-alice"}, status: 401, noCall: true},
	{name: "cookie and bearer: the first configured source (cookie) wins", path: "/cbqh/", lines: []string{"Cookie: sid=tok-bob", "Authorization: Bearer tok-alice"}, status: 200, user: "bob"},
	{name: "bearer and cookie: the first configured source (bearer) wins", path: "/bc/", lines: []string{"Cookie: sid=tok-bob", "Authorization: Bearer tok-alice"}, status: 200, user: "alice"},
	{name: "query and custom header: query is configured first", path: "/cbqh/?tok=tok-bob", lines: []string{"X-Token: Token tok-alice"}, status: 200, user: "bob"},
	{name: "custom header spelled with an underscore is not read", path: "/cbqh/", lines: []string{"x_token: TOKEN tok-alice"}, status: 401, noCall: true},
	{name: "custom header", path: "/cbqh/", lines: []string{"x-token: TOKEN tok-alice"}, status: 200, user: "alice"},
}

// TestHostileAbsurdTokens sends empty, oversized, non-ASCII, duplicated
// and doubly-sourced tokens. Each gets a 4xx (or, for a real token in an
// odd but valid spelling, its session): never a 5xx, never the upstream
// for a rejected one, never a session-service call for a token that is
// malformed on its face. Which source wins when a request carries two is
// the configured order: the first source that carries a token is used,
// and a bad token there is not overridden by a good one further down.
func TestHostileAbsurdTokens(t *testing.T) {
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	bob := aliceSession()
	bob["user"], bob["user_id"], bob["admin"] = "bob", "u-2", false
	svc.addSession("tok-bob", bob)
	up := newUpstream(t)
	startCaddy(t, fmt.Sprintf(`
:%d {
	handle /cbqh/* {
		session_auth http %[2]s {
			token cookie sid
			token bearer
			token query tok
			token header X-Token "Token "
			negative_ttl 1ms
		}
		reverse_proxy %[3]s
	}
	handle /bc/* {
		session_auth http %[2]s {
			token bearer
			token cookie sid
		}
		reverse_proxy %[3]s
	}
	handle /plain/* {
		session_auth http %[2]s
		reverse_proxy %[3]s
	}
}`, httpPort, svc.URL, up.Listener.Addr()))

	for _, c := range absurdTokens {
		calls, hits := svc.calls.Load(), up.hits.Load()
		resp, body := rawRequest(t, rawGet(c.path, c.lines...))
		if resp.StatusCode >= 500 {
			t.Errorf("%s: status %d, a server error", c.name, resp.StatusCode)
			continue
		}
		if resp.StatusCode != c.status {
			t.Errorf("%s: status %d, want %d", c.name, resp.StatusCode, c.status)
		}
		if got := resp.Header.Get("WWW-Authenticate"); c.challenge && !strings.HasPrefix(got, "Bearer ") {
			t.Errorf("%s: WWW-Authenticate %q, want a Bearer challenge", c.name, got)
		}
		reached := up.hits.Load() != hits
		if c.status == 200 {
			if !reached {
				t.Errorf("%s: the upstream was not reached", c.name)
			} else if got := upstreamSaw(t, body).Headers.Get("X-Session-User"); got != c.user {
				t.Errorf("%s: upstream saw user %q, want %q", c.name, got, c.user)
			}
		} else if reached {
			t.Errorf("%s: a rejected request reached the upstream", c.name)
		}
		if c.noCall && svc.calls.Load() != calls {
			t.Errorf("%s: the session service was asked about a token malformed on its face", c.name)
		}
	}
	// Still serving: nothing above took the server down.
	resp, _ := rawRequest(t, rawGet("/cbqh/", "Authorization: Bearer tok-alice"))
	if resp.StatusCode != http.StatusOK {
		t.Errorf("after the absurd tokens: status %d for a good one", resp.StatusCode)
	}
}

// TestHostileTokenFlood sends a flood of distinct random tokens through a
// small cache (cache_max 50) from a few concurrent clients. Every one is
// a 401 and costs one session-service call, none reaches the upstream,
// and a session cached before the flood is still served from the cache
// afterwards: rejections are kept apart, so random tokens can push out
// only other rejections.
func TestHostileTokenFlood(t *testing.T) {
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	up := newUpstream(t)
	startCaddy(t, fmt.Sprintf(`
:%d {
	session_auth http %s {
		cache_max 50
		client_miss_limit off # every token must reach the service and the cache (TestProtectClientMissLimit has the limit)
	}
	reverse_proxy %s
}`, httpPort, svc.URL, up.Listener.Addr()))

	if resp, _ := rawRequest(t, rawGet("/", "Authorization: Bearer tok-alice")); resp.StatusCode != http.StatusOK {
		t.Fatalf("before the flood: status %d", resp.StatusCode)
	}
	calls, hits := svc.calls.Load(), up.hits.Load()
	const workers, each = 4, 150
	statuses := make(chan int, workers*each)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				resp, _, err := rawRoundTrip(rawGet("/", fmt.Sprintf("Authorization: Bearer flood-%d-%d-%x", w, i, rand.Uint64())))
				if err != nil {
					statuses <- 0
					continue
				}
				statuses <- resp.StatusCode
			}
		}(w)
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for st := range statuses {
		count[st]++
	}
	if count[http.StatusUnauthorized] != workers*each {
		t.Errorf("flood of %d random tokens: statuses %v, want all 401", workers*each, count)
	}
	if n := up.hits.Load() - hits; n != 0 {
		t.Errorf("the flood reached the upstream %d times", n)
	}
	if n := svc.calls.Load() - calls; n != workers*each {
		t.Errorf("the flood made %d session-service calls for %d distinct tokens", n, workers*each)
	}
	calls = svc.calls.Load()
	if resp, body := rawRequest(t, rawGet("/", "Authorization: Bearer tok-alice")); resp.StatusCode != http.StatusOK {
		t.Errorf("after the flood: status %d: %s", resp.StatusCode, body)
	}
	if svc.calls.Load() != calls {
		t.Errorf("after the flood the cached session had to be fetched again: the flood pushed it out")
	}
}

// TestHostileStripTokenMalformed: with optional and strip_token, the
// upstream of an anonymous request sees no token of any kind, be it
// rejected by the service or malformed on its face (too long, control
// characters), and no forged identity header, with or without a token.
// A malformed token once went through untouched, because reading it did
// not say where it had been found.
func TestHostileStripTokenMalformed(t *testing.T) {
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	up := newRawUpstream(t)
	startCaddy(t, fmt.Sprintf(`
:%d {
	session_auth http %s {
		optional
		strip_token
		token cookie sid
		token bearer
		token query tok
	}
	reverse_proxy %s
}`, httpPort, svc.URL, up.addr()))

	long := strings.Repeat("x", maxTokenLen+1)
	for _, c := range []struct {
		name, path string
		lines      []string
	}{
		{"no token", "/", nil},
		{"oversized bearer", "/", []string{"Authorization: Bearer " + long}},
		{"bearer with a tab", "/", []string{"Authorization: Bearer tok\tsecret"}},
		{"rejected bearer", "/", []string{"Authorization: Bearer tok-unknown"}},
		{"oversized cookie", "/", []string{"Cookie: a=1; sid=" + long + "; b=2"}},
		{"cookie with a tab", "/", []string{"Cookie: a=1; sid=tok\tsecret; b=2"}},
		{"query with %00", "/?a=1&tok=tok%00secret&b=2", nil},
		{"oversized query", "/?a=1&tok=" + long + "&b=2", nil},
	} {
		lines := append([]string{"X-Session-User: mallory", "X_SESSION_ADMIN: true"}, c.lines...)
		resp, body := rawRequest(t, rawGet(c.path, lines...))
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: status %d, want 200 (optional)", c.name, resp.StatusCode)
			continue
		}
		seen := decodeRawSeen(t, body)
		checkRawHeaders(t, c.name, seen, protectedBy("X-Session-", nil), nil)
		if strings.Contains(seen.RequestLine, "tok=") {
			t.Errorf("%s: the upstream got the query token: %.80s", c.name, seen.RequestLine)
		}
		if !strings.Contains(c.path, "?") != !strings.Contains(seen.RequestLine, "a=1&b=2") {
			t.Errorf("%s: the other query parameters were not kept: %.80s", c.name, seen.RequestLine)
		}
		for _, l := range seen.Lines {
			if strings.HasPrefix(l, "Authorization:") || strings.Contains(l, "sid=") {
				t.Errorf("%s: the upstream got the token: %.80s", c.name, l)
			}
			if strings.HasPrefix(l, "Cookie:") && l != "Cookie: a=1; b=2" {
				t.Errorf("%s: the other cookies were not kept: %.80s", c.name, l)
			}
		}
	}
}

// TestHostileStripEveryTokenSource: strip_token strips every configured
// source, not only the one read, in every spelling of a header name; a
// second token in another source once reached the upstream.
func TestHostileStripEveryTokenSource(t *testing.T) {
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	up := newRawUpstream(t)
	startCaddy(t, fmt.Sprintf(`
:%d {
	session_auth http %s {
		strip_token
		token bearer
		token cookie sid
		token query tok
		token header X-Api-Token
	}
	reverse_proxy %s
}`, httpPort, svc.URL, up.addr()))

	resp, body := rawRequest(t, rawGet("/?a=1&tok=second-secret&b=2",
		"Authorization: Bearer tok-alice",
		"Cookie: a=1; sid=third-secret; b=2",
		"X-Api-Token: fourth-secret",
		"x_api_token: fifth-secret",
		"X-API_TOKEN: sixth-secret",
	))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	seen := decodeRawSeen(t, body)
	if strings.Contains(seen.RequestLine, "secret") || !strings.Contains(seen.RequestLine, "a=1&b=2") {
		t.Errorf("request line %q", seen.RequestLine)
	}
	user := false
	for _, l := range seen.Lines {
		if strings.Contains(l, "secret") || strings.Contains(l, "tok-alice") {
			t.Errorf("the upstream got a token: %q", l)
		}
		user = user || l == "X-Session-User: alice"
	}
	if !user {
		t.Errorf("no identity injected: %q", seen.Lines)
	}
}

// TestHostileUnderscoreTokenHeaderRead: a token header spelled with
// underscores (as nginx with underscores_in_headers passes it), once let
// through by Caddy's expected_underscore_headers, is read like any other
// spelling, and stripped.
func TestHostileUnderscoreTokenHeaderRead(t *testing.T) {
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	up := newRawUpstream(t)
	startCaddyWith(t, "\tservers {\n\t\texpected_underscore_headers vmware_api_session_id vmware-api_session-id\n\t}", fmt.Sprintf(`
:%d {
	session_auth http %s {
		strip_token
		token header Vmware-Api-Session-Id
	}
	reverse_proxy %s
}`, httpPort, svc.URL, up.addr()))

	for _, spelling := range []string{"vmware_api_session_id", "VMWARE_API_SESSION_ID", "vmware-api_session-id"} {
		resp, body := rawRequest(t, rawGet("/", spelling+": tok-alice"))
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: status %d, want 200", spelling, resp.StatusCode)
			continue
		}
		seen := decodeRawSeen(t, body)
		user := false
		for _, l := range seen.Lines {
			if strings.Contains(l, "tok-alice") {
				t.Errorf("%s: the upstream got the token: %q", spelling, l)
			}
			user = user || l == "X-Session-User: alice"
		}
		if !user {
			t.Errorf("%s: no identity injected: %q", spelling, seen.Lines)
		}
	}
}

// TestHostileEternusStripWithoutSessionID: ETERNUS with strip_token and
// optional: a bearer token with a missing or invalid session id still
// goes no further than Caddy, nor does the session id.
func TestHostileEternusStripWithoutSessionID(t *testing.T) {
	et := emulator.NewEternus()
	svc := httptest.NewServer(et)
	t.Cleanup(svc.Close)
	up := newRawUpstream(t)
	startCaddy(t, fmt.Sprintf(`
:%d {
	session_auth eternus %s {
		strip_token
		optional
	}
	reverse_proxy %s
}`, httpPort, svc.URL, up.addr()))

	for name, lines := range map[string][]string{
		"no session id":      {"Authorization: Bearer eternus-secret"},
		"invalid session id": {"Authorization: Bearer eternus-secret", "X-Eternus-Session-Id: abc"},
		"bad colon form":     {"Authorization: Bearer x1:eternus-secret"},
	} {
		resp, body := rawRequest(t, rawGet("/", lines...))
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: status %d, want 200 (optional)", name, resp.StatusCode)
			continue
		}
		for _, l := range decodeRawSeen(t, body).Lines {
			if strings.Contains(l, "eternus-secret") {
				t.Errorf("%s: the upstream got the token: %q", name, l)
			}
			if strings.HasPrefix(strings.ToLower(l), "x-eternus-session-id:") {
				t.Errorf("%s: the upstream got the session id, the credential's other part: %q", name, l)
			}
		}
	}
}
