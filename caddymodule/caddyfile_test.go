package caddymodule_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"

	_ "github.com/sessiongate/caddy-sessiongate/caddymodule"
)

// adaptSessionAuth adapts a one-site Caddyfile holding body and returns the
// session_auth handler's JSON, so that each case shows only what its
// subdirective produced.
func adaptSessionAuth(t *testing.T, body string) (string, error) {
	t.Helper()
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(":8080 {\n"+body+"\n}\n"), nil)
	if err != nil {
		return "", err
	}
	var cfg any
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatalf("adapter output is not JSON: %v", err)
	}
	h := findHandler(cfg, "session_auth")
	if h == nil {
		t.Fatalf("no session_auth handler in the adapted config:\n%s", out)
	}
	raw, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw), nil
}

// findHandler walks the adapted config for the first handler object named
// name, wherever the site's routes nest it.
func findHandler(v any, name string) map[string]any {
	switch v := v.(type) {
	case map[string]any:
		if v["handler"] == name {
			return v
		}
		for _, k := range sortedKeys(v) {
			if h := findHandler(v[k], name); h != nil {
				return h
			}
		}
	case []any:
		for _, e := range v {
			if h := findHandler(e, name); h != nil {
				return h
			}
		}
	}
	return nil
}

func sortedKeys(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// canonicalJSON re-encodes s with sorted keys and no spacing, so that
// expectations can be written readably.
func canonicalJSON(t *testing.T, s string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("expected JSON %s does not parse: %v", s, err)
	}
	raw, _ := json.Marshal(v)
	return string(raw)
}

