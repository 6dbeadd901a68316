package integration

import (
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sessiongate/caddy-sessiongate/internal/emulator"
)

// TestUnauthenticatedInProductShape: behind a non-optional session_auth,
// a client of the product asking for its session without one gets the
// product's own answer (the one the emulated product gives), not an empty
// 401; other requests keep the plain 401.
func TestUnauthenticatedInProductShape(t *testing.T) {
	vs := httptest.NewServer(emulator.NewVSphere())
	t.Cleanup(vs.Close)
	amp := httptest.NewServer(emulator.NewAmplify())
	t.Cleanup(amp.Close)
	tr := httptest.NewServer(emulator.NewTR50())
	t.Cleanup(tr.Close)
	tf := httptest.NewServer(emulator.NewTrifacta())
	t.Cleanup(tf.Close)
	startCaddy(t, fmt.Sprintf(`
:%d {
	handle /vs/* {
		uri strip_prefix /vs
		session_auth vsphere %s
		session_info vsphere
	}
	handle /amp/* {
		uri strip_prefix /amp
		session_auth amplify %s
		session_info amplify
	}
	handle /tr/* {
		uri strip_prefix /tr
		session_auth tr50 %s
		session_info tr50
	}
	handle /tf/* {
		uri strip_prefix /tf
		session_auth trifacta %s
		session_info trifacta
	}
}`, httpPort, vs.URL, amp.URL, tr.URL, tf.URL))

	post := func(path, body string) (int, string) {
		resp, err := testClient.Post(siteURL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		contains                 string
	}{
		{"vsphere current", "GET", "/vs/api/session", "", 401, `"error_type":"UNAUTHENTICATED"`},
		{"vsphere legacy", "POST", "/vs/rest/com/vmware/cis/session?~action=get", "", 401, `unauthenticated`},
		{"amplify findSession", "GET", "/amp/api/v1/auth/findSession", "", 200, `"result":null`},
		{"tr50 session.info", "POST", "/tr/api", `{"1":{"command":"session.info"}}`, 200, `"auth"`},
		{"trifacta", "GET", "/tf/v2/session", "", 401, `AuthenticationException`},
		{"not a session read", "GET", "/vs/other", "", 401, ``},
		{"tr50 other command", "POST", "/tr/api", `{"1":{"command":"thing.list"}}`, 401, ``},
	} {
		var status int
		var body string
		if tc.method == "POST" {
			status, body = post(tc.path, tc.body)
		} else {
			resp, b := do(t, nil, tc.method, tc.path, nil)
			status, body = resp.StatusCode, b
		}
		if status != tc.status || !strings.Contains(body, tc.contains) || (tc.contains == "" && body != "") {
			t.Errorf("%s: %d %.200s, want %d with %q", tc.name, status, body, tc.status, tc.contains)
		}
	}
}
