package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// badCaddyfiles are session_auth blocks `caddy adapt` must refuse, each
// with the words the error must contain to name the culprit.
var badCaddyfiles = []struct {
	name, block string
	want        []string
}{
	{"unknown subdirective", "session_auth http http://127.0.0.1:1 {\n\t\tbogus 1\n\t}", []string{`unrecognized subdirective "bogus"`}},
	{"misspelled subdirective", "session_auth http http://127.0.0.1:1 {\n\t\tcache_tll 5m\n\t}", []string{`"cache_tll"`}},
	{"unknown dialect", "session_auth ldap http://127.0.0.1:1", []string{`unknown dialect "ldap"`}},
	{"unknown dialect in backend", "session_auth {\n\t\tbackend keycloak http://127.0.0.1:1\n\t}", []string{`unknown dialect "keycloak"`}},
	{"URL with another scheme", "session_auth http ftp://127.0.0.1/whoami", []string{`ftp://127.0.0.1/whoami`}},
	{"URL that is not one", "session_auth http whoami", []string{`"whoami"`, "URL"}},
	{"no backend", "session_auth {\n\t\ttimeout 1s\n\t}", []string{"needs a backend"}},
	{"negative timeout", "session_auth http http://127.0.0.1:1 {\n\t\ttimeout -1s\n\t}", []string{"timeout", "negative"}},
	{"negative cache_ttl", "session_auth http http://127.0.0.1:1 {\n\t\tcache_ttl -5m\n\t}", []string{"cache_ttl", "negative"}},
	{"negative negative_ttl", "session_auth http http://127.0.0.1:1 {\n\t\tnegative_ttl -10s\n\t}", []string{"negative_ttl", "negative"}},
	{"negative stale_if_error", "session_auth http http://127.0.0.1:1 {\n\t\tstale_if_error -1h\n\t}", []string{"stale_if_error", "negative"}},
	{"duration that is not one", "session_auth http http://127.0.0.1:1 {\n\t\ttimeout soon\n\t}", []string{"timeout", "soon"}},
	{"zero cache_max", "session_auth http http://127.0.0.1:1 {\n\t\tcache_max 0\n\t}", []string{"cache_max", `"0"`}},
	{"negative cache_max", "session_auth http http://127.0.0.1:1 {\n\t\tcache_max -3\n\t}", []string{"cache_max", `"-3"`}},
	{"unknown token source", "session_auth http http://127.0.0.1:1 {\n\t\ttoken carrier pigeon\n\t}", []string{"token carrier pigeon"}},
	{"token cookie without a name", "session_auth http http://127.0.0.1:1 {\n\t\ttoken cookie\n\t}", []string{"token cookie"}},
	{"token bearer with a name", "session_auth http http://127.0.0.1:1 {\n\t\ttoken bearer sid\n\t}", []string{"token bearer sid"}},
	{"unknown preset", "session_auth http http://127.0.0.1:1 {\n\t\theaders keycloak\n\t}", []string{`unknown header preset "keycloak"`}},
	{"5xx for the unauthenticated", "session_auth http http://127.0.0.1:1 {\n\t\ton_unauthenticated status 500\n\t}", []string{"on_unauthenticated", `"500"`}},
	{"logout path without a slash", "session_auth http http://127.0.0.1:1 {\n\t\tlogout POST logout\n\t}", []string{`"logout"`, "/"}},
	{"setting given twice", "session_auth http http://127.0.0.1:1 {\n\t\ttimeout 1s\n\t\ttimeout 2s\n\t}", []string{"timeout given twice"}},
	{"unknown http backend option", "session_auth {\n\t\tbackend http http://127.0.0.1:1 {\n\t\t\tuser_frm identity.id\n\t\t}\n\t}", []string{`"user_frm"`}},
	{"bad unauthenticated_status", "session_auth {\n\t\tbackend http http://127.0.0.1:1 {\n\t\t\tunauthenticated_status 4o1\n\t\t}\n\t}", []string{`"4o1"`}},
	{"unset env var as the URL", "session_auth http {env.SESSIONGATE_TEST_UNSET_URL}", []string{"SESSIONGATE_TEST_UNSET_URL", "not set"}},
	{"unset env var in the URL", "session_auth {\n\t\tbackend http http://{env.SESSIONGATE_TEST_UNSET_HOST}/whoami\n\t}", []string{"SESSIONGATE_TEST_UNSET_HOST", "not set"}},
}

