// Package sessionctx turns a session token into normalized session
// information by asking the session service that issued it, and carries that
// information through a request's context.
//
// It imports nothing from Caddy, so an upstream written in Go, or another
// proxy, can resolve sessions with the same dialects and cache that the
// sessiongate Caddy plugin uses. One Client per session service, shared by
// every request (the cache, and the collapsing of concurrent misses into
// one service call, live in it):
//
//	client, err := sessionctx.New(sessionctx.Config{Dialect: "http", URL: "https://auth.internal/whoami"})
//	...
//	res, err := client.Authenticate(r) // per request
//
// The client reads the credential where the dialect's clients send it (or
// where Config.Tokens says), so reading and resolving cannot disagree:
// an ETERNUS credential is a session id and a token, a TR50 one may sit in
// the request body.
//
// Errors that a caller must tell apart wrap ErrUnauthenticated (no token,
// or one that names no live session: answer 401) or ErrUnavailable (the
// session service could not answer: answer 503, never 401, since the token
// may be fine), so errors.Is picks the right response. The package examples
// show the whole round trip against a test session service.
package sessionctx

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Outcomes a caller must tell apart. Errors from this package wrap one of
// them.
var (
	// ErrUnauthenticated means there is no token, or the session service
	// says the token names no live session.
	ErrUnauthenticated = errors.New("unauthenticated")

	// ErrUnavailable means the session service could not give an answer:
	// refused, timed out, answered an unexpected status or garbage. It is
	// never a verdict on the token and is never cached.
	ErrUnavailable = errors.New("session service unavailable")
)

// errAmbiguous means the request carries its credential in a form that
// parsers may read differently (a TR50 envelope with two sessionId keys),
// or names two different sessions: Result.Ambiguous tells the caller to
// answer 400. It wraps ErrUnauthenticated, so a caller that does not look
// still refuses the request.
var errAmbiguous = fmt.Errorf("%w: ambiguous credential", ErrUnauthenticated)

// Kinds of session.
const (
	kindUser = "user"
	kindApp  = "app"
)

// Session is the normalized session information, the same whatever dialect
// the session service speaks. Its JSON form is the default answer of
// session_info.
type Session struct {
	ID             string         `json:"id,omitempty"`
	UserID         string         `json:"user_id,omitempty"`
	User           string         `json:"user,omitempty"`
	Email          string         `json:"email,omitempty"`
	Name           string         `json:"name,omitempty"`
	OrgID          string         `json:"org_id,omitempty"`
	Org            string         `json:"org,omitempty"`
	Roles          []string       `json:"roles,omitempty"`
	Perms          []string       `json:"perms,omitempty"`
	Admin          bool           `json:"admin,omitempty"`
	Kind           string         `json:"kind,omitempty"`
	CreatedAt      time.Time      `json:"created_at,omitzero"`
	LastAccessedAt time.Time      `json:"last_accessed_at,omitzero"`
	ExpiresAt      time.Time      `json:"expires_at,omitzero"`
	Attrs          map[string]any `json:"attrs,omitempty"`

	// Dialect names the dialect that produced the session, and Raw holds
	// the session service's own answer (the session object, without any
	// envelope), so that the session can be rendered back faithfully in
	// that dialect's shape.
	Dialect string `json:"-"`
	Raw     []byte `json:"-"`

	// MissingPaths lists the paths of an http mapping that the answer
	// did not hold (their fields are empty), for a debug log line.
	MissingPaths []string `json:"-"`
}

// dropUnwritableTimes forgets dates outside the years JSON (RFC 3339) can
// write, whatever a dialect computed from a service's numbers, so that a
// session can always be rendered; a dropped expiry leaves cache_ttl to
// bound the session.
func (s *Session) dropUnwritableTimes() {
	for _, t := range []*time.Time{&s.CreatedAt, &s.LastAccessedAt, &s.ExpiresAt} {
		if y := t.Year(); !t.IsZero() && (y < 1 || y > 9999) {
			*t = time.Time{}
		}
	}
}

// needsPrincipal refuses a session that names no one: the answer is
// unusable, and why says what was missing. Neither of User and UserID
// stands in for the other: an id copied from a name would pass an id
// rule for whoever picked that name. A dialect whose product gives one
// value for both (vSphere's and ETERNUS's user) sets both itself.
func (s *Session) needsPrincipal(why string) error {
	if s.UserID == "" && s.User == "" {
		return fmt.Errorf("%w: %s", ErrUnavailable, why)
	}
	return nil
}

// IsApp reports whether the session is an application's (a TR50
// application token), not a person's: User and UserID then hold the
// application's name and id, which no user rule may take for a user's.
func (s *Session) IsApp() bool { return s.Kind == kindApp }

// HasRole reports whether the session has any of the roles.
func (s *Session) HasRole(roles ...string) bool { return containsAny(s.Roles, roles) }

// HasPerms reports whether the session has every one of the permissions.
func (s *Session) HasPerms(perms ...string) bool {
	for _, p := range perms {
		if !containsAny(s.Perms, []string{p}) {
			return false
		}
	}
	return true
}

func containsAny(have, want []string) bool {
	return slices.ContainsFunc(want, func(w string) bool { return slices.Contains(have, w) })
}

type ctxKey struct{}

// NewContext returns a copy of ctx carrying s.
func NewContext(ctx context.Context, s *Session) context.Context {
	return context.WithValue(ctx, ctxKey{}, s)
}

// FromContext returns the session that NewContext stored in ctx.
func FromContext(ctx context.Context) (*Session, bool) {
	s, ok := ctx.Value(ctxKey{}).(*Session)
	return s, ok && s != nil
}
