package dialecttest

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
)

func init() {
	Register(Case{
		Dialect: "http",
		Sources: []Source{{"bearer", ""}},
		NewService: func() *Service {
			svc := &jsonService{live: "http-conf"}
			return &Service{
				Handler: svc, Token: "http-conf", Unknown: "http-nope",
				Revoke: svc.revoke, Calls: svc.calls.Load,
			}
		},
		// session_info http answers any request with the session the
		// service gave; it has no session read of its own product.
		InfoReads: []InfoRead{
			{Request{http.MethodGet, "/session", ""}, http.StatusUnauthorized, "error"},
		},
		DocsSnippet: `"token_to":{"name":"ory_session","to":"cookie"}`,
	})
}

// jsonService is a "who am I" endpoint in the http dialect's default
// shape (sessiongate's normalized session): the bearer token of its one
// live session is answered, anything else is a 401.
type jsonService struct {
	mu    sync.Mutex
	live  string
	calls atomic.Int64
}

func (s *jsonService) revoke() {
	s.mu.Lock()
	s.live = ""
	s.mu.Unlock()
}

func (s *jsonService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.calls.Add(1)
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	live := ok && tok != "" && tok == s.live
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if !live {
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"error":"unauthenticated"}`))
		return
	}
	w.Write([]byte(`{"user_id":"u-conf","user":"ada","email":"ada@example.com","roles":["admin"]}`))
}
