// Package emulator holds test doubles of the session services that
// sessiongate's dialects talk to, one per product in the file named after
// its dialect (amplify.go, tr50.go, ...). Each is an http.Handler that
// answers as docs/dialects.md says the product does, so unit tests (on httptest servers) and integration tests
// (behind a real Caddy) share one model of each service.
//
// The package deliberately does not import sessionctx: it is an
// independent model of the services, so a misreading in a dialect client
// cannot be mirrored by the emulator it is tested against.
package emulator

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Fault is how an emulator misbehaves, for service-error tests.
type Fault int

// Faults an emulator can be switched to.
const (
	// Healthy answers as the product does.
	Healthy Fault = iota
	// Unavailable answers 503 with the product's error body.
	Unavailable
	// InternalError answers 500 with the product's error body.
	InternalError
	// Garbage answers 200 with a body that is not JSON.
	Garbage
	// WrongShape answers 200 with JSON that is no answer of the product.
	WrongShape
)

// base is what every emulator shares: a lock, a clock, a call counter and
// a fault switch.
type base struct {
	mu    sync.Mutex
	now   func() time.Time
	fault Fault
	calls atomic.Int64
}

func newBase() base { return base{now: time.Now} }

// SetFault switches the emulator to a failure mode (Healthy to recover).
func (b *base) SetFault(f Fault) {
	b.mu.Lock()
	b.fault = f
	b.mu.Unlock()
}

// SetClock replaces the emulator's clock, which dates sessions and counts
// down their lifetimes.
func (b *base) SetClock(now func() time.Time) {
	b.mu.Lock()
	b.now = now
	b.mu.Unlock()
}

// Calls is how many requests the emulator has received.
func (b *base) Calls() int64 { return b.calls.Load() }

// enter counts a request and returns the fault in force.
func (b *base) enter() Fault {
	b.calls.Add(1)
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.fault
}

// serveFault answers a fault in the product's shape: errBody makes the
// product's error body for a status.
func serveFault(w http.ResponseWriter, f Fault, errBody func(status int) any) {
	switch f {
	case Unavailable:
		writeJSON(w, http.StatusServiceUnavailable, errBody(http.StatusServiceUnavailable))
	case InternalError:
		writeJSON(w, http.StatusInternalServerError, errBody(http.StatusInternalServerError))
	case Garbage:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusOK)
		w.Write([]byte("<html><body>Service temporarily down for maintenance</body></html>"))
	case WrongShape:
		writeJSON(w, http.StatusOK, []any{"not", "a", "session"})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	raw, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(raw)
}

// copyMap returns a shallow copy, so a caller's later edits of a session it
// added do not race with the handler.
func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func bearerToken(r *http.Request) string {
	const prefix = "Bearer "
	h := r.Header.Get("Authorization")
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return ""
	}
	return h[len(prefix):]
}

// rawCookie finds a cookie's value as sent (net/http keeps percent signs,
// so an express-signed Amplify value compares byte for byte).
func rawCookie(r *http.Request, name string) string {
	for _, c := range r.Cookies() {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}
