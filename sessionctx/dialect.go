package sessionctx

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/sessiongate/caddy-sessiongate/internal/h1client"
)

// A dialect is one kind of session service, all in one value: where its
// clients put their tokens, how a credential is read, how the service is
// asked, and how its own clients read a session back (session_info).
// Each dialect registers itself from its own file's init, and everything
// else (the Caddyfile, validation messages, session_info, the admin
// purge, the docs checks, the cross-dialect tests) reads the registry:
// adding one is its file, its _info file, its tests and docs/dialects.md.
type dialect struct {
	// name is what users type after session_auth and session_info.
	name string
	// tokens are where tokens are read when the user configures none.
	tokens []TokenSource
	// bodyTokens are where the dialect's extract reads a token in the
	// request body (From fromBody), whatever sources are configured:
	// TR50's auth.sessionId. A token read there is keyed like any other,
	// so a logout or a purge of it ends it in every source.
	bodyTokens []TokenSource
	// options returns the dialect's default options; nil when it takes none.
	options func() Options
	// extract builds the credential reader from the options, for a
	// credential made of more than a token (ETERNUS: a session id too);
	// nil reads the token alone. The credential's Value is what the
	// cache hashes, so it must hold every part.
	extract func(opts Options) extractor
	// parts, when set, lists the sources besides the token that carry a
	// part of the credential (ETERNUS: the session-id header), so that
	// stripping the token strips them too.
	parts func(opts Options) []TokenSource
	// backend builds the client of the service from its options.
	backend func(svc *service, opts Options) (backend, error)
	// info is the product's own session API, as session_info answers it.
	info infoShape
}

// An extractor reads a credential from a request. Its error wraps
// ErrUnauthenticated, and the credential it returns with one still names
// the source, so that strip_token can keep a malformed token from the
// upstream.
type extractor func(r *http.Request, sources []TokenSource) (credential, error)

// backend asks one session service who owns a token.
type backend interface {
	// Resolve returns the live session that cred names. Its error wraps
	// ErrUnauthenticated when the service rejects the token and
	// ErrUnavailable when the service gave no usable answer.
	Resolve(ctx context.Context, cred credential) (*Session, error)
}

// Options are a dialect's own settings: *HTTPOptions, *EternusOptions or
// *VSphereOptions (the other dialects take none). SetOption takes one
// Caddyfile-style line, a name and its arguments, so a configuration
// front end can fill any dialect's options without knowing them.
type Options interface {
	SetOption(name string, args []string) error
}

// dialects is filled by the dialects' init functions and only read after.
var dialects = map[string]*dialect{}

func registerDialect(d *dialect) {
	if _, dup := dialects[d.name]; dup {
		panic("sessionctx: dialect registered twice: " + d.name)
	}
	dialects[d.name] = d
}

func lookupDialect(name string) (*dialect, error) {
	if d, ok := dialects[name]; ok {
		return d, nil
	}
	if name == "" {
		return nil, fmt.Errorf("no dialect (one of %s)", strings.Join(dialectNames(), ", "))
	}
	return nil, fmt.Errorf("unknown dialect %q (one of %s)", name, strings.Join(dialectNames(), ", "))
}

func dialectNames() []string { return slices.Sorted(maps.Keys(dialects)) }

// declaredTokens are where the dialect reads a token when none are
// configured, in order, then where it reads one in the request body
// whatever is configured.
func (d *dialect) declaredTokens() []TokenSource { return slices.Concat(d.tokens, d.bodyTokens) }

// DialectOptions returns the default options of the dialect called name,
// to be filled by SetOption or decoded from JSON and passed as
// Config.Options; nil for a dialect that takes none. An unknown name is
// an error that lists the known ones.
func DialectOptions(name string) (Options, error) {
	d, err := lookupDialect(name)
	if err != nil {
		return nil, err
	}
	if d.options == nil {
		return nil, nil
	}
	return d.options(), nil
}

// defaultTimeout bounds one session-service request when none is configured.
const defaultTimeout = 3 * time.Second

// errTimedOut is the cause of a session-service request's context that
// ran out of time.
var errTimedOut = errors.New("session service timeout")

// defaultMaxBody bounds a session-service answer when none is configured.
// Session objects are a few kilobytes; anything near this is garbage.
const defaultMaxBody = 1 << 20

