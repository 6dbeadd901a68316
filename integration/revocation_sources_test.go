package integration

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/caddy-sessiongate/internal/emulator"
)

// sendBody sends a request with a body to the test Caddy and returns the
// status and the answer's body (see send).
func sendBody(t *testing.T, method, path string, header http.Header, body string) (int, string) {
	t.Helper()
	resp, b := send(t, method, path, header, body)
	return resp.StatusCode, b
}

// TestRevocationCoversEverySource: a token is revoked in every source it
// may arrive by, whichever source the revocation came through. With TR50
// (a sessionId header, a sessionId cookie, or auth.sessionId in a POSTed
// envelope), a logout through the cookie ends the token for the header
// and the envelope too, and the admin purge of a token first read from an
// envelope ends it for every source. The session service has already
// forgotten each session, so only the cache could still let it in.
func TestRevocationCoversEverySource(t *testing.T) {
	tr := emulator.NewTR50()
	now := time.Now()
	for _, sid := range []string{"S-logout", "S-purge"} {
		tr.AddSession(sid, emulator.TR50UserParams("u-"+sid, "ops@acme.io", 3600, now))
	}
	svc := httptest.NewServer(tr)
	t.Cleanup(svc.Close)
	up := newUpstream(t)
	startCaddyWith(t, "", fmt.Sprintf(`
:%d {
	session_auth tr50 %s {
		cache_ttl 1h
		logout POST /logout
	}
	reverse_proxy %s
}`, httpPort, svc.URL, up.Listener.Addr()))

	sources := map[string]func(sid string) (string, string, http.Header, string){
		"header": func(sid string) (string, string, http.Header, string) {
			return "GET", "/x", http.Header{"Sessionid": {sid}}, ""
		},
		"cookie": func(sid string) (string, string, http.Header, string) {
			return "GET", "/x", http.Header{"Cookie": {"sessionId=" + sid}}, ""
		},
		"envelope": func(sid string) (string, string, http.Header, string) {
			return "POST", "/api", http.Header{"Content-Type": {"application/json"}}, `{"auth":{"sessionId":"` + sid + `"},"1":{"command":"thing.list"}}`
		},
	}
	expect := func(sid string, want int, when string) {
		t.Helper()
		for name, src := range sources {
			method, path, h, body := src(sid)
			if got, answer := sendBody(t, method, path, h, body); got != want {
				t.Errorf("%s, %s through the %s: %d, want %d (%q)", when, sid, name, got, want, answer)
			}
		}
	}
	expect("S-logout", 200, "before the logout")
	expect("S-purge", 200, "before the purge")
	if calls := tr.Calls(); calls != 2 {
		t.Errorf("two tokens, each in three sources: %d service calls, want 2 (one cache entry per token)", calls)
	}

	tr.RemoveSession("S-logout")
	if got, _ := sendBody(t, "POST", "/logout", http.Header{"Cookie": {"sessionId=S-logout"}}, ""); got != 200 {
		t.Fatalf("logout through the cookie: %d", got)
	}
	expect("S-logout", 401, "after a logout through the cookie")

	tr.RemoveSession("S-purge")
	expect("S-purge", 200, "cached, before the purge")
	if status, body := admin(t, "POST", "/sessiongate/purge", "application/json", `{"token":"S-purge"}`); status != 200 || !strings.Contains(body, `"purged":1`) {
		t.Fatalf("purge of the token: %d %s, want one entry purged", status, body)
	}
	expect("S-purge", 401, "after the purge of the token")
}

// TestLogoutCoversEverySource: the same with the http dialect's sources
// (a cookie, the bearer, a query parameter): a logout through any one of
// them ends the token in the others, which the service has forgotten.
func TestLogoutCoversEverySource(t *testing.T) {
	svc := newSessionService(t)
	up := newUpstream(t)
	startCaddyWith(t, "", fmt.Sprintf(`
:%d {
	session_auth http %s {
		token cookie sid
		token bearer
		token query t
		cache_ttl 1h
		logout POST /logout
	}
	reverse_proxy %s
}`, httpPort, svc.URL, up.Listener.Addr()))

	via := map[string]func(tok string) (string, http.Header){
		"cookie": func(tok string) (string, http.Header) { return "/x", http.Header{"Cookie": {"sid=" + tok}} },
		"bearer": func(tok string) (string, http.Header) { return "/x", bearer(tok) },
		"query":  func(tok string) (string, http.Header) { return "/x?t=" + tok, nil },
	}
	for out, logout := range via {
		tok := "tok-" + out
		svc.addSession(tok, aliceSession())
		for name, src := range via {
			path, h := src(tok)
			expectStatus(t, nil, "GET", path, h, 200, tok+" through the "+name)
		}
		path, h := logout(tok)
		path = strings.Replace(path, "/x", "/logout", 1)
		expectStatus(t, nil, "POST", path, h, 200, "logout through the "+out)
		svc.removeSession(tok) // the app ended the session at the service
		for name, src := range via {
			path, h := src(tok)
			expectStatus(t, nil, "GET", path, h, 401, tok+" through the "+name+" after a logout through the "+out)
		}
	}
}
