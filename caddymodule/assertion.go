package caddymodule

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// Defaults of the assertion block.
const (
	DefaultAssertionHeader   = "X-Session-Assertion"
	DefaultAssertionJWKSPath = "/.well-known/sessiongate/jwks.json"
	defaultAssertionTTL      = time.Minute
)

// jwksMaxAge is how long verifiers may cache the key set: short, so a key
// added for a rotation is seen soon (the JOSE libraries also fetch the set
// again when a token names a kid they do not know).
const jwksMaxAge = 5 * time.Minute

// AssertionConfig has session_auth sign the identity it injects as a JWT
// (an identity assertion), so that an app reachable by some path that
// bypasses the proxy can tell headers sessiongate set from forged ones,
// and publishes the public keys as a JWKS for the app to verify it with.
type AssertionConfig struct {
	// Keys are the private keys, PKCS#8 PEM: EC P-256 (ES256) or Ed25519
	// (EdDSA). Each is a file name or, once its {env.*} and {file.*}
	// placeholders are expanded, the PEM itself. The first signs; all are
	// published in this order. RSA keys are refused. Required.
	Keys []string `json:"keys,omitempty"`
	// Header carries the assertion to the upstream; it is stripped from
	// client requests like every identity header. Default
	// X-Session-Assertion.
	Header string `json:"header,omitempty"`
	// Issuer is the iss claim. May use {env.*}. Default the request's
	// scheme://host.
	Issuer string `json:"issuer,omitempty"`
	// Audience is the aud claim, one value or several. May use {env.*}.
	// Default the request's scheme://host.
	Audience []string `json:"audience,omitempty"`
	// TTL is the assertion's lifetime; an assertion never outlives its
	// session's own expiry. Default 1m.
	TTL caddy.Duration `json:"ttl,omitempty"`
	// JWKSPath is the request path session_auth answers with the public
	// keys (a JWK set), before any token handling: no session needed.
	// Default /.well-known/sessiongate/jwks.json.
	JWKSPath string `json:"jwks_path,omitempty"`
}

// headerName is the canonical name of the assertion header, "" without
// an assertion block.
func (a *AssertionConfig) headerName() string {
	if a == nil {
		return ""
	}
	if a.Header == "" {
		return DefaultAssertionHeader
	}
	return http.CanonicalHeaderKey(a.Header)
}

// reservedAssertionHeaders are names the assertion header must not take:
// stripping them from every client request would break the request (its
// cookies, its credentials, its framing).
var reservedAssertionHeaders = []string{
	"Authorization", "Proxy-Authorization", "Cookie", "Host", "Connection",
	"Content-Length", "Content-Type", "Transfer-Encoding", "Te", "Trailer",
	"Upgrade", "Keep-Alive",
}

// validate checks the settings; the keys are read by provision. h is the
// session_auth around the block, whose other header names the assertion
// header must not reuse.
func (a *AssertionConfig) validate(h *SessionAuth) error {
	if a.Header != "" && !isHeaderName(a.Header) {
		return fmt.Errorf("assertion header %q: not a header name", a.Header)
	}
	name := foldName(a.headerName())
	taken := append([]string{}, reservedAssertionHeaders...)
	taken = append(taken, presetHeaderNames()...)
	prefix := h.HeaderPrefix
	if prefix == "" {
		prefix = DefaultHeaderPrefix
	}
	for _, s := range defaultSuffixes {
		taken = append(taken, prefix+s)
	}
	for n := range h.Headers {
		taken = append(taken, n)
	}
	for _, t := range h.Tokens {
		if t.From == sessionctx.FromHeader {
			taken = append(taken, t.Name)
		}
	}
	for _, t := range taken {
		if foldName(t) == name {
			return fmt.Errorf("assertion header %q: the name is taken (%s)", a.headerName(), t)
		}
	}
	if a.TTL < 0 {
		return fmt.Errorf("assertion ttl must not be negative (got %s)", time.Duration(a.TTL))
	}
	if p := a.JWKSPath; p != "" && (!strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?# \t\r\n")) {
		return fmt.Errorf("assertion jwks_path %q: want a path starting with / (no query)", p)
	}
	for _, aud := range a.Audience {
		if strings.TrimSpace(aud) == "" {
			return errors.New("assertion audience: an empty value")
		}
	}
	if len(a.Keys) == 0 {
		return missingError("assertion needs a key: key <pem-file...> (EC P-256 or Ed25519, PKCS#8)")
	}
	for i, k := range a.Keys {
		if strings.TrimSpace(k) == "" {
			return fmt.Errorf("assertion key %d: empty", i+1)
		}
		if strings.Contains(k, "-----BEGIN") {
			// Never echoed: the config is saved and served by the admin API.
			return fmt.Errorf("assertion key %d: a PEM written into the config, which Caddy saves and shows on its admin API: give a file name, {env.*} or {file.*}", i+1)
		}
	}
	return nil
}

