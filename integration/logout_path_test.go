package integration

import (
	"fmt"
	"net/http"
	"testing"
)

// TestLogoutPathAsAppsRouteIt: `logout POST /logout` matches every request
// the app routes to its logout: any case, the path cleaned (`//logout`,
// `/logout/`, `/a/../logout`), `;` path parameters cut
// (`/logout;jsessionid=1`). Each of those used to leave the token cached,
// the session working on after the app had ended it. Paths that are not
// the logout evict nothing.
func TestLogoutPathAsAppsRouteIt(t *testing.T) {
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	up := newUpstream(t)
	tester := startCaddy(t, fmt.Sprintf(`
:%d {
	session_auth http %s {
		logout post /Logout/
	}
	reverse_proxy %s
}`, httpPort, svc.URL, up.Listener.Addr()))

	calls := int64(0)
	warm := func(when string) {
		t.Helper()
		expectStatus(t, tester, "GET", "/", bearer("tok-alice"), 200, when)
	}
	warm("warm-up")
	calls++
	expectCalls(t, svc, calls, "warm-up")

	for _, path := range []string{"/logoutx", "/log/out", "/logout.php", "/x/logout"} {
		expectStatus(t, tester, "POST", path, bearer("tok-alice"), 200, "POST "+path)
	}
	expectStatus(t, tester, "GET", "/logout", bearer("tok-alice"), 200, "GET /logout")
	warm("after requests that are no logout")
	expectCalls(t, svc, calls, "after requests that are no logout")

	for _, path := range []string{"/logout", "//logout", "/logout/", "/LOGOUT", "/LogOut",
		"/logout;jsessionid=1", "/logout;jsessionid=1/", "/a/../logout", "/./logout", "/logout%3Bx=1"} {
		resp, _ := do(t, tester, "POST", path, bearer("tok-alice"))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: status %d", path, resp.StatusCode)
		}
		warm("after POST " + path)
		calls++
		expectCalls(t, svc, calls, "after POST "+path+" (evicted, so asked again)")
	}
}

// TestPurgeBothKeysRefused: a purge naming both "token" and "all", in any
// form, is a 400 and purges nothing. {"token": "", "all": true} used to
// purge every cache.
func TestPurgeBothKeysRefused(t *testing.T) {
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	up := newUpstream(t)
	tester := startCaddy(t, fmt.Sprintf(`
:%d {
	session_auth http %s
	reverse_proxy %s
}`, httpPort, svc.URL, up.Listener.Addr()))

	expectStatus(t, tester, "GET", "/", bearer("tok-alice"), 200, "warm-up")
	for _, body := range []string{
		`{"token": "", "all": true}`,
		`{"all": true, "token": ""}`,
		`{"token": "tok-alice", "all": true}`,
		`{"token": "tok-alice", "all": false}`,
		`{"all": false, "token": "tok-alice"}`,
		`{"token": "tok-alice", "all": null}`,
		`{"token": null, "all": true}`,
	} {
		status, out := admin(t, "POST", "/sessiongate/purge", "application/json", body)
		if status != http.StatusBadRequest {
			t.Errorf("purge %s: status %d, want 400: %s", body, status, out)
		}
	}
	expectStatus(t, tester, "GET", "/", bearer("tok-alice"), 200, "after the refused purges")
	expectCalls(t, svc, 1, "after the refused purges (nothing purged)")
}
