package caddymodule

import (
	"net/http"
	"slices"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(SessionStrip{})
	httpcaddyfile.RegisterHandlerDirective("session_strip", parseSessionStrip)
	httpcaddyfile.RegisterDirectiveOrder("session_strip", httpcaddyfile.Before, "tracing")
}

// SessionStrip removes client-sent identity headers from every request it
// sees, whether or not a session_auth runs on it later. session_auth
// strips only the requests that reach it, so on a route it does not run
// on (a sibling handle block, a path its matcher skips such as
// `/public/..;/admin`, which Tomcat routes to /admin) a forged
// X-Session-User would otherwise reach the upstream as if sessiongate had
// set it. Put it at the top of a site whose session_auth sits inside
// handle or route blocks; `session_auth <matcher>` emits one itself.
//
// With no settings it strips the union of what every session_auth of the
// loaded config injects (every header_prefix, every custom header name,
// every preset), so it never needs to repeat their settings; its own
// settings only add names. It does nothing on a request a session_auth
// has already handled: that one stripped the same union before it set
// its own headers, which a later strip must not remove.
//
// It also answers every {session.*} placeholder, and {http.auth.user.id},
// with "" on a request without a session, so `request_header X-User
// {session.user}` on a route session_auth did not run on sends an empty
// value, never the literal placeholder.
type SessionStrip struct {
	// HeaderPrefix is one more prefix to strip, besides every
	// session_auth's own. Default none.
	HeaderPrefix string `json:"header_prefix,omitempty"`

	// Headers are more names to strip, besides every session_auth's own
	// custom header names and the presets. Default none.
	Headers []string `json:"headers,omitempty"`

	registry *Registry
	folder   *headerFolder // own names, when outside a config
	sole     *atomic.Bool  // the only sessiongate handler a request meets (see markSole)
}

// CaddyModule returns the Caddy module information.
func (SessionStrip) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.session_strip",
		New: func() caddy.Module { return new(SessionStrip) },
	}
}

// Provision checks the names and joins the config's registry.
func (s *SessionStrip) Provision(ctx caddy.Context) error {
	if err := checkHeaderNames(s.HeaderPrefix, slices.Values(s.Headers)); err != nil {
		return err
	}
	reg, err := registryOf(ctx)
	if err != nil {
		return err
	}
	s.registry = reg
	s.sole = new(atomic.Bool)
	var prefixes []string
	if s.HeaderPrefix != "" {
		prefixes = append(prefixes, s.HeaderPrefix)
	}
	if reg != nil {
		reg.register(prefixes, s.Headers)
		reg.names.mu.Lock()
		reg.names.handlers++
		reg.names.mu.Unlock()
		return nil
	}
	s.folder = newStripFolder(prefixes, s.Headers)
	return nil
}

// stripFolder is what the strip removes.
func (s *SessionStrip) stripFolder() *headerFolder {
	if s.registry != nil {
		return s.registry.union()
	}
	return s.folder
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (s *SessionStrip) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if authHandled(r.Context()) {
		// A session_auth stripped this request already, and what it
		// set since is the request's identity.
		return next.ServeHTTP(w, r)
	}
	s.stripFolder().stripRequest(r)
	if s.sole != nil && s.sole.Load() {
		// No session_auth meets this request: no session, ever.
		mapOutcomePlaceholders(r, nil, 0)
	} else {
		mapSessionPlaceholders(r)
	}
	return next.ServeHTTP(w, r)
}

func parseSessionStrip(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	s := new(SessionStrip)
	err := s.UnmarshalCaddyfile(h.Dispenser)
	return s, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	session_strip [<matcher>] {
//	    header_prefix <prefix>
//	    header <name>
//	}
func (s *SessionStrip) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "header_prefix":
			if s.HeaderPrefix != "" {
				return d.Err("header_prefix given twice")
			}
			if !d.AllArgs(&s.HeaderPrefix) || s.HeaderPrefix == "" {
				return d.Err("want header_prefix <prefix>")
			}
			if err := checkHeaderNames(s.HeaderPrefix, slices.Values([]string(nil))); err != nil {
				return d.Err(err.Error())
			}
		case "header":
			var name string
			if !d.AllArgs(&name) {
				return d.Err("want header <name>")
			}
			if err := checkHeaderNames("", slices.Values([]string{name})); err != nil {
				return d.Err(err.Error())
			}
			s.Headers = append(s.Headers, name)
		default:
			return d.Errf("unknown session_strip option %q", d.Val())
		}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*SessionStrip)(nil)
	_ caddyhttp.MiddlewareHandler = (*SessionStrip)(nil)
	_ caddyfile.Unmarshaler       = (*SessionStrip)(nil)
)