// assertionKey is one loaded key: what the JWKS and the admin stats show
// of it. The private half stays inside the signer.
type assertionKey struct {
	kid string
	alg jose.SignatureAlgorithm
	pub crypto.PublicKey
}

// assertionSigner is a provisioned assertion block: the keys, the JOSE
// signer of the first one, the JWKS answer made once, and the settings
// with their defaults in place.
type assertionSigner struct {
	header   string
	issuer   string   // "" for the request's origin
	audience []string // nil for the request's origin
	ttl      time.Duration
	jwksPath string
	keys     []assertionKey
	signer   jose.Signer
	jwks     []byte
	sidKey   []byte // keys the sid claim (HMAC-SHA256)
	now      func() time.Time
	signed   atomic.Uint64 // assertions signed, for the admin stats
}

// provision loads the keys and builds the signer. Every key is checked
// here, so a bad one stops the config from loading, named by what the
// config says of it (its file or its placeholder), never by its content.
func (a *AssertionConfig) provision() (*assertionSigner, error) {
	if a == nil {
		return nil, nil
	}
	s := &assertionSigner{
		header:   a.headerName(),
		ttl:      time.Duration(a.TTL),
		jwksPath: a.JWKSPath,
		now:      time.Now,
	}
	if s.ttl == 0 {
		s.ttl = defaultAssertionTTL
	}
	if s.jwksPath == "" {
		s.jwksPath = DefaultAssertionJWKSPath
	}
	var err error
	if s.issuer, err = expandPlaceholders("assertion issuer", a.Issuer); err != nil {
		return nil, err
	}
	if a.Issuer != "" && strings.TrimSpace(s.issuer) == "" {
		return nil, fmt.Errorf("assertion issuer %q: empty once expanded", a.Issuer)
	}
	for _, aud := range a.Audience {
		v, err := expandPlaceholders("assertion audience", aud)
		if err != nil {
			return nil, err
		}
		if strings.TrimSpace(v) == "" {
			return nil, fmt.Errorf("assertion audience %q: empty once expanded", aud)
		}
		s.audience = append(s.audience, v)
	}
	var set jose.JSONWebKeySet
	for i, ref := range a.Keys {
		priv, err := loadAssertionKey(ref)
		if err != nil {
			return nil, fmt.Errorf("assertion key %d (%s): %w", i+1, ref, err)
		}
		k := assertionKey{alg: jose.EdDSA}
		if ec, ok := priv.(*ecdsa.PrivateKey); ok {
			k.alg, k.pub = jose.ES256, ec.Public()
		} else {
			k.pub = priv.(ed25519.PrivateKey).Public()
		}
		thumb, err := (&jose.JSONWebKey{Key: k.pub}).Thumbprint(crypto.SHA256)
		if err != nil {
			return nil, fmt.Errorf("assertion key %d (%s): %w", i+1, ref, err)
		}
		k.kid = base64.RawURLEncoding.EncodeToString(thumb)
		if slices.ContainsFunc(s.keys, func(o assertionKey) bool { return o.kid == k.kid }) {
			return nil, fmt.Errorf("assertion key %d (%s): the same key is given twice", i+1, ref)
		}
		s.keys = append(s.keys, k)
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.pub, KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"})
		if i > 0 {
			continue
		}
		s.signer, err = jose.NewSigner(
			jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: priv, KeyID: k.kid, Algorithm: string(k.alg)}},
			(&jose.SignerOptions{}).WithType("JWT"))
		if err != nil {
			return nil, fmt.Errorf("assertion key %d (%s): %w", i+1, ref, err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return nil, fmt.Errorf("assertion key %d (%s): %w", i+1, ref, err)
		}
		// Every node with the same signing key derives the same sid key,
		// so a session has one sid across a cluster.
		if s.sidKey, err = hkdf.Key(sha256.New, der, nil, "sessiongate assertion sid", 32); err != nil {
			return nil, err
		}
	}
	if s.jwks, err = json.Marshal(set); err != nil {
		return nil, fmt.Errorf("assertion keys: %w", err)
	}
	return s, nil
}

