// Package caddymodule is the Caddy side of sessiongate: the session_auth,
// session_require and session_info handlers, their Caddyfile directives,
// placeholders, the admin API and metrics.
package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/time/rate"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

func init() {
	caddy.RegisterModule(SessionAuth{})
}

// SessionAuth resolves the request's session token through a session
// service, strips identity headers the client sent, and injects trusted
// ones for the upstream.
type SessionAuth struct {
	// Backend is the session service that issued the tokens.
	Backend BackendConfig `json:"backend"`

	// Timeout bounds each session-service request as a whole: dialing,
	// the TLS handshake, the answer's headers and its body. The
	// transport's own dial_timeout and response_header_timeout bound
	// their phase within it; dial_timeout defaults to it. Default 3s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// TLSInsecureSkipVerify turns off certificate checks of the session
	// service, for self-signed appliances; the same as the backend
	// transport's tls insecure_skip_verify. Default false.
	TLSInsecureSkipVerify bool `json:"tls_insecure_skip_verify,omitempty"`
	// TLSTrustedCACerts are PEM files trusted for the session service's
	// certificate in place of the system roots. Deprecated: use the
	// backend transport's trust pool (tls_trust_pool file <pem-file...>),
	// which this maps onto. Default none.
	TLSTrustedCACerts []string `json:"tls_trusted_ca_certs,omitempty"`
	// BackendHeaders are sent with every session-service request. Values
	// may use {env.*} and {file.*}. Default none.
	BackendHeaders http.Header `json:"backend_headers,omitempty"`

	// Tokens lists where the token is read, tried in order; the first
	// source that carries one wins. Default: the dialect's own list.
	Tokens []sessionctx.TokenSource `json:"tokens,omitempty"`

	// CacheTTL is the upper bound on a cached session. Default 5m.
	CacheTTL caddy.Duration `json:"cache_ttl,omitempty"`
	// NegativeTTL is how long a rejected token stays rejected. Default 10s.
	NegativeTTL caddy.Duration `json:"negative_ttl,omitempty"`
	// StaleIfError serves a cached session this long past its TTL while
	// the session service fails. Default 0.
	StaleIfError caddy.Duration `json:"stale_if_error,omitempty"`
	// RetryAfter is what the Retry-After header of a 503 (session service
	// unavailable) asks clients to wait, in whole seconds, rounded up.
	// Default 5s.
	RetryAfter caddy.Duration `json:"retry_after,omitempty"`
	// CacheMax bounds the cached sessions (and, separately, the cached
	// rejections). Default 100000.
	CacheMax int `json:"cache_max,omitempty"`
	// LookupLimit bounds the session-service lookups in flight at once
	// for this backend (shared by the handlers that share its cache);
	// more wait up to timeout, then get a 503 with Retry-After and make
	// no call. -1 turns it off. Default 64.
	LookupLimit int `json:"lookup_limit,omitempty"`
	// ClientMissLimit bounds the lookups one client may start per
	// window; past it, 429 with Retry-After and no call. Cached sessions
	// and cached rejections never count. Default 30 per 1s.
	ClientMissLimit *ClientMissLimit `json:"client_miss_limit,omitempty"`
	// RefreshAhead is the fraction of a session's cache life after which
	// a request is still served from the cache but starts one refresh in
	// the background. 0 turns it off. Default 0.8.
	RefreshAhead *float64 `json:"refresh_ahead,omitempty"`

	// HeaderPrefix starts the injected identity headers; every client-sent
	// header that starts with it is removed. Default "X-Session-".
	HeaderPrefix string `json:"header_prefix,omitempty"`
	// Headers are extra injected headers: name to a value template with
	// placeholders. Default none.
	Headers map[string]string `json:"headers,omitempty"`
	// HeaderFields chooses which of the default identity headers are
	// injected: user, user_id, email, name, org, org_id, roles, perms,
	// admin; ["none"] for none. Client-sent headers with the prefix are
	// stripped whatever this says. Default all nine.
	HeaderFields []string `json:"header_fields,omitempty"`
	// HeaderPresets also emit a known convention: oauth2-proxy, authelia.
	// Default none.
	HeaderPresets []string `json:"header_presets,omitempty"`
	// HeaderEncoding is how identity values are written into the
	// injected headers and the {session.*} placeholders: raw (valid
	// UTF-8 as it is), percent or rfc2047. A value the encoding cannot
	// carry exactly is not sent. Default raw.
	HeaderEncoding string `json:"header_encoding,omitempty"`
	// StripToken removes the token from the request before it goes
	// upstream, except on a logout request, which keeps it so the app
	// can end the session at the service. Default false.
	StripToken bool `json:"strip_token,omitempty"`

	// AppSession names the app's own session cookies: each one the app
	// sets is bound to the identity of the request it answers (to nobody
	// on a request without a session), and a later request whose
	// identity differs loses it before the app sees it, so the app
	// starts a fresh session. Default none.
	AppSession []string `json:"app_session,omitempty"`
	// AppSessionSecret keys the app_session bindings (HMAC-SHA256); at
	// least 32 bytes, may use {env.*}. Give every node the same one.
	// Default the cluster's secret when there is a cluster, else a
	// random key per process (bindings are then lost on a restart).
	AppSessionSecret string `json:"app_session_secret,omitempty"`

	// Optional lets requests without a session through, anonymous (their
	// identity headers still stripped). Default false.
	Optional bool `json:"optional,omitempty"`
	// OnUnauthenticated says how a request without a session is answered.
	// Default a 401 with WWW-Authenticate.
	OnUnauthenticated *Unauthenticated `json:"on_unauthenticated,omitempty"`
	// Logout lists requests that end a session: when one gets a 2xx or
	// 3xx from the upstream, the token's cache entry is evicted and the
	// app_session bindings are undone. Default none.
	Logout []LogoutRoute `json:"logout,omitempty"`
	// LogHashKey keys the token_hash of log lines (HMAC-SHA256): give the
	// same secret to every server whose logs must name a token alike. May
	// use {env.*}. Default a random key per process.
	LogHashKey string `json:"log_hash_key,omitempty"`
	// Cluster shares this backend's cache with other nodes through
	// Redis. Default none.
	Cluster *ClusterConfig `json:"cluster,omitempty"`
	// DisableMetrics keeps this handler out of the Prometheus metrics.
	// Default false.
	DisableMetrics bool `json:"disable_metrics,omitempty"`
	// Assertion signs the injected identity as a JWT for the upstream and
	// answers its key set. Default none.
	Assertion *AssertionConfig `json:"assertion,omitempty"`

	tokens     []sessionctx.TokenSource // the sources in force, from client
	folder     *headerFolder            // own names, when outside a config
	registry   *Registry                // the config's, for the union of names
	inject     [numFields]string        // header names, "" when not injected
	extra      []presetHeader           // preset headers
	nvals      int                      // most header values injectHeaders sets
	custom     []customHeader
	encoding   headerEncoding
	refusedLog *rate.Sometimes // rate-limits the warning of a refused value
	realm      string
	client     *sessionctx.Client
	poolKey    string
	pooled     *pooledResolver
	metricsOn  bool // this handler counts in pooled.metricsUsers
	counters   handlerCounters
	logger     *zap.Logger
	warn       *rate.Sometimes // rate-limits the warning of an outage
	outage     *atomic.Bool    // a failure was warned of, and no answer has come since
	dialect    string
	redirect   string
	unauthSts  int
	retry      string // Retry-After of a 503
	hashKey    []byte // keys token_hash
	apps       *appSessions
	assertion  *assertionSigner
}

