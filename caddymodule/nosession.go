package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// Unauthenticated says how to answer a request without a session.
type Unauthenticated struct {
	// Status is the error status. Default 401.
	Status int `json:"status,omitempty"`
	// Redirect, when set, is a URL template (placeholders allowed) that
	// clients preferring HTML are redirected to; API clients still get
	// Status.
	Redirect string `json:"redirect,omitempty"`
}

// withoutSession is session_auth's one way for a request whose lookup
// found no session, err saying why: an ambiguous credential is refused; no session lets an
// optional session_auth's request go on anonymously and answers any other
// one (unauthenticated); a client that left gets 499; a lookup limit's
// refusal 429 or 503 (limited); and a session service that gave no
// answer 503 (serviceUnavailable).
func (h *SessionAuth) withoutSession(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, res sessionctx.Result, err error) error {
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
	if k := sessionctx.FailureKindOf(err); k == sessionctx.FailureLookupLimit || k == sessionctx.FailureClientLimit {
		return h.limited(w, r, res.Key, k, err)
	}
	h.warnUnavailable(res.Key, err)
	w.Header().Set("Retry-After", h.retry)
	return h.serviceUnavailable(w, r, err)
}

// errAmbiguous is the 400 of a request whose credential parsers may read
// differently (a TR50 envelope with two sessionId keys).
var errAmbiguous = errors.New("session_auth: ambiguous session credential")

// ambiguous refuses a request whose credential is ambiguous, optional or
// not: the app behind would act on a session other than the one
// resolved, or on none that was checked.
func (h *SessionAuth) ambiguous(r *http.Request, res sessionctx.Result, err error) error {
	h.logRequest(res.Key, nil, "unauthenticated", false) // counted as such: the label set stays fixed
	if ce := h.logger.Check(zapcore.DebugLevel, "session credential refused"); ce != nil {
		ce.Write(zap.Error(err))
	}
	if h.StripToken {
		h.client.StripTokens(r)
	}
	return caddyhttp.Error(http.StatusBadRequest, errAmbiguous)
}

// rejectionVar is the key, in the request's Caddy vars, of the rejection
// of an optional session_auth's request, for session_info.
const rejectionVar = "sessiongate.rejection"

// carryRejection keeps the rejection of a request that goes on without a
// session, so that session_info gives the product's own answer when the
// rejection carries one (an Amplify session awaiting device
// authorization) rather than "no session".
func carryRejection(r *http.Request, err error) {
	if _, ok := r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any); ok {
		caddyhttp.SetVar(r.Context(), rejectionVar, rejectionHolder{err})
	}
}

// rejectionHolder keeps the error out of {http.vars.*} as text.
type rejectionHolder struct{ err error }

func (rejectionHolder) String() string { return "" }

func requestRejection(ctx context.Context) error {
	if h, ok := caddyhttp.GetVar(ctx, rejectionVar).(rejectionHolder); ok {
		return h.err
	}
	return nil
}

// errClientGaveUp is the error of a request whose client left while its
// token was being looked up. It says nothing of the session service,
// which may well answer (and fill the cache) a moment later.
var errClientGaveUp = fmt.Errorf("client gave up during the session lookup: %w", context.Canceled)

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
	return unauthorized(w, r, h.unauthSts, h.realm, err)
}

// unauthorized answers status, a 4xx for want of a session, with the
// challenge when it is a 401: as a page to a browser (errorPage), else as
// the error for Caddy. session_require answers its 401 with it too.
func unauthorized(w http.ResponseWriter, r *http.Request, status int, challenge string, err error) error {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", challenge)
	}
	if errorPage(w, r, status) {
		return nil
	}
	return caddyhttp.Error(status, err)
}

// answerInDialect answers an unauthenticated request that is one of the
// product's own session reads (vSphere GET /api/session, Amplify
// findSession, a TR50 session.info, ...) the way the product answers it
// when there is no session, so that its clients behind a non-optional
// session_auth see what they know (vSphere UNAUTHENTICATED, Amplify's null
// result) rather than an empty 401. It reports whether it answered. A
// dialect with no product session read of its own (http) gets the plain
// 401.
func answerInDialect(w http.ResponseWriter, r *http.Request, dialect string, rejection error) (bool, error) {
	if dialect == "" {
		return false, nil
	}
	// Every dialect has its shape, and Provision refused other names: an
	// error here answers nothing, and the caller's plain 401 stands.
	shape, err := sessionctx.LookupInfoShape(dialect)
	if err != nil {
		return false, err
	}
	// A request that is not the product's session read gets the plain
	// 401 instead.
	req, pass, err := infoRequest(r, shape)
	if err == nil && !pass && shape.IsProductRead(req) {
		// The rejection lets the product's own answer for this state of
		// the session (Amplify's device authorization) be given.
		req.Rejection = rejection
		return true, writeInfo(w, r, shape.Render(nil, req))
	}
	return false, nil
}

