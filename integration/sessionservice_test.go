package integration

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// sessionService is the tests' one fake session service: an http-dialect
// "who am I" endpoint on a real HTTP server, configured per test. It
// answers a bearer token with what the test set for it (a session, or any
// status, content type and body), 401 for a token it does not know, after
// the delay set for the token; a fault, when set, may take over any
// request. It counts calls, in all and per token, and the most requests
// and connections it served at once.
type sessionService struct {
	*httptest.Server
	calls, active, maxActive, conns, maxConns atomic.Int64

	mu       sync.Mutex
	answers  map[string]serviceAnswer // bearer token -> answer
	delay    map[string]time.Duration
	perToken map[string]int
	fault    func(w http.ResponseWriter, r *http.Request) bool
	https    bool
}

// serviceAnswer is what the service answers for a token.
type serviceAnswer struct {
	status      int
	contentType string // none when empty
	body        string
}

// unknownToken is the answer for a token the service does not know.
var unknownToken = serviceAnswer{http.StatusUnauthorized, "application/json", `{"error":"unauthenticated"}`}

// serviceOption configures a sessionService before it starts.
type serviceOption func(*sessionService)

// overTLS serves HTTPS with cert (httptest's own certificate when cert
// is nil); with clientCAs set it requires a client certificate they
// issued. The handshake failures a test provokes are not logged.
func overTLS(cert *tls.Certificate, clientCAs *x509.CertPool) serviceOption {
	return func(s *sessionService) {
		s.https = true
		if cert != nil {
			s.TLS = &tls.Config{Certificates: []tls.Certificate{*cert}}
		}
		if clientCAs != nil {
			s.TLS.ClientAuth = tls.RequireAndVerifyClientCert
			s.TLS.ClientCAs = clientCAs
		}
		s.Config.ErrorLog = log.New(io.Discard, "", 0)
	}
}

func newSessionService(t testing.TB, opts ...serviceOption) *sessionService {
	t.Helper()
	s := &sessionService{answers: map[string]serviceAnswer{}, delay: map[string]time.Duration{}, perToken: map[string]int{}}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			raise(&s.maxConns, s.conns.Add(1))
		case http.StateClosed, http.StateHijacked:
			s.conns.Add(-1)
		}
	}
	for _, o := range opts {
		o(s)
	}
	if s.https {
		s.StartTLS()
	} else {
		s.Start()
	}
	t.Cleanup(s.Close)
	return s
}

// raise sets m to v if v is more.
func raise(m *atomic.Int64, v int64) {
	for {
		cur := m.Load()
		if v <= cur || m.CompareAndSwap(cur, v) {
			return
		}
	}
}

// addSession makes the service answer token with session, as JSON.
func (s *sessionService) addSession(token string, session map[string]any) {
	raw, _ := json.Marshal(session)
	s.setAnswer(token, http.StatusOK, "application/json", string(raw))
}

// setAnswer makes the service answer token with status, content type (none
// when empty) and body as given.
func (s *sessionService) setAnswer(token string, status int, contentType, body string) {
	s.mu.Lock()
	s.answers[token] = serviceAnswer{status, contentType, body}
	s.mu.Unlock()
}

// removeSession makes token unknown to the service: a logout there.
func (s *sessionService) removeSession(token string) {
	s.mu.Lock()
	delete(s.answers, token)
	s.mu.Unlock()
}

// setDelay makes the service wait d before it answers token.
func (s *sessionService) setDelay(token string, d time.Duration) {
	s.mu.Lock()
	s.delay[token] = d
	s.mu.Unlock()
}

// setFault hands every request to f first; f reports whether it answered
// (nil: none).
func (s *sessionService) setFault(f func(w http.ResponseWriter, r *http.Request) bool) {
	s.mu.Lock()
	s.fault = f
	s.mu.Unlock()
}

// callsFor is how many times the service was asked about token.
func (s *sessionService) callsFor(token string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.perToken[token]
}

func (s *sessionService) serve(w http.ResponseWriter, r *http.Request) {
	s.calls.Add(1)
	raise(&s.maxActive, s.active.Add(1))
	defer s.active.Add(-1)
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	s.perToken[tok]++
	answer, ok := s.answers[tok]
	delay, fault := s.delay[tok], s.fault
	s.mu.Unlock()
	if !ok {
		answer = unknownToken
	}
	time.Sleep(delay)
	if fault != nil && fault(w, r) {
		return
	}
	if answer.contentType != "" {
		w.Header().Set("Content-Type", answer.contentType)
	}
	w.WriteHeader(answer.status)
	w.Write([]byte(answer.body))
}

// failing is a fault that answers every request with status and no body.
func failing(status int) func(w http.ResponseWriter, r *http.Request) bool {
	return func(w http.ResponseWriter, _ *http.Request) bool {
		w.WriteHeader(status)
		return true
	}
}
