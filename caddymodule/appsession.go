package caddymodule

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// An app behind sessiongate that reads the identity header once, when it
// has no session of its own, then trusts its own cookie for weeks, keeps
// acting as the first user after another one signs in in the same browser.
// app_session keeps it honest without server state: every app cookie the
// app sets gets a binding cookie beside it, a MAC of the identity the app
// was given, the cookie's name and its value. A request whose identity is
// not the one its app cookie was bound to (another user, nobody, a forged
// or replayed binding) loses the app cookie before the app sees it, so
// the app starts a fresh session for the identity it is now given.

// bindingPrefix starts the name of a binding cookie: sessiongate_<name>
// binds the app cookie <name>.
const bindingPrefix = "sessiongate_"

// minAppSessionSecret is the shortest app_session_secret accepted, as for
// the cluster's secret.
const minAppSessionSecret = 32

// appSessionLimit bounds the app cookies and bindings a request's Cookie
// header may make sessiongate check; cookies past it are removed
// unchecked.
const appSessionLimit = 32

// processAppSessionKey keys the bindings when neither app_session_secret
// nor a cluster secret is configured. Random per process: bindings do not
// survive a restart nor work on another node, so the app loses its own
// sessions then (its users are not signed out of the session service).
var processAppSessionKey = func() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k) // never fails (crypto/rand panics rather)
	return k
}()

// appSessions binds the app's own session cookies to the identity
// sessiongate gives the app.
type appSessions struct {
	names  []string // the app's cookie names, as configured
	folded []string // foldCookieName of each
	key    []byte
}

// newAppSessions derives the binding key from secret (the cluster's secret
// may be what is given: the derived key is not the one that seals Redis
// entries), or takes the per-process key.
func newAppSessions(names []string, secret string) *appSessions {
	key := processAppSessionKey
	if secret != "" {
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte("sessiongate app_session binding key v1"))
		key = m.Sum(nil)
	}
	a := &appSessions{names: names, key: key}
	for _, n := range names {
		a.folded = append(a.folded, foldCookieName(n))
	}
	return a
}

// validateAppSession checks the app cookie names: cookie-name tokens, not
// a binding's own name, and not a cookie that carries the token.
func validateAppSession(names []string, tokens []sessionctx.TokenSource, secret string) error {
	for _, n := range names {
		if !isCookieName(n) {
			return fmt.Errorf("app_session %q: not a cookie name", n)
		}
		if strings.HasPrefix(strings.TrimPrefix(strings.TrimPrefix(n, "__Host-"), "__Secure-"), bindingPrefix) {
			return fmt.Errorf("app_session %q: names starting with %s are sessiongate's own bindings", n, bindingPrefix)
		}
		for _, t := range tokens {
			if t.From == sessionctx.FromCookie && t.Name == n {
				return fmt.Errorf("app_session %q: that cookie carries the session token", n)
			}
		}
	}
	if err := checkSecretLen("app_session_secret", secret, minAppSessionSecret); err != nil {
		return err
	}
	if secret != "" && len(names) == 0 {
		return fmt.Errorf("app_session_secret without app_session names")
	}
	return nil
}

// isCookieName reports whether n is a cookie-name (an RFC 9110 token).
func isCookieName(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}

// bindingName is the cookie that holds the binding of app cookie name. A
// __Host- or __Secure- prefix stays in front, so the binding gets the
// same protection from the browser as the app cookie.
func bindingName(name string) string {
	for _, p := range []string{"__Host-", "__Secure-"} {
		if rest, ok := strings.CutPrefix(name, p); ok {
			return p + bindingPrefix + rest
		}
	}
	return bindingPrefix + name
}

