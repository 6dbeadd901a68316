package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

func TestCaddyfileRequireInfoForms(t *testing.T) {
	for _, tc := range []struct {
		body, handler, want string
	}{
		{"session_require", "session_require", `{"handler":"session_require"}`},
		{"session_require admin", "session_require", `{"admin":true,"handler":"session_require"}`},
		{"session_require perm a b", "session_require", `{"handler":"session_require","perms":["a","b"]}`},
		{"session_require org acme", "session_require", `{"handler":"session_require","orgs":[["acme"]]}`},
		{"session_require user ann", "session_require", `{"handler":"session_require","users":[["ann"]]}`},
		{"session_require org_id o-1 o-2", "session_require", `{"handler":"session_require","org_ids":[["o-1","o-2"]]}`},
		{"session_require user_id u-1", "session_require", `{"handler":"session_require","user_ids":[["u-1"]]}`},
		{"session_require role a {\n role b\n}", "session_require", `{"handler":"session_require","roles":[["a"],["b"]]}`},
		{"session_require app agent gw", "session_require", `{"handler":"session_require","apps":[["agent","gw"]]}`},
		{"session_require app_id a-1", "session_require", `{"handler":"session_require","app_ids":[["a-1"]]}`},
		{"session_require kind app", "session_require", `{"handler":"session_require","kind":"app"}`},
		{"session_require {\n kind user\n user ann\n}", "session_require", `{"handler":"session_require","kind":"user","users":[["ann"]]}`},
		{"session_info", "session_info", `{"handler":"session_info"}`},
		{"session_info tr50", "session_info", `{"dialect":"tr50","handler":"session_info"}`},
		{"session_info normalized", "session_info", `{"dialect":"normalized","handler":"session_info"}`},
	} {
		got, err := adaptHandler(t, tc.body, tc.handler)
		if err != nil {
			t.Errorf("%q: %v", tc.body, err)
			continue
		}
		if got != canonicalJSON(t, tc.want) {
			t.Errorf("%q:\n got %s\nwant %s", tc.body, got, tc.want)
		}
	}
}

func TestCaddyfileRequireInfoErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lines []string
		line  int
		want  string
	}{
		{"unknown rule", []string{"session_require {", "group admin", "}"}, 3, `unrecognized subdirective "group"`},
		{"unknown rule one-line", []string{"session_require group admin"}, 2, `unrecognized subdirective "group"`},
		{"role without values", []string{"session_require {", "role", "}"}, 3, "role needs at least one value"},
		{"perm without values", []string{"session_require perm"}, 2, "perm needs at least one value"},
		{"admin with a value", []string{"session_require {", "admin yes", "}"}, 3, "wrong argument count"},
		{"admin twice", []string{"session_require admin {", "admin", "}"}, 3, "admin given twice"},
		{"app without values", []string{"session_require app"}, 2, "app needs at least one value"},
		{"unknown kind", []string{"session_require kind robot"}, 2, "want kind user|app"},
		{"two kinds", []string{"session_require kind user app"}, 2, "want kind user|app"},
		{"kind twice", []string{"session_require kind app {", "kind user", "}"}, 3, "kind given twice"},
		{"unknown dialect", []string{"session_info ldap"}, 2, `unknown dialect "ldap"`},
		{"two dialects", []string{"session_info vsphere tr50"}, 2, "want session_info [<dialect>]"},
		{"info with a block", []string{"session_info vsphere {", "fields user", "}"}, 3, `unrecognized subdirective "fields"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			handler := strings.Fields(tc.lines[0])[0]
			_, err := adaptHandler(t, strings.Join(tc.lines, "\n"), handler)
			if err == nil {
				t.Fatalf("adapted without error; want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if at := fmt.Sprintf("Caddyfile:%d", tc.line); !strings.Contains(err.Error(), at) {
				t.Errorf("error %q does not name line %s", err, at)
			}
		})
	}
}

// adaptHandler adapts a one-site Caddyfile holding body and returns the
// JSON of the first handler called name.
func adaptHandler(t *testing.T, body, name string) (string, error) {
	t.Helper()
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(":8080 {\n"+body+"\n}\n"), nil)
	if err != nil {
		return "", err
	}
	var cfg any
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatalf("adapter output is not JSON: %v", err)
	}
	h := findHandler(cfg, name)
	if h == nil {
		t.Fatalf("no %s handler in the adapted config:\n%s", name, out)
	}
	raw, err := json.Marshal(h)
	return string(raw), err
}
