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

// This resolves sessions without Caddy: a Go service asks a JSON session
// endpoint who owns each request's token, through the same dialect and
// cache the plugin uses.
func Example() {
	// A session service: one live token, everything else rejected.
	var calls atomic.Int32
	service := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Header.Get("Authorization") != "Bearer alice-token" {
			http.Error(w, `{"error": "unauthenticated"}`, http.StatusUnauthorized)
			return
		}
		io.WriteString(w, `{"identity": {"id": "u-1001", "traits": {"email": "alice@example.com"}}, "groups": ["admin", "developer"]}`)
	}))
	defer service.Close()

	// The http dialect's options map the service's answer to a Session
	// with GJSON paths; they are the JSON form of the Caddyfile block.
	backend, dialect, err := sessionctx.NewBackend(sessionctx.BackendConfig{
		Dialect: "http",
		URL:     service.URL + "/whoami",
		Options: []byte(`{"user_id_from": "identity.id", "user_from": "identity.traits.email", "roles_from": "groups"}`),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	resolver := sessionctx.NewResolver(backend, sessionctx.CacheConfig{})

	for _, token := range []string{"alice-token", "alice-token", "mallory-token"} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Authorization", "Bearer "+token)

		cred, err := sessionctx.Extract(r, dialect.Tokens) // the http dialect reads a bearer token
		if err != nil {
			fmt.Println("no token:", err)
			continue
		}
		res, err := resolver.Resolve(r.Context(), cred)
		switch {
		case errors.Is(err, sessionctx.ErrUnauthenticated):
			fmt.Println("401: token rejected")
		case errors.Is(err, sessionctx.ErrUnavailable):
			fmt.Println("503: session service down")
		default:
			s := res.Session
			fmt.Printf("%s (%s) roles=%s cached=%v\n", s.User, s.UserID, strings.Join(s.Roles, ","), res.Hit)
		}
	}
	fmt.Println("session-service calls:", calls.Load())

	// Output:
	// alice@example.com (u-1001) roles=admin,developer cached=false
	// alice@example.com (u-1001) roles=admin,developer cached=true
	// 401: token rejected
	// session-service calls: 2
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