// BackendConfig names the session service.
type BackendConfig struct {
	// Dialect is amplify, tr50, vsphere, eternus, trifacta or http.
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

// Unauthenticated says how to answer a request without a session.
type Unauthenticated struct {
	// Status is the error status. Default 401.
	Status int `json:"status,omitempty"`
	// Redirect, when set, is a URL template (placeholders allowed) that
	// clients preferring HTML are redirected to; API clients still get
	// Status.
	Redirect string `json:"redirect,omitempty"`
}

// LogoutRoute is a request that ends the session it carries.
type LogoutRoute struct {
	Method string `json:"method"`
	Path   string `json:"path"`
}

type customHeader struct {
	name, template string
	keys           []string // the sessiongate placeholders it uses
}

// CaddyModule returns the Caddy module information.
func (SessionAuth) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.session_auth",
		New: func() caddy.Module { return new(SessionAuth) },
	}
}

// Provision expands the placeholders, checks the result (validate), sets
// defaults and gets the (possibly shared) resolver. The checks come
// before anything is built, so a bad config holds no pooled resolver and
// opens no connection.
func (h *SessionAuth) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.warn = &rate.Sometimes{First: 1, Interval: warnInterval}
	h.outage = new(atomic.Bool)
	h.refusedLog = &rate.Sometimes{First: 1, Interval: warnInterval}

	expanded := *h
	var err error
	if expanded.Backend.URL, err = expandPlaceholders("backend url", h.Backend.URL); err != nil {
		return err
	}
	if expanded.LogHashKey, err = expandPlaceholders("log_hash_key", h.LogHashKey); err != nil {
		return err
	}
	if expanded.AppSessionSecret, err = expandPlaceholders("app_session_secret", h.AppSessionSecret); err != nil {
		return err
	}
	cl, err := h.Cluster.settings(ctx)
	if err != nil {
		return err
	}
	if err := expanded.validate(); err != nil {
		return err
	}
	if h.assertion, err = h.Assertion.provision(); err != nil {
		return err
	}
	opts, err := h.Backend.dialectOptions()
	if err != nil {
		return fmt.Errorf("backend: %w", err)
	}
	h.dialect = h.Backend.Dialect

	h.hashKey = processLogHashKey
	if expanded.LogHashKey != "" {
		h.hashKey = []byte(expanded.LogHashKey)
	}
	backendHeaders := make(http.Header, len(h.BackendHeaders))
	for k, vals := range h.BackendHeaders {
		for _, v := range vals {
			ev, err := expandPlaceholders("backend_header "+k, v)
			if err != nil {
				return err
			}
			backendHeaders.Add(k, ev)
		}
	}
	rt, transportKey, err := h.newServiceTransport(ctx)
	if err != nil {
		return err
	}
	cfg := sessionctx.Config{
		Dialect: h.Backend.Dialect,
		URL:     expanded.Backend.URL,
		Options: opts,
		Tokens:  h.Tokens,
		Timeout: time.Duration(h.Timeout),
		Header:  backendHeaders,
		Cache: sessionctx.CacheConfig{
			TTL:          time.Duration(h.CacheTTL),
			NegativeTTL:  time.Duration(h.NegativeTTL),
			StaleIfError: time.Duration(h.StaleIfError),
			Max:          h.CacheMax,
			RefreshAhead: h.refreshAhead(),
		},
		ClientOf: clientOf,
	}
	cfg.LookupLimit, cfg.ClientMissLimit, cfg.ClientMissWindow = h.lookups()
	pooled, err := loadResolver(cfg, h.Backend.Options, cl, transportKey, rt)
	if err != nil {
		return err
	}
	h.pooled, h.client, h.poolKey = pooled, pooled.Client, pooled.key
	if !h.DisableMetrics {
		if reg := ctx.GetMetricsRegistry(); reg != nil {
			if err := registerMetrics(reg); err != nil {
				return fmt.Errorf("metrics: %w", err)
			}
		}
		pooled.metricsUsers.Add(1)
		h.metricsOn = true
		h.counters = newHandlerCounters(h.dialect)
	}

	h.tokens = h.client.Tokens()
	if err := validateAppSession(h.AppSession, h.tokens, ""); err != nil {
		return err // the dialect's own token cookies are known only now
	}
	h.realm = wwwAuthenticate(h.tokens)

	if h.HeaderPrefix == "" {
		h.HeaderPrefix = DefaultHeaderPrefix
	}
	fields, _ := headerFields(h.HeaderFields) // checked by validate
	h.encoding, _ = parseHeaderEncoding(h.HeaderEncoding)
	h.inject = [numFields]string{}
	for _, f := range fields {
		h.inject[f] = http.CanonicalHeaderKey(h.HeaderPrefix + defaultSuffixes[f])
	}
	protected := append([]string{}, presetStripped...)
	for _, hs := range presets {
		for _, ph := range hs {
			protected = append(protected, ph.name)
		}
	}
	h.extra = nil
	for _, p := range h.HeaderPresets {
		h.extra = append(h.extra, presets[p]...)
	}
	h.custom = nil
	for name, tmpl := range h.Headers {
		h.custom = append(h.custom, customHeader{name: http.CanonicalHeaderKey(name), template: tmpl, keys: sessionKeys(tmpl)})
		protected = append(protected, name)
	}
	if n := h.Assertion.headerName(); n != "" {
		protected = append(protected, n)
	}
	h.folder = newHeaderFolder(h.HeaderPrefix, protected)
	if err := h.joinRegistry(ctx); err != nil {
		return err
	}
	h.nvals = len(fields) + len(h.extra)

	h.retry = "5"
	if h.RetryAfter > 0 {
		h.retry = strconv.FormatInt(int64((time.Duration(h.RetryAfter)+time.Second-1)/time.Second), 10)
	}

	h.unauthSts = http.StatusUnauthorized
	if u := h.OnUnauthenticated; u != nil {
		if u.Status != 0 {
			h.unauthSts = u.Status
		}
		h.redirect = u.Redirect
	}
	for i, l := range h.Logout {
		h.Logout[i].Method = strings.ToUpper(l.Method)
	}
	if h.assertion != nil {
		h.assertion.register()
	}
	h.apps = nil
	if len(h.AppSession) > 0 {
		secret := expanded.AppSessionSecret
		if secret == "" && cl != nil {
			secret = cl.Secret
		}
		h.apps = newAppSessions(h.AppSession, secret)
	}
	return nil
}

