package sessionctx

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// Lookups one after the other run on the same kept goroutine, not on a
// new one each (whose stack every lookup would grow again); each still
// answers its own token.
func TestLookupGoroutinesKept(t *testing.T) {
	users := map[string]string{"Bearer first": "first"}
	for i := range 50 {
		users[fmt.Sprintf("Bearer tok-%d", i)] = fmt.Sprintf("user-%d", i)
	}
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, ok := users[r.Header.Get("Authorization")]
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"user_id":"u1","user":%q}`, user)
	}))
	defer svc.Close()
	c, err := New(Config{Dialect: "http", URL: svc.URL})
	if err != nil {
		t.Fatal(err)
	}
	// One lookup first: a goroutine of the pool may have ended since an
	// earlier test, or be kept; from here on one is kept.
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Bearer first")
	if _, err := c.Authenticate(r); err != nil {
		t.Fatal(err)
	}
	before := workers.started.Load()
	for i := range 50 {
		tok := fmt.Sprintf("tok-%d", i)
		r.Header.Set("Authorization", "Bearer "+tok)
		res, err := c.Authenticate(r)
		if err != nil {
			t.Fatal(err)
		}
		if res.Session.User != fmt.Sprintf("user-%d", i) {
			t.Fatalf("token %s answered as %q", tok, res.Session.User)
		}
	}
	// Other tests of the package may run lookups at once (t.Parallel):
	// a few more goroutines, never one per lookup.
	if n := workers.started.Load() - before; n > 5 {
		t.Fatalf("50 lookups one after the other started %d goroutines", n)
	}
}
