package sessionctx

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// Backend asks one session service who owns a token.
type Backend interface {
	// Resolve returns the live session that cred names. Its error wraps
	// ErrUnauthenticated when the service rejects the token and
	// ErrUnavailable when the service gave no usable answer.
	Resolve(ctx context.Context, cred Credential) (*Session, error)
}

// Options are a dialect's own settings. SetOption takes one Caddyfile-style
// line (a name and its arguments), so the Caddy side can parse any
// dialect's option block without knowing it; the JSON form is the options
// struct itself.
type Options interface {
	SetOption(name string, args []string) error
}

// Dialect describes one kind of session service.
type Dialect struct {
	// Name is what users type: amplify, tr50, vsphere, eternus, trifacta, http.
	Name string
	// Tokens are where tokens are read from when the user configures none.
	Tokens []TokenSource
	// Extract, if set, replaces the package's Extract for this dialect:
	// for a credential made of more than one request value (ETERNUS: a
	// session id and a token). The credential's Value is what the cache
	// hashes, so it must hold every part.
	Extract func(r *http.Request, sources []TokenSource) (Credential, error)
	// ExtractWith, if set, builds Extract from the dialect's options, for
	// a credential whose parts are read where the options say (ETERNUS:
	// the session-id source). It takes precedence over Extract in
	// Extractor.
	ExtractWith func(opts Options) func(r *http.Request, sources []TokenSource) (Credential, error)
	// NewOptions returns the dialect's default options; nil when it has none.
	NewOptions func() Options
	// New builds a client for the service. opts is what NewOptions returned,
	// filled from the configuration.
	New func(svc *Service, opts Options) (Backend, error)
}

// Extractor returns how this dialect reads a credential from a request,
// given its options as JSON (BackendConfig.Options). Options that do not
// decode give the defaults: NewBackend has rejected them already.
func (d *Dialect) Extractor(options json.RawMessage) func(r *http.Request, sources []TokenSource) (Credential, error) {
	if d.ExtractWith != nil && d.NewOptions != nil {
		opts := d.NewOptions()
		if len(options) > 0 {
			if err := json.Unmarshal(options, opts); err != nil {
				opts = d.NewOptions()
			}
		}
		return d.ExtractWith(opts)
	}
	if d.Extract != nil {
		return d.Extract
	}
	return Extract
}

var (
	dialectsMu sync.RWMutex
	dialects   = map[string]*Dialect{}
)

// RegisterDialect makes a dialect available by name. It panics on a
// duplicate, like http.Handle, since that is a programming error.
func RegisterDialect(d *Dialect) {
	dialectsMu.Lock()
	defer dialectsMu.Unlock()
	if _, dup := dialects[d.Name]; dup {
		panic("sessionctx: dialect registered twice: " + d.Name)
	}
	dialects[d.Name] = d
}

// LookupDialect returns the dialect called name.
func LookupDialect(name string) (*Dialect, error) {
	dialectsMu.RLock()
	defer dialectsMu.RUnlock()
	if d, ok := dialects[name]; ok {
		return d, nil
	}
	return nil, fmt.Errorf("unknown dialect %q (known: %s)", name, strings.Join(dialectNamesLocked(), ", "))
}

// DialectNames lists the registered dialects, sorted.
func DialectNames() []string {
	dialectsMu.RLock()
	defer dialectsMu.RUnlock()
	return dialectNamesLocked()
}

func dialectNamesLocked() []string {
	return slices.Sorted(maps.Keys(dialects))
}

// DefaultTimeout bounds one session-service request when none is configured.
const DefaultTimeout = 3 * time.Second

// DefaultMaxBody bounds a session-service answer when none is configured.
// Session objects are a few kilobytes; anything near this is garbage.
const DefaultMaxBody = 1 << 20

// BackendConfig is everything that shapes a backend.
type BackendConfig struct {
	Dialect string
	URL     string
	// Options is the dialect's options as JSON, decoded into the struct
	// that the dialect's NewOptions returns.
	Options json.RawMessage
	// Timeout bounds each session-service request; default DefaultTimeout.
	Timeout time.Duration
	// TLSInsecureSkipVerify turns off certificate checks of the service.
	TLSInsecureSkipVerify bool
	// TLSTrustedCACerts are PEM files whose certificates are trusted for
	// the service, in place of the system roots.
	TLSTrustedCACerts []string
	// Header is sent with every session-service request (an app key...).
	Header http.Header
	// MaxBody bounds an answer; default DefaultMaxBody.
	MaxBody int64
	// Transport, when set, carries the session-service requests in place
	// of the plain transport built from the TLS fields above (the Caddy
	// side builds it from reverse_proxy's transport settings). Timeout
	// still bounds each request, and redirects are still not followed.
	Transport http.RoundTripper `json:"-"`
}