// newBackend builds the client of the service that cfg names.
func newBackend(cfg Config) (backend, *dialect, error) {
	d, err := lookupDialect(cfg.Dialect)
	if err != nil {
		return nil, nil, err
	}
	opts, err := d.checkOptions(cfg.Options)
	if err != nil {
		return nil, nil, err
	}
	b, err := d.newBackend(cfg, opts)
	return b, d, err
}

// newBackend builds the client of this dialect's service at cfg's URL,
// with options that checkOptions returned.
func (d *dialect) newBackend(cfg Config, opts Options) (backend, error) {
	svc, err := newService(cfg)
	if err != nil {
		return nil, err
	}
	b, err := d.backend(svc, opts)
	if err != nil {
		return nil, fmt.Errorf("%s backend: %w", d.name, err)
	}
	return b, nil
}

// checkOptions returns the options to use: the defaults when none are
// given, else the given ones, which must be this dialect's own type.
func (d *dialect) checkOptions(opts Options) (Options, error) {
	if d.options == nil {
		if opts != nil {
			return nil, fmt.Errorf("dialect %s takes no options", d.name)
		}
		return nil, nil
	}
	def := d.options()
	if opts == nil {
		return def, nil
	}
	if reflect.TypeOf(opts) != reflect.TypeOf(def) {
		return nil, fmt.Errorf("dialect %s takes %T options, not %T", d.name, def, opts)
	}
	return opts, nil
}

// extractor returns how this dialect reads a credential, for options
// that checkOptions returned.
func (d *dialect) extractor(opts Options) extractor {
	if d.extract != nil {
		return d.extract(opts)
	}
	return extractToken
}

// service is the HTTP plumbing every dialect shares: where the service is,
// how to reach it, and how much of an answer to read.
type service struct {
	URL     *url.URL
	Client  *http.Client
	Header  http.Header
	MaxBody int64
	// Timeout bounds a request, its answer read in full.
	Timeout time.Duration
}

