package sessionctx_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// This guards a Go HTTP server without Caddy: a middleware asks a JSON
// session endpoint who owns each request's token, through the same
// dialect and cache the plugin uses, and hands the session to the
// handler in the request context.
func Example() {
	// A session service: one live token, everything else rejected.
	var calls atomic.Int32
	service := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Header.Get("Authorization") != "Bearer alice-token" {
			http.Error(w, `{"error": "unauthenticated"}`, http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, `{"identity": {"id": "u-1001", "traits": {"email": "alice@example.com"}}, "groups": ["admin", "developer"]}`)
	}))
	defer service.Close()

	// One client per session service, shared by every request. The http
	// dialect's options map the service's answer to a Session with GJSON
	// paths.
	opts, _ := sessionctx.DialectOptions("http")
	mapping := opts.(*sessionctx.HTTPOptions)
	mapping.UserIDFrom, mapping.UserFrom, mapping.RolesFrom = "identity.id", "identity.traits.email", "groups"
	client, err := sessionctx.New(sessionctx.Config{Dialect: "http", URL: service.URL + "/whoami", Options: mapping})
	if err != nil {
		fmt.Println(err)
		return
	}

	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, _ := sessionctx.FromContext(r.Context())
		fmt.Fprintf(w, "hello %s (%s), roles %s", s.User, s.UserID, strings.Join(s.Roles, ","))
	})
	guard := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			res, err := client.Authenticate(r)
			switch {
			case errors.Is(err, sessionctx.ErrUnauthenticated):
				http.Error(w, "sign in first", http.StatusUnauthorized)
			case err != nil:
				http.Error(w, "try again later", http.StatusServiceUnavailable)
			default:
				client.StripTokens(r) // the app never sees the token
				next.ServeHTTP(w, r.WithContext(sessionctx.NewContext(r.Context(), res.Session)))
			}
		})
	}
	srv := httptest.NewServer(guard(app))
	defer srv.Close()

	for _, token := range []string{"alice-token", "alice-token", "mallory-token", ""} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%d %s\n", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	// The second request was answered from the cache, and a request with
	// no token never reached the service.
	fmt.Println("session-service calls:", calls.Load())

	// Output:
	// 200 hello alice@example.com (u-1001), roles admin,developer
	// 200 hello alice@example.com (u-1001), roles admin,developer
	// 401 sign in first
	// 401 sign in first
	// session-service calls: 2
}

// An ETERNUS credential is two values: the session id and the token. The
// client reads both where ETERNUS clients send them (a bearer token and
// the session-id header, or a bearer <session_id>:<token>), so a caller
// cannot hand the resolver half a credential.
func Example_eternus() {
	// ETERNUS answers GET /api/v1/session/<id> for the bearer of that
	// session only.
	eternus := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/session/1000042" || r.Header.Get("Authorization") != "Bearer t0k3n" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error_code": 1001, "message": "Authentication failed (Invalid token)"}`)
			return
		}
		_, _ = io.WriteString(w, `{"session_id": 1000042, "user_name": "storage-admin", "lifetime": 1800, "auth_list": ["User_Management", "Volume_Management"]}`)
	}))
	defer eternus.Close()

	client, err := sessionctx.New(sessionctx.Config{Dialect: "eternus", URL: eternus.URL})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, h := range []http.Header{
		{"Authorization": {"Bearer t0k3n"}, "X-Eternus-Session-Id": {"1000042"}},
		{"Authorization": {"Bearer 1000042:t0k3n"}},
		{"Authorization": {"Bearer t0k3n"}}, // no session id: refused before any call
		{"Authorization": {"Bearer stolen"}, "X-Eternus-Session-Id": {"1000042"}},
	} {
		r := httptest.NewRequest(http.MethodGet, "/volumes", nil)
		r.Header = h
		res, err := client.Authenticate(r)
		if err != nil {
			fmt.Println("401:", errors.Is(err, sessionctx.ErrUnauthenticated))
			continue
		}
		fmt.Printf("%s admin=%v cached=%v\n", res.Session.User, res.Session.Admin, res.Hit)
	}
	fmt.Println("service calls:", client.Stats().ServiceCalls)

	// Output:
	// storage-admin admin=true cached=false
	// storage-admin admin=true cached=true
	// 401: true
	// 401: true
	// service calls: 2
}

// A Go upstream behind sessiongate can keep the resolved session in the
// request context, so handlers deeper in need no header parsing.
func ExampleFromContext() {
	whoami := func(w http.ResponseWriter, r *http.Request) {
		s, ok := sessionctx.FromContext(r.Context())
		if !ok {
			http.Error(w, "no session", http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "%s admin=%v has role developer=%v", s.User, s.Admin, s.HasRole("developer"))
	}

	r := httptest.NewRequest(http.MethodGet, "/whoami", nil)
	r = r.WithContext(sessionctx.NewContext(context.Background(), &sessionctx.Session{
		User: "alice", Roles: []string{"admin", "developer"}, Admin: true,
	}))
	w := httptest.NewRecorder()
	whoami(w, r)
	fmt.Println(w.Body.String())

	w = httptest.NewRecorder()
	whoami(w, httptest.NewRequest(http.MethodGet, "/whoami", nil))
	fmt.Print(w.Code, " ", w.Body.String())

	// Output:
	// alice admin=true has role developer=true
	// 401 no session
}

// An InfoShape answers a session the way a product's own session API
// does, so a front end written for the product keeps working: here
// vSphere's GET /api/session. The product's other requests on that path
// (a login is a POST) are not session reads: they go on to the product.
func ExampleInfoShape() {
	shape, err := sessionctx.LookupInfoShape("vsphere")
	if err != nil {
		fmt.Println(err)
		return
	}
	alice := &sessionctx.Session{User: "alice@vsphere.local"}
	for _, req := range []sessionctx.InfoRequest{
		{Method: http.MethodGet, Path: "/api/session"},
		{Method: http.MethodPost, Path: "/api/session"},
	} {
		if !shape.Handles(req) {
			fmt.Println(req.Method, req.Path, "goes on to vSphere")
			continue
		}
		for _, s := range []*sessionctx.Session{alice, nil} {
			a := shape.Render(s, req)
			fmt.Println(req.Method, req.Path, a.Status, string(a.Body))
		}
	}

	// Output:
	// GET /api/session 200 {"user":"alice@vsphere.local"}
	// GET /api/session 401 {"error_type":"UNAUTHENTICATED","messages":[{"args":[],"default_message":"Authentication required.","id":"com.vmware.vapi.endpoint.method.authentication.required"}]}
	// POST /api/session goes on to vSphere
}

// FailureKindOf tells an ErrUnavailable's cause: what an operator does
// about each differs (start the service, raise the timeout, fix a
// certificate).
func ExampleFailureKindOf() {
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close() // nothing listens there any more

	client, err := sessionctx.New(sessionctx.Config{Dialect: "http", URL: down.URL + "/whoami"})
	if err != nil {
		fmt.Println(err)
		return
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Bearer alice-token")
	_, err = client.Authenticate(r)
	switch kind := sessionctx.FailureKindOf(err); kind {
	case sessionctx.FailureRefused, sessionctx.FailureTimeout:
		fmt.Println("is the session service up?", kind)
	default:
		fmt.Println(kind)
	}

	// Output:
	// is the session service up? refused
}
