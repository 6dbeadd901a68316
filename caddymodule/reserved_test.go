package caddymodule

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// TestRequestHeadersNotIdentityNames: a config whose strip or session_auth
// would strip the request's own cookies, credentials or framing from
// every request (a `header` of that name, a prefix that starts one) is
// refused when it loads, in JSON as from the Caddyfile; such configs used
// to load, and every request then lost its Cookie (401 for every session
// read from a cookie) or went upstream with the configured Content-Length.
func TestRequestHeadersNotIdentityNames(t *testing.T) {
	for _, tc := range []struct{ handler, want string }{
		{`{"handler":"session_strip","headers":["Cookie"]}`, `header "Cookie": the request's own Cookie header`},
		{`{"handler":"session_strip","header_prefix":"Content-"}`, `header_prefix "Content-" would strip the request's own Content-Length header`},
		{`{"handler":"session_auth","backend":{"dialect":"http","url":"http://127.0.0.1:1"},"headers":{"transfer-encoding":"{session.user}"}}`, `header "transfer-encoding": the request's own Transfer-Encoding header`},
		{`{"handler":"session_auth","backend":{"dialect":"http","url":"http://127.0.0.1:1"},"header_prefix":"Cook"}`, `header_prefix "Cook" would strip the request's own Cookie header`},
	} {
		raw := `{"admin":{"disabled":true},"apps":{"http":{"servers":{"s":{"listen":["127.0.0.1:0"],"routes":[{"handle":[` + tc.handler + `,{"handler":"static_response","body":"ok"}]}]}}}}}`
		var cfg caddy.Config
		if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
			t.Fatal(err)
		}
		err := caddy.Validate(&cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error with %q", tc.handler, err, tc.want)
		}
	}
}