// subjectOf is what a binding ties an app cookie to: the identity the app
// is given. Length-prefixed, so no two identities read alike.
func subjectOf(s *sessionctx.Session) []byte {
	var b []byte
	for _, v := range []string{"session", s.Kind, s.UserID, s.User} {
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	return b
}

// anonymousSubject binds what the app sets for a request without a
// session: kept while requests stay anonymous, removed once one carries a
// session.
var anonymousSubject = []byte("anonymous")

// mac is the binding of an app cookie's value to subject.
func (a *appSessions) mac(subject []byte, name, value string) string {
	m := hmac.New(sha256.New, a.key)
	for _, part := range [][]byte{[]byte("v1"), subject, []byte(name), []byte(value)} {
		m.Write(binary.AppendUvarint(nil, uint64(len(part))))
		m.Write(part)
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// cookieAt names one cookie in the browser: a name with the path and
// domain it was set with.
type cookieAt struct {
	name, path, domain string
	binding            bool
}

func (c cookieAt) same(o cookieAt) bool {
	return c.name == o.name && c.path == o.path &&
		strings.EqualFold(strings.TrimPrefix(c.domain, "."), strings.TrimPrefix(o.domain, "."))
}

// appRequest is what app_session learned of one request and does to its
// answer.
type appRequest struct {
	a       *appSessions
	subject []byte
	secure  bool
	defPath string
	expire  []cookieAt // app cookies and bindings to expire, unless the app sets them
	kept    []cookieAt // bound app cookies the request carries, with their bindings
}

// binding is a binding cookie as the request carries it.
type binding struct {
	name         string // the app cookie's
	mac          string
	path, domain string // where the pair was set, for expiring it
	used         bool
}

// check removes from r's Cookie header every app cookie not bound to
// subject, and every binding cookie (the app has no use for them); a nil
// subject binds nothing, for a request whose session ended. The result
// says what to expire in the answer.
func (a *appSessions) check(r *http.Request, subject []byte) *appRequest {
	ar := &appRequest{a: a, subject: subject, secure: r.TLS != nil, defPath: defaultCookiePath(r.URL.Path)}
	vals := r.Header["Cookie"]
	if len(vals) == 0 {
		return ar
	}
	type appCookie struct {
		name, value string // configured name; value unquoted
		exact       bool   // named exactly so (not a spelling variant)
		at          int    // index in pairs
	}
	var pairs []string
	var apps []appCookie
	var bindings []*binding
	remove := map[int]bool{}
	for _, v := range vals {
		for _, p := range strings.Split(v, ";") {
			if p = strings.TrimSpace(p); p == "" {
				continue
			}
			i := len(pairs)
			pairs = append(pairs, p)
			n, val, _ := strings.Cut(p, "=")
			n = strings.TrimSpace(n)
			if b := a.parseBinding(n, strings.TrimSpace(val)); b != nil {
				remove[i] = true
				if len(bindings) < appSessionLimit {
					bindings = append(bindings, b)
				}
				continue
			}
			if name, exact := a.appName(n); name != "" {
				apps = append(apps, appCookie{name: name, value: unquote(strings.TrimSpace(val)), exact: exact, at: i})
			} else if a.hidesAppCookie(val) {
				remove[i] = true
			}
		}
	}
	for k, c := range apps {
		bound := false
		if c.exact && k < appSessionLimit && subject != nil {
			want := a.mac(subject, c.name, c.value)
			for _, b := range bindings {
				if b.name == c.name && hmac.Equal([]byte(b.mac), []byte(want)) {
					bound, b.used = true, true
					ar.kept = append(ar.kept, cookieAt{name: c.name, path: b.path, domain: b.domain},
						cookieAt{name: bindingName(c.name), path: b.path, domain: b.domain, binding: true})
				}
			}
		}
		if bound {
			continue
		}
		remove[c.at] = true
		if !c.exact {
			continue // a spelling the app may read: removed, but not another app's cookie to expire
		}
		found := false
		for _, b := range bindings {
			if b.name == c.name {
				found = true
				ar.expireOnce(cookieAt{name: c.name, path: b.path, domain: b.domain})
			}
		}
		if !found {
			ar.expireOnce(cookieAt{name: c.name, path: "/"})
		}
	}
	for _, b := range bindings {
		if !b.used {
			ar.expireOnce(cookieAt{name: bindingName(b.name), path: b.path, domain: b.domain, binding: true})
		}
	}
	if len(remove) > 0 {
		kept := make([]string, 0, len(pairs)-len(remove))
		for i, p := range pairs {
			if !remove[i] {
				kept = append(kept, p)
			}
		}
		if len(kept) == 0 {
			delete(r.Header, "Cookie")
		} else {
			r.Header["Cookie"] = []string{strings.Join(kept, "; ")}
		}
	}
	return ar
}

func (ar *appRequest) expireOnce(c cookieAt) {
	for _, e := range ar.expire {
		if e.same(c) && e.binding == c.binding {
			return
		}
	}
	ar.expire = append(ar.expire, c)
}

// appName is the configured app cookie name n stands for, if any: the
// name itself, or a spelling an app may read as it (any case,
// percent-encoded, '.', ' ' or '[' for '_' as PHP reads names).
func (a *appSessions) appName(n string) (name string, exact bool) {
	for _, c := range a.names {
		if n == c {
			return c, true
		}
	}
	f := foldCookieName(n)
	for i, c := range a.folded {
		if f == c {
			return a.names[i], false
		}
	}
	return "", false
}

// hidesAppCookie reports whether another cookie's value carries an app
// cookie after a comma ("other=1, sid=..."): parsers that take ',' as a
// separator too (RFC 2109's; Python's SimpleCookie, older Rack) read it
// as the app cookie itself, one that no binding was checked for. The
// whole pair is removed, unchecked.
func (a *appSessions) hidesAppCookie(v string) bool {
	_, rest, found := strings.Cut(v, ",")
	for found {
		var part string
		part, rest, found = strings.Cut(rest, ",")
		if n, _, ok := strings.Cut(part, "="); ok {
			if name, _ := a.appName(strings.TrimSpace(n)); name != "" {
				return true
			}
		}
	}
	return false
}

func foldCookieName(n string) string {
	if u, err := url.PathUnescape(n); err == nil {
		n = u
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '.', ' ', '[', '-':
			return '_'
		}
		return r
	}, strings.ToLower(n))
}

// parseBinding reads a binding cookie: "<mac>.<path>.<domain>", path and
// domain base64url, or nil when n names no binding. Path and domain are
// only where to expire the pair; the MAC does not rest on them.
func (a *appSessions) parseBinding(n, v string) *binding {
	for _, c := range a.names {
		if n != bindingName(c) {
			continue
		}
		b := &binding{name: c, path: "/"}
		parts := strings.Split(v, ".")
		b.mac = parts[0]
		if len(parts) == 3 {
			if p, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil && strings.HasPrefix(string(p), "/") && validCookieAttr(string(p)) {
				b.path = string(p)
			}
			if d, err := base64.RawURLEncoding.DecodeString(parts[2]); err == nil && validCookieAttr(string(d)) {
				b.domain = string(d)
			}
		}
		return b
	}
	return nil
}

func validCookieAttr(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c >= 0x7f || c == ';' {
			return false
		}
	}
	return true
}

