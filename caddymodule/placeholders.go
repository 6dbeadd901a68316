package caddymodule

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// placeholders answers {session.*} lazily: nothing is formatted unless a
// template asks for it. Values are encoded as the injected headers are
// (header_encoding): the documented use is `request_header X-User
// {session.user}`, so the upstream must read exactly what session_auth's
// own headers say, and a value the encoding refuses is "" there too (a CR
// or LF from the session service made the proxied request invalid).
//
// It answers Caddy's {http.auth.user.id} too, so access logs carry the
// user. That comes after the replacer's static values: a vars handler or
// an earlier authentication handler that set it keeps its value, and no
// request pays for the static map's first insert.
func placeholders(s *sessionctx.Session, enc headerEncoding) caddy.ReplacerFunc {
	userID, _ := enc.value(s.UserID)
	if s.IsApp() {
		// An application's id is not a user's: a template that uses
		// {http.auth.user.id} as a user header must not carry it.
		userID = ""
	}
	return func(key string) (any, bool) {
		name, ok := strings.CutPrefix(key, "session.")
		if !ok {
			if key == "http.auth.user.id" {
				return userID, true
			}
			return nil, false
		}
		switch name {
		case "roles":
			v, _ := enc.list(s.Roles)
			return v, true
		case "perms":
			v, _ := enc.list(s.Perms)
			return v, true
		}
		v, ok := sessionValue(s, name)
		if str, isStr := v.(string); isStr {
			v, _ = enc.value(str)
		}
		return v, ok
	}
}

// mapSessionPlaceholders answers every placeholder sessiongate provides
// ({session.*} and {http.auth.user.id}) from the session the request
// carries when the placeholder is read, and with "" while it carries
// none: Caddy leaves an unknown placeholder as written, so an anonymous
// request reached the app as `X-User: {session.user}`, which a legacy
// app reads as "logged in", and with `request_header X-Remote-User
// {http.auth.user.id}` every anonymous visitor shared one account named
// `{http.auth.user.id}`. It comes after the replacer's static values: a
// vars handler or an earlier authentication handler that set
// {http.auth.user.id} keeps its value.
func mapSessionPlaceholders(r *http.Request) {
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return
	}
	ctx := r.Context()
	repl.Map(func(key string) (any, bool) {
		if !isSessionPlaceholder(key) {
			return nil, false
		}
		if id, ok := requestIdentity(ctx); ok {
			return id.in(requestEncoding(ctx)).placeholders(key)
		}
		return "", true
	})
}

// mapOutcomePlaceholders is mapSessionPlaceholders for a request whose
// one sessiongate handler (see sole) has decided: the placeholders answer
// from id's session, or with "" when there is none. It maps a provider
// made once per session (or no session), where mapSessionPlaceholders
// makes one per request to answer from whatever session the request
// carries at the time, so it allocates nothing. Nothing reads the
// placeholders before the outcome is known: the lookup itself does not.
func mapOutcomePlaceholders(r *http.Request, id *identity, enc headerEncoding) {
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return
	}
	if id != nil && id.session != nil {
		repl.Map(id.in(enc).placeholders)
		return
	}
	repl.Map(noSessionPlaceholders)
}

// noSessionPlaceholders answers sessiongate's placeholders for a request
// without a session: every one is "".
func noSessionPlaceholders(key string) (any, bool) {
	if isSessionPlaceholder(key) {
		return "", true
	}
	return nil, false
}

// isSessionPlaceholder reports whether sessiongate provides key.
func isSessionPlaceholder(key string) bool {
	return strings.HasPrefix(key, "session.") || key == "http.auth.user.id"
}

