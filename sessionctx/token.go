package sessionctx

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/sessiongate/caddy-sessiongate/internal/headername"
)

// Where a token can be read from.
const (
	FromCookie = "cookie"
	FromHeader = "header"
	FromBearer = "bearer"
	FromQuery  = "query"
)

// fromBody names a token a dialect reads in the request body, at the
// GJSON path in Name (TR50's auth.sessionId): never configured, only
// declared by a dialect, and reported as a credential's source.
const fromBody = "body"

// maxTokenLen bounds a token. Real session tokens are far shorter; a longer
// one is rejected before it costs a hash or a session-service call.
const maxTokenLen = 4096

// TokenSource is one place a token is read from.
type TokenSource struct {
	// From is cookie, header, bearer or query (or body, for a token a
	// dialect reads in the request body: TR50's auth.sessionId).
	From string `json:"from"`
	// Name is the cookie, header or query parameter name. Unused for bearer.
	Name string `json:"name,omitempty"`
	// Prefix, for a header, must start the value and is cut from it
	// (compared without regard to case, like an auth scheme).
	Prefix string `json:"prefix,omitempty"`
}

// Validate checks that the source is complete.
func (s TokenSource) Validate() error {
	switch s.From {
	case FromBearer:
		if s.Name != "" || s.Prefix != "" {
			return fmt.Errorf("token source bearer takes no name or prefix")
		}
		return nil
	case FromCookie, FromHeader, FromQuery:
		if s.Name == "" {
			return fmt.Errorf("token source %s needs a name", s.From)
		}
		if s.Prefix != "" && s.From != FromHeader {
			return fmt.Errorf("token source %s takes no prefix", s.From)
		}
		return nil
	default:
		return fmt.Errorf("unknown token source %q (want cookie, header, bearer or query)", s.From)
	}
}

// Canonical returns the source with a header name in canonical form, so
// that lookups on the request path need no canonicalization.
func (s TokenSource) Canonical() TokenSource {
	if s.From == FromHeader {
		s.Name = http.CanonicalHeaderKey(s.Name)
	}
	return s
}

func (s TokenSource) String() string {
	if s.From == FromBearer {
		return s.From
	}
	return s.From + " " + s.Name
}

// credential is a token as read from a request.
type credential struct {
	// Value is the token, byte for byte as the client sent it (for a
	// header: after the prefix).
	Value string
	// Source tells where it was found; some dialects send it on in the
	// same form (Amplify: a cookie stays a cookie, a bearer stays a bearer).
	Source TokenSource
}

// Extract reads the token from the first source, in order, that carries a
// non-empty one. Later sources are not consulted, so a client cannot pick
// which of two tokens wins by sending both: the configured order decides.
// A token that is too long or holds control characters is reported as
// found but malformed: the caller must reject it, not fall through to
// another source. The credential returned with that error names the
// Source (never the Value), so that strip_token can still keep the
// malformed token from the upstream.
func extractToken(r *http.Request, sources []TokenSource) (credential, error) {
	for _, src := range sources {
		v, ok := lookup(r, src)
		if !ok || v == "" {
			continue
		}
		if err := checkToken(v); err != nil {
			return credential{Source: src}, fmt.Errorf("%w: token in %s: %w", ErrUnauthenticated, src, err)
		}
		return credential{Value: v, Source: src}, nil
	}
	return credential{}, fmt.Errorf("%w: no session token", ErrUnauthenticated)
}

func checkToken(v string) error {
	if len(v) > maxTokenLen {
		return fmt.Errorf("longer than %d bytes", maxTokenLen)
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("control character")
		}
	}
	return nil
}

func lookup(r *http.Request, src TokenSource) (string, bool) {
	switch src.From {
	case FromCookie:
		return cookieValue(r.Header["Cookie"], src.Name)
	case FromHeader:
		return headerValue(r.Header, src.Name, src.Prefix)
	case FromBearer:
		return headerValue(r.Header, "Authorization", "Bearer ")
	case FromQuery:
		return queryValue(r.URL.RawQuery, src.Name)
	}
	return "", false
}

