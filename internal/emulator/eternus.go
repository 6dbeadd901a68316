package emulator

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// EternusPath is the ETERNUS session collection.
const EternusPath = "/api/v1/session"

// Eternus emulates the ETERNUS DX/AF REST API's session resource: sessions
// created by POST with a user name and password, read by
// GET /api/v1/session/{id} with the session's bearer token (a session can
// only read itself), with a fixed, non-sliding lifetime.
type Eternus struct {
	base
	users    map[string]eternusUser
	sessions map[int64]*eternusSession
	nextID   int64
}

type eternusUser struct {
	password string
	authList []string
	pwDays   int
}

type eternusSession struct {
	token    string
	user     string
	authList []string
	pwDays   int
	expires  time.Time
}

// EternusLifetime is the lifetime ETERNUS gives a new session.
const EternusLifetime = 1800 * time.Second

// NewEternus returns an ETERNUS with no users or sessions.
func NewEternus() *Eternus {
	return &Eternus{base: newBase(), users: map[string]eternusUser{}, sessions: map[int64]*eternusSession{}, nextID: 1000001}
}

// AddUser lets name log in with password; authList are its policies.
func (e *Eternus) AddUser(name, password string, authList []string, daysToPasswordExpiration int) {
	e.mu.Lock()
	e.users[name] = eternusUser{password: password, authList: append([]string(nil), authList...), pwDays: daysToPasswordExpiration}
	e.mu.Unlock()
}

// AddSession creates a session of user directly and returns its id and
// token; it ends lifetime from now.
func (e *Eternus) AddSession(user string, authList []string, lifetime time.Duration) (int64, string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.addLocked(user, authList, 12, lifetime)
}

func (e *Eternus) addLocked(user string, authList []string, pwDays int, lifetime time.Duration) (int64, string) {
	var b [20]byte
	rand.Read(b[:])
	id := e.nextID
	e.nextID++
	tok := hex.EncodeToString(b[:])
	e.sessions[id] = &eternusSession{
		token: tok, user: user, authList: append([]string(nil), authList...), pwDays: pwDays,
		expires: e.now().Add(lifetime),
	}
	return id, tok
}

// RemoveSession ends a session.
func (e *Eternus) RemoveSession(id int64) {
	e.mu.Lock()
	delete(e.sessions, id)
	e.mu.Unlock()
}

func eternusError(status int) any {
	codes := map[int]int{
		http.StatusBadRequest: 1000, http.StatusUnauthorized: 1001, http.StatusForbidden: 1002,
		http.StatusNotFound: 1003, http.StatusInternalServerError: 5000, http.StatusServiceUnavailable: 5003,
	}
	msg := map[int]string{
		http.StatusBadRequest:          "Bad request (Invalid parameter)",
		http.StatusUnauthorized:        "Authentication failed (Invalid token)",
		http.StatusForbidden:           "Access denied (Not the session owner)",
		http.StatusNotFound:            "Resource not found (Session does not exist)",
		http.StatusInternalServerError: "Internal error (Unexpected failure)",
		http.StatusServiceUnavailable:  "Service unavailable (System busy)",
	}
	return map[string]any{"error_code": codes[status], "message": msg[status], "internal_code": "0x" + strconv.Itoa(status)}
}

// ServeHTTP implements http.Handler.
func (e *Eternus) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f := e.enter(); f != Healthy {
		serveFault(w, f, eternusError)
		return
	}
	switch {
	case r.URL.Path == EternusPath && r.Method == http.MethodPost:
		e.login(w, r)
	case strings.HasPrefix(r.URL.Path, EternusPath+"/"):
		e.serveSession(w, r)
	default:
		writeJSON(w, http.StatusNotFound, eternusError(http.StatusNotFound))
	}
}

func (e *Eternus) login(w http.ResponseWriter, r *http.Request) {
	var in struct {
		UserName string `json:"user_name"`
		Password string `json:"password"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&in); err != nil {
		writeJSON(w, http.StatusBadRequest, eternusError(http.StatusBadRequest))
		return
	}
	e.mu.Lock()
	u, ok := e.users[in.UserName]
	if !ok || u.password != in.Password {
		e.mu.Unlock()
		writeJSON(w, http.StatusUnauthorized, eternusError(http.StatusUnauthorized))
		return
	}
	id, tok := e.addLocked(in.UserName, u.authList, u.pwDays, EternusLifetime)
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"session_id": id, "token": tok, "lifetime": int(EternusLifetime / time.Second)})
}

func (e *Eternus) serveSession(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(strings.TrimPrefix(r.URL.Path, EternusPath+"/"), 10, 64)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, eternusError(http.StatusBadRequest))
		return
	}
	tok := bearerToken(r)
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	var caller *eternusSession
	for sid, s := range e.sessions {
		if !now.Before(s.expires) {
			delete(e.sessions, sid)
			continue
		}
		if tok != "" && s.token == tok {
			caller = s
		}
	}
	target, exists := e.sessions[id]
	switch {
	case caller == nil:
		writeJSON(w, http.StatusUnauthorized, eternusError(http.StatusUnauthorized))
		return
	case !exists:
		writeJSON(w, http.StatusNotFound, eternusError(http.StatusNotFound))
		return
	case target != caller:
		writeJSON(w, http.StatusForbidden, eternusError(http.StatusForbidden))
		return
	}
	switch r.Method {
	case http.MethodDelete:
		delete(e.sessions, id)
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodGet:
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	obj := map[string]any{
		"session_id":                  id,
		"user_name":                   target.user,
		"lifetime":                    int(target.expires.Sub(now) / time.Second),
		"auth_list":                   target.authList,
		"days_to_password_expiration": target.pwDays,
	}
	if f := r.URL.Query().Get("fields"); f != "" {
		keep := map[string]bool{"session_id": true}
		for _, name := range strings.Split(f, ",") {
			keep[strings.TrimSpace(name)] = true
		}
		for k := range obj {
			if !keep[k] {
				delete(obj, k)
			}
		}
	}
	writeJSON(w, http.StatusOK, obj)
}
