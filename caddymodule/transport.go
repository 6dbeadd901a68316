package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/caddyserver/caddy/v2/modules/caddytls"

	"github.com/sessiongate/caddy-sessiongate/internal/h1client"
)

// transportSubdirectives are the names of reverse_proxy's `transport http`
// block that the backend block hands to reverseproxy.HTTPTransport. They
// take precedence over a dialect option of the same name. Left out:
// proxy_protocol and tls_except_ports (they describe proxied client
// requests, which the session service never sees) and forward_proxy_url
// (deprecated by Caddy for network_proxy).
var transportSubdirectives = []string{
	"read_buffer", "write_buffer", "read_timeout", "write_timeout",
	"max_response_header", "network_proxy",
	"dial_timeout", "dial_fallback_delay", "response_header_timeout", "expect_continue_timeout",
	"resolvers", "local_address",
	"tls", "tls_client_auth", "tls_insecure_skip_verify", "tls_curves", "tls_timeout",
	"tls_trusted_ca_certs", "tls_trust_pool", "tls_server_name", "tls_renegotiation",
	"keepalive", "keepalive_interval", "keepalive_idle_conns", "keepalive_idle_conns_per_host",
	"versions", "compression", "max_conns_per_host",
}

// unmarshalTransportLine feeds the backend block's current line (and its
// block, if it opens one) to HTTPTransport's own Caddyfile parser, as if
// it stood in a `transport http { }` block: the syntax and the errors are
// reverse_proxy's, and the tokens keep their file and line.
func unmarshalTransportLine(d *caddyfile.Dispenser, t *reverseproxy.HTTPTransport) error {
	seg := d.NextSegment()
	frame, err := caddyfile.Tokenize([]byte("http {\n}\n"), d.File())
	if err != nil || len(frame) != 3 {
		return d.Errf("building the transport block: %v", err)
	}
	first, last := seg[0], seg[len(seg)-1]
	frame[0].Line, frame[1].Line = first.Line-1, first.Line-1
	frame[2].Line = last.Line + last.NumLineBreaks() + 1
	tokens := append(append([]caddyfile.Token{frame[0], frame[1]}, seg...), frame[2])
	return t.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens))
}

// checkTransport refuses what the session service cannot use: the
// transport builds an http.Transport, which speaks HTTP/1.1 and 2 only,
// and no client request's PROXY header goes to the session service.
func (h *SessionAuth) checkTransport() error {
	t := h.Backend.Transport
	if t == nil {
		return nil
	}
	for _, v := range t.Versions {
		if !slices.Contains([]string{"1.1", "2", "h2c"}, v) {
			return fmt.Errorf("backend transport: versions %s is not supported for the session service (want 1.1, 2 or h2c)", v)
		}
	}
	if t.ProxyProtocol != "" {
		return fmt.Errorf("backend transport: proxy_protocol is not supported for the session service")
	}
	//nolint:staticcheck // SA1019: the deprecated CA fields are read to refuse a second list of CAs beside them
	if len(h.TLSTrustedCACerts) > 0 && t.TLS != nil && (len(t.TLS.CARaw) > 0 || len(t.TLS.RootCAPEMFiles) > 0 || len(t.TLS.RootCAPool) > 0) {
		return fmt.Errorf("tls_trusted_ca_certs and the backend's tls_trust_pool (or its tls_trusted_ca_certs) both name the trusted CAs: give one, in the backend")
	}
	return nil
}

// transportConfig is the backend's transport with the older session_auth
// settings mapped onto it: tls_insecure_skip_verify, tls_trusted_ca_certs
// (as a `file` trust pool), and timeout as the dial timeout unless one is
// given. It is a copy: NewTransport fills in defaults and consumes the
// raw module JSON of what it is given.
func (h *SessionAuth) transportConfig() (*reverseproxy.HTTPTransport, error) {
	t := new(reverseproxy.HTTPTransport)
	if h.Backend.Transport != nil {
		raw, err := json.Marshal(h.Backend.Transport)
		if err != nil {
			return nil, fmt.Errorf("backend transport: %w", err)
		}
		if err := json.Unmarshal(raw, t); err != nil {
			return nil, fmt.Errorf("backend transport: %w", err)
		}
	}
	if h.TLSInsecureSkipVerify || len(h.TLSTrustedCACerts) > 0 {
		if t.TLS == nil {
			t.TLS = new(reverseproxy.TLSConfig)
		}
		t.TLS.InsecureSkipVerify = t.TLS.InsecureSkipVerify || h.TLSInsecureSkipVerify
	}
	if len(h.TLSTrustedCACerts) > 0 {
		t.TLS.CARaw = caddyconfig.JSONModuleObject(caddytls.FileCAPool{TrustedCACertPEMFiles: h.TLSTrustedCACerts}, "provider", "file", nil)
	}
	if t.DialTimeout == 0 {
		t.DialTimeout = h.Timeout
	}
	if t.MaxConnsPerHost == 0 {
		// No more connections than lookups may be in flight.
		t.MaxConnsPerHost = h.defaultMaxConns()
	}
	return t, nil
}

