package integration

import (
	"fmt"
	"testing"

	"github.com/sessiongate/caddy-sessiongate/internal/emulator"
)

// TestAmplifyDeviceAuthorization: a session that awaits device
// authorization gets the platform's own findSession answer through Caddy
// (400, internalCode 232), required or optional, not "no session" (result
// null), so the SDK asks for the authorization. Other requests with it get
// the plain 401. Granted, the session is seen at once: the pending state
// is not cached.
func TestAmplifyDeviceAuthorization(t *testing.T) {
	amp := emulator.NewAmplify()
	amp.AddSession("acc-pending", emulator.AmplifyResult("g-1", "ada", "ada@example.com", "developer"))
	amp.RequireDeviceAuth("acc-pending")
	url := serve(t, amp)
	up := newUpstream(t)
	site := func(port int, optional string) string {
		return fmt.Sprintf(`
:%d {
	session_auth amplify %s {
		%s
		negative_ttl 1h
	}
	session_info amplify
	reverse_proxy %s
}`, port, url, optional, up.Listener.Addr())
	}
	startCaddyWith(t, "", site(httpPort, "")+site(altPort, "optional"))

	for _, base := range []string{siteURL, altURL} {
		for range 2 {
			resp, m := callJSON(t, "GET", base+emulator.AmplifyPath, bearer("acc-pending"), "")
			if resp.StatusCode != 400 || m["internalCode"] != float64(232) || m["success"] != false {
				t.Errorf("%s findSession: %d %v, want the platform's 400 with internalCode 232", base, resp.StatusCode, m)
			}
		}
	}
	expectStatus(t, nil, "GET", "/api/v1/team", bearer("acc-pending"), 401, "another request with the pending session")
	resp, m := callJSON(t, "GET", siteURL+emulator.AmplifyPath, bearer("acc-nobody"), "")
	if resp.StatusCode != 200 || m["success"] != true || m["result"] != nil {
		t.Errorf("unknown token: %d %v, want result null", resp.StatusCode, m)
	}

	amp.GrantDeviceAuth("acc-pending")
	resp, m = callJSON(t, "GET", siteURL+emulator.AmplifyPath, bearer("acc-pending"), "")
	if r, _ := m["result"].(map[string]any); resp.StatusCode != 200 || r["guid"] != "g-1" {
		t.Errorf("authorization granted: %d %v, want the session at once", resp.StatusCode, m)
	}
}
