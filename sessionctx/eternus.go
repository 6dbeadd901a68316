package sessionctx

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/gjson"
)

func init() {
	registerDialect(&dialect{
		name:    "eternus",
		tokens:  []TokenSource{{From: FromBearer}},
		options: func() Options { return newEternusOptions() },
		extract: eternusExtractor,
		parts: func(opts Options) []TokenSource {
			return []TokenSource{opts.(*EternusOptions).sessionIDFrom()}
		},
		backend: func(svc *service, opts Options) (backend, error) {
			if err := opts.(*EternusOptions).validate(); err != nil {
				return nil, err
			}
			return &eternusBackend{svc: svc, now: time.Now}, nil
		},
		info: infoShape{render: renderEternusInfo, handles: isRead, productRead: eternusProductRead},
	})
}

// defaultEternusSessionIDHeader carries the ETERNUS session id when the
// token does not.
const defaultEternusSessionIDHeader = "X-Eternus-Session-Id"

// EternusOptions configure the eternus dialect.
type EternusOptions struct {
	// SessionIDFrom is where the session id is read when the token does
	// not carry it as <session_id>:<token>: a header, cookie or query
	// parameter. Default header X-Eternus-Session-Id.
	SessionIDFrom TokenSource `json:"session_id_from,omitzero"`
}

// newEternusOptions returns the defaults.
func newEternusOptions() *EternusOptions {
	return &EternusOptions{SessionIDFrom: TokenSource{From: FromHeader, Name: defaultEternusSessionIDHeader}}
}

// sessionIDFrom is SessionIDFrom, or the default header when unset.
func (o *EternusOptions) sessionIDFrom() TokenSource {
	if o.SessionIDFrom == (TokenSource{}) {
		return TokenSource{From: FromHeader, Name: defaultEternusSessionIDHeader}
	}
	return o.SessionIDFrom
}

// SetOption implements Options: `session_id_from header|cookie|query <name>`.
func (o *EternusOptions) SetOption(name string, args []string) error {
	if name != "session_id_from" {
		return fmt.Errorf("unrecognized eternus backend option %q", name)
	}
	if len(args) != 2 {
		return fmt.Errorf("session_id_from takes header|cookie|query <name>")
	}
	o.SessionIDFrom = TokenSource{From: args[0], Name: args[1]}
	return o.validate()
}

func (o *EternusOptions) validate() error {
	src := o.sessionIDFrom()
	if src.From == FromBearer {
		return fmt.Errorf("session_id_from: want header, cookie or query, not bearer (the bearer carries the token)")
	}
	if err := src.Validate(); err != nil {
		return fmt.Errorf("session_id_from: %w", err)
	}
	return nil
}

// eternusExtractor reads an ETERNUS credential: the token from the
// configured sources, and the session id either from the token itself
// (<session_id>:<token>) or from the session-id source. The credential's
// Value is always <session_id>:<token>, so the cache key covers both.
func eternusExtractor(opts Options) extractor {
	o, _ := opts.(*EternusOptions)
	if o == nil || o.validate() != nil {
		o = newEternusOptions()
	}
	idSrc := o.sessionIDFrom().Canonical()
	return func(r *http.Request, sources []TokenSource) (credential, error) {
		cred, err := extractToken(r, sources)
		if err != nil {
			return cred, err
		}
		if sid, tok, ok := strings.Cut(cred.Value, ":"); ok && validEternusSessionID(sid) && tok != "" {
			return cred, nil
		}
		sid, ok := lookup(r, idSrc)
		if !ok || sid == "" {
			return credential{Source: cred.Source}, fmt.Errorf("%w: no ETERNUS session id (in %s, or as <session_id>:<token>)", ErrUnauthenticated, idSrc)
		}
		if !validEternusSessionID(sid) {
			return credential{Source: cred.Source}, fmt.Errorf("%w: ETERNUS session id in %s is not a number", ErrUnauthenticated, idSrc)
		}
		cred.Value = sid + ":" + cred.Value
		if len(cred.Value) > maxTokenLen {
			return credential{Source: cred.Source}, fmt.Errorf("%w: credential longer than %d bytes", ErrUnauthenticated, maxTokenLen)
		}
		return cred, nil
	}
}

