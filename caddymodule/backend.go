package caddymodule

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// BackendConfig names the session service.
type BackendConfig struct {
	// Dialect is the kind of session service: a dialect's name, see
	// docs/dialects.md (an unknown one is refused with the list).
	Dialect string `json:"dialect"`
	// URL is the service's base URL (for http: the whole endpoint).
	// May use {env.*}.
	URL string `json:"url"`
	// Options are the dialect's own settings (see docs/dialects.md).
	Options json.RawMessage `json:"options,omitempty"`
	// Transport is how the session service is reached: reverse_proxy's
	// HTTP transport (the JSON of its `transport` with `protocol`
	// "http", without the protocol field), for trust pools, client
	// certificates, the TLS server name and the dial and response-header
	// timeouts. Default Caddy's HTTP transport defaults, with the dial
	// timeout set to timeout.
	Transport *reverseproxy.HTTPTransport `json:"transport,omitempty"`
}

// dialectOptions decodes the dialect's options, strictly: a field the
// dialect does not know is an error, not a setting silently ignored.
func (b BackendConfig) dialectOptions() (sessionctx.Options, error) {
	opts, err := sessionctx.DialectOptions(b.Dialect)
	if err != nil {
		return nil, err
	}
	raw := bytes.TrimSpace(b.Options)
	if len(raw) == 0 || string(raw) == "null" || (opts == nil && string(raw) == "{}") {
		return opts, nil
	}
	if opts == nil {
		return nil, fmt.Errorf("dialect %s takes no options", b.Dialect)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(opts); err != nil {
		return nil, fmt.Errorf("%s options: %w", b.Dialect, err)
	}
	return opts, nil
}
