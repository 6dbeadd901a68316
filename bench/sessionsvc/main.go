// Command sessionsvc is the benchmark's emulated session service and
// upstream, in one process apart from Caddy so that Caddy's CPU figures
// are Caddy's alone.
//
// The session service accepts any bearer token that starts with the
// configured prefix (so a load generator can make up new valid tokens),
// answering sessiongate's normalized session JSON for session_auth's http
// dialect, and, for forward_auth, a 200 with identity headers to copy (on
// /verify-nobody, a 204 with the headers and no body, which forward_auth
// reads to the end and so keeps its connection).
// Anything else is a 401 with a JSON error. The upstream answers a short "ok".
package main

import (
	"flag"
	"log"
	"net/http"
	"strings"
	"time"
)

func main() {
	svcAddr := flag.String("session", "127.0.0.1:18090", "session service listen address")
	upAddr := flag.String("upstream", "127.0.0.1:18091", "upstream listen address")
	prefix := flag.String("prefix", "bench-", "accepted token prefix")
	flag.Parse()

	session := []byte(`{"id":"s1","user_id":"u1","user":"alice","email":"alice@example.com","name":"Alice Doe","org_id":"o1","org":"Acme","roles":["admin","dev"],"perms":["read","write"],"admin":false}`)
	svc := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || !strings.HasPrefix(tok, *prefix) {
			// A rejection counts only with the service's own (JSON) answer.
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"unauthenticated"}`))
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/json")
		// forward_auth copies these onto the request.
		h.Set("X-User", "alice")
		h.Set("X-User-Id", "u1")
		h.Set("X-Email", "alice@example.com")
		h.Set("X-Roles", "admin,dev")
		if r.URL.Path == "/verify-nobody" {
			h.Del("Content-Type")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Write(session)
	})
	ok := []byte("ok\n")
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(ok)
	})

	errc := make(chan error, 2)
	for _, s := range []*http.Server{
		{Addr: *svcAddr, Handler: svc, ReadHeaderTimeout: 5 * time.Second},
		{Addr: *upAddr, Handler: up, ReadHeaderTimeout: 5 * time.Second},
	} {
		go func() { errc <- s.ListenAndServe() }()
	}
	log.Fatal(<-errc)
}