// missingError names a required setting that is not given. The Caddyfile
// parser validates after every line, before the block is complete, so it
// sets these errors aside until the block's end.
type missingError string

func (e missingError) Error() string { return string(e) }

// isMissing reports whether err is only a missing required setting.
func isMissing(err error) bool {
	var m missingError
	return errors.As(err, &m)
}

// validate is the one check of session_auth's settings, for both the
// Caddyfile and JSON: the parser runs it after each line it reads, so an
// error names its line, and Provision runs it on the settings with their
// {env.*} and {file.*} placeholders expanded. A value that still holds
// such a placeholder (the parser's view) is checked once expanded. A
// zero value stands for the default and passes. Missing required
// settings are reported last, as a missingError.
func (h *SessionAuth) validate() error {
	if h.Backend.Dialect != "" {
		if _, err := sessionctx.DialectOptions(h.Backend.Dialect); err != nil {
			return fmt.Errorf("backend: %w", err)
		}
		if err := checkURL("backend url", h.Backend.URL, h.Backend.URL, "http", "https"); err != nil {
			return err
		}
	}
	for _, v := range []struct {
		name string
		d    caddy.Duration
	}{
		{"timeout", h.Timeout}, {"cache_ttl", h.CacheTTL}, {"negative_ttl", h.NegativeTTL},
		{"stale_if_error", h.StaleIfError}, {"retry_after", h.RetryAfter},
	} {
		if v.d < 0 {
			return fmt.Errorf("%s must not be negative (got %s)", v.name, time.Duration(v.d))
		}
	}
	if h.CacheMax < 0 {
		return fmt.Errorf("cache_max \"%d\" must not be negative", h.CacheMax)
	}
	if err := h.validateProtect(); err != nil {
		return err
	}
	if err := h.checkTransport(); err != nil {
		return err
	}
	for name := range h.BackendHeaders {
		if !isHeaderName(name) {
			return fmt.Errorf("backend_header %q: not a header name", name)
		}
	}
	for i, t := range h.Tokens {
		if err := t.Validate(); err != nil {
			return fmt.Errorf("tokens %d: %w", i, err)
		}
	}
	if strings.ContainsAny(h.HeaderPrefix, " \t\r\n:") {
		return fmt.Errorf("header_prefix %q is not a header name prefix", h.HeaderPrefix)
	}
	for name := range h.Headers {
		if !isHeaderName(name) {
			return fmt.Errorf("header %q: not a header name", name)
		}
	}
	if _, err := headerFields(h.HeaderFields); err != nil {
		return err
	}
	if _, err := parseHeaderEncoding(h.HeaderEncoding); err != nil {
		return err
	}
	for _, p := range h.HeaderPresets {
		if _, ok := presets[p]; !ok {
			return fmt.Errorf("unknown header preset %q (want %s)", p, strings.Join(slices.Sorted(maps.Keys(presets)), " or "))
		}
	}
	if u := h.OnUnauthenticated; u != nil && u.Status != 0 && (u.Status < 400 || u.Status > 499) {
		return fmt.Errorf("on_unauthenticated status \"%d\": want a 4xx status", u.Status)
	}
	for i, l := range h.Logout {
		if l.Method == "" {
			return fmt.Errorf("logout %d: no method", i)
		}
		if !strings.HasPrefix(l.Path, "/") {
			return fmt.Errorf("logout path %q must start with /", l.Path)
		}
	}
	if err := validateAppSession(h.AppSession, h.Tokens, h.AppSessionSecret); err != nil {
		return err
	}
	if k := h.LogHashKey; k != "" && !hasPlaceholder(k) && len(k) < minLogHashKey {
		return fmt.Errorf("log_hash_key: want at least %d bytes, got %d", minLogHashKey, len(k))
	}
	if h.Cluster != nil {
		if err := h.Cluster.validate(); err != nil {
			return err
		}
	}
	if h.Assertion != nil {
		if err := h.Assertion.validate(h); err != nil {
			return err
		}
	}
	if h.Backend.Dialect == "" {
		_, known := sessionctx.DialectOptions("") // its error lists the dialects
		return missingError(fmt.Sprintf("session_auth needs a backend: a dialect and its url (%v)", known))
	}
	return nil
}

