package caddymodule

import (
	"net/http"
	"slices"
	"testing"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
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

// A session's identity is made at once in the encodings handlers use,
// and in any other the first time one asks, with the same values.
func TestIdentityEncodings(t *testing.T) {
	defer encodingsUsed.Store(encodingsUsed.Load())
	encodingsUsed.Store(1 << encodingRaw)
	s := &sessionctx.Session{User: "zoë", UserID: "u1", Name: " Zoë Müller", Roles: []string{"a,b", "c"}}
	id := newIdentity(s)
	if id.encs[encodingRaw].Load() == nil || id.encs[encodingPercent].Load() != nil || id.encs[encodingRFC2047].Load() != nil {
		t.Fatal("want only the raw encoding made at once")
	}
	for e := headerEncoding(0); e < numEncodings; e++ {
		got, want := id.in(e), encode(s, e)
		if got.vals != want.vals || !slices.Equal(got.refused, want.refused) {
			t.Errorf("%s: %q (refused %v), want %q (refused %v)", encodingNames[e], got.vals, got.refused, want.vals, want.refused)
		}
		if id.in(e) != got {
			t.Errorf("%s: made twice", encodingNames[e])
		}
	}
	if v := id.in(encodingPercent).vals[fieldName]; v != "%20Zo%C3%AB M%C3%BCller" {
		t.Errorf("percent name = %q", v)
	}
	useEncoding(encodingPercent)
	if newIdentity(s).encs[encodingPercent].Load() == nil {
		t.Fatal("an encoding in use is not made at once")
	}
}
