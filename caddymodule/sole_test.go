package caddymodule

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// soleService answers alice for benchToken and 401 for any other token.
func soleService(t testing.TB) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+benchToken {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"s1","user_id":"u1","user":"alice","roles":["dev"]}`)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// markSole marks a handler only where it is the one sessiongate handler
// a request can meet, and only once.
func TestMarkSole(t *testing.T) {
	route := func(hs ...caddyhttp.MiddlewareHandler) caddyhttp.Route {
		return caddyhttp.Route{Handlers: hs}
	}
	sub := func(hs ...caddyhttp.MiddlewareHandler) *caddyhttp.Subroute {
		return &caddyhttp.Subroute{Routes: caddyhttp.RouteList{route(hs...)}}
	}
	type layout struct {
		routes, errors caddyhttp.RouteList
		named          map[string]*caddyhttp.Route
		provisioned    int // handlers the registry saw provisioned
	}
	for _, tc := range []struct {
		name   string
		layout func(a *SessionAuth, s *SessionStrip) layout
		authOK bool // the session_auth is marked
	}{
		{"one session_auth in the routes", func(a *SessionAuth, _ *SessionStrip) layout {
			return layout{routes: caddyhttp.RouteList{route(a)}, provisioned: 1}
		}, true},
		{"one session_auth in a handle block", func(a *SessionAuth, _ *SessionStrip) layout {
			return layout{routes: caddyhttp.RouteList{route(sub(sub(a)))}, provisioned: 1}
		}, true},
		{"one session_auth in the error routes", func(a *SessionAuth, _ *SessionStrip) layout {
			return layout{errors: caddyhttp.RouteList{route(a)}, provisioned: 1}
		}, true},
		{"a session_strip before it", func(a *SessionAuth, s *SessionStrip) layout {
			return layout{routes: caddyhttp.RouteList{route(s, a)}, provisioned: 2}
		}, false},
		{"a session_strip in the error routes", func(a *SessionAuth, s *SessionStrip) layout {
			return layout{routes: caddyhttp.RouteList{route(a)}, errors: caddyhttp.RouteList{route(s)}, provisioned: 2}
		}, false},
		{"in a named route (invoked maybe twice)", func(a *SessionAuth, _ *SessionStrip) layout {
			r := route(a)
			return layout{routes: caddyhttp.RouteList{route(&caddyhttp.Invoke{Name: "n"})}, named: map[string]*caddyhttp.Route{"n": &r}, provisioned: 1}
		}, false},
		{"another one where the walk does not look", func(a *SessionAuth, _ *SessionStrip) layout {
			return layout{routes: caddyhttp.RouteList{route(a)}, provisioned: 2}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &SessionAuth{sole: new(atomic.Bool)}
			s := &SessionStrip{sole: new(atomic.Bool)}
			l := tc.layout(a, s)
			srv := &caddyhttp.Server{Routes: l.routes, NamedRoutes: l.named}
			if l.errors != nil {
				srv.Errors = &caddyhttp.HTTPErrorConfig{Routes: l.errors}
			}
			reg := &Registry{names: &nameUnion{handlers: l.provisioned}}
			reg.markSole(&caddyhttp.App{Servers: map[string]*caddyhttp.Server{"srv0": srv}})
			if got := a.sole.Load(); got != tc.authOK {
				t.Errorf("session_auth marked sole: %v, want %v", got, tc.authOK)
			}
			if s.sole.Load() {
				t.Error("a session_strip beside a session_auth marked sole")
			}
		})
	}
	t.Run("one session_strip", func(t *testing.T) {
		s := &SessionStrip{sole: new(atomic.Bool)}
		reg := &Registry{names: &nameUnion{handlers: 1}}
		reg.markSole(&caddyhttp.App{Servers: map[string]*caddyhttp.Server{"srv0": {Routes: caddyhttp.RouteList{route(s)}}}})
		if !s.sole.Load() {
			t.Error("the only session_strip not marked sole")
		}
	})
}

// The only session_auth of a config answers the placeholders as any
// session_auth does: the session's values with one, "" without (an
// anonymous request must not carry `{session.user}` as written), and
// {http.auth.user.id} alike; and it costs a cached request one
// allocation less than a handler that must answer from whatever session
// a later one may set.
func TestSolePlaceholders(t *testing.T) {
	url := soleService(t)
	const tmpl = "[{session.user}|{session.roles}|{http.auth.user.id}|{session.attrs.x}]"
	for _, sole := range []bool{false, true} {
		h := provisionAuth(t, &SessionAuth{Optional: true}, url)
		h.sole.Store(sole)
		for _, tc := range []struct {
			token, want string
		}{
			{benchToken, "[alice|dev|u1|]"},
			{"other", "[|||]"},
			{"", "[|||]"},
		} {
			hdr := http.Header{}
			if tc.token != "" {
				hdr.Set("Authorization", "Bearer "+tc.token)
			}
			r := caddyRequest(hdr)
			repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
			var got string
			next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
				got = repl.ReplaceKnown(tmpl, "")
				return nil
			})
			if err := h.ServeHTTP(httptest.NewRecorder(), r, next); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("sole %v, token %q: placeholders %s, want %s", sole, tc.token, got, tc.want)
			}
		}
	}

	allocs := func(sole bool) float64 {
		h := provisionAuth(t, &SessionAuth{}, url)
		h.sole.Store(sole)
		hdr := http.Header{"Authorization": {"Bearer " + benchToken}}
		if err := h.ServeHTTP(httptest.NewRecorder(), caddyRequest(hdr), nextOK); err != nil {
			t.Fatal(err)
		}
		const runs = 200
		reqs := make([]*http.Request, runs+1)
		for i := range reqs {
			reqs[i] = caddyRequest(hdr)
		}
		w := &discardWriter{h: http.Header{}}
		i := 0
		return testing.AllocsPerRun(runs, func() {
			if err := h.ServeHTTP(w, reqs[i], nextOK); err != nil {
				t.Fatal(err)
			}
			i++
		})
	}
	perRequest, sole := allocs(false), allocs(true)
	if sole > perRequest-1 {
		t.Errorf("a cached request allocates %.0f times with the only session_auth, %.0f with a per-request provider: want one less", sole, perRequest)
	}
}