// isHeaderName reports whether name can name a header sessiongate sets.
func isHeaderName(name string) bool {
	return name != "" && !strings.ContainsAny(name, " \t\r\n:")
}

// Cleanup releases this handler's hold on the shared cache.
func (h *SessionAuth) Cleanup() error {
	// Caddy may clean up an old config while its last requests still
	// run (past grace_period): leave alone the fields ServeHTTP reads
	// (metricsOn, resolver); h.pooled, which it does not read, makes this
	// idempotent.
	if h.metricsOn && h.pooled != nil {
		h.pooled.metricsUsers.Add(-1)
	}
	h.pooled = nil
	if h.assertion != nil {
		h.assertion.unregister()
	}
	if h.poolKey != "" {
		err := releaseResolver(h.poolKey)
		h.poolKey = ""
		return err
	}
	return nil
}

func wwwAuthenticate(tokens []sessionctx.TokenSource) string {
	for _, t := range tokens {
		if t.From == sessionctx.FromBearer {
			return `Bearer realm="sessiongate"`
		}
	}
	return `Session realm="sessiongate"`
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *SessionAuth) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if h.assertion != nil && r.URL.Path == h.assertion.jwksPath {
		return h.assertion.serveJWKS(w, r)
	}
	handledBefore := authHandled(r.Context())
	stripRequest(r, h.stripFolder())
	// Handled from here on: a later session_strip must not remove what
	// this sets (see authHandled).
	r = carrySession(r, noIdentity)
	if !handledBefore {
		// One provider for the request answers from whatever session it
		// carries at the time: a later session_auth on the same request
		// decides, for the placeholders as for the headers.
		mapSessionPlaceholders(r)
	}

	res, err := h.client.Authenticate(r)
	if !res.Hit && h.outage.Load() && (err == nil && !res.Stale || errors.Is(err, sessionctx.ErrUnauthenticated)) {
		h.serviceBack()
	}
	if err != nil {
		if res.Ambiguous {
			return h.ambiguous(r, res, err)
		}
		if errors.Is(err, sessionctx.ErrUnauthenticated) {
			if h.StripToken {
				// A malformed token, or one without what the dialect
				// needs with it, is still a token: it goes no further.
				h.client.StripTokens(r) // every source, not only the one read
			}
			if h.Optional {
				h.logRequest(res.Key, nil, "anonymous", res.Hit)
				carryRejection(r, err)
				if h.apps != nil {
					return h.serveWatched(w, r, next, res.Key, false, h.apps.check(r, anonymousSubject))
				}
				return next.ServeHTTP(w, r)
			}
			h.logRequest(res.Key, nil, "unauthenticated", res.Hit)
			if h.apps != nil {
				h.apps.expireAll(r, w.Header())
			}
			return h.unauthenticated(w, r, err)
		}
		if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
			// The client gave up waiting: not a service failure, so no
			// warning and no service_error. 499 is what reverse_proxy
			// answers a client that left, logged as a client error.
			if ce := h.logger.Check(zapcore.DebugLevel, "session lookup abandoned by the client"); ce != nil {
				ce.Write(zap.String("token_hash", h.tokenHash(res.Key)))
			}
			return caddyhttp.Error(499, errClientGaveUp)
		}
		if k := sessionctx.FailureKind(err); k == limitLookups || k == limitClient {
			return h.limited(w, r, res.Key, k, err)
		}
		h.warnUnavailable(res.Key, err)
		w.Header().Set("Retry-After", h.retry)
		return h.serviceUnavailable(w, r, err)
	}

	s := res.Session
	outcome := "authenticated"
	if res.Stale {
		outcome = "stale"
	}
	h.logRequest(res.Key, s, outcome, res.Hit)
	if !res.Hit && len(s.MissingPaths) > 0 {
		h.logMissingPaths(res.Key, s)
	}

	id := identityOf(res)
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	// Carried before the custom headers are filled in: the placeholders
	// answer from it.
	r = carrySession(r, id)
	carryEncoding(r, h.encoding)
	h.injectHeaders(r.Header, id, repl)
	if h.assertion != nil {
		h.injectAssertion(r, id, res.Key)
	}
	if refused := id.refused[h.encoding]; len(refused) > 0 {
		h.logRefused(res.Key, refused)
	}
	logout := h.isLogout(r)
	if h.StripToken && !logout {
		// A logout keeps its token on the way to the app, so the app's
		// (or the service's) own logout endpoint can revoke it.
		h.client.StripTokens(r) // every source, not only the one read
	}
	var ar *appRequest
	if h.apps != nil {
		ar = h.apps.check(r, subjectOf(s))
	}
	if logout || ar != nil {
		return h.serveWatched(w, r, next, res.Key, logout, ar)
	}
	return next.ServeHTTP(w, r)
}