// badJSON are session_auth handlers given as JSON, which skips the
// Caddyfile's checks: `caddy validate` (Provision) must refuse them.
var badJSON = []struct {
	name, handler string
	want          []string
}{
	{"unknown field", `{"backend":{"dialect":"http","url":"http://127.0.0.1:1"},"cache_tll":"5m"}`, []string{`"cache_tll"`}},
	{"unknown dialect", `{"backend":{"dialect":"ldap","url":"http://127.0.0.1:1"}}`, []string{`"ldap"`}},
	{"no dialect", `{"backend":{"url":"http://127.0.0.1:1"}}`, []string{"dialect"}},
	{"bad URL", `{"backend":{"dialect":"http","url":"ftp://127.0.0.1/x"}}`, []string{"ftp://127.0.0.1/x"}},
	{"negative timeout", `{"backend":{"dialect":"http","url":"http://127.0.0.1:1"},"timeout":-1000000000}`, []string{"timeout", "negative"}},
	{"negative cache_ttl", `{"backend":{"dialect":"http","url":"http://127.0.0.1:1"},"cache_ttl":"-5m"}`, []string{"cache_ttl", "negative"}},
	{"negative cache_max", `{"backend":{"dialect":"http","url":"http://127.0.0.1:1"},"cache_max":-1}`, []string{"cache_max", "negative"}},
	{"unknown token source", `{"backend":{"dialect":"http","url":"http://127.0.0.1:1"},"tokens":[{"from":"pigeon"}]}`, []string{`"pigeon"`}},
	{"cookie source without a name", `{"backend":{"dialect":"http","url":"http://127.0.0.1:1"},"tokens":[{"from":"cookie"}]}`, []string{"cookie", "name"}},
	{"unknown preset", `{"backend":{"dialect":"http","url":"http://127.0.0.1:1"},"header_presets":["keycloak"]}`, []string{`"keycloak"`}},
	{"header prefix with a colon", `{"backend":{"dialect":"http","url":"http://127.0.0.1:1"},"header_prefix":"X-A:"}`, []string{`"X-A:"`}},
	{"5xx for the unauthenticated", `{"backend":{"dialect":"http","url":"http://127.0.0.1:1"},"on_unauthenticated":{"status":502}}`, []string{"502"}},
	{"missing CA file", `{"backend":{"dialect":"http","url":"https://127.0.0.1:1"},"tls_trusted_ca_certs":["/nonexistent/ca.pem"]}`, []string{"tls_trusted_ca_certs", "/nonexistent/ca.pem"}},
	{"unknown http option", `{"backend":{"dialect":"http","url":"http://127.0.0.1:1","options":{"user_frm":"x"}}}`, []string{`"user_frm"`}},
	{"options for a dialect without any", `{"backend":{"dialect":"vsphere","url":"http://127.0.0.1:1","options":{"x":1}}}`, []string{"vsphere"}},
	{"unset env var in the URL", `{"backend":{"dialect":"http","url":"http://{env.SESSIONGATE_TEST_UNSET_HOST}/whoami"}}`, []string{"SESSIONGATE_TEST_UNSET_HOST", "not set"}},
}

func checkNames(t *testing.T, what string, err error, want []string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: accepted", what)
		return
	}
	t.Logf("%s: %v", what, err)
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: error %q does not name %s", what, err, w)
		}
	}
	if strings.Contains(err.Error(), "panic") {
		t.Errorf("%s: %v", what, err)
	}
}

// TestHostileBadConfig feeds broken session_auth configurations to the
// Caddyfile adapter (what `caddy adapt` runs) and broken JSON to
// caddy.Validate (what `caddy validate` runs: every module provisioned,
// nothing started). Each must be refused with an error naming the
// culprit; the good config next to them must pass, so a refusal is the
// bad line's doing.
func TestHostileBadConfig(t *testing.T) {
	adapter := caddyconfig.GetAdapter("caddyfile")
	if adapter == nil {
		t.Fatal("no caddyfile adapter registered")
	}
	site := func(block string) string {
		return fmt.Sprintf("%s:%d {\n\t%s\n\trespond ok\n}\n", globalOptions, httpPort, block)
	}
	good, _, err := adapter.Adapt([]byte(site("session_auth http http://127.0.0.1:1 {\n\t\ttimeout 1s\n\t}")), nil)
	if err != nil {
		t.Fatalf("the good Caddyfile does not adapt: %v", err)
	}
	var goodCfg caddy.Config
	if err := json.Unmarshal(good, &goodCfg); err != nil {
		t.Fatal(err)
	}
	if err := caddy.Validate(&goodCfg); err != nil {
		t.Fatalf("the good config does not validate: %v", err)
	}

	for _, c := range badCaddyfiles {
		_, _, err := adapter.Adapt([]byte(site(c.block)), nil)
		checkNames(t, "caddy adapt, "+c.name, err, c.want)
		if err != nil && !strings.Contains(err.Error(), "Caddyfile:") {
			t.Errorf("caddy adapt, %s: error %q gives no line", c.name, err)
		}
	}

	goodHandler := `{"backend":{"dialect":"http","url":"http://127.0.0.1:1"},"handler":"session_auth","timeout":1000000000}`
	if !strings.Contains(string(good), goodHandler) {
		t.Fatalf("the adapted config has no %s: %s", goodHandler, good)
	}
	for _, c := range badJSON {
		handler := `{"handler":"session_auth",` + strings.TrimPrefix(c.handler, "{")
		raw := strings.Replace(string(good), goodHandler, handler, 1)
		if raw == string(good) {
			t.Fatalf("%s: could not put the handler into the config: %s", c.name, good)
		}
		var cfg caddy.Config
		if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		checkNames(t, "caddy validate, "+c.name, caddy.Validate(&cfg), c.want)
	}
}

// TestConfigEnvInBackendURL is the other side of the unset-variable cases
// above: a backend URL built from variables that are set adapts and
// provisions.
func TestConfigEnvInBackendURL(t *testing.T) {
	t.Setenv("SESSIONGATE_TEST_AUTH_HOST", "127.0.0.1:1")
	t.Setenv("SESSIONGATE_TEST_AUTH_URL", "http://127.0.0.1:1/whoami")
	adapter := caddyconfig.GetAdapter("caddyfile")
	for _, block := range []string{
		"session_auth http http://{env.SESSIONGATE_TEST_AUTH_HOST}/whoami",
		"session_auth http {env.SESSIONGATE_TEST_AUTH_URL}",
	} {
		cfgJSON, _, err := adapter.Adapt([]byte(fmt.Sprintf("%s:%d {\n\t%s\n\trespond ok\n}\n", globalOptions, httpPort, block)), nil)
		if err != nil {
			t.Errorf("%s: %v", block, err)
			continue
		}
		var cfg caddy.Config
		if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
			t.Fatal(err)
		}
		if err := caddy.Validate(&cfg); err != nil {
			t.Errorf("%s: caddy validate: %v", block, err)
		}
	}
}