// loadAssertionKey reads one key: ref is a file name, or a PEM given
// through a placeholder. Errors say what is wrong with the key, never
// what it holds.
func loadAssertionKey(ref string) (crypto.Signer, error) {
	v, err := expandPlaceholders("assertion key", ref)
	if err != nil {
		return nil, err
	}
	raw := []byte(v)
	if !strings.HasPrefix(strings.TrimSpace(v), "-----BEGIN") {
		if raw, err = os.ReadFile(v); err != nil { //nolint:gosec // G304: a key file the operator configured
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err // the path is named already
			}
			return nil, fmt.Errorf("cannot read the key file: %w", err)
		}
	}
	block, rest := pem.Decode(raw)
	if block == nil {
		return nil, errors.New("no PEM block: want a PKCS#8 private key (-----BEGIN PRIVATE KEY-----)")
	}
	if next, _ := pem.Decode(rest); next != nil {
		return nil, errors.New("more than one PEM block: want one PKCS#8 private key per file")
	}
	switch block.Type {
	case "PRIVATE KEY":
	case "PUBLIC KEY", "CERTIFICATE":
		return nil, fmt.Errorf("a %s, not a private key", strings.ToLower(block.Type))
	case "EC PRIVATE KEY", "RSA PRIVATE KEY", "OPENSSH PRIVATE KEY":
		return nil, fmt.Errorf("%s is not PKCS#8: convert it with openssl pkcs8 -topk8 -nocrypt", block.Type)
	case "ENCRYPTED PRIVATE KEY":
		return nil, errors.New("an encrypted key: want an unencrypted PKCS#8 key (keep the file readable by Caddy only)")
	default:
		return nil, fmt.Errorf("a PEM block of type %q, not a PKCS#8 private key", block.Type)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, errors.New("not a valid PKCS#8 private key")
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("an EC key on %s: want P-256 (ES256) or Ed25519 (EdDSA)", k.Curve.Params().Name)
		}
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	case *rsa.PrivateKey:
		return nil, errors.New("an RSA key: want EC P-256 (ES256) or Ed25519 (EdDSA)")
	default:
		return nil, fmt.Errorf("a %T key: want EC P-256 (ES256) or Ed25519 (EdDSA)", key)
	}
}