// tokenHash names a token in a log line without revealing it.
func (h *SessionAuth) tokenHash(key sessionctx.Key) string { return logHash(h.hashKey, key) }

// errClientGaveUp is the error of a request whose client left while its
// token was being looked up. It says nothing of the session service,
// which may well answer (and fill the cache) a moment later.
var errClientGaveUp = fmt.Errorf("client gave up during the session lookup: %w", context.Canceled)

// injectHeaders sets the identity headers. One backing array holds every
// value so the hot path allocates once, not once per header.
func (h *SessionAuth) injectHeaders(hdr http.Header, id *identity, repl *caddy.Replacer) {
	vals := make([]string, h.nvals)
	j := 0
	enc := &id.vals[h.encoding]
	for f := field(0); f < numFields; f++ {
		if v := enc[f]; v != "" && h.inject[f] != "" {
			vals[j] = v
			hdr[h.inject[f]] = vals[j : j+1 : j+1]
			j++
		}
	}
	for _, ph := range h.extra {
		if v := enc[ph.field]; v != "" {
			vals[j] = v
			hdr[ph.name] = vals[j : j+1 : j+1]
			j++
		}
	}
	for _, c := range h.custom {
		if refusedKeys(id.session, h.encoding, c.keys) {
			// A value the encoding cannot carry is no header of its
			// own, and no hole in another one either.
			continue
		}
		v := c.template
		if repl != nil {
			v = repl.ReplaceAll(v, "")
		}
		if v, ok := h.encoding.template(v); ok && v != "" {
			hdr[c.name] = []string{v}
		}
	}
}