// validEternusSessionID accepts what ETERNUS issues: a decimal number.
func validEternusSessionID(s string) bool {
	if s == "" || len(s) > 19 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// eternusBackend reads the session resource that the credential names.
type eternusBackend struct {
	svc     *service
	now     func() time.Time
	byToken tokenIndex
}

// KeysOfToken implements tokenKeyer: the cache keys of every
// <session_id>:<token> credential resolved with token, so that a purge can
// name the token alone.
func (b *eternusBackend) KeysOfToken(token string) []Key { return b.byToken.keys(token) }

// tokenKeyer is a backend whose credentials hold more than the token (an
// ETERNUS session id and its token): it reports the cache keys of the
// credentials it resolved with a token, so a purge needs only the token.
type tokenKeyer interface {
	KeysOfToken(token string) []Key
}

// maxIndexedTokens bounds tokenIndex; past it, an arbitrary token's keys
// are dropped (a purge of that token then finds nothing to evict beyond
// the token's own credential forms).
const maxIndexedTokens = 1 << 16

// maxKeysPerToken bounds the session ids remembered for one token.
const maxKeysPerToken = 64

// tokenIndex maps the SHA-256 of a token to the cache keys it was seen
// under. It never holds a token in clear.
type tokenIndex struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]map[Key]struct{}
}

func (x *tokenIndex) add(token string, key Key) {
	h := sha256.Sum256([]byte(token))
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.m == nil {
		x.m = map[[sha256.Size]byte]map[Key]struct{}{}
	}
	set, ok := x.m[h]
	if !ok {
		if len(x.m) >= maxIndexedTokens {
			for k := range x.m {
				delete(x.m, k)
				break
			}
		}
		set = map[Key]struct{}{}
		x.m[h] = set
	}
	if len(set) < maxKeysPerToken {
		set[key] = struct{}{}
	}
}

func (x *tokenIndex) keys(token string) []Key {
	h := sha256.Sum256([]byte(token))
	x.mu.Lock()
	defer x.mu.Unlock()
	set := x.m[h]
	out := make([]Key, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	return out
}

// Resolve implements Backend.
func (b *eternusBackend) Resolve(ctx context.Context, cred credential) (*Session, error) {
	sid, tok, ok := strings.Cut(cred.Value, ":")
	if !ok || !validEternusSessionID(sid) || tok == "" {
		return nil, fmt.Errorf("%w: ETERNUS credential must be <session_id>:<token>", ErrUnauthenticated)
	}
	req, err := b.svc.NewRequest(ctx, http.MethodGet, b.svc.Endpoint("/api/v1/session/"+sid, ""), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	// The resolver caches this answer under keyOf(cred): remember it
	// under the token, for a purge that names the token alone. Before the
	// call, so that such a purge while it is in flight forgets this key
	// and the answer is not cached.
	b.byToken.add(tok, keyOf(cred))
	status, raw, err := b.svc.Do(req)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		// 401: the token is dead; 404: no such session; 403: the token
		// lives but names another session (a session can only read
		// itself): each a verdict on the credential.
		if !serviceAnswer(raw, "error_code") {
			// ETERNUS answers errors with {"error_code", "message"}:
			// another body is from what stands in front of the array.
			return nil, statusError(status)
		}
		return nil, statusError(status, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound)
	}
	s, err := decodeEternus(raw, b.now())
	if err != nil {
		return nil, err
	}
	if s.ID != "" && s.ID != sid {
		return nil, fmt.Errorf("%w: ETERNUS answered another session than the one asked", ErrUnavailable)
	}
	return s, nil
}

// decodeEternus maps a session resource to a session. lifetime is what
// the token has left and does not slide, so it dates the expiry from now.
func decodeEternus(raw []byte, now time.Time) (*Session, error) {
	doc, err := parseObject(raw, "eternus answer")
	if err != nil {
		return nil, err
	}
	user := str(doc, "user_name")
	if user == "" {
		return nil, fmt.Errorf("%w: eternus session names no user", ErrUnavailable)
	}
	s := &Session{
		ID:      str(doc, "session_id"),
		UserID:  user,
		User:    user,
		Perms:   list(doc, "auth_list"),
		Kind:    kindUser,
		Dialect: "eternus",
		Raw:     []byte(doc.Raw),
	}
	s.Admin = containsAny(s.Perms, []string{"User_Management"})
	if secs, ok := number(doc.Get("lifetime")); ok && secs < 1e9 {
		s.ExpiresAt = now.Add(secondsOf(secs))
	}
	if d := doc.Get("days_to_password_expiration"); d.Type == gjson.Number {
		s.Attrs = map[string]any{"days_to_password_expiration": d.Int()}
	}
	return s, nil
}
