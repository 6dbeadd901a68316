package integration

import (
	"fmt"
	"net/http"
	"testing"
)

// TestRequireRules runs every rule kind through a real Caddy: a session
// that meets the rule gets 200 from the upstream, one that does not gets
// 403 (rendered by handle_errors), and a request without a session 401.
func TestRequireRules(t *testing.T) {
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession()) // roles admin,dev; perms read,write; org acme/o-1; admin
	svc.addSession("tok-bob", map[string]any{
		"user_id": "u-2", "user": "bob", "org_id": "o-2", "org": "globex",
		"roles": []string{"viewer"}, "perms": "read", "admin": false,
	})
	// mallory's names are alice's ids: a name must never pass an id rule,
	// nor an id a name rule.
	svc.addSession("tok-mallory", map[string]any{
		"user_id": "u-66", "user": "u-1", "org_id": "o-66", "org": "o-1",
		"roles": []string{"viewer"}, "perms": "read", "admin": false,
	})
	up := newUpstream(t)
	tester := startCaddy(t, fmt.Sprintf(`
:%d {
	session_auth {
		backend http %s
		optional
	}
	session_require /any
	session_require /role role admin billing
	session_require /roles {
		role admin viewer
		role dev
	}
	session_require /perm perm read write
	session_require /org org acme
	session_require /orgid org_id o-1 o-9
	session_require /orgname org o-1
	session_require /user user alice carol
	session_require /userid user_id u-1
	session_require /username user u-1
	session_require /admin admin
	session_require /all {
		role dev
		perm write
		org acme
		user alice
		admin
	}
	reverse_proxy %s
	handle_errors {
		respond "{err.status_code} {err.message}" {err.status_code}
	}
}`, httpPort, svc.URL, up.Listener.Addr()))

	for _, tc := range []struct {
		path                string
		alice, bob, mallory int
	}{
		{"/any", 200, 200, 200},
		{"/role", 200, 403, 403},
		{"/roles", 200, 403, 403},
		{"/perm", 200, 403, 403},
		{"/org", 200, 403, 403},
		{"/orgid", 200, 403, 403},
		{"/orgname", 403, 403, 200},
		{"/user", 200, 403, 403},
		{"/userid", 200, 403, 403},
		{"/username", 403, 403, 200},
		{"/admin", 200, 403, 403},
		{"/all", 200, 403, 403},
		{"/open", 200, 200, 200},
	} {
		for _, who := range []struct {
			tok  string
			want int
		}{{"tok-alice", tc.alice}, {"tok-bob", tc.bob}, {"tok-mallory", tc.mallory}} {
			before := up.hits.Load()
			resp, body := do(t, tester, "GET", tc.path, bearer(who.tok))
			if resp.StatusCode != who.want {
				t.Errorf("%s as %s: %d %q, want %d", tc.path, who.tok, resp.StatusCode, body, who.want)
			}
			reached := up.hits.Load() > before
			if reached != (who.want == 200) {
				t.Errorf("%s as %s: upstream reached = %v", tc.path, who.tok, reached)
			}
			if who.want == 403 && body == "" {
				t.Errorf("%s as %s: handle_errors did not render the 403", tc.path, who.tok)
			}
		}
		// No session: anonymous (optional) or a token the service rejects.
		for _, h := range []http.Header{nil, bearer("forged")} {
			resp, _ := do(t, tester, "GET", tc.path, h)
			want := 401
			if tc.path == "/open" {
				want = 200
			}
			if resp.StatusCode != want {
				t.Errorf("%s without a session: %d, want %d", tc.path, resp.StatusCode, want)
			}
			if want == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s without a session: 401 without WWW-Authenticate", tc.path)
			}
		}
	}
}

// TestRequireWithoutSessionAuth: session_require on a site with no
// session_auth at all never lets a request through.
func TestRequireWithoutSessionAuth(t *testing.T) {
	up := newUpstream(t)
	tester := startCaddy(t, fmt.Sprintf(`
:%d {
	session_require role admin
	reverse_proxy %s
}`, httpPort, up.Listener.Addr()))
	h := bearer("anything")
	h.Set("X-Session-Roles", "admin")
	resp, _ := do(t, tester, "GET", "/", h)
	if resp.StatusCode != 401 || up.hits.Load() != 0 {
		t.Fatalf("status %d, upstream hits %d: want 401 and no hit", resp.StatusCode, up.hits.Load())
	}
}
