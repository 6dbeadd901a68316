package emulator

import "net/http"

// TrifactaPath is where Trifacta answers the current person.
const TrifactaPath = "/v2/session"

// TrifactaCookie is the browser-session cookie this emulator accepts
// besides bearer tokens; the real name is deployment-specific.
const TrifactaCookie = "trifacta.sid"

// Trifacta emulates Trifacta / Designer Cloud's GET /v2/session: a bearer
// access token (or the browser-session cookie) names a person.
type Trifacta struct {
	base
	sessions map[string]map[string]any
}

// NewTrifacta returns a Trifacta with no sessions.
func NewTrifacta() *Trifacta {
	return &Trifacta{base: newBase(), sessions: map[string]map[string]any{}}
}

// AddSession makes token name the person person (see TrifactaPerson).
func (t *Trifacta) AddSession(token string, person map[string]any) {
	t.mu.Lock()
	t.sessions[token] = copyMap(person)
	t.mu.Unlock()
}

// RemoveSession ends a session.
func (t *Trifacta) RemoveSession(token string) {
	t.mu.Lock()
	delete(t.sessions, token)
	t.mu.Unlock()
}

// TrifactaPerson is a realistic /v2/session answer: a person with the
// given roles in workspace 7.
func TrifactaPerson(id int, email, name string, isAdmin, isDisabled bool, roles ...string) map[string]any {
	rs := make([]any, 0, len(roles))
	for i, r := range roles {
		rs = append(rs, map[string]any{
			"id": 100 + i, "role": r, "createdAt": "2023-01-05T10:00:00.000Z", "updatedAt": "2023-01-05T10:00:00.000Z",
			"peopleworkspaces": map[string]any{
				"workspaceId": 7, "personId": id, "roleId": 100 + i,
				"createdAt": "2023-01-05T10:00:00.000Z", "updatedAt": "2023-01-05T10:00:00.000Z",
			},
		})
	}
	return map[string]any{
		"id": id, "email": email, "name": name, "isAdmin": isAdmin, "isDisabled": isDisabled,
		"forcePasswordChange": false, "lastLoginTime": "2024-03-01T08:30:00.000Z",
		"createdAt": "2023-01-05T10:00:00.000Z", "updatedAt": "2024-03-01T08:30:00.000Z",
		"outputHomeDir": "/trifacta/queryResults/" + email, "roles": rs,
	}
}

func trifactaError(status int) any {
	names := map[int]string{
		http.StatusUnauthorized:        "AuthenticationException",
		http.StatusInternalServerError: "InternalServerError",
		http.StatusServiceUnavailable:  "ServiceUnavailableException",
	}
	msg := "Not authenticated"
	if status != http.StatusUnauthorized {
		msg = http.StatusText(status)
	}
	return map[string]any{"exception": map[string]any{"name": names[status], "message": msg, "details": ""}}
}

// ServeHTTP implements http.Handler.
func (t *Trifacta) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f := t.enter(); f != Healthy {
		serveFault(w, f, trifactaError)
		return
	}
	if r.URL.Path != TrifactaPath || r.Method != http.MethodGet {
		writeJSON(w, http.StatusNotFound, map[string]any{"exception": map[string]any{"name": "NotFoundException", "message": "Not found", "details": ""}})
		return
	}
	tok := bearerToken(r)
	if tok == "" {
		tok = rawCookie(r, TrifactaCookie)
	}
	t.mu.Lock()
	person, ok := t.sessions[tok]
	t.mu.Unlock()
	if tok == "" || !ok {
		writeJSON(w, http.StatusUnauthorized, trifactaError(http.StatusUnauthorized))
		return
	}
	writeJSON(w, http.StatusOK, person)
}