// The WWW-Authenticate challenges of sessiongate's 401s: Bearer when the
// token may come as a bearer token, else Session (a cookie or a header of
// the product's own).
const (
	realm            = `realm="sessiongate"`
	sessionChallenge = "Session " + realm
	bearerChallenge  = "Bearer " + realm
)

// wwwAuthenticate is the challenge of a handler reading tokens.
func wwwAuthenticate(tokens []sessionctx.TokenSource) string {
	for _, t := range tokens {
		if t.From == sessionctx.FromBearer {
			return bearerChallenge
		}
	}
	return sessionChallenge
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

// limited answers a request refused by a lookup limit: 429 for the
// client's own limit, 503 for the backend's, both with Retry-After and
// neither with a session-service call. It is logged at debug with the
// client's address (never the token).
func (h *SessionAuth) limited(w http.ResponseWriter, r *http.Request, key sessionctx.Key, limit sessionctx.FailureKind, err error) error {
	status, retry := http.StatusServiceUnavailable, h.retry
	if limit == sessionctx.FailureClientLimit {
		status, retry = http.StatusTooManyRequests, h.clientRetry()
	}
	h.observe(key, "limited", false)
	if ce := h.logger.Check(zapcore.DebugLevel, "session lookup refused"); ce != nil {
		ce.Write(zap.String("limit", string(limit)), zap.String("client", clientOf(r)), zap.String("token_hash", h.tokenHash(key)))
	}
	w.Header().Set("Retry-After", retry)
	if status == http.StatusServiceUnavailable {
		return h.serviceUnavailable(w, r, err)
	}
	if hasErrorRoutes(r) {
		return caddyhttp.Error(status, err)
	}
	w.WriteHeader(status)
	return nil
}

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

// hasErrorRoutes reports whether the request's site has handle_errors
// routes, which then render sessiongate's errors themselves. A request
// from outside a Caddy server counts as having them: the error is
// returned as it is.
func hasErrorRoutes(r *http.Request) bool {
	srv, _ := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	return srv == nil || (srv.Errors != nil && len(srv.Errors.Routes) > 0)
}

// errorPage answers a browser navigation that gets one of sessiongate's
// own errors (no session, the session service down) with a minimal page
// saying what to do, where Caddy alone would show a blank one. It is
// written only when the site has no handle_errors (which renders the
// error itself) and the client prefers HTML; API clients keep an empty
// body. The status and the headers set before (WWW-Authenticate,
// Retry-After) stay. It reports whether it answered.
func errorPage(w http.ResponseWriter, r *http.Request, status int) bool {
	if hasErrorRoutes(r) {
		return false
	}
	addVary(w.Header(), "Accept")
	if !prefersHTML(r) {
		return false
	}
	title, text := "Sign in required", "You need to sign in to see this page. Sign in, then open it again."
	if status == http.StatusServiceUnavailable {
		title, text = "Please try again", "Signing you in is not possible right now: the sign-in service is not answering. Please try again in a moment."
		if secs, err := strconv.Atoi(w.Header().Get("Retry-After")); err == nil {
			text = fmt.Sprintf("Signing you in is not possible right now: the sign-in service is not answering. Please try again in %d seconds.", secs)
		}
	}
	page := fmt.Sprintf(`<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>%[1]s</title></head>
<body><h1>%[1]s</h1><p>%[2]s</p><p><a href="">Try again</a></p></body>
</html>
`, html.EscapeString(title), html.EscapeString(text))
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Content-Length", strconv.Itoa(len(page)))
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte(page)) // a write error is a gone client
	}
	return true
}

// addVary adds name to the Vary header unless it is there already.
func addVary(h http.Header, name string) {
	for _, v := range h.Values("Vary") {
		for _, tok := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), name) {
				return
			}
		}
	}
	h.Add("Vary", name)
}