// forgetOnLogout evicts the token of a logout request the upstream
// accepted, so the next request with it asks the session service again.
func (h *SessionAuth) forgetOnLogout(key sessionctx.Key) {
	evicted := h.client.Forget(key)
	if evicted && h.metricsOn {
		observeEvictions("logout", 1)
	}
	if ce := h.logger.Check(zapcore.DebugLevel, "session logout"); ce != nil {
		ce.Write(zap.String("token_hash", h.tokenHash(key)), zap.Bool("evicted", evicted))
	}
}

// unauthenticated answers a request that has no live session: a redirect
// for clients that prefer HTML when one is configured, else the status
// with WWW-Authenticate.
func (h *SessionAuth) unauthenticated(w http.ResponseWriter, r *http.Request, err error) error {
	if h.redirect != "" {
		w.Header().Add("Vary", "Accept")
		if prefersHTML(r) {
			target := h.redirectTarget(r)
			status := http.StatusFound
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				status = http.StatusSeeOther
			}
			w.Header().Set("Location", target)
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(status)
			return nil
		}
	}
	if answered, werr := answerInDialect(w, r, h.dialect, err); answered {
		return werr
	}
	if h.unauthSts == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", h.realm)
	}
	if errorPage(w, r, h.unauthSts) {
		return nil
	}
	return caddyhttp.Error(h.unauthSts, err)
}