// NewBackend builds the client that cfg describes.
func NewBackend(cfg BackendConfig) (Backend, *Dialect, error) {
	d, err := LookupDialect(cfg.Dialect)
	if err != nil {
		return nil, nil, err
	}
	svc, err := newService(cfg)
	if err != nil {
		return nil, nil, err
	}
	var opts Options
	if d.NewOptions != nil {
		opts = d.NewOptions()
		if len(cfg.Options) > 0 {
			dec := json.NewDecoder(strings.NewReader(string(cfg.Options)))
			dec.DisallowUnknownFields()
			if err := dec.Decode(opts); err != nil {
				return nil, nil, fmt.Errorf("%s options: %v", d.Name, err)
			}
		}
	} else if len(cfg.Options) > 0 && string(cfg.Options) != "null" && string(cfg.Options) != "{}" {
		return nil, nil, fmt.Errorf("dialect %s takes no options", d.Name)
	}
	b, err := d.New(svc, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("%s backend: %w", d.Name, err)
	}
	return b, d, nil
}

// Service is the HTTP plumbing every dialect shares: where the service is,
// how to reach it, and how much of an answer to read.
type Service struct {
	URL     *url.URL
	Client  *http.Client
	Header  http.Header
	MaxBody int64
}

func newService(cfg BackendConfig) (*Service, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("backend url: %v", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("backend url %q: want an absolute http:// or https:// URL", cfg.URL)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("timeout must not be negative")
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	maxBody := cfg.MaxBody
	if maxBody <= 0 {
		maxBody = DefaultMaxBody
	}
	tlsCfg := &tls.Config{InsecureSkipVerify: cfg.TLSInsecureSkipVerify} //nolint:gosec // opt-in, for self-signed session services
	if len(cfg.TLSTrustedCACerts) > 0 {
		pool := x509.NewCertPool()
		for _, f := range cfg.TLSTrustedCACerts {
			pem, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("tls_trusted_ca_certs: %v", err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("tls_trusted_ca_certs: no PEM certificate in %s", f)
			}
		}
		tlsCfg.RootCAs = pool
	}
	var transport http.RoundTripper = cfg.Transport
	if transport == nil {
		transport = plainTransport(tlsCfg, timeout)
	}
	return &Service{
		URL: u,
		Client: &http.Client{
			Transport: transport,
			Timeout:   timeout,
			// A session service that redirects is answering for someone
			// else (a login page): never follow, classify the 3xx instead.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		Header:  cfg.Header,
		MaxBody: maxBody,
	}, nil
}

// plainTransport is the session-service transport of a Go user who brings
// none: keep-alive connections, every phase bounded by timeout.
func plainTransport(tlsCfg *tls.Config, timeout time.Duration) *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
}

// Endpoint returns the service's base URL joined with path (and an
// optional raw query).
func (s *Service) Endpoint(path, rawQuery string) string {
	u := *s.URL
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawPath = ""
	if rawQuery != "" {
		u.RawQuery = rawQuery
	}
	return u.String()
}

// NewRequest builds a session-service request carrying the configured
// extra headers.
func (s *Service) NewRequest(ctx context.Context, method, target string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, fmt.Errorf("%w: building request: %v", ErrUnavailable, err)
	}
	for k, v := range s.Header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "sessiongate")
	return req, nil
}

// Do sends req and reads at most MaxBody bytes of the answer. Transport
// failures, time-outs and oversized answers wrap ErrUnavailable; the status
// is the caller's to classify.
func (s *Service) Do(req *http.Request) (int, []byte, error) {
	resp, err := s.Client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			// url.Error repeats the URL, which for token_to query would
			// carry the token: report only the operation and the cause.
			err = uerr.Err
		}
		return 0, nil, unavailable(transportKind(err), "%v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, s.MaxBody+1))
	if err != nil {
		kind := FailGarbage // an answer begun and cut off
		if transportKind(err) == FailTimeout {
			kind = FailTimeout
		}
		return resp.StatusCode, nil, unavailable(kind, "reading answer: %v", err)
	}
	if int64(len(body)) > s.MaxBody {
		return resp.StatusCode, nil, unavailable(FailTooLarge, "answer larger than %d bytes", s.MaxBody)
	}
	return resp.StatusCode, body, nil
}

// forwardToken puts the credential on req the way it came: a cookie as a
// cookie (named cookieName, or the source's own name when that is empty),
// byte for byte; anything else as a bearer token.
func forwardToken(req *http.Request, cred Credential, cookieName string) {
	if cred.Source.From != FromCookie {
		req.Header.Set("Authorization", "Bearer "+cred.Value)
		return
	}
	if cookieName == "" {
		cookieName = cred.Source.Name
	}
	req.Header.Set("Cookie", cookieName+"="+cred.Value)
}

// StatusError classifies a status that is not a success: one of unauth
// wraps ErrUnauthenticated, anything else ErrUnavailable.
func StatusError(status int, unauth ...int) error {
	for _, u := range unauth {
		if status == u {
			return fmt.Errorf("%w: session service answered %d", ErrUnauthenticated, status)
		}
	}
	return unavailable(FailStatus, "session service answered %d", status)
}
