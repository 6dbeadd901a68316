package caddymodule

import (
	"strings"
	"testing"
)

// TestLogoutPath: a request path and a configured logout path compare as
// an app's router reads them.
func TestLogoutPath(t *testing.T) {
	for _, p := range []string{"/logout", "//logout", "/logout/", "/LOGOUT", "/a/../logout", "/./logout",
		"/logout;jsessionid=1", "/logout;jsessionid=1/", "/;x/logout", "/Logout//"} {
		if got := logoutPath(p); got != "/logout" {
			t.Errorf("logoutPath(%q) = %q, want /logout", p, got)
		}
	}
	for _, p := range []string{"/logoutx", "/log/out", "/x/logout", "/logout.php", ""} {
		if got := logoutPath(p); got == "/logout" {
			t.Errorf("logoutPath(%q) = /logout, want another path", p)
		}
	}
}

// TestDecodePurgeBothKeys: a body naming both keys is refused whatever
// their values.
func TestDecodePurgeBothKeys(t *testing.T) {
	for _, body := range []string{
		`{"token": "", "all": true}`, `{"all": false, "token": "t"}`,
		`{"token": "t", "all": null}`, `{"token": null, "all": true}`,
	} {
		if _, err := decodePurge(strings.NewReader(body)); err == nil || !strings.Contains(err.Error(), "not both") {
			t.Errorf("decodePurge(%s) = %v, want a not-both error", body, err)
		}
	}
}
