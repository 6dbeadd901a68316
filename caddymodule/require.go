package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

func init() {
	caddy.RegisterModule(SessionRequire{})
	httpcaddyfile.RegisterHandlerDirective("session_require", parseSessionRequire)
	httpcaddyfile.RegisterDirectiveOrder("session_require", httpcaddyfile.Before, "request_header")
}

// SessionRequire lets a request through only when the session that
// session_auth put in its context satisfies every rule. It resolves
// nothing itself, so it can guard one route of a site that session_auth
// covers as a whole.
type SessionRequire struct {
	// Roles: for each entry, the session must have one of its roles; every
	// entry must be satisfied. Default none.
	Roles [][]string `json:"roles,omitempty"`
	// Perms: the session must have every one of these permissions.
	// Default none.
	Perms []string `json:"perms,omitempty"`
	// Orgs: for each entry, the session's org name must be one of the
	// entry's. Names and ids are kept apart so that an org named like
	// another's id can never pass an id rule. Default none.
	Orgs [][]string `json:"orgs,omitempty"`
	// OrgIDs: for each entry, the session's org id must be one of the
	// entry's. Default none.
	OrgIDs [][]string `json:"org_ids,omitempty"`
	// Users: for each entry, the session's user name must be one of the
	// entry's. Default none.
	Users [][]string `json:"users,omitempty"`
	// UserIDs: for each entry, the session's user id must be one of the
	// entry's. Default none. Neither Users nor UserIDs ever matches an
	// application's session (kind app).
	UserIDs [][]string `json:"user_ids,omitempty"`
	// Apps: for each entry, the session must be an application's (kind
	// app) whose name is one of the entry's. Default none.
	Apps [][]string `json:"apps,omitempty"`
	// AppIDs: for each entry, the session must be an application's whose
	// id is one of the entry's. Default none.
	AppIDs [][]string `json:"app_ids,omitempty"`
	// Kind, when set, is the kind the session must be: user or app.
	// Default any.
	Kind string `json:"kind,omitempty"`
	// Admin requires an admin session. Default false.
	Admin bool `json:"admin,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (SessionRequire) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.session_require",
		New: func() caddy.Module { return new(SessionRequire) },
	}
}

// Validate rejects rules that no session could ever satisfy by accident:
// an empty group would fail every request.
func (h *SessionRequire) Validate() error {
	for name, groups := range map[string][][]string{
		"roles": h.Roles, "orgs": h.Orgs, "org_ids": h.OrgIDs, "users": h.Users, "user_ids": h.UserIDs,
		"apps": h.Apps, "app_ids": h.AppIDs,
	} {
		for i, g := range groups {
			if len(g) == 0 {
				return fmt.Errorf("%s %d: empty list", name, i)
			}
			for _, v := range g {
				if v == "" {
					return fmt.Errorf("%s %d: empty name", name, i)
				}
			}
		}
	}
	for _, p := range h.Perms {
		if p == "" {
			return fmt.Errorf("perms: empty permission name")
		}
	}
	if h.Kind != "" && h.Kind != "user" && h.Kind != "app" {
		return fmt.Errorf("kind %q: want user or app", h.Kind)
	}
	return nil
}

// errNoSession is the 401 of a request that reached session_require with
// no session: session_auth is missing, optional, or on another route.
var errNoSession = errors.New("session_require: no session")

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *SessionRequire) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	s, ok := requestSession(r.Context())
	if !ok {
		return unauthorized(w, r, http.StatusUnauthorized, sessionChallenge, errNoSession)
	}
	if err := h.check(s); err != nil {
		observeOutcome("forbidden")
		return caddyhttp.Error(http.StatusForbidden, err)
	}
	return next.ServeHTTP(w, r)
}

// check names the first rule the session fails. The message goes to the
// error log and {http.error.message}: it names the rule, not the session.
func (h *SessionRequire) check(s *sessionctx.Session) error {
	if h.Admin && !s.Admin {
		return errors.New("session_require: admin required")
	}
	for _, g := range h.Roles {
		if !s.HasRole(g...) {
			return fmt.Errorf("session_require: one of roles %s required", strings.Join(g, ", "))
		}
	}
	if len(h.Perms) > 0 && !s.HasPerms(h.Perms...) {
		return fmt.Errorf("session_require: permissions %s required", strings.Join(h.Perms, ", "))
	}
	for _, g := range h.Orgs {
		if !oneOf(g, s.Org) {
			return fmt.Errorf("session_require: one of orgs %s required", strings.Join(g, ", "))
		}
	}
	for _, g := range h.OrgIDs {
		if !oneOf(g, s.OrgID) {
			return fmt.Errorf("session_require: one of org ids %s required", strings.Join(g, ", "))
		}
	}
	if h.Kind != "" && kindOf(s) != h.Kind {
		return fmt.Errorf("session_require: a %s session required", h.Kind)
	}
	// A user rule never matches an application named like the user, nor
	// an app rule a user named like the application.
	for _, g := range h.Users {
		if s.IsApp() || !oneOf(g, s.User) {
			return errors.New("session_require: user not allowed")
		}
	}
	for _, g := range h.UserIDs {
		if s.IsApp() || !oneOf(g, s.UserID) {
			return errors.New("session_require: user not allowed")
		}
	}
	for _, g := range h.Apps {
		if !s.IsApp() || !oneOf(g, s.User) {
			return errors.New("session_require: application not allowed")
		}
	}
	for _, g := range h.AppIDs {
		if !s.IsApp() || !oneOf(g, s.UserID) {
			return errors.New("session_require: application not allowed")
		}
	}
	return nil
}

// oneOf reports whether a non-empty value is in allowed: an empty org or
// user never matches, so a session without one cannot pass an org rule.
func oneOf(allowed []string, v string) bool {
	if v == "" {
		return false
	}
	for _, a := range allowed {
		if a == v {
			return true
		}
	}
	return false
}

func parseSessionRequire(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	sr := new(SessionRequire)
	err := sr.UnmarshalCaddyfile(h.Dispenser)
	return sr, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Lines are
// ANDed; the values of one line are ORed, except perm's, which are all
// required. Syntax:
//
//	session_require [<matcher>] [role|perm|org|org_id|user|user_id|app|app_id <values...> | kind user|app | admin] {
//	    role <name...>
//	    perm <name...>
//	    org <name...>
//	    org_id <id...>
//	    user <name...>
//	    user_id <id...>
//	    app <name...>
//	    app_id <id...>
//	    kind user|app
//	    admin
//	}
func (h *SessionRequire) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		if err := h.addRule(d); err != nil {
			return err
		}
	}
	for d.NextBlock(0) {
		if err := h.addRule(d); err != nil {
			return err
		}
	}
	return nil
}

// addRule reads one rule: the current token names it, the rest of the
// line are its values.
func (h *SessionRequire) addRule(d *caddyfile.Dispenser) error {
	kind := d.Val()
	values := d.RemainingArgs()
	if len(values) == 0 && slices.Contains([]string{"role", "perm", "org", "org_id", "user", "user_id", "app", "app_id", "kind"}, kind) {
		return d.Errf("%s needs at least one value", kind)
	}
	switch kind {
	case "role":
		h.Roles = append(h.Roles, values)
	case "perm":
		h.Perms = append(h.Perms, values...)
	case "org":
		h.Orgs = append(h.Orgs, values)
	case "org_id":
		h.OrgIDs = append(h.OrgIDs, values)
	case "user":
		h.Users = append(h.Users, values)
	case "user_id":
		h.UserIDs = append(h.UserIDs, values)
	case "app":
		h.Apps = append(h.Apps, values)
	case "app_id":
		h.AppIDs = append(h.AppIDs, values)
	case "kind":
		if len(values) != 1 || (values[0] != "user" && values[0] != "app") {
			return d.Err("want kind user|app")
		}
		if h.Kind != "" {
			return d.Err("kind given twice")
		}
		h.Kind = values[0]
	case "admin":
		if len(values) > 0 {
			return d.ArgErr()
		}
		if h.Admin {
			return d.Err("admin given twice")
		}
		h.Admin = true
	default:
		return d.Errf("unrecognized subdirective %q", kind)
	}
	return nil
}

// Interface guards
var (
	_ caddy.Validator             = (*SessionRequire)(nil)
	_ caddyhttp.MiddlewareHandler = (*SessionRequire)(nil)
	_ caddyfile.Unmarshaler       = (*SessionRequire)(nil)
)