// TestCaddyfileSessionAuthSubdirectives covers every session_auth
// subdirective: Caddyfile in, the handler's JSON out.
func TestCaddyfileSessionAuthSubdirectives(t *testing.T) {
	// An unset {env.X} in a backend URL is refused at adapt time.
	t.Setenv("SESSION_URL", "https://auth.example/whoami")
	const be = `"backend":{"dialect":"http","url":"https://auth.example/whoami"}`
	for _, tc := range []struct {
		name, caddyfile, want string
	}{
		{
			name:      "dialect and url on the directive line",
			caddyfile: `session_auth http https://auth.example/whoami`,
			want:      `{"handler":"session_auth",` + be + `}`,
		},
		{
			name: "backend line without options",
			caddyfile: `session_auth {
				backend http https://auth.example/whoami
			}`,
			want: `{"handler":"session_auth",` + be + `}`,
		},
		{
			name: "backend with a dialect option block holds only what was written",
			caddyfile: `session_auth {
				backend http https://auth.example/sessions/whoami {
					method post
					token_to cookie ory_session
					unauthenticated_status 401 404
					user_id_from identity.id
					user_from identity.traits.email
					roles_from groups
					valid_from active
				}
			}`,
			want: `{"handler":"session_auth","backend":{"dialect":"http","url":"https://auth.example/sessions/whoami","options":{
				"method":"POST","token_to":{"to":"cookie","name":"ory_session"},"unauthenticated_status":[401,404],
				"user_id_from":"identity.id","user_from":"identity.traits.email","roles_from":"groups","valid_from":"active"}}}`,
		},
		{
			name: "an http block that maps nothing shows the default mapping it reads",
			caddyfile: `session_auth {
				backend http https://auth.example/whoami {
					method post
					roles_split " "
					rejected_if error.code
				}
			}`,
			want: `{"handler":"session_auth","backend":{"dialect":"http","url":"https://auth.example/whoami","options":{
				"method":"POST","roles_split":" ","rejected_if":["error.code"],
				"id_from":"id","user_id_from":"user_id","user_from":"user","email_from":"email","name_from":"name",
				"org_id_from":"org_id","org_from":"org","roles_from":"roles","perms_from":"perms","admin_from":"admin",
				"expires_from":"expires_at"}}}`,
		},
		{
			name: "an http block that maps a field reads only what it maps",
			caddyfile: `session_auth {
				backend http https://auth.example/whoami {
					user_from login
					rejected_if status expired
				}
			}`,
			want: `{"handler":"session_auth","backend":{"dialect":"http","url":"https://auth.example/whoami","options":{
				"user_from":"login","rejected_if":["status","expired"]}}}`,
		},
		{
			name: "a dialect option that restates the default is kept",
			caddyfile: `session_auth {
				backend eternus https://e.example {
					session_id_from header X-Eternus-Session-Id
				}
			}`,
			want: `{"handler":"session_auth","backend":{"dialect":"eternus","url":"https://e.example","options":{
				"session_id_from":{"from":"header","name":"X-Eternus-Session-Id"}}}}`,
		},
		{
			name: "backend url from the environment",
			caddyfile: `session_auth {
				backend http {env.SESSION_URL}
			}`,
			want: `{"handler":"session_auth","backend":{"dialect":"http","url":"{env.SESSION_URL}"}}`,
		},
		{
			name: "timeout",
			caddyfile: `session_auth http https://auth.example/whoami {
				timeout 1500ms
			}`,
			want: `{"handler":"session_auth",` + be + `,"timeout":1500000000}`,
		},
		{
			name: "tls_insecure_skip_verify",
			caddyfile: `session_auth http https://auth.example/whoami {
				tls_insecure_skip_verify
			}`,
			want: `{"handler":"session_auth",` + be + `,"tls_insecure_skip_verify":true}`,
		},
		{
			name: "tls_trusted_ca_certs accumulates over lines",
			caddyfile: `session_auth http https://auth.example/whoami {
				tls_trusted_ca_certs /etc/ssl/a.pem /etc/ssl/b.pem
				tls_trusted_ca_certs /etc/ssl/c.pem
			}`,
			want: `{"handler":"session_auth",` + be + `,"tls_trusted_ca_certs":["/etc/ssl/a.pem","/etc/ssl/b.pem","/etc/ssl/c.pem"]}`,
		},
		{
			name: "backend_header canonical names, repeatable",
			caddyfile: `session_auth http https://auth.example/whoami {
				backend_header x-app-key {env.APP_KEY}
				backend_header X-Tenant a
				backend_header X-Tenant b
			}`,
			want: `{"handler":"session_auth",` + be + `,"backend_headers":{"X-App-Key":["{env.APP_KEY}"],"X-Tenant":["a","b"]}}`,
		},
		{
			name: "token sources in the order written",
			caddyfile: `session_auth http https://auth.example/whoami {
				token cookie sid
				token header X-Auth "Token "
				token header X-Session
				token bearer
				token query session
			}`,
			want: `{"handler":"session_auth",` + be + `,"tokens":[
				{"from":"cookie","name":"sid"},
				{"from":"header","name":"X-Auth","prefix":"Token "},
				{"from":"header","name":"X-Session"},
				{"from":"bearer"},
				{"from":"query","name":"session"}]}`,
		},
		{
			name: "cache settings",
			caddyfile: `session_auth http https://auth.example/whoami {
				cache_ttl 2m
				negative_ttl 30s
				stale_if_error 1h
				cache_max 5000
			}`,
			want: `{"handler":"session_auth",` + be + `,"cache_ttl":120000000000,"negative_ttl":30000000000,"stale_if_error":3600000000000,"cache_max":5000}`,
		},
		{
			name: "retry_after",
			caddyfile: `session_auth http https://auth.example/whoami {
				retry_after 30s
			}`,
			want: `{"handler":"session_auth",` + be + `,"retry_after":30000000000}`,
		},
		{
			name: "log_hash_key",
			caddyfile: `session_auth http https://auth.example/whoami {
				log_hash_key {env.SESSIONGATE_LOG_HASH_KEY}
			}`,
			want: `{"handler":"session_auth",` + be + `,"log_hash_key":"{env.SESSIONGATE_LOG_HASH_KEY}"}`,
		},
		{
			name: "durations in days and zero",
			caddyfile: `session_auth http https://auth.example/whoami {
				cache_ttl 1d
				stale_if_error 0s
			}`,
			want: `{"handler":"session_auth",` + be + `,"cache_ttl":86400000000000}`,
		},
		{
			name: "header_fields",
			caddyfile: `session_auth http https://auth.example/whoami {
				header_fields user roles
			}`,
			want: `{"handler":"session_auth",` + be + `,"header_fields":["user","roles"]}`,
		},
		{
			name: "header_prefix",
			caddyfile: `session_auth http https://auth.example/whoami {
				header_prefix X-Auth-
			}`,
			want: `{"handler":"session_auth",` + be + `,"header_prefix":"X-Auth-"}`,
		},
		{
			name: "header templates keep their placeholders",
			caddyfile: `session_auth http https://auth.example/whoami {
				header X-Greeting "hello {session.name}"
				header X-Tenant {session.attrs.tenant}
			}`,
			want: `{"handler":"session_auth",` + be + `,"headers":{"X-Greeting":"hello {session.name}","X-Tenant":"{session.attrs.tenant}"}}`,
		},
		{
			name: "header presets",
			caddyfile: `session_auth http https://auth.example/whoami {
				headers oauth2-proxy
				headers authelia
			}`,
			want: `{"handler":"session_auth",` + be + `,"header_presets":["oauth2-proxy","authelia"]}`,
		},
		{
			name: "strip_token and optional",
			caddyfile: `session_auth http https://auth.example/whoami {
				strip_token
				optional
			}`,
			want: `{"handler":"session_auth",` + be + `,"strip_token":true,"optional":true}`,
		},
		{
			name: "disable_metrics",
			caddyfile: `session_auth http https://auth.example/whoami {
				disable_metrics
			}`,
			want: `{"handler":"session_auth",` + be + `,"disable_metrics":true}`,
		},
		{
			name: "on_unauthenticated status",
			caddyfile: `session_auth http https://auth.example/whoami {
				on_unauthenticated status 403
			}`,
			want: `{"handler":"session_auth",` + be + `,"on_unauthenticated":{"status":403}}`,
		},
		{
			name: "on_unauthenticated redirect keeps its template",
			caddyfile: `session_auth http https://auth.example/whoami {
				on_unauthenticated redirect "https://login.example/?rd={http.request.uri}"
			}`,
			want: `{"handler":"session_auth",` + be + `,"on_unauthenticated":{"redirect":"https://login.example/?rd={http.request.uri}"}}`,
		},
		{
			name: "logout routes, method upper-cased",
			caddyfile: `session_auth http https://auth.example/whoami {
				logout post /logout
				logout GET /auth/signout
			}`,
			want: `{"handler":"session_auth",` + be + `,"logout":[{"method":"POST","path":"/logout"},{"method":"GET","path":"/auth/signout"}]}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := adaptSessionAuth(t, tc.caddyfile)
			if err != nil {
				t.Fatalf("adapt: %v", err)
			}
			if want := canonicalJSON(t, tc.want); got != want {
				t.Errorf("handler JSON\n got: %s\nwant: %s", got, want)
			}
		})
	}
}

// TestCaddyfileSessionAuthErrors checks that every mistake is refused with
// a message that names the subdirective and the line it is on.
func TestCaddyfileSessionAuthErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		// lines of the session_auth directive; the site block adds one
		// line before them, so the first is line 2.
		lines []string
		line  int
		want  string
	}{
		{"unknown subdirective", []string{"session_auth http https://a.example {", "cache_ttl 1m", "cache_size 10", "}"}, 4, `unrecognized subdirective "cache_size"`},
		{"setting given twice", []string{"session_auth http https://a.example {", "cache_ttl 1m", "negative_ttl 5s", "cache_ttl 2m", "}"}, 5, "cache_ttl given twice"},
		{"flag given twice", []string{"session_auth http https://a.example {", "optional", "optional", "}"}, 4, "optional given twice"},
		{"disable_metrics given twice", []string{"session_auth http https://a.example {", "disable_metrics", "disable_metrics", "}"}, 4, "disable_metrics given twice"},
		{"disable_metrics given a value", []string{"session_auth http https://a.example {", "disable_metrics yes", "}"}, 3, "disable_metrics takes no arguments"},
		{"backend given twice", []string{"session_auth http https://a.example {", "backend http https://b.example", "}"}, 3, "backend given twice"},
		{"backend line given twice", []string{"session_auth {", "backend http https://a.example", "backend http https://b.example", "}"}, 4, "backend given twice"},
		{"header_fields unknown", []string{"session_auth http https://a.example {", "header_fields user groups", "}"}, 3, `header_fields: unknown field "groups"`},
		{"header_fields empty", []string{"session_auth http https://a.example {", "header_fields", "}"}, 3, "want header_fields <field...>"},
		{"header_fields none with others", []string{"session_auth http https://a.example {", "header_fields none user", "}"}, 3, `header_fields: unknown field "none"`},
		{"header_fields field twice", []string{"session_auth http https://a.example {", "header_fields user user", "}"}, 3, "header_fields: user given twice"},
		{"header_fields given twice", []string{"session_auth http https://a.example {", "header_fields user", "header_fields roles", "}"}, 4, "header_fields given twice"},
		{"dialect option given twice", []string{"session_auth {", "backend http https://a.example {", "user_from login", "user_from name", "}", "}"}, 5, "backend http: option user_from given twice"},
		{"bad duration", []string{"session_auth http https://a.example {", "timeout soon", "}"}, 3, "timeout"},
		{"negative duration", []string{"session_auth http https://a.example {", "stale_if_error -5s", "}"}, 3, "stale_if_error must not be negative"},
		{"negative retry_after", []string{"session_auth http https://a.example {", "retry_after -5s", "}"}, 3, "retry_after must not be negative"},
		{"duration missing", []string{"session_auth http https://a.example {", "negative_ttl", "}"}, 3, "negative_ttl"},
		{"duration given two values", []string{"session_auth http https://a.example {", "cache_ttl 1m 2m", "}"}, 3, "cache_ttl"},
		{"duration in two words", []string{"session_auth http https://a.example {", "cache_ttl 1 minute", "}"}, 3, "cache_ttl takes one duration written as one word, such as 90s, 5m or 1h30m; got 2 words: 1 minute"},
		{"duration word not a duration", []string{"session_auth http https://a.example {", "negative_ttl minute", "}"}, 3, `negative_ttl "minute" is not a duration`},
		{"backend port out of range", []string{"session_auth {", "backend http http://127.0.0.1:99999/whoami", "}"}, 3, "port 99999 is out of range (1-65535)"},
		{"backend port zero", []string{"session_auth http http://127.0.0.1:0/whoami"}, 2, "port 0 is out of range"},
		{"flag given a value", []string{"session_auth http https://a.example {", "strip_token yes", "}"}, 3, "strip_token"},
		{"unknown dialect on the directive line", []string{"session_auth ldap https://a.example"}, 2, `unknown dialect "ldap"`},
		{"unknown dialect on the backend line", []string{"session_auth {", "backend ldap https://a.example", "}"}, 3, `backend: unknown dialect "ldap"`},
		{"backend without url", []string{"session_auth {", "backend http", "}"}, 3, "want backend <dialect> <url>"},
		{"bad url", []string{"session_auth {", "backend http ftp://a.example", "}"}, 3, `backend url "ftp://a.example"`},
		{"directive line with one argument", []string{"session_auth http"}, 2, "want session_auth [<dialect> <url>]"},
		{"unknown dialect option", []string{"session_auth {", "backend http https://a.example {", "user_from login", "groups_from groups", "}", "}"}, 5, `unrecognized http backend option "groups_from"`},
		{"no backend", []string{"session_auth {", "cache_ttl 1m", "}"}, 4, "session_auth needs a backend"},
		{"bad token source", []string{"session_auth http https://a.example {", "token form sid", "}"}, 3, "token form sid"},
		{"token source missing its name", []string{"session_auth http https://a.example {", "token cookie", "}"}, 3, "token cookie"},
		{"bearer with a name", []string{"session_auth http https://a.example {", "token bearer x", "}"}, 3, "token bearer x"},
		{"bad on_unauthenticated kind", []string{"session_auth http https://a.example {", "on_unauthenticated teleport /login", "}"}, 3, `on_unauthenticated "teleport"`},
		{"on_unauthenticated status not 4xx", []string{"session_auth http https://a.example {", "on_unauthenticated status 200", "}"}, 3, `on_unauthenticated status "200"`},
		{"on_unauthenticated without target", []string{"session_auth http https://a.example {", "on_unauthenticated redirect", "}"}, 3, "want on_unauthenticated"},
		{"cache_max not a number", []string{"session_auth http https://a.example {", "cache_max lots", "}"}, 3, `cache_max "lots"`},
		{"cache_max zero", []string{"session_auth http https://a.example {", "cache_max 0", "}"}, 3, `cache_max "0"`},
		{"cache_ttl 0", []string{"session_auth http https://a.example {", "cache_ttl 0", "}"}, 3, "cache_ttl 0 would mean its default, not none"},
		{"negative_ttl 0s", []string{"session_auth http https://a.example {", "negative_ttl 0s", "}"}, 3, "negative_ttl 0 would mean its default, not none"},
		{"timeout 0", []string{"session_auth http https://a.example {", "timeout 0ms", "}"}, 3, "timeout 0 would mean its default, not none"},
		{"retry_after 0", []string{"session_auth http https://a.example {", "retry_after 0", "}"}, 3, "retry_after 0 would mean its default, not none"},
		{"backend url without a host name", []string{"session_auth http http://:8080/whoami"}, 2, `backend url "http://:8080/whoami": no host name`},
		{"cluster url without a host name", []string{"session_auth http https://a.example {", "cluster redis://:6379 {", "secret " + strings.Repeat("s", 32), "}", "}"}, 3, `no host name`},
		{"undefined matcher", []string{"session_auth @nope http https://a.example"}, 2, "unrecognized matcher name: @nope"},
		{"unknown header preset", []string{"session_auth http https://a.example {", "headers vouch", "}"}, 3, `unknown header preset "vouch"`},
		{"header without template", []string{"session_auth http https://a.example {", "header X-User", "}"}, 3, "want header <name> <template>"},
		{"header name given twice", []string{"session_auth http https://a.example {", "header X-A a", "header X-A b", "}"}, 4, "header X-A given twice"},
		{"empty header_prefix", []string{"session_auth http https://a.example {", `header_prefix ""`, "}"}, 3, "header_prefix must not be empty"},
		{"header named as the request's cookies", []string{"session_auth http https://a.example {", "header cookie {session.user}", "}"}, 3, `header "cookie": the request's own Cookie header`},
		{"header named as the request's framing", []string{"session_auth http https://a.example {", "header Content_Length 5", "}"}, 3, `header "Content_Length": the request's own Content-Length header`},
		{"header_prefix that starts the request's credentials", []string{"session_auth http https://a.example {", "header_prefix Auth", "}"}, 3, `header_prefix "Auth" would strip the request's own Authorization header`},
		{"logout path without slash", []string{"session_auth http https://a.example {", "logout POST logout", "}"}, 3, `logout path "logout"`},
		{"backend_header without value", []string{"session_auth http https://a.example {", "backend_header X-App-Key", "}"}, 3, "want backend_header <name> <value>"},
		{"tls_trusted_ca_certs without files", []string{"session_auth http https://a.example {", "tls_trusted_ca_certs", "}"}, 3, "tls_trusted_ca_certs"},
		{"short log_hash_key", []string{"session_auth http https://a.example {", "log_hash_key short", "}"}, 3, "log_hash_key is 5 bytes, need at least 16"},
		{"backend_header name with a space", []string{"session_auth http https://a.example {", `backend_header "X App" v`, "}"}, 3, `backend_header "X App": not a header name`},
		{"backend url from an unset variable", []string{"session_auth {", "backend http {env.SESSIONGATE_TEST_UNSET_URL}", "}"}, 3, "SESSIONGATE_TEST_UNSET_URL is not set"},
		{"transport duration that is not one", []string{"session_auth {", "backend http https://a.example {", "user_from login", "dial_timeout soon", "}", "}"}, 5, "soon"},
		{"transport unknown trust pool", []string{"session_auth {", "backend http https://a.example {", "tls_trust_pool nosuch /ca.pem", "}", "}"}, 4, "nosuch"},
		{"transport trust pool given twice", []string{"session_auth {", "backend http https://a.example {", "tls_trust_pool file /a.pem", "tls_trust_pool file /b.pem", "}", "}"}, 5, "tls_trust_pool"},
		{"transport client auth with three files", []string{"session_auth {", "backend http https://a.example {", "tls_client_auth a.pem b.pem c.pem", "}", "}"}, 4, "wrong argument count"},
		{"transport HTTP/3", []string{"session_auth {", "backend http https://a.example {", "versions 3", "}", "}"}, 4, "versions 3 is not supported"},
		{"transport proxy_protocol", []string{"session_auth {", "backend http https://a.example {", "proxy_protocol v2", "}", "}"}, 4, `unrecognized http backend option "proxy_protocol"`},
		{"deprecated CAs beside a trust pool", []string{"session_auth {", "tls_trusted_ca_certs /a.pem", "backend http https://a.example {", "tls_trust_pool file /b.pem", "}", "}"}, 5, "give one"},
		{"transport line in a dialect without options", []string{"session_auth {", "backend amplify https://a.example {", "tls_server_name amplify.internal", "api v2", "}", "}"}, 5, "dialect amplify takes no options"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := adaptSessionAuth(t, strings.Join(tc.lines, "\n"))
			if err == nil {
				t.Fatalf("adapted without error; want %q", tc.want)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not say %q", msg, tc.want)
			}
			// Caddy's own form, at the end: ", at Caddyfile:3".
			if at := fmt.Sprintf(", at Caddyfile:%d", tc.line); !strings.HasSuffix(msg, at) {
				t.Errorf("error %q does not end naming line %s", msg, at)
			}
		})
	}
}

// TestCaddyfileExampleAdapts keeps the demo in step with the parser.
func TestCaddyfileExampleAdapts(t *testing.T) {
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(mustRead(t, "../Caddyfile.example"), map[string]any{"filename": "Caddyfile.example"})
	if err != nil {
		t.Fatalf("Caddyfile.example: %v", err)
	}
	if !bytes.Contains(out, []byte(`"handler":"session_auth"`)) {
		t.Errorf("Caddyfile.example adapted without a session_auth handler:\n%s", out)
	}
}

// The JSON documentation is kept in step with the adapter by
// docs/docs_test.go (TestJSONMatchesAdapt).
