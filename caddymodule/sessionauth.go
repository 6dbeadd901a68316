// Package caddymodule is the Caddy side of sessiongate: the session_auth,
// session_require and session_info handlers, their Caddyfile directives,
// placeholders, the admin API and metrics.
package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
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
	sole       *atomic.Bool    // the only sessiongate handler a request meets (see markSole)
	dialect    string
	redirect   string
	unauthSts  int
	retry      string // Retry-After of a 503
	hashKey    []byte // keys token_hash
	apps       *appSessions
	assertion  *assertionSigner
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
	h.sole = new(atomic.Bool)
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
	useEncoding(h.encoding)
	h.inject = [numFields]string{}
	for _, f := range fields {
		h.inject[f] = http.CanonicalHeaderKey(h.HeaderPrefix + defaultSuffixes[f])
	}
	h.extra = nil
	for _, p := range h.HeaderPresets {
		h.extra = append(h.extra, presets[p]...)
	}
	h.custom = nil
	for name, tmpl := range h.Headers {
		h.custom = append(h.custom, customHeader{name: http.CanonicalHeaderKey(name), template: tmpl, keys: sessionKeys(tmpl)})
	}
	h.folder = newStripFolder(h.stripNames())
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

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *SessionAuth) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if h.assertion != nil && r.URL.Path == h.assertion.jwksPath {
		return h.assertion.serveJWKS(w, r)
	}
	handledBefore := authHandled(r.Context())
	h.stripFolder().stripRequest(r)
	// Handled from here on: a later session_strip must not remove what
	// this sets (see authHandled).
	r = carrySession(r, noIdentity)
	sole := h.sole != nil && h.sole.Load()
	if !handledBefore && !sole {
		// One provider for the request answers from whatever session it
		// carries at the time: a later session_auth on the same request
		// decides, for the placeholders as for the headers.
		mapSessionPlaceholders(r)
	}

	res, err := h.client.Authenticate(r)
	if sole {
		// No other sessiongate handler meets this request: the outcome
		// is final, and so is the provider.
		var id *identity
		if err == nil {
			id = identityOf(res)
		}
		mapOutcomePlaceholders(r, id, h.encoding)
	}
	if !res.Hit && h.outage.Load() && (err == nil && !res.Stale || errors.Is(err, sessionctx.ErrUnauthenticated)) {
		h.serviceBack()
	}
	if err != nil {
		return h.withoutSession(w, r, next, res, err)
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
	if refused := id.in(h.encoding).refused; len(refused) > 0 {
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

// Interface guards
var (
	_ caddy.Provisioner           = (*SessionAuth)(nil)
	_ caddy.CleanerUpper          = (*SessionAuth)(nil)
	_ caddyhttp.MiddlewareHandler = (*SessionAuth)(nil)
)