// expireAll adds to hdr the expiry of every app cookie and binding r
// carries: the session it was bound to has ended.
func (a *appSessions) expireAll(r *http.Request, hdr http.Header) {
	ar := a.check(r, nil)
	ar.respond(hdr, false)
}

// respond binds the app cookies the answer sets, expires the bindings of
// those it deletes, and expires what the request carried unbound; after a
// completed logout it also unbinds the app cookies the request carried
// and binds anything new to nobody. What the app sets itself wins over an
// expiry of the same cookie.
func (ar *appRequest) respond(hdr http.Header, loggedOut bool) {
	subject := ar.subject
	expire := ar.expire
	if loggedOut {
		subject = anonymousSubject
		expire = append(expire, ar.kept...)
	}
	var set []cookieAt
	for _, line := range hdr["Set-Cookie"] {
		c, err := http.ParseSetCookie(line)
		if err != nil {
			continue
		}
		name, exact := ar.a.appName(c.Name)
		if name == "" || !exact {
			continue
		}
		at := cookieAt{name: name, path: c.Path, domain: c.Domain}
		if at.path == "" {
			at.path = ar.defPath
		}
		set = append(set, at, cookieAt{name: bindingName(name), path: at.path, domain: at.domain, binding: true})
		// The binding mirrors the app cookie's own attributes, so the
		// browser sends both on the same requests.
		bc := &http.Cookie{ //nolint:gosec // G124: Secure and SameSite are the app cookie's, HttpOnly always
			Name: bindingName(name), Path: c.Path, Domain: c.Domain,
			Secure: c.Secure || ar.secure, HttpOnly: true, SameSite: c.SameSite, Partitioned: c.Partitioned,
		}
		if c.MaxAge < 0 || (!c.Expires.IsZero() && c.Expires.Before(time.Now())) || subject == nil {
			bc.MaxAge = -1
		} else {
			bc.MaxAge, bc.Expires = c.MaxAge, c.Expires
			bc.Value = ar.a.mac(subject, name, c.Value) + "." +
				base64.RawURLEncoding.EncodeToString([]byte(at.path)) + "." +
				base64.RawURLEncoding.EncodeToString([]byte(c.Domain))
		}
		hdr.Add("Set-Cookie", bc.String())
	}
next:
	for _, e := range expire {
		for _, s := range set {
			if s.same(e) {
				continue next
			}
		}
		// An expiry carries no value: Secure only where it must be.
		ec := &http.Cookie{ //nolint:gosec // G124: an expiry (Max-Age=0), carrying no value
			Name: e.name, Path: e.path, Domain: e.domain, MaxAge: -1, HttpOnly: e.binding,
			Secure: ar.secure || strings.HasPrefix(e.name, "__Host-") || strings.HasPrefix(e.name, "__Secure-"),
		}
		hdr.Add("Set-Cookie", ec.String())
	}
}

