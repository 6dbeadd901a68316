package caddymodule

import (
	"net/http"
	"testing"
)

func TestHeaderFolder(t *testing.T) {
	f := newHeaderFolder("X-Session-", []string{"Remote-User", "X-Who"})
	protected := []string{
		"X-Session-User", "x-session-user", "X_Session_User", "X_SESSION_ADMIN", "X-Session-",
		"X-Session-Anything-Else", "x_session-org", "X.Session-User", "x~session.admin", "Remote.User", "Remote-User", "REMOTE_USER", "remote-user", "X-Who", "x_who",
	}
	for _, name := range protected {
		if !f.protected(name) {
			t.Errorf("%q should be protected", name)
		}
	}
	allowed := []string{"X-Session", "X-Sessions-User", "Remote-Users", "Accept", "Authorization", "X-Wh", ""}
	for _, name := range allowed {
		if f.protected(name) {
			t.Errorf("%q should not be protected", name)
		}
	}
	long := make([]byte, 300)
	for i := range long {
		long[i] = 'a'
	}
	if f.protected(string(long)) {
		t.Error("a long unrelated name should not be protected")
	}

	h := http.Header{"X-Session-User": {"m"}, "X_session_roles": {"admin"}, "Accept": {"*/*"}, "Remote-User": {"m"}}
	f.strip(h)
	if len(h) != 1 || h.Get("Accept") != "*/*" {
		t.Errorf("after strip: %v", h)
	}
}
