package integration

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// TestHostileLogSecrecy runs every outcome with the default logger at
// DEBUG and an access log, both to files, and then looks for every token
// and cookie value in both: none may be there. The token hash prefix
// must be, which proves the debug lines were written at all.
//
// Caddy's access log records the request as it arrived, cloned before any
// handler runs, so neither session_auth nor strip_token can take a token
// out of it. Caddy redacts Cookie and Authorization itself; a token read
// from a query parameter or another header (tr50's sessionId, vSphere's
// vmware-api-session-id) is logged in clear unless the log's filter
// encoder hashes it, as this config does and the README's security
// section shows: in the access log, and in the default log, where Caddy
// writes every 4xx at DEBUG with the request (http.log.error).
func TestHostileLogSecrecy(t *testing.T) {
	const logHashKey = "log-hash-key-for-the-test-0123"
	dir := t.TempDir()
	debugLog, accessLog := filepath.Join(dir, "debug.log"), filepath.Join(dir, "access.log")
	svc := newSessionService(t)
	staleSvc := newSessionService(t)
	downURL := refusingURL(t)
	up := newUpstream(t)

	tokens := map[string]string{
		"bearer":    "tok-bearer-secret-4f1a",
		"cookie":    "tok-cookie-secret-8b2c",
		"query":     "tok-query-secret-c3d9",
		"header":    "tok-header-secret-a7e5",
		"rejected":  "tok-rejected-secret-19f0",
		"rejquery":  "tok-rejquery-secret-2b2b",
		"rejheader": "tok-rejheader-secret-3c3c",
		"anonrej":   "tok-anonrej-secret-55aa",
		"malformed": "tok-malformed-secret-" + strings.Repeat("m", maxTokenLen),
		"error":     "tok-error-secret-e0e0",
		"stale":     "tok-stale-secret-5ta1",
		"logout":    "tok-logout-secret-0ut0",
	}
	otherCookie := "cookie-value-secret-77d1"
	for _, k := range []string{"bearer", "cookie", "query", "header", "logout"} {
		svc.addSession(tokens[k], aliceSession())
	}
	staleSvc.addSession(tokens["stale"], aliceSession())

	auth := `
			token bearer
			token cookie sid
			token query tok
			token header X-Api-Token
			strip_token
			logout POST /auth/logout
			log_hash_key ` + logHashKey
	// The filter that keeps query and header tokens out of the logs: on
	// the access log, and on the default log, where Caddy writes each
	// 4xx at DEBUG with the request.
	filter := `format filter {
			wrap json
			fields {
				request>uri query {
					hash tok
				}
				request>headers>X-Api-Token hash
			}
		}`
	startCaddyWith(t, fmt.Sprintf("\tlog {\n\t\toutput file %s\n\t\t%s\n\t\tlevel DEBUG\n\t}", debugLog, filter), fmt.Sprintf(`
:%d {
	log {
		output file %s
		%s
	}
	handle /auth/* {
		session_auth http %[4]s {%[5]s
		}
		reverse_proxy %[6]s
	}
	handle /opt/* {
		session_auth http %[4]s {%[5]s
			optional
		}
		reverse_proxy %[6]s
	}
	handle /down/* {
		session_auth http %[7]s
		reverse_proxy %[6]s
	}
	handle /stale/* {
		session_auth http %[8]s {
			cache_ttl 1s
			stale_if_error 1h
		}
		reverse_proxy %[6]s
	}
}`, httpPort, accessLog, filter, svc.URL, auth, up.Listener.Addr(), downURL, staleSvc.URL))

	steps := []struct {
		name, method, path string
		header             http.Header
		status             int
	}{
		{"authenticated, bearer", "GET", "/auth/x", bearer(tokens["bearer"]), 200},
		{"authenticated, cookie", "GET", "/auth/x", http.Header{"Cookie": {"theme=" + otherCookie + "; sid=" + tokens["cookie"]}}, 200},
		{"authenticated, query", "GET", "/auth/x?a=1&tok=" + tokens["query"] + "&b=2", nil, 200},
		{"authenticated, header", "GET", "/auth/x", http.Header{"X-Api-Token": {tokens["header"]}}, 200},
		{"anonymous", "GET", "/opt/x", http.Header{"Cookie": {"theme=" + otherCookie}}, 200},
		{"anonymous, rejected token", "GET", "/opt/x", bearer(tokens["anonrej"]), 200},
		{"rejected", "GET", "/auth/x", bearer(tokens["rejected"]), 401},
		{"rejected, query", "GET", "/auth/x?tok=" + tokens["rejquery"], nil, 401},
		{"rejected, header", "GET", "/auth/x", http.Header{"X-Api-Token": {tokens["rejheader"]}}, 401},
		{"malformed", "GET", "/auth/x", bearer(tokens["malformed"]), 401},
		{"service error", "GET", "/down/x", bearer(tokens["error"]), 503},
		{"stale, first", "GET", "/stale/x", bearer(tokens["stale"]), 200},
		{"logout", "POST", "/auth/logout", bearer(tokens["logout"]), 200},
		{"after logout", "GET", "/auth/x", bearer(tokens["logout"]), 200},
	}
	for _, s := range steps {
		resp, body := do(t, nil, s.method, s.path, s.header)
		if resp.StatusCode != s.status {
			t.Errorf("%s: status %d, want %d: %.200s", s.name, resp.StatusCode, s.status, body)
		}
		// A logout keeps its token on the way to the app, so the app
		// can revoke it: strip_token holds on every other request.
		if s.status == 200 && strings.HasPrefix(s.path, "/auth/") && s.name != "logout" {
			seen := upstreamSaw(t, body)
			for _, tok := range tokens {
				if strings.Contains(body, tok) {
					t.Errorf("%s: strip_token left the token for the upstream: %v", s.name, seen)
				}
			}
		}
	}
	// The stale outcome: the session's 1s TTL passes while the service
	// fails. (A real second: this Caddy's clock cannot be moved.)
	staleSvc.setFault(func(w http.ResponseWriter, r *http.Request) bool { w.WriteHeader(500); return true })
	time.Sleep(1100 * time.Millisecond)
	if resp, body := do(t, nil, "GET", "/stale/x", bearer(tokens["stale"])); resp.StatusCode != 200 {
		t.Errorf("stale: status %d, want 200 from the stale session: %.200s", resp.StatusCode, body)
	}

	var all strings.Builder
	for _, f := range []string{debugLog, accessLog} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("reading %s: %v", f, err)
		}
		if len(b) == 0 {
			t.Fatalf("%s is empty", f)
		}
		all.Write(b)
	}
	text := all.String()
	for what, tok := range tokens {
		needle := tok
		if len(needle) > 40 {
			needle = needle[:40]
		}
		if strings.Contains(text, needle) {
			t.Errorf("the %s token appears in the logs", what)
			for _, l := range strings.Split(text, "\n") {
				if strings.Contains(l, needle) {
					t.Logf("%.400s", l)
				}
			}
		}
	}
	if strings.Contains(text, otherCookie) {
		t.Errorf("a cookie value appears in the logs")
	}

	// The debug lines are there, one per outcome, each with its hash.
	outcomes := map[string]bool{}
	for _, l := range logLines(t, debugLog) {
		if o, ok := l["outcome"].(string); ok && l["msg"] == "session" {
			outcomes[o] = true
		}
	}
	for _, o := range []string{"authenticated", "anonymous", "unauthenticated", "stale"} {
		if !outcomes[o] {
			t.Errorf("no debug line with outcome %q (got %v)", o, outcomes)
		}
	}
	key := sessionctx.TokenSource{From: sessionctx.FromBearer}.Key(tokens["bearer"])
	mac := hmac.New(sha256.New, []byte(logHashKey))
	mac.Write(key[:])
	hash := hex.EncodeToString(mac.Sum(nil)[:8])
	if !strings.Contains(text, `"token_hash":"`+hash+`"`) {
		t.Errorf("the bearer token's keyed hash %s is not in the debug log: were the debug lines written?", hash)
	}
	// The unkeyed hash, which anyone can compute from a guessed token,
	// must not be there, on routes with or without a log_hash_key.
	for name, tok := range tokens {
		k := sessionctx.TokenSource{From: sessionctx.FromBearer}.Key(tok)
		if plain := hex.EncodeToString(k[:6]); strings.Contains(text, plain) {
			t.Errorf("the %s token's unkeyed hash prefix %s is in the log", name, plain)
		}
	}
	if !strings.Contains(text, "session service unavailable") {
		t.Errorf("the service error's warning is not in the log")
	}
}

