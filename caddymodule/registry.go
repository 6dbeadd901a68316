package caddymodule

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

func init() {
	caddy.RegisterModule(Registry{})
}

// Registry is the sessiongate app: one per loaded config, created by the
// first session_auth or session_strip that asks for it, with nothing to
// configure. It holds the union of the header names every session_auth of
// the config injects, so that every strip removes all of them whatever
// the layout, and it checks the layout of the http app's routes when the
// config starts (see checkLayout).
type Registry struct {
	ctx   caddy.Context
	names *nameUnion
}

type nameUnion struct {
	mu       sync.Mutex
	prefixes []string
	names    []string
	auths    []*SessionAuth               // whose token headers must survive the union
	handlers int                          // session_auth and session_strip handlers provisioned
	folder   atomic.Pointer[headerFolder] // the union, built on first use
}

// CaddyModule returns the Caddy module information.
func (Registry) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "sessiongate",
		New: func() caddy.Module { return &Registry{names: new(nameUnion)} },
	}
}

// Provision keeps the context, for Start's look at the http app.
func (a *Registry) Provision(ctx caddy.Context) error {
	a.ctx = ctx
	return nil
}

// Start refuses a layout in which a session_auth would leave requests
// unstripped or would never run: see checkLayout. Every handler of the
// config has been provisioned by now, so the union of strip names is
// complete too.
func (a *Registry) Start() error {
	app, err := a.ctx.AppIfConfigured("http")
	if errors.Is(err, caddy.ErrNotConfigured) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := a.checkTokenHeaders(); err != nil {
		return err
	}
	if err := checkLayout(app); err != nil {
		return err
	}
	a.markSole(app)
	return nil
}

// markSole tells the config's sessiongate handler that it is the only
// one a request can meet, and only once, when that is so: one
// session_auth or session_strip in the whole config, in the server's
// routes or error routes (not in a named route, which may be invoked
// twice). It then maps the request's placeholders once its outcome is
// known, with a provider made per session, rather than one per request
// that answers from whatever session the request carries by then (which
// a second handler may change). Until the config starts, and in any
// other config, each handler maps the per-request provider.
func (a *Registry) markSole(app any) {
	httpApp, ok := app.(*caddyhttp.App)
	if !ok {
		return
	}
	a.names.mu.Lock()
	provisioned := a.names.handlers
	a.names.mu.Unlock()
	if provisioned != 1 {
		return
	}
	var found []caddyhttp.MiddlewareHandler
	named := false
	var walk func(routes caddyhttp.RouteList, inNamed bool)
	walk = func(routes caddyhttp.RouteList, inNamed bool) {
		for _, rt := range routes {
			for _, h := range rt.Handlers {
				switch h := h.(type) {
				case *SessionAuth, *SessionStrip:
					found = append(found, h)
					named = named || inNamed
				case *caddyhttp.Subroute:
					walk(h.Routes, inNamed)
				}
			}
		}
	}
	for _, srv := range httpApp.Servers {
		walk(srv.Routes, false)
		if srv.Errors != nil {
			walk(srv.Errors.Routes, false)
		}
		for _, rt := range srv.NamedRoutes {
			walk(caddyhttp.RouteList{*rt}, true)
		}
	}
	if len(found) != 1 || named {
		return
	}
	switch h := found[0].(type) {
	case *SessionAuth:
		if h.sole != nil {
			h.sole.Store(true)
		}
	case *SessionStrip:
		if h.sole != nil {
			h.sole.Store(true)
		}
	}
}

// checkTokenHeaders refuses a session_auth that reads its token from a
// header some strip of the config removes: every request would arrive
// without its token (`token header X-Session-Token` beside the default
// header_prefix X-Session-, or another session_auth's `header`).
func (a *Registry) checkTokenHeaders() error {
	a.names.mu.Lock()
	auths := slices.Clone(a.names.auths)
	a.names.mu.Unlock()
	union := a.union()
	var errs []error
	for _, h := range auths {
		for _, src := range h.tokens {
			name := src.Name
			switch src.From {
			case sessionctx.FromBearer:
				name = "Authorization"
			case sessionctx.FromHeader:
			default:
				continue
			}
			if union.protected(name) {
				errs = append(errs, fmt.Errorf("session_auth reads its token from header %s, which is an identity header the config strips from every request (a header_prefix or header name of a session_auth, or a preset): rename one of them", name))
			}
		}
	}
	return errors.Join(errs...)
}

// Stop implements caddy.App.
func (a *Registry) Stop() error { return nil }

// register adds what one session_auth injects to the union.
func (a *Registry) register(prefixes, names []string) {
	a.names.add(prefixes, names)
}

func (a *nameUnion) add(prefixes, names []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range prefixes {
		if !slices.Contains(a.prefixes, p) {
			a.prefixes = append(a.prefixes, p)
		}
	}
	for _, n := range names {
		if !slices.Contains(a.names, n) {
			a.names = append(a.names, n)
		}
	}
	a.folder.Store(nil)
}

// union is the folder of every name any session_auth of the config
// injects, every preset name, and extra: built once, on first use, when
// every handler of the config has been provisioned (Caddy provisions the
// whole config before it starts serving).
func (a *Registry) union() *headerFolder { return a.names.folderOf() }

func (a *nameUnion) folderOf() *headerFolder {
	if f := a.folder.Load(); f != nil {
		return f
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	f := newStripFolder(a.prefixes, a.names)
	a.folder.Store(f)
	return f
}

// registryOf is the config's registry, or nil for a handler provisioned
// outside a Caddy config (a Go test, a library user). A handler inside a
// config always belongs to its http app, which is registered before it
// is provisioned.
func registryOf(ctx caddy.Context) (*Registry, error) {
	if _, err := ctx.AppIfConfigured("http"); errors.Is(err, caddy.ErrNotConfigured) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	app, err := ctx.App("sessiongate")
	if err != nil {
		return nil, err
	}
	return app.(*Registry), nil
}

// Interface guards
var (
	_ caddy.App         = (*Registry)(nil)
	_ caddy.Provisioner = (*Registry)(nil)
)

// stripNames is what this session_auth injects and so strips: its header
// prefix and its custom header names (every strip removes the presets'
// names anyway). Every name a session_auth may set must be here: the
// union of all of them is what every strip of the config removes.
func (h *SessionAuth) stripNames() (prefixes, names []string) {
	prefixes = []string{cmp.Or(h.HeaderPrefix, DefaultHeaderPrefix)}
	for name := range h.Headers {
		names = append(names, name)
	}
	slices.Sort(names)
	if n := h.Assertion.headerName(); n != "" {
		names = append(names, n)
	}
	return prefixes, names
}

// joinRegistry adds this handler's names to the config's union.
func (h *SessionAuth) joinRegistry(ctx caddy.Context) error {
	reg, err := registryOf(ctx)
	if err != nil || reg == nil {
		return err
	}
	h.registry = reg
	reg.register(h.stripNames())
	reg.names.mu.Lock()
	reg.names.auths = append(reg.names.auths, h)
	reg.names.handlers++
	reg.names.mu.Unlock()
	return nil
}

// stripFolder is what session_auth strips before anything else: the
// union of the config, or its own names outside a config.
func (h *SessionAuth) stripFolder() *headerFolder {
	if h.registry != nil {
		return h.registry.union()
	}
	return h.folder
}