// newServiceTransport builds the session-service transport: the one place
// caddymodule turns its settings into a client. key is the settings as
// the pool must tell them apart, taken before NewTransport consumes them.
func (h *SessionAuth) newServiceTransport(ctx caddy.Context) (rt *http.Transport, key json.RawMessage, err error) {
	t, err := h.transportConfig()
	if err != nil {
		return nil, nil, err
	}
	sizeIdlePool(t)
	if key, err = json.Marshal(t); err != nil {
		return nil, nil, fmt.Errorf("backend transport: %w", err)
	}
	if len(h.TLSTrustedCACerts) > 0 {
		h.logger.Warn("tls_trusted_ca_certs is deprecated: use tls_trust_pool file <pem-file...> in the backend block (JSON: backend.transport.tls.ca)")
	}
	if rt, err = t.NewTransport(ctx); err != nil {
		if len(h.TLSTrustedCACerts) > 0 {
			return nil, nil, fmt.Errorf("backend transport (tls_trusted_ca_certs %v): %w", h.TLSTrustedCACerts, err)
		}
		return nil, nil, fmt.Errorf("backend transport: %w", err)
	}
	rt.DialContext = unwrapDialErrors(rt.DialContext, time.Duration(t.DialTimeout))
	return rt, key, nil
}

// unwrapDialErrors makes the dial failures of Caddy's transport look like
// net's own again. It reports them as a reverseproxy.DialError, which
// has no Unwrap, so a refused connection or a dial time-out would count
// as a failure of kind "other" in the metrics and logs.
func unwrapDialErrors(dial func(context.Context, string, string) (net.Conn, error), dialTimeout time.Duration) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		start := time.Now()
		conn, err := dial(ctx, network, address)
		var de reverseproxy.DialError
		if err == nil || !errors.As(err, &de) {
			return conn, err
		}
		msg := de.Error()
		if _, cause, ok := strings.Cut(msg, address+": "); ok {
			msg = cause
		}
		timedOut := ctx.Err() != nil || (dialTimeout > 0 && time.Since(start) >= dialTimeout)
		return nil, &net.OpError{Op: "dial", Net: network, Addr: dialAddr{network, address}, Err: &dialFailure{msg, timedOut}}
	}
}

// dialFailure is the cause of a failed dial, as far as DialError tells it.
type dialFailure struct {
	msg     string
	timeout bool
}

func (e *dialFailure) Error() string   { return e.msg }
func (e *dialFailure) Timeout() bool   { return e.timeout }
func (e *dialFailure) Temporary() bool { return e.timeout }

type dialAddr struct{ network, address string }

func (a dialAddr) Network() string { return a.network }
func (a dialAddr) String() string  { return a.address }

// serviceTransport carries one pooled resolver's session-service
// requests. Every Provision that shares the resolver installs the
// transport it built, so a reload reads certificate and CA files again
// even when the config did not change; the one it replaces has its idle
// connections closed. Plain-http requests go through h1client, on the
// transport's settings; the transport carries the rest (https, a
// network_proxy, h2c).
type serviceTransport struct {
	rt atomic.Pointer[h1client.Client]
}

func newServiceTransportHolder(rt *http.Transport) *serviceTransport {
	t := new(serviceTransport)
	t.rt.Store(h1client.New(rt))
	return t
}

// install makes rt carry the next requests.
func (t *serviceTransport) install(rt *http.Transport) {
	if cur := t.rt.Load(); cur != nil && cur.Transport() == rt {
		return
	}
	if old := t.rt.Swap(h1client.New(rt)); old != nil {
		old.Close()
	}
}

// close closes the idle connections; requests under way finish on
// theirs, which are then closed.
func (t *serviceTransport) close() {
	if rt := t.rt.Load(); rt != nil {
		rt.Close()
	}
}

// RoundTrip implements http.RoundTripper. The lookup runs on the context
// of the client request that missed the cache, which carries Caddy's
// per-request state (its vars, reverse_proxy's dial information); Caddy's
// transport reads and writes that state as if the session-service request
// were a proxied one, and the lookup may outlive the client request, so
// the state is hidden from it.
func (t *serviceTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.rt.Load().RoundTrip(req.WithContext(withoutCaddyValues{req.Context()}))
}

// withoutCaddyValues hides the values Caddy keys by caddy.CtxKey (vars,
// replacer, server, dial information) and keeps the rest, the deadline
// and the cancellation.
type withoutCaddyValues struct{ context.Context }

func (c withoutCaddyValues) Value(key any) any {
	if _, ok := key.(caddy.CtxKey); ok {
		return nil
	}
	return c.Context.Value(key)
}

// Interface guards
var (
	_ http.RoundTripper = (*serviceTransport)(nil)
	_ context.Context   = withoutCaddyValues{}
	_ net.Error         = (*dialFailure)(nil)
	_ net.Addr          = dialAddr{}
)
