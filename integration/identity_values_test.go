package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/caddy-sessiongate/internal/emulator"
)

// rawSessionService answers each bearer token with the raw JSON given for
// it (401 for others), so answers can hold what a map cannot spell:
// duplicate keys, escapes, exact spacing.
func rawSessionService(t *testing.T, answers map[string]string) *sessionService {
	t.Helper()
	svc := newSessionService(t)
	for tok, raw := range answers {
		svc.setAnswer(tok, http.StatusOK, "application/json", raw)
	}
	return svc
}

// TestIDNeverFromName: an account whose answer has no id (missing, "",
// null) keeps an empty id: it fails every id rule, reaches the app with
// no X-Session-User-Id, and its name stays a name. Through the http
// dialect's default shape and Amplify's findSession alike.
func TestIDNeverFromName(t *testing.T) {
	svc := rawSessionService(t, map[string]string{
		"tok-missing": `{"user":"mallory","org":"acme"}`,
		"tok-empty":   `{"user_id":"","user":"mallory","org_id":"","org":"acme"}`,
		"tok-null":    `{"user_id":null,"user":"mallory","org_id":null,"org":"acme"}`,
		"tok-idonly":  `{"user_id":"u-1"}`,
	})
	amp := emulator.NewAmplify()
	noGUID := emulator.AmplifyResult("g-1", "mallory", "mallory@example.com", "developer")
	delete(noGUID, "guid")
	if u, ok := noGUID["user"].(map[string]any); ok {
		delete(u, "guid")
	}
	amp.AddSession("acc-noguid", noGUID)
	ampURL := serve(t, amp)
	up := newUpstream(t)
	startCaddyWith(t, "", fmt.Sprintf(`
:%d {
	handle /http/* {
		session_auth http %s
		session_require /http/uid user_id mallory
		session_require /http/oid org_id acme
		session_require /http/user user mallory
		reverse_proxy %s
	}
	handle /amp/* {
		session_auth amplify %s
		session_require /amp/uid user_id mallory mallory@example.com
		reverse_proxy %s
	}
}`, httpPort, svc.URL, up.Listener.Addr(), ampURL, up.Listener.Addr()))

	for _, tok := range []string{"tok-missing", "tok-empty", "tok-null"} {
		expectStatus(t, nil, "GET", "/http/uid", bearer(tok), 403, tok+": user_id rule with the name")
		expectStatus(t, nil, "GET", "/http/oid", bearer(tok), 403, tok+": org_id rule with the org's name")
		expectStatus(t, nil, "GET", "/http/user", bearer(tok), 200, tok+": user rule with the name")
		_, body := do(t, nil, "GET", "/http/x", bearer(tok))
		h := upstreamSaw(t, body).Headers
		if h.Get("X-Session-User") != "mallory" || h.Get("X-Session-User-Id") != "" || h.Get("X-Session-Org-Id") != "" || h.Get("X-Session-Org") != "acme" {
			t.Errorf("%s: the app got user %q user_id %q org %q org_id %q; want the names only",
				tok, h.Get("X-Session-User"), h.Get("X-Session-User-Id"), h.Get("X-Session-Org"), h.Get("X-Session-Org-Id"))
		}
	}
	_, body := do(t, nil, "GET", "/http/x", bearer("tok-idonly"))
	if h := upstreamSaw(t, body).Headers; h.Get("X-Session-User-Id") != "u-1" || h.Get("X-Session-User") != "" {
		t.Errorf("id only: user %q user_id %q, want no name made of the id", h.Get("X-Session-User"), h.Get("X-Session-User-Id"))
	}

	expectStatus(t, nil, "GET", "/amp/uid", bearer("acc-noguid"), 403, "amplify without guid: user_id rule with the name")
	_, body = do(t, nil, "GET", "/amp/x", bearer("acc-noguid"))
	if h := upstreamSaw(t, body).Headers; h.Get("X-Session-User-Id") != "" || h.Get("X-Session-User") != "mallory" {
		t.Errorf("amplify without guid: user %q user_id %q", h.Get("X-Session-User"), h.Get("X-Session-User-Id"))
	}
}