func sessionValue(s *sessionctx.Session, name string) (any, bool) {
	switch name {
	case "id":
		return s.ID, true
	case "user_id":
		if s.IsApp() {
			return "", true
		}
		return s.UserID, true
	case "user":
		if s.IsApp() {
			return "", true
		}
		return s.User, true
	case "app_id":
		if !s.IsApp() {
			return "", true
		}
		return s.UserID, true
	case "app":
		if !s.IsApp() {
			return "", true
		}
		return s.User, true
	case "email":
		return s.Email, true
	case "name":
		return s.Name, true
	case "org_id":
		return s.OrgID, true
	case "org":
		return s.Org, true
	case "roles":
		return strings.Join(s.Roles, ","), true
	case "perms":
		return strings.Join(s.Perms, ","), true
	case "admin":
		return strconv.FormatBool(s.Admin), true
	case "kind":
		return kindOf(s), true
	case "expires_at":
		if s.ExpiresAt.IsZero() {
			return "", true
		}
		return s.ExpiresAt.UTC().Format(time.RFC3339), true
	}
	if attr, ok := strings.CutPrefix(name, "attrs."); ok {
		v, ok := s.Attrs[attr]
		if !ok || v == nil {
			return "", true
		}
		switch v := v.(type) {
		case string:
			return v, true
		case fmt.Stringer:
			return v.String(), true
		default:
			return fmt.Sprint(v), true
		}
	}
	return nil, false
}

// sessionVar is the key of the session in the request's Caddy vars.
const sessionVar = "sessiongate.session"

// carrySession hands the session to the handlers after this one
// (session_require, session_info, the placeholders) in the request's Caddy
// vars, so a cache hit copies neither the request nor its context. A
// request from outside a Caddy server, which has no vars, gets its own.
func carrySession(r *http.Request, id *identity) *http.Request {
	if _, ok := r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any); !ok {
		r = r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, map[string]any{}))
	}
	caddyhttp.SetVar(r.Context(), sessionVar, id)
	return r
}

// requestIdentity is what session_auth carried for this request, if it
// found a session.
func requestIdentity(ctx context.Context) (*identity, bool) {
	id, ok := caddyhttp.GetVar(ctx, sessionVar).(*identity)
	return id, ok && id != nil && id.session != nil
}

// noIdentity is what session_auth carries for a request it handled and
// found no session for: the request is still marked as handled, so a
// later session_strip leaves it alone (see authHandled).
var noIdentity = &identity{}

// authHandled reports whether a session_auth has handled this request,
// with or without a session. It stripped the request then, so what the
// request carries under the protected names since is session_auth's
// own.
func authHandled(ctx context.Context) bool {
	id, ok := caddyhttp.GetVar(ctx, sessionVar).(*identity)
	return ok && id != nil
}

// requestSession is the request's session, if session_auth found one.
func requestSession(ctx context.Context) (*sessionctx.Session, bool) {
	if id, ok := requestIdentity(ctx); ok {
		return id.session, true
	}
	return nil, false
}

// sessionKeys lists the placeholders sessiongate provides that a custom
// header's template uses.
func sessionKeys(tmpl string) []string {
	var keys []string
	for {
		i := strings.IndexByte(tmpl, '{')
		if i < 0 {
			return keys
		}
		j := strings.IndexByte(tmpl[i:], '}')
		if j < 0 {
			return keys
		}
		if key := tmpl[i+1 : i+j]; isSessionPlaceholder(key) {
			keys = append(keys, key)
		}
		tmpl = tmpl[i+j+1:]
	}
}

// refusedKeys reports whether one of keys holds a value of s that enc
// cannot carry exactly: such a placeholder reads "", so a template that
// uses it ("{session.user}@corp", "{session.org}/{session.user}") would
// make of it another value, the one with that part empty. The custom
// header is then not sent, as the default header of that field is not.
func refusedKeys(s *sessionctx.Session, enc headerEncoding, keys []string) bool {
	if s == nil {
		return false
	}
	for _, key := range keys {
		ok := true
		name, _ := strings.CutPrefix(key, "session.")
		switch {
		case key == "http.auth.user.id":
			if !s.IsApp() {
				_, ok = enc.value(s.UserID)
			}
		case name == "roles":
			_, ok = enc.list(s.Roles)
		case name == "perms":
			_, ok = enc.list(s.Perms)
		default:
			if v, _ := sessionValue(s, name); v != nil {
				if str, isStr := v.(string); isStr {
					_, ok = enc.value(str)
				}
			}
		}
		if !ok {
			return true
		}
	}
	return false
}