// redirectTarget fills in the redirect template. A placeholder in the
// URL's query is query-escaped, so a request URI carrying its own '&' or
// '?' stays one parameter of the login URL. One before the query is
// path-escaped ('/' kept), so a value from the request cannot start a
// query or fragment of its own ({env.*} and {file.*} are the operator's
// and go in as written), and a target the template did not start with "//" never
// becomes protocol-relative (another host). A token read from the query
// never travels into the login URL: it is cut from every request-URI
// placeholder, strip_token or not.
func (h *SessionAuth) redirectTarget(r *http.Request) string {
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return h.redirect
	}
	base, query, hasQuery := strings.Cut(h.redirect, "?")
	target, _ := repl.ReplaceFunc(base, func(key string, val any) (any, error) {
		v := caddy.ToString(val)
		if strings.HasPrefix(key, "env.") || strings.HasPrefix(key, "file.") {
			return v, nil // the operator's own value: a login URL, say
		}
		return pathEscape(h.withoutQueryToken(key, v)), nil
	})
	if !strings.HasPrefix(base, "//") && strings.HasPrefix(target, "//") {
		target = "/" + strings.TrimLeft(target, "/")
	}
	if !hasQuery {
		return target
	}
	query, _ = repl.ReplaceFunc(query, func(key string, val any) (any, error) {
		return url.QueryEscape(h.withoutQueryToken(key, caddy.ToString(val))), nil
	})
	return target + "?" + query
}

