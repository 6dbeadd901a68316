package caddymodule

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/fileserver"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

// checkLayout refuses a config whose routes leave a way around
// session_auth. It follows every server's routes, subroutes and invoked
// named routes in the order a request meets them, site by site (a site is
// a server's route list, or the routes under a route that matches hosts
// only, which is what the Caddyfile makes of a site block), and refuses:
//
//   - in a site with a session_auth, a reverse_proxy (php_fastcgi and
//     forward_auth are reverse_proxy too) that some request reaches
//     without a session_strip or a session_auth before it: forged
//     identity headers, and {session.*} placeholders as written, would
//     reach the upstream (session_auth nested in handle, route,
//     handle_path or a named route, with siblings that proxy);
//   - a session_auth after a handler that answers every request that
//     gets there (reverse_proxy, respond, file_server, error): it never
//     runs;
//   - a session_auth after a session_require on the same requests: the
//     require answers 401 to every one of them, valid sessions included.
//
// The handle_errors routes are followed too, after the routes: a request
// gets to them having been stripped only if every request was stripped by
// the end of its site's routes (an error from a sibling route without a
// strip would otherwise carry its forged headers to a handle_errors
// reverse_proxy).
//
// A request reaches a point stripped when a strip or a session_auth ran
// before it in the same handler chain, or in an earlier route that every
// request runs, or in every member of an earlier route group that has a
// catch-all member (handle blocks): then every request went through one.
func checkLayout(app any) error {
	httpApp, ok := app.(*caddyhttp.App)
	if !ok {
		return nil
	}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(httpApp.Servers)) {
		srv := httpApp.Servers[name]
		w := &layoutWalker{server: name, named: srv.NamedRoutes, visiting: map[string]bool{}, sites: map[string]*layoutSite{}}
		site := &layoutSite{}
		sc := &layoutScope{site: site}
		w.routes(srv.Routes, sc, "routes")
		if srv.Errors != nil && len(srv.Errors.Routes) > 0 {
			w.errors = true
			w.routes(srv.Errors.Routes, &layoutScope{site: site, stripped: sc.stripped, authed: sc.authed}, "errors/routes")
		}
		w.finish(site)
		errs = append(errs, w.errs...)
	}
	return errors.Join(errs...)
}

// layoutSite is what the walk learns of one site.
type layoutSite struct {
	name      string // its hosts, for a host-matched site
	auth      string // where its first session_auth is
	forwarded string // where a reverse_proxy runs before any strip
	// endStripped, endAuthed: what held for every request at the end of
	// the site's routes, which is what its handle_errors routes start
	// from.
	endStripped, endAuthed bool
	reported               bool
}

// layoutScope is what holds for every request that gets to a point of
// the walk.
type layoutScope struct {
	site *layoutSite
	// local: a matcher since the start of the current route list
	// selects the requests that get here.
	local    bool
	stripped bool   // a strip or session_auth ran on every request that gets here
	authed   bool   // a session_auth ran on every request that gets here
	require  string // a session_require with no session_auth before it
	dead     string // a handler that answers every request that gets here
}

type layoutWalker struct {
	server   string
	named    map[string]*caddyhttp.Route
	visiting map[string]bool // named routes being walked: invoke may recurse
	sites    map[string]*layoutSite
	errors   bool // walking the handle_errors routes
	errs     []error
}

func (w *layoutWalker) errorf(site *layoutSite, format string, args ...any) {
	where := "server " + w.server
	if site.name != "" {
		where += ", site " + site.name
	}
	w.errs = append(w.errs, fmt.Errorf(where+": "+format, args...))
}