// TestHostileLogDefaultConfig is the default configuration: Caddy's own
// log at its default level, no filter, no access log. A session service
// that is down makes a 503 for every request; Caddy writes a handler's 5xx
// error at error level with the request's headers and URI, so the token
// from a custom header or the query would be there in clear. None may be,
// with or without handle_errors, and the 503 still carries Retry-After.
func TestHostileLogDefaultConfig(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	downURL := refusingURL(t)
	svc := newSessionService(t)
	up := newUpstream(t)
	tokens := map[string]string{
		"header down":   "tok-vsid-secret-d0d0",
		"query down":    "tok-query-secret-d1d1",
		"header errors": "tok-vsid-secret-e2e2",
		"header reject": "tok-vsid-secret-f3f3",
	}
	startCaddyWith(t, fmt.Sprintf("\tlog {\n\t\toutput file %s\n\t}", logFile), fmt.Sprintf(`
:%d {
	handle /down/* {
		session_auth http %[2]s {
			token header vmware-api-session-id
			token query tok
		}
		reverse_proxy %[3]s
	}
	handle /reject/* {
		session_auth http %[4]s {
			token header vmware-api-session-id
		}
		reverse_proxy %[3]s
	}
}
:%[5]d {
	session_auth http %[2]s {
		token header vmware-api-session-id
	}
	reverse_proxy %[3]s
	handle_errors {
		respond "rendered {err.status_code}" {err.status_code}
	}
}`, httpPort, downURL, up.Listener.Addr(), svc.URL, altPort))

	for _, c := range []struct {
		name, url string
		header    http.Header
		status    int
		body      string
	}{
		{"header down", siteURL + "/down/x", http.Header{"Vmware-Api-Session-Id": {tokens["header down"]}}, 503, ""},
		{"query down", siteURL + "/down/x?tok=" + tokens["query down"], nil, 503, ""},
		{"header reject", siteURL + "/reject/x", http.Header{"Vmware-Api-Session-Id": {tokens["header reject"]}}, 401, ""},
		{"header errors", altURL + "/x", http.Header{"Vmware-Api-Session-Id": {tokens["header errors"]}}, 503, "rendered 503"},
	} {
		req, _ := http.NewRequest("GET", c.url, nil)
		for k, v := range c.header {
			req.Header[k] = v
		}
		resp, err := testClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status || (c.body != "" && string(body) != c.body) {
			t.Errorf("%s: %d %q, want %d %q", c.name, resp.StatusCode, body, c.status, c.body)
		}
		if c.status == 503 && resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s: 503 without Retry-After", c.name)
		}
	}
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	if !strings.Contains(text, "session service unavailable") {
		t.Fatalf("the log has no warning of the outage: was it written? %.500s", text)
	}
	for what, tok := range tokens {
		if strings.Contains(text, tok) {
			t.Errorf("the %s token is in Caddy's log at its default level", what)
			for _, l := range strings.Split(text, "\n") {
				if strings.Contains(l, tok) {
					t.Logf("%.400s", l)
				}
			}
		}
	}
}

