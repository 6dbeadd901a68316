package caddymodule_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/sessiongate/caddy-sessiongate/internal/dialecttest"
	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// TestCaddyfileEveryDialect: the Caddyfile takes every dialect of the
// conformance table on the session_auth line, as a backend, and in
// session_info, and an unknown one is refused with the list of them all,
// sorted: the parser holds no list of its own.
func TestCaddyfileEveryDialect(t *testing.T) {
	var registry []string
	for _, sh := range sessionctx.InfoShapes() {
		if sh.Name() != "normalized" {
			registry = append(registry, sh.Name())
		}
	}
	if !slices.Equal(registry, dialecttest.Names()) {
		t.Fatalf("registered dialects %v, conformance cases %v", registry, dialecttest.Names())
	}
	for _, c := range dialecttest.Cases() {
		want := `"dialect":"` + c.Dialect + `"`
		for _, body := range []string{
			"session_auth " + c.Dialect + " http://127.0.0.1:1",
			"session_auth {\n\tbackend " + c.Dialect + " http://127.0.0.1:1\n}",
		} {
			if out, err := adaptSessionAuth(t, body); err != nil || !strings.Contains(out, want) {
				t.Errorf("%s: %v %s", body, err, out)
			}
		}
		if out, err := adaptHandler(t, "session_info "+c.Dialect, "session_info"); err != nil || !strings.Contains(out, want) {
			t.Errorf("session_info %s: %v %s", c.Dialect, err, out)
		}
	}
	list := strings.Join(dialecttest.Names(), ", ")
	for _, body := range []string{"session_auth kerberos http://127.0.0.1:1", "session_auth {\n\tbackend kerberos http://127.0.0.1:1\n}"} {
		if _, err := adaptSessionAuth(t, body); err == nil || !strings.Contains(err.Error(), `"kerberos"`) || !strings.Contains(err.Error(), "one of "+list) {
			t.Errorf("%s: %v, want an error listing %s", body, err, list)
		}
	}
}
