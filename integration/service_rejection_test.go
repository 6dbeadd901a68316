package integration

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// TestHTTPServiceRejection: for the http dialect a 401 from the session
// service rejects the token whatever its body (empty, text/plain, HTML),
// as many real "who am I" endpoints answer an expired token: the client
// gets 401 (a browser the login redirect), never 503, and the rejection
// is cached. A 403 counts in the service's JSON only, as before: a WAF's
// HTML 403 is a 503 whose warning says why it was not a rejection.
// rejected_if makes a body predicate a rejection.
func TestHTTPServiceRejection(t *testing.T) {
	svc := newSessionService(t)
	for tok, a := range map[string]serviceAnswer{
		"empty401": {401, "", ""},
		"text401":  {401, "text/plain", "Unauthorized"},
		"html401":  {401, "text/html", "<html><body>Please sign in</body></html>"},
		"json401":  {401, "application/json", `{"error":"expired"}`},
		"json403":  {403, "application/json", `{"error":"forbidden"}`},
		"html403":  {403, "text/html", "<html><body>Request blocked</body></html>"},
		"pred":     {200, "application/json", `{"error":{"code":"session_expired"},"user":"ghost"}`},
		"ok":       {200, "application/json", `{"user_id":"u-1","user":"alice"}`},
	} {
		svc.setAnswer(tok, a.status, a.contentType, a.body)
	}
	up := newUpstream(t)
	logPath := filepath.Join(t.TempDir(), "caddy.log")
	startCaddyWith(t, debugLogTo(logPath), fmt.Sprintf(`
:%d {
	handle /pred/* {
		session_auth {
			backend http %s {
				rejected_if error.code
			}
		}
		reverse_proxy %s
	}
	handle {
		session_auth {
			backend http %s
			on_unauthenticated redirect "https://login.example/?rd={http.request.uri}"
		}
		reverse_proxy %s
	}
}`, httpPort, svc.URL, up.Listener.Addr(), svc.URL, up.Listener.Addr()))

	browser := func(tok string) http.Header {
		return http.Header{"Authorization": {"Bearer " + tok}, "Accept": {"text/html"}}
	}
	for _, tok := range []string{"empty401", "text401", "html401", "json401", "json403"} {
		before := svc.calls.Load()
		expectStatus(t, nil, "GET", "/x", bearer(tok), 401, tok+": API client")
		resp, _ := do(t, nil, "GET", "/x", browser(tok))
		if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), "https://login.example/") {
			t.Errorf("%s: browser got %d %q, want the login redirect", tok, resp.StatusCode, resp.Header.Get("Location"))
		}
		if n := svc.calls.Load() - before; n != 1 {
			t.Errorf("%s: %d service calls for two requests, want 1 (the rejection cached)", tok, n)
		}
	}
	expectStatus(t, nil, "GET", "/x", bearer("html403"), 503, "a WAF's HTML 403")
	expectStatus(t, nil, "GET", "/x", bearer("ok"), 200, "a live session")
	expectStatus(t, nil, "GET", "/pred/x", bearer("pred"), 401, "rejected_if error.code")
	expectStatus(t, nil, "GET", "/pred/x", bearer("ok"), 200, "rejected_if, a live session")
	expectStatus(t, nil, "GET", "/x", bearer("pred"), 200, "no rejected_if: the same answer is a session")

	why := ""
	for _, l := range logLines(t, logPath) {
		if l["msg"] == "session service unavailable" {
			why, _ = l["error"].(string)
		}
	}
	if !strings.Contains(why, "403") || !strings.Contains(why, "HTML") || !strings.Contains(why, "not taken as a rejection") {
		t.Errorf("the warning for the HTML 403 says %q; want the status, the body's kind and why it is no rejection", why)
	}
	if strings.Contains(why, "Request blocked") || strings.Contains(why, "html403") {
		t.Errorf("the warning quotes the body or the token: %q", why)
	}
}