// pathEscape escapes v for a URL path, each segment on its own so that
// '/' stays a separator while '?', '#', backslashes, spaces and control
// bytes do not survive.
func pathEscape(v string) string {
	segs := strings.Split(v, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// withoutQueryToken cuts the configured query tokens from the value of a
// request-URI placeholder (whole URI, its query, or one query parameter).
func (h *SessionAuth) withoutQueryToken(key, v string) string {
	rest, ok := strings.CutPrefix(key, "http.request.uri")
	if !ok {
		if rest, ok = strings.CutPrefix(key, "http.request.orig_uri"); !ok {
			return v
		}
	}
	switch {
	case rest == "":
		if path, q, found := strings.Cut(v, "?"); found {
			if q = h.stripQueryTokens(q); q != "" {
				return path + "?" + q
			}
			return path
		}
	case rest == ".query":
		return h.stripQueryTokens(v)
	case strings.HasPrefix(rest, ".query."):
		name := strings.TrimPrefix(rest, ".query.")
		for _, src := range h.tokens {
			if src.From == sessionctx.FromQuery && src.Name == name {
				return ""
			}
		}
	}
	return v
}

func (h *SessionAuth) stripQueryTokens(raw string) string {
	u := url.URL{RawQuery: raw}
	r := http.Request{URL: &u}
	for _, src := range h.tokens {
		if src.From == sessionctx.FromQuery {
			src.Strip(&r)
		}
	}
	return u.RawQuery
}

// prefersHTML tells a browser navigation from an API or script call: the
// Accept header weighs text/html (or application/xhtml+xml) above zero and
// at least as high as any other media type it names (wildcards aside, as
// a browser lists */* last at a low weight), and the request is not
// marked as XHR. "application/json, text/html;q=0.1" is a script that
// prefers JSON, not a browser.
func prefersHTML(r *http.Request) bool {
	if strings.EqualFold(r.Header.Get("X-Requested-With"), "XMLHttpRequest") {
		return false
	}
	htmlQ, otherQ := -1.0, -1.0
	for _, accept := range r.Header.Values("Accept") {
		for _, part := range strings.Split(accept, ",") {
			params := strings.Split(part, ";")
			mt := strings.ToLower(strings.TrimSpace(params[0]))
			if mt == "" || strings.HasSuffix(mt, "/*") {
				continue
			}
			q := acceptWeight(params[1:])
			if mt == "text/html" || mt == "application/xhtml+xml" {
				htmlQ = max(htmlQ, q)
			} else {
				otherQ = max(otherQ, q)
			}
		}
	}
	return htmlQ > 0 && htmlQ >= otherQ
}

// acceptWeight is the q parameter among a media range's parameters: 1
// when absent, 0 when unreadable.
func acceptWeight(params []string) float64 {
	for _, p := range params {
		name, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		if !strings.EqualFold(strings.TrimSpace(name), "q") {
			continue
		}
		q, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil || q < 0 || q > 1 {
			return 0
		}
		return q
	}
	return 1
}

// logRequest counts a request's outcome and writes its debug line: one
// line for every request that reaches session_auth, whatever the outcome.
func (h *SessionAuth) logRequest(key sessionctx.Key, s *sessionctx.Session, outcome string, hit bool, more ...zap.Field) {
	h.observe(key, outcome, hit)
	ce := h.logger.Check(zapcore.DebugLevel, "session")
	if ce == nil {
		return
	}
	fields := append([]zap.Field{zap.String("outcome", outcome), zap.Bool("cache_hit", hit)}, more...)
	if key != (sessionctx.Key{}) {
		fields = append(fields, zap.String("token_hash", h.tokenHash(key)))
	}
	if s != nil {
		fields = append(fields, zap.String("user", s.User))
	}
	ce.Write(fields...)
}

// warnInterval rate-limits session-service warnings, so an outage under
// load is a line every few seconds, not one per request.
const warnInterval = 5 * time.Second

// serviceUnavailable answers a request whose session could not be looked
// up. Caddy logs a handler's 5xx error at error level, the default, with
// the request's headers and URI as they arrived, so a token in a custom
// header or in the query would be written there in clear. Unless the site
// has handle_errors routes to render the error (Caddy then logs it at
// debug level only), the handler answers the 503 itself; warnUnavailable
// has logged it already, naming the token by its hash. A browser gets a
// page saying to retry (errorPage).
func (h *SessionAuth) serviceUnavailable(w http.ResponseWriter, r *http.Request, err error) error {
	if hasErrorRoutes(r) {
		return caddyhttp.Error(http.StatusServiceUnavailable, err)
	}
	if !errorPage(w, r, http.StatusServiceUnavailable) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	return nil
}

func (h *SessionAuth) warnUnavailable(key sessionctx.Key, err error) {
	h.logRequest(key, nil, "service_error", false, zap.Error(err))
	h.outage.Store(true)
	h.warn.Do(func() {
		if ce := h.logger.Check(zapcore.WarnLevel, "session service unavailable"); ce != nil {
			ce.Write(zap.String("dialect", h.dialect), zap.String("token_hash", h.tokenHash(key)), zap.Error(err))
		}
	})
}

// serviceBack logs, once per outage, that the session service answers
// again (a session or a rejection, not a stale serve).
func (h *SessionAuth) serviceBack() {
	if !h.outage.CompareAndSwap(true, false) {
		return
	}
	if ce := h.logger.Check(zapcore.InfoLevel, "session service answering again"); ce != nil {
		ce.Write(zap.String("dialect", h.dialect))
	}
}

// Interface guards
var (
	_ caddy.Provisioner           = (*SessionAuth)(nil)
	_ caddy.CleanerUpper          = (*SessionAuth)(nil)
	_ caddyhttp.MiddlewareHandler = (*SessionAuth)(nil)
)