// defaultCookiePath is the path a browser gives a cookie set without one
// (RFC 6265, 5.1.4), for expiring it later.
func defaultCookiePath(p string) string {
	if !strings.HasPrefix(p, "/") {
		return "/"
	}
	i := strings.LastIndexByte(p, '/')
	if i == 0 {
		return "/"
	}
	return p[:i]
}

func unquote(v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		return v[1 : len(v)-1]
	}
	return v
}

// serveWatched passes the request on with its answer's header watched:
// app_session binds the app cookies it sets, and a logout the app
// completed (2xx, or the 3xx a web app answers a logout with) evicts the
// token. The recorder streams (no buffer) and sees the header however
// the answer is written, a body sent through io.ReaderFrom with no
// WriteHeader (file_server) included.
func (h *SessionAuth) serveWatched(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, key sessionctx.Key, logout bool, ar *appRequest) error {
	rec := caddyhttp.NewResponseRecorder(w, nil, func(status int, hdr http.Header) bool {
		if ar != nil && status >= 200 {
			ar.respond(hdr, logout && logoutCompleted(status))
		}
		return false
	})
	err := next.ServeHTTP(rec, r)
	status := rec.Status()
	if status == 0 {
		// Nothing written: the server answers the error, or a 200 with
		// no body, on the header map the recorder shares.
		if err == nil {
			status = http.StatusOK
		}
		if ar != nil {
			ar.respond(w.Header(), logout && logoutCompleted(status))
		}
	}
	if logout && err == nil && logoutCompleted(status) {
		h.forgetOnLogout(key)
	}
	return err
}

// logoutCompleted reports whether the app's answer to a logout request
// means the user is signed out: a 2xx, or a 3xx (web apps redirect after
// a logout).
func logoutCompleted(status int) bool { return status >= 200 && status < 400 }