func (w *layoutWalker) routes(routes caddyhttp.RouteList, sc *layoutScope, path string) {
	// Of a group's routes only the first that matches runs: one with
	// no matcher takes every request the earlier members left.
	type group struct{ stripped, authed bool }
	groups := map[string]*group{}
	for i := range routes {
		rt := &routes[i]
		rpath := fmt.Sprintf("%s/%d", path, i)
		g := groups[rt.Group]
		if rt.Group != "" && g == nil {
			g = &group{stripped: true, authed: true}
			groups[rt.Group] = g
		}
		everyRequest := len(rt.MatcherSets) == 0 && (g == nil || rt.Group == "")
		inner := *sc
		var site *layoutSite
		switch {
		case len(rt.MatcherSets) > 0 && hostsOnly(rt.MatcherSets):
			// A site of its own: what ran before it still holds.
			name := hostsOf(rt.MatcherSets)
			if known := w.sites[name]; known != nil && w.errors {
				// The site's handle_errors: its requests went through
				// the site's routes first.
				site = known
				inner.stripped = inner.stripped || site.endStripped
				inner.authed = inner.authed || site.endAuthed
			} else {
				site = &layoutSite{name: name}
				if !w.errors && known == nil {
					w.sites[name] = site
				}
			}
			inner.site, inner.local = site, true
		case !everyRequest:
			inner.local = true
		}
		w.handlers(rt.Handlers, &inner, rpath+"/handle")
		if site != nil {
			if !w.errors {
				site.endStripped, site.endAuthed = inner.stripped, inner.authed
			}
			w.finish(site)
		}
		if sc.require == "" {
			sc.require = inner.require
		}
		switch {
		case rt.Group != "" && len(rt.MatcherSets) == 0:
			// The group's catch-all: every request went through one
			// member; the members after it never run.
			g.stripped = g.stripped && inner.stripped
			g.authed = g.authed && inner.authed
			sc.stripped = sc.stripped || g.stripped
			sc.authed = sc.authed || g.authed
			g.stripped, g.authed = false, false
		case rt.Group != "":
			g.stripped = g.stripped && inner.stripped
			g.authed = g.authed && inner.authed
		case everyRequest:
			inner.local = sc.local
			*sc = inner
		}
	}
}

func (w *layoutWalker) handlers(hs []caddyhttp.MiddlewareHandler, sc *layoutScope, path string) {
	for i, h := range hs {
		hpath := fmt.Sprintf("%s/%d", path, i)
		switch h := h.(type) {
		case *SessionStrip:
			sc.stripped = true
		case *SessionAuth:
			w.auth(sc, hpath+" ("+h.Backend.Dialect+" "+urlHost(h.Backend.URL)+")")
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
				sc.site.forwarded = hpath + " (to " + upstreamsOf(h) + ")"
			}
			w.answers(sc, hpath, "reverse_proxy")
		case *caddyhttp.StaticResponse:
			w.answers(sc, hpath, "static_response")
		case *caddyhttp.StaticError:
			w.answers(sc, hpath, "error")
		case *fileserver.FileServer:
			if !h.PassThru {
				w.answers(sc, hpath, "file_server")
			}
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
		w.errorf(sc.site, "session_auth at %s never runs: %s answers every request before it gets there; put session_auth first in the route", path, sc.dead)
	}
	if sc.require != "" {
		w.errorf(sc.site, "session_require at %s runs before session_auth at %s, so it answers 401 to every request, valid sessions included; put session_auth first in the route", sc.require, path)
	}
	if sc.site.auth == "" {
		sc.site.auth = path
	}
	// It strips every request it sees first, as a strip does.
	sc.stripped = true
	sc.authed = true
}

func (w *layoutWalker) finish(site *layoutSite) {
	if site.auth != "" && site.forwarded != "" && !site.reported {
		site.reported = true
		w.errorf(site, "reverse_proxy at %s gets requests that no session_strip or session_auth has stripped, in a site with session_auth at %s: forged identity headers would reach the upstream; put session_strip first in the site (Caddyfile: `session_strip` at the top of the site block; JSON: a route with no matcher and {\"handler\": \"session_strip\"}, first in the site's routes)", site.forwarded, site.auth)
	}
}

// urlHost is the host of a backend URL, to name a session_auth in an
// error without its path, query or credentials.
func urlHost(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		return u.Host
	}
	return "?"
}

// upstreamsOf names a reverse_proxy by its upstreams.
func upstreamsOf(h *reverseproxy.Handler) string {
	var dials []string
	for _, u := range h.Upstreams {
		dials = append(dials, u.Dial)
	}
	if len(dials) == 0 {
		return "dynamic upstreams"
	}
	return strings.Join(dials, ", ")
}

// hostsOf names a site by the hosts its route matches.
func hostsOf(sets caddyhttp.MatcherSets) string {
	var hosts []string
	for _, set := range sets {
		for _, m := range set {
			if mh, ok := m.(*caddyhttp.MatchHost); ok {
				hosts = append(hosts, *mh...)
			}
		}
	}
	return strings.Join(hosts, ", ")
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