// serveJWKS answers a request for the key set.
func (s *assertionSigner) serveJWKS(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return caddyhttp.Error(http.StatusMethodNotAllowed, fmt.Errorf("%s of the JWKS", r.Method))
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/jwk-set+json")
	hdr.Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(jwksMaxAge/time.Second)))
	// Public keys: any page may fetch them.
	hdr.Set("Access-Control-Allow-Origin", "*")
	hdr.Set("Content-Length", fmt.Sprint(len(s.jwks)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	_, err := w.Write(s.jwks) //nolint:gosec // G705: the JWKS is made at provision from our own public keys, not from a request
	return err
}

// signedAssertion is an assertion made for one session (the identity it
// is kept with), one signer and, when the issuer or the audience is the
// request's own, one origin.
type signedAssertion struct {
	signer  *assertionSigner
	tls     bool
	host    string
	token   string
	renewAt time.Time // half its lifetime
}

// maxAssertionsPerSession bounds the assertions kept with one session: a
// handful of sites (origins) or handlers use it at once; past that the
// oldest makes room.
const maxAssertionsPerSession = 4

// assertions are the assertions kept with one cached session, replaced
// whole (copy on write) so that a request reads them without a lock.
type assertions struct {
	list atomic.Pointer[[]*signedAssertion]
}

// perOrigin reports whether the assertion depends on the request's
// origin.
func (s *assertionSigner) perOrigin() bool { return s.issuer == "" || len(s.audience) == 0 }

// matches reports whether a is s's assertion for a request to host.
func (a *signedAssertion) matches(s *assertionSigner, tls bool, host string) bool {
	return a.signer == s && (!s.perOrigin() || (a.tls == tls && a.host == host))
}

// assertion is the assertion for the request's session: the one kept
// with the session while it is less than half its lifetime old, else a
// new one. nil when the session expires within the second.
func (s *assertionSigner) assertion(r *http.Request, id *identity, key sessionctx.Key) (*signedAssertion, error) {
	now := s.now()
	tls := r.TLS != nil
	if list := id.assertions.list.Load(); list != nil {
		for _, a := range *list {
			if a.matches(s, tls, r.Host) && now.Before(a.renewAt) {
				return a, nil
			}
		}
	}
	a, err := s.sign(now, tls, r.Host, id.session, key)
	if a == nil || err != nil {
		return nil, err
	}
	for {
		old := id.assertions.list.Load()
		var list []*signedAssertion
		if old != nil {
			for _, o := range *old {
				if o.matches(s, tls, r.Host) || !now.Before(o.renewAt) {
					continue // replaced, or due for renewal anyway
				}
				list = append(list, o)
			}
		}
		if len(list) >= maxAssertionsPerSession {
			list = list[len(list)-maxAssertionsPerSession+1:]
		}
		list = append(list, a)
		if id.assertions.list.CompareAndSwap(old, &list) {
			return a, nil
		}
	}
}

// assertionClaims are the JWT's claims: the registered ones and the
// normalized session's.
type assertionClaims struct {
	jwt.Claims
	User  string   `json:"user,omitempty"`
	Name  string   `json:"name,omitempty"`
	Email string   `json:"email,omitempty"`
	Roles []string `json:"roles,omitempty"`
	Perms []string `json:"perms,omitempty"`
	Org   string   `json:"org,omitempty"`
	OrgID string   `json:"org_id,omitempty"`
	App   string   `json:"app,omitempty"`
	AppID string   `json:"app_id,omitempty"`
	Admin bool     `json:"admin"`
	Kind  string   `json:"kind,omitempty"`
	SID   string   `json:"sid,omitempty"`
}

// sign makes a new assertion for session ss. Times are whole seconds (as
// JWT has them): exp is rounded down, so it never passes the session's
// expiry; a session that ends within the second gets none.
func (s *assertionSigner) sign(now time.Time, tls bool, host string, ss *sessionctx.Session, key sessionctx.Key) (*signedAssertion, error) {
	iat := now.Truncate(time.Second)
	exp := iat.Add(s.ttl).Truncate(time.Second)
	if end := ss.ExpiresAt; !end.IsZero() && end.Before(exp) {
		exp = end.Truncate(time.Second)
	}
	if !exp.After(iat) {
		return nil, nil
	}
	origin := ""
	if s.perOrigin() {
		scheme := "http://"
		if tls {
			scheme = "https://"
		}
		origin = scheme + strings.ToLower(host)
	}
	iss, aud := s.issuer, jwt.Audience(s.audience)
	if iss == "" {
		iss = origin
	}
	if len(aud) == 0 {
		aud = jwt.Audience{origin}
	}
	var jti [16]byte
	rand.Read(jti[:])
	c := assertionClaims{
		Claims: jwt.Claims{
			Issuer:    iss,
			Subject:   ss.UserID,
			Audience:  aud,
			IssuedAt:  jwt.NewNumericDate(iat),
			NotBefore: jwt.NewNumericDate(iat),
			Expiry:    jwt.NewNumericDate(exp),
			ID:        base64.RawURLEncoding.EncodeToString(jti[:]),
		},
		User: ss.User, Name: ss.Name, Email: ss.Email,
		Roles: ss.Roles, Perms: ss.Perms, Org: ss.Org, OrgID: ss.OrgID,
		Admin: ss.Admin, Kind: kindOf(ss), SID: s.sid(ss, key),
	}
	if ss.IsApp() {
		// As in the headers, an application is never named where a
		// user is: an app reading sub or user must not take an
		// application called alice for the user alice.
		c.Subject, c.User = "app:"+ss.UserID, ""
		c.App, c.AppID = ss.User, ss.UserID
	}
	tok, err := jwt.Signed(s.signer).Claims(c).Serialize()
	if err != nil {
		return nil, fmt.Errorf("signing the assertion: %w", err)
	}
	s.signed.Add(1)
	return &signedAssertion{signer: s, tls: tls, host: host, token: tok, renewAt: iat.Add(exp.Sub(iat) / 2)}, nil
}

// sid names the session without revealing its id or token: an HMAC of
// the session id (of the token's cache key when the service gave none).
func (s *assertionSigner) sid(ss *sessionctx.Session, key sessionctx.Key) string {
	m := hmac.New(sha256.New, s.sidKey)
	if ss.ID != "" {
		m.Write([]byte("id\x00"))
		m.Write([]byte(ss.ID))
	} else {
		m.Write([]byte("key\x00"))
		m.Write(key[:])
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// assertionVar is the key of the request's assertion in its Caddy vars,
// for session_info.
const assertionVar = "sessiongate.assertion"

// injectAssertion sets the assertion header for the upstream and keeps
// the assertion in the request's vars. A request whose assertion cannot
// be made goes on without one: the header was stripped, so the upstream
// sees none rather than a forged one.
func (h *SessionAuth) injectAssertion(r *http.Request, id *identity, key sessionctx.Key) {
	a, err := h.assertion.assertion(r, id, key)
	if err != nil {
		if ce := h.logger.Check(zapcore.ErrorLevel, "no identity assertion"); ce != nil {
			ce.Write(zap.Error(err))
		}
		return
	}
	if a == nil {
		return
	}
	r.Header[h.assertion.header] = []string{a.token}
	caddyhttp.SetVar(r.Context(), assertionVar, a)
}

// requestAssertion is the assertion session_auth made for this request.
func requestAssertion(r *http.Request) (string, bool) {
	a, ok := caddyhttp.GetVar(r.Context(), assertionVar).(*signedAssertion)
	if !ok || a == nil {
		return "", false
	}
	return a.token, true
}

// parseAssertion reads the assertion block. Syntax:
//
//	assertion {
//	    key <pem-file...>
//	    header <name>
//	    issuer <url>
//	    audience <value...>
//	    ttl <duration>
//	    jwks_path <path>
//	}
func parseAssertion(d *caddyfile.Dispenser) (*AssertionConfig, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	a := new(AssertionConfig)
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		if seen[sub] && sub != "key" && sub != "audience" {
			return nil, d.Errf("assertion %s given twice", sub)
		}
		seen[sub] = true
		switch sub {
		case "key":
			keys := d.RemainingArgs()
			if len(keys) == 0 {
				return nil, d.Err("want key <pem-file...>")
			}
			a.Keys = append(a.Keys, keys...)
		case "header":
			if !d.AllArgs(&a.Header) || a.Header == "" {
				return nil, d.Err("want header <name>")
			}
		case "issuer":
			if !d.AllArgs(&a.Issuer) || a.Issuer == "" {
				return nil, d.Err("want issuer <url>")
			}
		case "audience":
			aud := d.RemainingArgs()
			if len(aud) == 0 {
				return nil, d.Err("want audience <value...>")
			}
			a.Audience = append(a.Audience, aud...)
		case "ttl":
			if err := parseDuration(d, &a.TTL); err != nil {
				return nil, err
			}
			if a.TTL <= 0 {
				return nil, d.Err("assertion ttl must be positive")
			}
		case "jwks_path":
			if !d.AllArgs(&a.JWKSPath) || a.JWKSPath == "" {
				return nil, d.Err("want jwks_path <path>")
			}
		default:
			return nil, d.Errf("unrecognized assertion subdirective %q", sub)
		}
	}
	return a, nil
}

// AssertionStats is one assertion block's line in GET /sessiongate/stats:
// its keys by kid only.
type AssertionStats struct {
	Header     string   `json:"header"`
	JWKSPath   string   `json:"jwks_path"`
	SigningKID string   `json:"signing_kid"`
	KIDs       []string `json:"kids"`
	Signed     uint64   `json:"signed"`
}

// liveSigners are the provisioned assertion blocks, for the admin stats.
var liveSigners = struct {
	sync.Mutex
	m map[*assertionSigner]struct{}
}{m: map[*assertionSigner]struct{}{}}

func (s *assertionSigner) register() {
	liveSigners.Lock()
	liveSigners.m[s] = struct{}{}
	liveSigners.Unlock()
}

func (s *assertionSigner) unregister() {
	liveSigners.Lock()
	delete(liveSigners.m, s)
	liveSigners.Unlock()
}

// assertionStats lists the live assertion blocks, in a stable order.
func assertionStats() []AssertionStats {
	liveSigners.Lock()
	out := make([]AssertionStats, 0, len(liveSigners.m))
	for s := range liveSigners.m {
		st := AssertionStats{Header: s.header, JWKSPath: s.jwksPath, SigningKID: s.keys[0].kid, Signed: s.signed.Load()}
		for _, k := range s.keys {
			st.KIDs = append(st.KIDs, k.kid)
		}
		out = append(out, st)
	}
	liveSigners.Unlock()
	slices.SortFunc(out, func(a, b AssertionStats) int {
		return strings.Compare(a.SigningKID+a.Header+a.JWKSPath, b.SigningKID+b.Header+b.JWKSPath)
	})
	return out
}

// withAssertion adds the request's own assertion to session_info's
// normalized answer when the query asks for it (?assertion=1), for a
// single-page app that passes it on to an API of its own. The session is
// the request's, so a caller only ever gets its own session's assertion.
func withAssertion(body []byte, r *http.Request, query url.Values) []byte {
	if v := query.Get("assertion"); v != "1" && v != "true" {
		return body
	}
	tok, ok := requestAssertion(r)
	trimmed := bytes.TrimRight(body, " \t\r\n")
	if !ok || len(trimmed) < 2 || trimmed[0] != '{' || trimmed[len(trimmed)-1] != '}' {
		return body
	}
	quoted, _ := json.Marshal(tok)
	out := make([]byte, 0, len(trimmed)+len(quoted)+16)
	out = append(out, trimmed[:len(trimmed)-1]...)
	if len(bytes.TrimSpace(trimmed[1:len(trimmed)-1])) > 0 {
		out = append(out, ',')
	}
	out = append(out, `"assertion":`...)
	out = append(out, quoted...)
	return append(out, '}')
}

// jwksMatcherSet is the matcher set of the JWKS path, nil without an
// assertion block: the Caddyfile ORs it with session_auth's own matcher,
// so that the keys are answered even where the matcher covers only the
// app's paths.
func (a *AssertionConfig) jwksMatcherSet() caddy.ModuleMap {
	if a == nil {
		return nil
	}
	path := a.JWKSPath
	if path == "" {
		path = DefaultAssertionJWKSPath
	}
	return caddy.ModuleMap{"path": caddyconfig.JSON(caddyhttp.MatchPath{path}, nil)}
}
