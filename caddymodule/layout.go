package caddymodule

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/fileserver"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

// checkLayout refuses a config whose routes leave a way around
// session_auth. It walks every server's routes, subroutes and invoked
// named routes in the order a request meets them, site by site (a site is
// a server's route list, or the routes under a route that matches hosts
// only, which is what the Caddyfile makes of a site block), and refuses:
//
//   - a session_auth that runs only on the requests some matcher selects
//     (nested in handle, route, handle_path, a named route, or with a
//     matcher of its own) in a site where no session_strip or
//     session_auth runs first on every request: the site's other
//     requests would reach the app with forged identity headers;
//   - a reverse_proxy that runs before the site's first strip, in a site
//     with a session_auth;
//   - a session_auth after a handler that answers every request that
//     gets there (reverse_proxy, respond, file_server, error): it never
//     runs;
//   - a session_auth after a session_require on the same requests: the
//     require answers 401 to every one of them, valid sessions included.
//
// The Caddyfile adapter emits a strip for `session_auth <matcher>`, so
// only a session_auth nested in a block needs `session_strip` at the top
// of its site.
func checkLayout(app any) error {
	httpApp, ok := app.(*caddyhttp.App)
	if !ok {
		return nil
	}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(httpApp.Servers)) {
		srv := httpApp.Servers[name]
		w := &layoutWalker{server: name, named: srv.NamedRoutes, visiting: map[string]bool{}}
		site := &layoutSite{}
		w.routes(srv.Routes, &layoutScope{site: site}, "routes")
		w.finish(site)
		errs = append(errs, w.errs...)
	}
	return errors.Join(errs...)
}

// layoutSite is what the walk learns of one site.
type layoutSite struct {
	auth      string // where its first session_auth is
	forwarded string // where a reverse_proxy runs before any strip
}

// layoutScope is what holds for every request that gets to a point of
// the walk.
type layoutScope struct {
	site *layoutSite
	// cond: a matcher since the start of the site selects the requests
	// that get here; local: one since the start of the current route
	// list (a subroute's).
	cond, local bool
	stripped    bool   // a strip ran on every request of the site that gets here
	authed      bool   // a session_auth ran on every request that gets here
	require     string // a session_require with no session_auth before it
	dead        string // a handler that answers every request that gets here
}

type layoutWalker struct {
	server   string
	named    map[string]*caddyhttp.Route
	visiting map[string]bool // named routes being walked: invoke may recurse
	errs     []error
}

func (w *layoutWalker) errorf(format string, args ...any) {
	w.errs = append(w.errs, fmt.Errorf("server %s: "+format, append([]any{w.server}, args...)...))
}

func (w *layoutWalker) routes(routes caddyhttp.RouteList, sc *layoutScope, path string) {
	for i := range routes {
		rt := &routes[i]
		rpath := fmt.Sprintf("%s/%d", path, i)
		inner := *sc
		var site *layoutSite
		switch {
		case len(rt.MatcherSets) > 0 && hostsOnly(rt.MatcherSets):
			// A site of its own: what a strip before it did still
			// holds, but the matcher does not make it conditional.
			site = &layoutSite{}
			inner.site, inner.cond, inner.local = site, false, true
		case len(rt.MatcherSets) > 0:
			inner.cond, inner.local = true, true
		}
		w.handlers(rt.Handlers, &inner, rpath+"/handle")
		if site != nil {
			w.finish(site)
		}
		if len(rt.MatcherSets) == 0 {
			*sc = inner
		} else if sc.require == "" {
			sc.require = inner.require
		}
	}
}

func (w *layoutWalker) handlers(hs []caddyhttp.MiddlewareHandler, sc *layoutScope, path string) {
	for i, h := range hs {
		hpath := fmt.Sprintf("%s/%d", path, i)
		switch h := h.(type) {
		case *SessionStrip:
			if !sc.cond {
				sc.stripped = true
			}
		case *SessionAuth:
			w.auth(sc, hpath)
		case *SessionRequire:
			if !sc.authed && sc.require == "" {
				sc.require = hpath
			}
		case *caddyhttp.Subroute:
			sub := *sc
			sub.local = false
			w.routes(h.Routes, &sub, hpath+"/routes")
			sub.local = sc.local
			*sc = sub
		case *caddyhttp.Invoke:
			rt, ok := w.named[h.Name]
			if !ok || w.visiting[h.Name] {
				continue
			}
			w.visiting[h.Name] = true
			w.routes(caddyhttp.RouteList{*rt}, sc, "named_routes/"+h.Name)
			delete(w.visiting, h.Name)
		case *reverseproxy.Handler:
			if !sc.stripped && sc.site.forwarded == "" {
				sc.site.forwarded = hpath
			}
			w.answers(sc, hpath, "reverse_proxy")
		case *caddyhttp.StaticResponse:
			w.answers(sc, hpath, "static_response")
		case *caddyhttp.StaticError:
			w.answers(sc, hpath, "error")
		case *fileserver.FileServer:
			w.answers(sc, hpath, "file_server")
		}
	}
}

// answers notes a handler that answers every request that reaches it
// without calling the next one.
func (w *layoutWalker) answers(sc *layoutScope, path, name string) {
	if !sc.local && sc.dead == "" {
		sc.dead = name + " at " + path
	}
}

func (w *layoutWalker) auth(sc *layoutScope, path string) {
	if sc.dead != "" {
		w.errorf("session_auth at %s never runs: %s answers every request before it gets there; put session_auth first in the route", path, sc.dead)
	}
	if sc.require != "" {
		w.errorf("session_require at %s runs before session_auth at %s, so it answers 401 to every request, valid sessions included; put session_auth first in the route", sc.require, path)
	}
	if !sc.stripped && sc.cond {
		w.errorf("session_auth at %s runs only on the requests its routes' matchers select, and nothing strips forged identity headers from the other requests of its site; put session_strip first in the site (Caddyfile: `session_strip` at the top of the site block; JSON: a route with no matcher and {\"handler\": \"session_strip\"}, first in the site's routes)", path)
	}
	if sc.site.auth == "" {
		sc.site.auth = path
	}
	if !sc.cond {
		// It strips every request it sees first, as a strip does.
		sc.stripped = true
	}
	sc.authed = true
}

func (w *layoutWalker) finish(site *layoutSite) {
	if site.auth != "" && site.forwarded != "" {
		w.errorf("reverse_proxy at %s forwards requests before any session_strip or session_auth strips them, in a site with session_auth at %s; put session_strip first in the site", site.forwarded, site.auth)
	}
}

// hostsOnly reports whether every matcher of the sets matches hosts:
// the route of a Caddyfile site block.
func hostsOnly(sets caddyhttp.MatcherSets) bool {
	for _, set := range sets {
		for _, m := range set {
			if _, ok := m.(*caddyhttp.MatchHost); !ok {
				return false
			}
		}
	}
	return true
}