// TestApplicationIsNotAUser: a TR50 application session named alice
// never passes a user or user_id rule, reaches the app as an application
// (X-Session-Kind: app, X-Session-App, never X-Session-User), and passes
// only the rules that name applications. A forged X-Session-Kind is
// stripped; {session.kind} and {session.user} say the same as the headers.
func TestApplicationIsNotAUser(t *testing.T) {
	tr := emulator.NewTR50()
	now := time.Now()
	tr.AddSession("S-app", emulator.TR50AppParams("alice", "alice", 3600, now))
	tr.AddSession("S-user", emulator.TR50UserParams("alice", "alice", 3600, now))
	up := newUpstream(t)
	startCaddyWith(t, "", fmt.Sprintf(`
:%d {
	route {
		session_auth tr50 %s
		session_require /user user alice
		session_require /userid user_id alice
		session_require /app app alice
		session_require /appid app_id alice
		session_require /kindapp kind app
		session_require /kinduser kind user
		request_header X-Who "{session.kind}:{session.user}:{session.app}"
		reverse_proxy %s
	}
}`, httpPort, serve(t, tr), up.Listener.Addr()))

	forged := func(sid string) http.Header {
		return http.Header{"Sessionid": {sid}, "X-Session-Kind": {"user"}, "X-Session-User": {"alice"}, "X-Session_Kind": {"user"}}
	}
	for path, want := range map[string][2]int{
		"/user": {403, 200}, "/userid": {403, 200}, "/app": {200, 403}, "/appid": {200, 403},
		"/kindapp": {200, 403}, "/kinduser": {403, 200},
	} {
		expectStatus(t, nil, "GET", path, forged("S-app"), want[0], "application session on "+path)
		expectStatus(t, nil, "GET", path, forged("S-user"), want[1], "user session on "+path)
	}
	_, body := do(t, nil, "GET", "/x", forged("S-app"))
	h := upstreamSaw(t, body).Headers
	if h.Get("X-Session-Kind") != "app" || h.Get("X-Session-App") != "alice" || h.Get("X-Session-App-Id") != "alice" ||
		len(h.Values("X-Session-User")) != 0 || len(h.Values("X-Session-User-Id")) != 0 || h.Get("X-Who") != "app::alice" {
		t.Errorf("application session: the app got %v", h)
	}
	_, body = do(t, nil, "GET", "/x", forged("S-user"))
	h = upstreamSaw(t, body).Headers
	if h.Get("X-Session-Kind") != "user" || h.Get("X-Session-User") != "alice" || len(h.Values("X-Session-App")) != 0 || h.Get("X-Who") != "user:alice:" {
		t.Errorf("user session: the app got %v", h)
	}
	for _, session := range []string{"S-app", "S-user"} {
		_, body = do(t, nil, "GET", "/x", forged(session))
		if vals := upstreamSaw(t, body).Headers.Values("X-Session-Kind"); len(vals) != 1 {
			t.Errorf("%s: X-Session-Kind %q, want the one injected", session, vals)
		}
	}
}

