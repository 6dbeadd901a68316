package sessionctx_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	_ "github.com/sessiongate/caddy-sessiongate/caddymodule"
	"github.com/sessiongate/caddy-sessiongate/internal/dialecttest"
)

// TestCaddyfileTakesASixthDialect: the dialect only this package's tests
// register (sixth_dialect_test.go) is taken by the Caddyfile parser, by
// session_auth and session_info as Caddy provisions them, and named in
// the list an unknown dialect's error gives: none of them holds a list
// of dialects of its own.
func TestCaddyfileTakesASixthDialect(t *testing.T) {
	adapter := caddyconfig.GetAdapter("caddyfile")
	out, _, err := adapter.Adapt([]byte(`
:1 {
	session_auth sixth http://127.0.0.1:1
	handle /me {
		session_info sixth
	}
	respond "app"
}`), nil)
	if err != nil {
		t.Fatalf("session_auth sixth: %v", err)
	}
	if n := strings.Count(string(out), `"dialect":"sixth"`); n != 2 {
		t.Fatalf("adapted JSON names the sixth dialect %d times, want 2 (session_auth, session_info):\n%s", n, out)
	}
	var cfg caddy.Config
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	if err := caddy.Validate(&cfg); err != nil {
		t.Fatalf("the config does not provision: %v", err)
	}

	dialects := dialecttest.Names()
	if !slices.Contains(dialects, "sixth") {
		t.Fatalf("the sixth dialect has no conformance case: %v", dialects)
	}
	shapes := slices.Sorted(slices.Values(append(dialects, "normalized")))
	for line, want := range map[string][]string{
		"session_auth seventh http://127.0.0.1:1": dialects,
		"session_info seventh":                    shapes,
	} {
		_, _, err := adapter.Adapt([]byte(":1 {\n\t"+line+"\n}"), nil)
		if err == nil || !strings.Contains(err.Error(), `"seventh"`) || !strings.Contains(err.Error(), strings.Join(want, ", ")) {
			t.Errorf("%s: %v, want an error naming it and listing %s", line, err, strings.Join(want, ", "))
		}
	}
}
