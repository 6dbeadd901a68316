package sessionctx

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Config describes one session service and how its answers are cached.
// Only Dialect and URL are required; every zero value takes its default.
type Config struct {
	// Dialect is the kind of session service: a dialect's name (see
	// docs/dialects.md; an unknown one is an error that lists them).
	Dialect string
	// URL is the service's base URL (http or https), or for the http
	// dialect the whole "who am I" URL.
	URL string
	// Options are the dialect's own settings, of the type DialectOptions
	// returns for it; nil takes the defaults.
	Options Options
	// Tokens are where tokens are read, in order; the first source that
	// carries one decides. Default: where the product's own clients put
	// them (the dialect's default).
	Tokens []TokenSource
	// Header is sent with every session-service request (an API key...).
	Header http.Header
	// Timeout bounds each session-service request. Default 3s.
	Timeout time.Duration
	// MaxBody bounds a session-service answer. Default 1 MiB.
	MaxBody int64
	// TLSInsecureSkipVerify turns off certificate checks of the service.
	// Not with Transport.
	TLSInsecureSkipVerify bool
	// TLSTrustedCACerts are PEM files whose certificates are trusted for
	// the service, in place of the system roots. Not with Transport.
	TLSTrustedCACerts []string
	// Transport, when set, carries the session-service requests in place
	// of the plain transport built from the TLS fields above (the Caddy
	// side builds it from reverse_proxy's transport settings), which must
	// then be unset: New refuses both. Timeout still bounds each request,
	// and redirects are still not followed.
	Transport http.RoundTripper
	// Cache shapes the cache of answers.
	Cache CacheConfig
	// LookupLimit bounds the session-service lookups (tokens neither the
	// cache nor the Tier can answer) in flight at once; a lookup past it
	// waits for a slot as long as Timeout, then fails, without a call,
	// with an ErrUnavailable of kind FailureLookupLimit.
	// Default 64; negative: no bound.
	LookupLimit int
	// ClientMissLimit bounds the lookups one client (ClientOf) may start
	// per ClientMissWindow (default 1s); past it a lookup fails, without
	// a call, with an ErrUnavailable of kind FailureClientLimit (an HTTP
	// server answers it with 429).
	// Concurrent requests for one token share one lookup, counted once.
	// Cached sessions and rejections never count. Default 30; negative:
	// no bound.
	ClientMissLimit  int
	ClientMissWindow time.Duration
	// ClientOf, when set, names the client of a request for
	// ClientMissLimit (Caddy's client IP); without it no per-client limit
	// applies. It is called only when a lookup must start.
	ClientOf func(*http.Request) string
	// Tier, when set, is a cache shared with other nodes (the cluster
	// package's Redis tier), asked on a miss before the session service
	// and told of every revocation.
	Tier Tier

	// Prepare, when set, is called once per session the service answers;
	// its result is kept with the session and returned in Result.Prepared
	// on every hit, so per-session work is not redone per request.
	Prepare func(*Session) any
	// Observe, when set, is told of every session-service call: how long
	// it took and its error (nil for a session, wrapping
	// ErrUnauthenticated for a rejection).
	Observe func(took time.Duration, err error)
	// OnEvict, when set, is told how many entries were pushed out to make
	// room (not of Forget or Purge, whose callers know already).
	OnEvict func(n int)
}

// Client authenticates requests against one session service. It reads
// the credential the way the dialect says and resolves it through the
// cache, so that extraction and resolution cannot be mismatched. A Client
// is safe for concurrent use.
type Client struct {
	dialect string
	tokens  []TokenSource
	extract extractor
	parts   []TokenSource // where the rest of a credential is read
	r       *resolver
}