// TestRoleNamesExact: role names with Unicode or ASCII spaces around them,
// or inside ("Sales admin"), are not the role admin: they fail `role
// admin` and reach the app exactly or not at all, never trimmed to
// "admin". A string is
// split only where the block says so (roles_split).
func TestRoleNamesExact(t *testing.T) {
	odd := map[string]string{
		"nbsp":     `"admin\u00a0"`,
		"emspace":  `"\u2003admin"`,
		"spaces":   `" admin "`,
		"nel":      `"admin\u0085"`,
		"tab":      `"\tadmin"`,
		"sales":    `"Sales admin"`,
		"ideospc":  `"admin\u3000"`,
		"trailing": `"admin "`,
	}
	answers := map[string]string{"tok-admin": `{"user_id":"u","roles":["admin"],"perms":["write"]}`}
	for name, role := range odd {
		answers["list-"+name] = `{"user_id":"u","roles":[` + role + `],"perms":[` + role + `]}`
		answers["str-"+name] = `{"user_id":"u","roles":` + role + `,"perms":` + role + `}`
	}
	answers["split"] = `{"user_id":"u","roles":"dev admin","perms":"read write"}`
	svc := rawSessionService(t, answers)
	up := newUpstream(t)
	startCaddyWith(t, "", fmt.Sprintf(`
:%d {
	session_auth http %s
	session_require /role role admin
	session_require /perm perm admin
	reverse_proxy %s
}`, httpPort, svc.URL, up.Listener.Addr()))

	expectStatus(t, nil, "GET", "/role", bearer("tok-admin"), 200, "the role admin")
	for name := range odd {
		for _, tok := range []string{"list-" + name, "str-" + name} {
			expectStatus(t, nil, "GET", "/role", bearer(tok), 403, tok+": role admin")
			expectStatus(t, nil, "GET", "/perm", bearer(tok), 403, tok+": perm admin")
			_, body := do(t, nil, "GET", "/x", bearer(tok))
			h := upstreamSaw(t, body).Headers
			for _, k := range []string{"X-Session-Roles", "X-Session-Perms"} {
				// Under the default header_encoding raw, a name a
				// header cannot carry exactly (white space at an end,
				// a control character) is not sent at all; one it can
				// ("Sales admin") is sent as it is.
				if v := h.Get(k); v == "admin" || strings.Contains(v, ",") || (v == "" && name == "sales") {
					t.Errorf("%s: %s %q, want the one name as it is, or none", tok, k, v)
				}
			}
		}
	}
	expectStatus(t, nil, "GET", "/role", bearer("split"), 403, "without roles_split: \"dev admin\" is one role")

	startCaddyWith(t, "", fmt.Sprintf(`
:%d {
	session_auth {
		backend http %s {
			roles_split " "
		}
	}
	session_require role admin
	reverse_proxy %s
}`, httpPort, svc.URL, up.Listener.Addr()))
	expectStatus(t, nil, "GET", "/x", bearer("split"), 200, "roles_split: \"dev admin\" holds admin")
	expectStatus(t, nil, "GET", "/x", bearer("str-nbsp"), 403, "roles_split \" \": a no-break space is no separator")
	_, body := do(t, nil, "GET", "/x", bearer("split"))
	if h := upstreamSaw(t, body).Headers; h.Get("X-Session-Roles") != "dev,admin" || h.Get("X-Session-Perms") != "read write" {
		t.Errorf("roles_split only: roles %q perms %q", h.Get("X-Session-Roles"), h.Get("X-Session-Perms"))
	}
}

// TestMappingReadsOnlyWhatItMaps: an http block that maps some identity
// fields reads those and nothing else: the answer's top-level admin,
// roles, perms, org or user_id (the default shape's paths) are not
// trusted unless mapped. A mapped path the answer lacks is logged at
// debug, and its field stays empty.
func TestMappingReadsOnlyWhatItMaps(t *testing.T) {
	svc := rawSessionService(t, map[string]string{
		"tok": `{"login":"ann","user_id":"root","user":"root","admin":true,"roles":["admin"],"perms":["all"],"org_id":"o-1","org":"acme","email":"root@x"}`,
	})
	up := newUpstream(t)
	logPath := filepath.Join(t.TempDir(), "caddy.log")
	startCaddyWith(t, debugLogTo(logPath), fmt.Sprintf(`
:%d {
	session_auth {
		backend http %s {
			user_from login
			email_from mail
		}
	}
	session_require /admin admin
	session_require /role role admin
	session_require /perm perm all
	session_require /org org acme
	session_require /uid user_id root
	reverse_proxy %s
}`, httpPort, svc.URL, up.Listener.Addr()))

	for _, path := range []string{"/admin", "/role", "/perm", "/org", "/uid"} {
		expectStatus(t, nil, "GET", path, bearer("tok"), 403, "unmapped field on "+path)
	}
	_, body := do(t, nil, "GET", "/x", bearer("tok"))
	h := upstreamSaw(t, body).Headers
	if h.Get("X-Session-User") != "ann" || h.Get("X-Session-Admin") != "false" {
		t.Errorf("user %q admin %q, want ann and false", h.Get("X-Session-User"), h.Get("X-Session-Admin"))
	}
	for _, k := range []string{"X-Session-User-Id", "X-Session-Roles", "X-Session-Perms", "X-Session-Org", "X-Session-Org-Id", "X-Session-Email"} {
		if v := h.Values(k); len(v) != 0 {
			t.Errorf("%s %q from a path the block does not map", k, v)
		}
	}
	found := false
	for _, l := range logLines(t, logPath) {
		if l["msg"] == "session answer lacks mapped paths" {
			raw, _ := json.Marshal(l["missing"])
			found = string(raw) == `["mail"]` && l["level"] == "debug"
			if strings.Contains(fmt.Sprint(l), "tok") && !strings.Contains(fmt.Sprint(l), "token_hash") {
				t.Errorf("log line names the token: %v", l)
			}
		}
	}
	if !found {
		b, _ := os.ReadFile(logPath)
		t.Errorf("no debug line naming the missing path mail:\n%s", b)
	}
}
