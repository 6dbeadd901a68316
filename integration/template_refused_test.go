package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestCustomHeaderTemplateRefusedValue: under the default raw
// header_encoding a value with a control character is not sent, and the
// placeholder reads "". A custom header whose template combined it with
// other text used to go out with the hole ("@corp", "acme/"), a value
// that is another identity's (or no one's) rather than this session's:
// such a header is now left out, as the default header of that field is.
// A template whose values can all be carried is sent as before.
func TestCustomHeaderTemplateRefusedValue(t *testing.T) {
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	evil := aliceSession()
	evil["user"] = "mallory\x01"
	svc.addSession("tok-ctrl", evil)
	nul := aliceSession()
	nul["user_id"] = "u-1\x00"
	svc.addSession("tok-nulid", nul)
	comma := aliceSession()
	comma["roles"] = []string{"dev,admin"}
	svc.addSession("tok-comma", comma)
	up := newRawUpstream(t)
	startCaddy(t, fmt.Sprintf(`
:%d {
	session_auth http %s {
		header X-Remote-User "{session.user}@corp"
		header X-Path "{session.org}/{session.user}"
		header X-Uid "id:{http.auth.user.id}"
		header X-Groups "groups={session.roles}"
		header X-Org "{session.org}"
	}
	reverse_proxy %s
}`, httpPort, svc.URL, up.addr()))

	seen := func(tok string) map[string]string {
		t.Helper()
		resp, body := rawRequest(t, rawGet("/", "Authorization: Bearer "+tok))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d: %s", tok, resp.StatusCode, body)
		}
		got := map[string]string{}
		for _, l := range decodeRawSeen(t, body).Lines {
			name, val, _ := strings.Cut(l, ":")
			got[name] = strings.TrimPrefix(val, " ")
		}
		return got
	}
	want := map[string]string{"X-Remote-User": "alice@corp", "X-Path": "acme/alice", "X-Uid": "id:u-1", "X-Groups": "groups=admin,dev", "X-Org": "acme"}
	got := seen("tok-alice")
	for name, v := range want {
		if got[name] != v {
			t.Errorf("alice: %s = %q, want %q", name, got[name], v)
		}
	}
	for tok, absent := range map[string][]string{
		"tok-ctrl":  {"X-Remote-User", "X-Path", "X-Session-User"},
		"tok-nulid": {"X-Uid", "X-Session-User-Id"},
		"tok-comma": {"X-Groups", "X-Session-Roles"},
	} {
		got := seen(tok)
		for _, name := range absent {
			if v, ok := got[name]; ok {
				t.Errorf("%s: %s = %q reached the app; want it left out", tok, name, v)
			}
		}
		if got["X-Org"] != "acme" {
			t.Errorf("%s: X-Org = %q, want acme (its value can be carried)", tok, got["X-Org"])
		}
	}
}