// New checks cfg and builds its client. The Tier, if any, is attached at
// once; the client makes no request until the first Authenticate.
func New(cfg Config) (*Client, error) {
	d, err := lookupDialect(cfg.Dialect)
	if err != nil {
		return nil, err
	}
	opts, err := d.checkOptions(cfg.Options)
	if err != nil {
		return nil, err
	}
	be, err := d.newBackend(cfg, opts)
	if err != nil {
		return nil, err
	}
	tokens := cfg.Tokens
	if len(tokens) == 0 {
		tokens = d.tokens
	}
	c := &Client{dialect: d.name, tokens: make([]TokenSource, len(tokens)), extract: d.extractor(opts)}
	if d.parts != nil {
		for _, p := range d.parts(opts) {
			c.parts = append(c.parts, p.Canonical())
		}
	}
	for i, t := range tokens {
		if err := t.Validate(); err != nil {
			return nil, fmt.Errorf("tokens: %w", err)
		}
		c.tokens[i] = t.Canonical()
	}
	if cfg.Cache.TTL < 0 || cfg.Cache.NegativeTTL < 0 || cfg.Cache.StaleIfError < 0 || cfg.Cache.Max < 0 {
		return nil, fmt.Errorf("cache durations and size must not be negative")
	}
	if f := cfg.Cache.RefreshAhead; f >= 1 || f != f {
		return nil, fmt.Errorf("refresh ahead must be a fraction below 1 (0 for the default, negative for off), not %v", f)
	}
	if cfg.Cache.RefreshAhead == 0 {
		cfg.Cache.RefreshAhead = defaultRefreshAhead
	}
	if cfg.ClientMissWindow < 0 {
		return nil, fmt.Errorf("the client miss window must not be negative")
	}
	c.r = newResolver(be, cfg.Cache)
	c.r.prepare, c.r.observe, c.r.onEvict = cfg.Prepare, cfg.Observe, cfg.OnEvict
	lookup := cfg.Timeout
	if lookup <= 0 {
		lookup = defaultTimeout
	}
	c.r.lim = newLimiter(lookupLimits{inFlight: cfg.LookupLimit, perClient: cfg.ClientMissLimit, window: cfg.ClientMissWindow}, lookup)
	c.r.clientOf = cfg.ClientOf
	if cfg.Tier != nil {
		if err := c.r.setTier(cfg.Tier, lookup); err != nil {
			return nil, fmt.Errorf("tier: %w", err)
		}
	}
	return c, nil
}

// Authenticate reads the request's credential and returns the session it
// names. Its error wraps ErrUnauthenticated (no token, a malformed one, or
// one the service rejected) or ErrUnavailable (the service gave no usable
// answer, and no stale session may be served); a canceled request
// context gives the context's error. Result.Source and Result.Key are set
// whenever a token was found, even with an error.
func (c *Client) Authenticate(r *http.Request) (Result, error) {
	cred, err := c.extract(r, c.tokens)
	if err != nil {
		return Result{Source: cred.Source, Ambiguous: errors.Is(err, errAmbiguous)}, err
	}
	res, err := c.r.resolve(r.Context(), cred, r)
	res.Source = cred.Source
	return res, err
}

// Dialect is the name of the client's dialect.
func (c *Client) Dialect() string { return c.dialect }

// Tokens are the token sources in force, in the order they are read.
func (c *Client) Tokens() []TokenSource { return append([]TokenSource(nil), c.tokens...) }

// StripTokens removes every token source in force from r, not only the
// one a token was read from (a second token in another source must not
// reach the upstream either), and every other part of a credential (the
// ETERNUS session-id header).
func (c *Client) StripTokens(r *http.Request) {
	for _, src := range c.tokens {
		src.Strip(r)
	}
	for _, src := range c.parts {
		src.Strip(r)
	}
}

// Forget drops a token's entries (a logout, a revoked session), on every
// node when the client has a Tier, and reports whether there were any
// here. A lookup in flight when it is called does not cache its answer.
func (c *Client) Forget(key Key) bool { return c.r.ForgetKey(key) }

// ForgetToken drops the entry of token, one whatever source it came in
// by (for ETERNUS, every session id it was used with too), and returns
// how many there were here.
func (c *Client) ForgetToken(token string) int { return c.r.ForgetToken(token) }

// Purge drops every entry, on every node when the client has a Tier, and
// returns how many there were here.
func (c *Client) Purge() int { return c.r.Purge() }

// PurgeAll is Purge, with the error of the Tier's part: the other nodes
// could not be told yet (the Tier keeps trying to tell them).
func (c *Client) PurgeAll() (int, error) { return c.r.PurgeAll() }

// Stats returns the client's counters since it was made.
func (c *Client) Stats() Stats { return c.r.Stats() }