func headerValue(h http.Header, name, prefix string) (string, bool) {
	vals := h[name]
	if vals == nil {
		vals = h.Values(name)
	}
	if v, ok := firstHeaderValue(vals, prefix); ok {
		return v, true
	}
	// Any other spelling the upstream would take for the name
	// (vmware_api_session_id) is read too, as strip_token strips it: a
	// client behind nginx with underscores_in_headers sends it so. The
	// spellings are tried in sorted order, so the same request always
	// gives the same token.
	var others []string
	for k := range h {
		if k != name && headername.Same(k, name) {
			others = append(others, k)
		}
	}
	slices.Sort(others)
	for _, k := range others {
		if v, ok := firstHeaderValue(h[k], prefix); ok {
			return v, true
		}
	}
	return "", false
}

func firstHeaderValue(vals []string, prefix string) (string, bool) {
	for _, v := range vals {
		if prefix != "" {
			if len(v) < len(prefix) || !strings.EqualFold(v[:len(prefix)], prefix) {
				continue
			}
			v = v[len(prefix):]
		}
		v = strings.TrimSpace(v)
		if v != "" {
			return v, true
		}
	}
	return "", false
}

// cookieValue finds the first cookie called name without the allocations
// of http.Request.Cookie. The value is kept byte for byte (Amplify's
// express-signed values carry percent signs that must reach the service
// untouched); only surrounding double quotes are removed.
func cookieValue(lines []string, name string) (string, bool) {
	for _, line := range lines {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			k, v, ok := strings.Cut(part, "=")
			if !ok || strings.TrimSpace(k) != name {
				continue
			}
			v = strings.TrimSpace(v)
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			if v != "" {
				return v, true
			}
		}
	}
	return "", false
}

func queryValue(raw, name string) (string, bool) {
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(part, "=")
		if k != name {
			if !strings.Contains(k, "%") {
				continue
			}
			if uk, err := url.QueryUnescape(k); err != nil || uk != name {
				continue
			}
		}
		if strings.ContainsAny(v, "%+") {
			uv, err := url.QueryUnescape(v)
			if err != nil {
				continue
			}
			v = uv
		}
		if v != "" {
			return v, true
		}
	}
	return "", false
}

// Strip removes every copy of this source from the request (every header
// spelling an upstream reads as the same name), so the upstream never sees
// the credential.
func (src TokenSource) Strip(r *http.Request) {
	switch src.From {
	case FromCookie:
		stripCookie(r.Header, src.Name)
	case FromHeader:
		stripHeaderSpellings(r.Header, src.Name)
	case FromBearer:
		r.Header.Del("Authorization")
	case FromQuery:
		if kept, changed := stripQuery(r.URL.RawQuery, src.Name); changed {
			r.URL.RawQuery = kept
			r.RequestURI = r.URL.RequestURI()
		}
	}
}

// stripHeaderSpellings removes the header name and every other spelling
// that CGI, PHP, WSGI or nginx with underscores_in_headers read as the same
// variable (any case, '_' for '-'): a stripped token must not reach the
// upstream as Vmware_api_session_id either.
func stripHeaderSpellings(h http.Header, name string) {
	h.Del(name)
	for k := range h {
		if headername.Same(k, name) {
			delete(h, k)
		}
	}
}

// stripQuery removes every pair that queryValue would read as name, working
// on the raw query: url.Values silently drops pairs it cannot parse (a ';'
// in a value), so stripping through it kept tokens that Extract had read.
// The other pairs stay byte for byte.
func stripQuery(raw, name string) (string, bool) {
	kept := make([]string, 0, 4)
	changed := false
	for _, part := range strings.Split(raw, "&") {
		k, _, _ := strings.Cut(part, "=")
		if k == name {
			changed = true
			continue
		}
		if strings.Contains(k, "%") {
			if uk, err := url.QueryUnescape(k); err == nil && uk == name {
				changed = true
				continue
			}
		}
		kept = append(kept, part)
	}
	return strings.Join(kept, "&"), changed
}

func stripCookie(h http.Header, name string) {
	lines := h["Cookie"]
	if lines == nil {
		return
	}
	var kept []string
	for _, line := range lines {
		for _, part := range strings.Split(line, ";") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			if k, _, _ := strings.Cut(part, "="); strings.TrimSpace(k) == name {
				continue
			}
			kept = append(kept, part)
		}
	}
	if len(kept) == 0 {
		h.Del("Cookie")
		return
	}
	h["Cookie"] = []string{strings.Join(kept, "; ")}
}