func newService(cfg Config) (*service, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("backend url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("backend url %q: want an absolute http:// or https:// URL", cfg.URL)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("timeout must not be negative")
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = defaultTimeout
	}
	maxBody := cfg.MaxBody
	if maxBody <= 0 {
		maxBody = defaultMaxBody
	}
	if cfg.Transport != nil {
		var set []string
		if cfg.TLSInsecureSkipVerify {
			set = append(set, "TLSInsecureSkipVerify")
		}
		if len(cfg.TLSTrustedCACerts) > 0 {
			set = append(set, "TLSTrustedCACerts")
		}
		if len(set) > 0 {
			return nil, fmt.Errorf("both Transport and %s are set: the TLS fields shape only the transport built when Transport is nil; set TLS on the Transport instead", strings.Join(set, " and "))
		}
	}
	tlsCfg := &tls.Config{InsecureSkipVerify: cfg.TLSInsecureSkipVerify} //nolint:gosec // opt-in, for self-signed session services
	if len(cfg.TLSTrustedCACerts) > 0 {
		pool := x509.NewCertPool()
		for _, f := range cfg.TLSTrustedCACerts {
			pem, err := os.ReadFile(f) //nolint:gosec // G304: CA files the operator configured
			if err != nil {
				return nil, fmt.Errorf("tls_trusted_ca_certs: %w", err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("tls_trusted_ca_certs: no PEM certificate in %s", f)
			}
		}
		tlsCfg.RootCAs = pool
	}
	transport := cfg.Transport
	if transport == nil {
		transport = h1client.New(plainTransport(tlsCfg))
	}
	return &service{
		URL: u,
		Client: &http.Client{
			Transport: transport,
			// A session service that redirects is answering for someone
			// else (a login page): never follow, classify the 3xx instead.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		Header:  cfg.Header,
		MaxBody: maxBody,
		Timeout: timeout,
	}, nil
}

// plainTransport is the session-service transport of a Go user who brings
// none: keep-alive connections. h1client carries its plain-http requests
// on the calling goroutine, and the transport the rest (https, a proxy
// from the environment). Its phases have no time-outs of their own:
// the request's deadline (service.Do) bounds them all, and is then the one
// that says a request took too long.
func plainTransport(tlsCfg *tls.Config) *http.Transport {
	return &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tlsCfg,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}
}

// Endpoint returns the service's base URL joined with path (and an
// optional raw query).
func (s *service) Endpoint(path, rawQuery string) string {
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
func (s *service) NewRequest(ctx context.Context, method, target string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, fmt.Errorf("%w: building request: %w", ErrUnavailable, err)
	}
	req.Header = make(http.Header, len(s.Header)+4)
	for k, v := range s.Header {
		req.Header[k] = v
	}
	// Shared values, never changed: the transport only reads them, and a
	// cold lookup saves an allocation for each.
	req.Header["Accept"] = acceptJSON
	req.Header["User-Agent"] = userAgent
	return req, nil
}

var (
	acceptJSON = []string{"application/json"}
	userAgent  = []string{"sessiongate"}
)

// Do sends req and reads at most MaxBody bytes of the answer. Transport
// failures, time-outs and oversized answers wrap ErrUnavailable; the status
// is the caller's to classify.
func (s *service) Do(req *http.Request) (int, []byte, error) {
	// The deadline is the request's context's, not http.Client.Timeout:
	// it then holds, and is reported the same way, whatever transport
	// the service is reached through.
	ctx, cancel := context.WithTimeoutCause(req.Context(), s.Timeout, errTimedOut)
	defer cancel()
	resp, err := s.Client.Do(req.WithContext(ctx))
	if err != nil {
		if errors.Is(context.Cause(ctx), errTimedOut) {
			return 0, nil, unavailable(FailureTimeout, "no answer within %v", s.Timeout)
		}
		var uerr *url.Error
		if errors.As(err, &uerr) {
			// url.Error repeats the URL, which for token_to query would
			// carry the token: report only the operation and the cause.
			err = uerr.Err
		}
		return 0, nil, unavailable(transportKind(err), "%v", err)
	}
	defer resp.Body.Close()
	body, err := readBody(resp, s.MaxBody)
	if err != nil {
		if errors.Is(context.Cause(ctx), errTimedOut) {
			return resp.StatusCode, nil, unavailable(FailureTimeout, "answer not read in full within %v", s.Timeout)
		}
		kind := FailureGarbage // an answer begun and cut off
		if transportKind(err) == FailureTimeout {
			kind = FailureTimeout
		}
		return resp.StatusCode, nil, unavailable(kind, "reading answer: %v", err)
	}
	if int64(len(body)) > s.MaxBody {
		return resp.StatusCode, nil, unavailable(FailureTooLarge, "answer larger than %d bytes", s.MaxBody)
	}
	return resp.StatusCode, body, nil
}

// forwardToken puts the credential on req the way it came: a cookie as a
// cookie (named cookieName, or the source's own name when that is empty),
// byte for byte; anything else as a bearer token.
func forwardToken(req *http.Request, cred credential, cookieName string) {
	if cred.Source.From != FromCookie {
		req.Header.Set("Authorization", "Bearer "+cred.Value)
		return
	}
	if cookieName == "" {
		cookieName = cred.Source.Name
	}
	req.Header.Set("Cookie", cookieName+"="+cred.Value)
}

// statusError classifies a status that is not a success: one of unauth
// wraps ErrUnauthenticated, anything else ErrUnavailable.
func statusError(status int, unauth ...int) error {
	for _, u := range unauth {
		if status == u {
			return fmt.Errorf("%w: session service answered %d", ErrUnauthenticated, status)
		}
	}
	return unavailable(FailureStatus, "session service answered %d", status)
}

// readBody reads at most limit+1 bytes of the answer: into one buffer of
// the announced length when there is one (a cold lookup's answer is read
// without the doublings of io.ReadAll), as io.ReadAll does otherwise.
func readBody(resp *http.Response, limit int64) ([]byte, error) {
	r := io.LimitReader(resp.Body, limit+1)
	if n := resp.ContentLength; n >= 0 && n <= limit {
		buf := make([]byte, 0, n+1)
		for {
			m, err := r.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+m]
			if err == io.EOF {
				return buf, nil
			}
			if err != nil {
				return buf, err
			}
			if len(buf) == cap(buf) {
				// Longer than announced: read the rest as ReadAll would.
				rest, err := io.ReadAll(r)
				return append(buf, rest...), err
			}
		}
	}
	return io.ReadAll(r)
}
