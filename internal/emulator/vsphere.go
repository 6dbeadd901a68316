package emulator

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"sync/atomic"
	"time"
)

// vSphere session paths: the current Automation API and the legacy /rest
// API (vCenter before 7.0U2, and govmomi's vcsim).
const (
	VSphereCurrentPath = "/api/session"
	VSphereLegacyPath  = "/rest/com/vmware/cis/session"
)

// VSphere emulates the vSphere Automation API session service, current and
// legacy. Sessions are created as vCenter does (POST with Basic auth) or
// added directly. A get answers the session's last access before it, then
// counts as an access itself.
type VSphere struct {
	base
	sessions   map[string]*vsphereSession
	legacyOnly bool

	currentCalls, legacyCalls atomic.Int64
}

type vsphereSession struct {
	user                  string
	created, lastAccessed time.Time
}

// NewVSphere returns a vSphere with no sessions that serves both APIs.
func NewVSphere() *VSphere { return &VSphere{base: newBase(), sessions: map[string]*vsphereSession{}} }

// LegacyOnly makes the current API answer 404, as on vCenter before 7.0U2
// and on vcsim.
func (v *VSphere) LegacyOnly(on bool) {
	v.mu.Lock()
	v.legacyOnly = on
	v.mu.Unlock()
}

// AddSession makes token name a session of user, last accessed at
// lastAccessed (the zero time: now).
func (v *VSphere) AddSession(token, user string, lastAccessed time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.now()
	if lastAccessed.IsZero() {
		lastAccessed = now
	}
	v.sessions[token] = &vsphereSession{user: user, created: lastAccessed.Add(-time.Minute), lastAccessed: lastAccessed}
}

// RemoveSession ends a session.
func (v *VSphere) RemoveSession(token string) {
	v.mu.Lock()
	delete(v.sessions, token)
	v.mu.Unlock()
}

// CurrentCalls counts session gets on the current API, answered or not
// (a legacy-only server answers them 404).
func (v *VSphere) CurrentCalls() int64 { return v.currentCalls.Load() }

// LegacyCalls counts session gets on the legacy API.
func (v *VSphere) LegacyCalls() int64 { return v.legacyCalls.Load() }

func vsphereError(status int) any {
	t := map[int]string{
		http.StatusServiceUnavailable:  "SERVICE_UNAVAILABLE",
		http.StatusInternalServerError: "ERROR",
	}[status]
	return map[string]any{"error_type": t, "messages": []any{map[string]any{
		"args": []any{}, "default_message": http.StatusText(status), "id": "com.vmware.vapi.std.errors." + t,
	}}}
}

var vsphereUnauthMessages = []any{map[string]any{
	"args": []any{}, "default_message": "Authentication required.",
	"id": "com.vmware.vapi.endpoint.method.authentication.required",
}}

// ServeHTTP implements http.Handler.
func (v *VSphere) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f := v.enter(); f != Healthy {
		serveFault(w, f, vsphereError)
		return
	}
	v.mu.Lock()
	legacyOnly := v.legacyOnly
	v.mu.Unlock()
	if r.URL.Path == VSphereCurrentPath && r.Method == http.MethodGet {
		v.currentCalls.Add(1)
	}
	switch {
	case r.URL.Path == VSphereCurrentPath && !legacyOnly:
		v.serveCurrent(w, r)
	case r.URL.Path == VSphereLegacyPath:
		v.serveLegacy(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (v *VSphere) serveCurrent(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
		if tok, ok := v.login(r); ok {
			writeJSON(w, http.StatusCreated, tok)
			return
		}
		v.unauthenticated(w, false)
	case http.MethodGet:
		if obj, ok := v.get(r); ok {
			writeJSON(w, http.StatusOK, obj)
			return
		}
		v.unauthenticated(w, false)
	case http.MethodDelete:
		if v.logout(r) {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		v.unauthenticated(w, false)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func (v *VSphere) serveLegacy(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && r.URL.Query().Get("~action") == "get":
		v.legacyCalls.Add(1)
		if obj, ok := v.get(r); ok {
			writeJSON(w, http.StatusOK, map[string]any{"value": obj})
			return
		}
		v.unauthenticated(w, true)
	case r.Method == http.MethodPost:
		if tok, ok := v.login(r); ok {
			writeJSON(w, http.StatusOK, map[string]any{"value": tok})
			return
		}
		v.unauthenticated(w, true)
	case r.Method == http.MethodDelete:
		if v.logout(r) {
			w.WriteHeader(http.StatusOK)
			return
		}
		v.unauthenticated(w, true)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func (v *VSphere) unauthenticated(w http.ResponseWriter, legacy bool) {
	if legacy {
		writeJSON(w, http.StatusUnauthorized, map[string]any{
			"type": "com.vmware.vapi.std.errors.unauthenticated", "value": map[string]any{"messages": vsphereUnauthMessages},
		})
		return
	}
	writeJSON(w, http.StatusUnauthorized, map[string]any{"error_type": "UNAUTHENTICATED", "messages": vsphereUnauthMessages})
}

func (v *VSphere) login(r *http.Request) (string, bool) {
	user, _, ok := r.BasicAuth()
	if !ok || user == "" {
		return "", false
	}
	var b [16]byte
	rand.Read(b[:])
	tok := hex.EncodeToString(b[:])
	v.AddSession(tok, user, time.Time{})
	return tok, true
}

func (v *VSphere) get(r *http.Request) (map[string]any, bool) {
	tok := r.Header.Get("vmware-api-session-id")
	v.mu.Lock()
	defer v.mu.Unlock()
	s, ok := v.sessions[tok]
	if !ok {
		return nil, false
	}
	obj := map[string]any{
		"user":               s.user,
		"created_time":       s.created.UTC().Format(time.RFC3339Nano),
		"last_accessed_time": s.lastAccessed.UTC().Format(time.RFC3339Nano),
	}
	s.lastAccessed = v.now()
	return obj, true
}

func (v *VSphere) logout(r *http.Request) bool {
	tok := r.Header.Get("vmware-api-session-id")
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.sessions[tok]; !ok {
		return false
	}
	delete(v.sessions, tok)
	return true
}
