package caddymodule

import (
	"net/http"
	"testing"
)

func TestSanitize(t *testing.T) {
	tests := map[string]string{
		"alice":                  "alice",
		"  padded ":              "%20%20padded%20",
		"in side":                "in side",
		"line\r\nX-Admin: true":  "line%0D%0AX-Admin: true",
		"nul\x00byte":            "nul%00byte",
		"Zoë":                    "Zo%C3%AB",
		"100%":                   "100%25",
		"tab\there":              "tab%09here",
		"DOMAIN\\user":           "DOMAIN\\user",
		"\x7f":                   "%7F",
		"\x1badmin\x1b":          "%1Badmin%1B",
		"日本":                     "%E6%97%A5%E6%9C%AC",
		"quote\"and;semi,comma ": "quote\"and;semi,comma%20",
	}
	// Look-alikes of one identity must stay apart once encoded.
	seen := map[string]string{}
	for _, in := range []string{"admin", " admin ", "ad\x00min", "ad\tmin", "\x1badmin\x1b", "admin%20", "admin "} {
		out := sanitize(in)
		if prev, ok := seen[out]; ok {
			t.Errorf("sanitize(%q) = sanitize(%q) = %q", in, prev, out)
		}
		seen[out] = in
	}
	for in, want := range tests {
		if got := sanitize(in); got != want {
			t.Errorf("sanitize(%q) = %q, want %q", in, got, want)
		}
	}
	if got := sanitizeList([]string{"a,b", "c", "", "d\n"}); got != "a%2Cb,c,d%0A" {
		t.Errorf("sanitizeList = %q", got)
	}
}

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