// TestLogsOutageEveryRequestAndRecoveryOnce: during an outage of the
// session service every request still has its DEBUG "session" line (the
// warning is rate-limited, the per-request line is not), and the service
// answering again is logged once, not per request.
func TestLogsOutageEveryRequestAndRecoveryOnce(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	svc := newSessionService(t)
	svc.addSession("tok-back-1", aliceSession())
	svc.addSession("tok-back-2", aliceSession())
	up := newUpstream(t)
	tester := startCaddyWith(t, debugLogTo(logFile), fmt.Sprintf(`
:%d {
	session_auth http %s
	reverse_proxy %s
}`, httpPort, svc.URL, up.Listener.Addr()))

	svc.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		w.WriteHeader(http.StatusBadGateway)
		return true
	})
	const down = 6
	for i := range down {
		expectStatus(t, tester, "GET", "/x", bearer(fmt.Sprintf("tok-down-%d", i)), 503, "service down")
	}
	svc.setFault(nil)
	expectStatus(t, tester, "GET", "/x", bearer("tok-back-1"), 200, "service back")
	expectStatus(t, tester, "GET", "/x", bearer("tok-back-2"), 200, "service back, a second token")
	expectStatus(t, tester, "GET", "/x", bearer("tok-unknown"), 401, "service back, a rejection")

	var serviceErrors, back int
	for _, l := range logLines(t, logFile) {
		if l["logger"] != "http.handlers.session_auth" {
			continue
		}
		switch {
		case l["msg"] == "session" && l["outcome"] == "service_error":
			serviceErrors++
			if l["level"] != "debug" || l["error"] == nil || l["token_hash"] == nil {
				t.Errorf("a service_error line without its level, error or token_hash: %v", l)
			}
		case l["msg"] == "session service answering again":
			back++
			if l["level"] != "info" {
				t.Errorf("recovery logged at %v, want info", l["level"])
			}
		}
	}
	if serviceErrors != down {
		t.Errorf("%d DEBUG service_error lines for %d requests during the outage", serviceErrors, down)
	}
	if back != 1 {
		t.Errorf("the service answering again is logged %d times, want once", back)
	}
}
