package emulator

import "net/http"

// AmplifyPath is where Amplify answers who owns a session.
const AmplifyPath = "/api/v1/auth/findSession"

// Amplify emulates the Axway Amplify Platform's findSession endpoint. A
// session is found by its connect.sid cookie value (byte for byte) or by a
// bearer access token.
type Amplify struct {
	base
	sessions   map[string]map[string]any
	deviceAuth map[string]bool
	// reject401 makes a dead session answer 401 "Sign-in Required"
	// instead of 200 with result null.
	reject401 bool
}

// NewAmplify returns an Amplify with no sessions.
func NewAmplify() *Amplify {
	return &Amplify{base: newBase(), sessions: map[string]map[string]any{}, deviceAuth: map[string]bool{}}
}

// AddSession makes token (a connect.sid value or an access token) name a
// session whose findSession result is result.
func (a *Amplify) AddSession(token string, result map[string]any) {
	a.mu.Lock()
	a.sessions[token] = copyMap(result)
	a.mu.Unlock()
}

// RemoveSession ends a session.
func (a *Amplify) RemoveSession(token string) {
	a.mu.Lock()
	delete(a.sessions, token)
	a.mu.Unlock()
}

// RequireDeviceAuth makes token name a session that still waits for device
// authorization: Amplify answers 400 with internalCode 232.
func (a *Amplify) RequireDeviceAuth(token string) {
	a.mu.Lock()
	a.deviceAuth[token] = true
	a.mu.Unlock()
}

// RejectWith401 makes a dead session answer 401 "Sign-in Required" (as
// Amplify's guarded routes do) instead of 200 with result null.
func (a *Amplify) RejectWith401(on bool) {
	a.mu.Lock()
	a.reject401 = on
	a.mu.Unlock()
}

// AmplifyResult is a realistic findSession result for a user in one org
// and one team.
func AmplifyResult(guid, username, email, role string) map[string]any {
	return map[string]any{
		"guid":      guid,
		"username":  username,
		"sessionID": "sess-" + guid,
		"sid":       "sid-" + guid,
		"from":      "web",
		"idp":       "amplify",
		"org": map[string]any{
			"guid": "org-guid-1", "org_id": 100001, "name": "Acme",
			"entitlements": map[string]any{"limit_users": 10},
		},
		"org_id":       100001,
		"orgs":         []any{map[string]any{"guid": "org-guid-1", "name": "Acme", "org_id": 100001}},
		"provider_org": nil,
		"role":         role,
		"roles":        []any{role, "usage_reporter"},
		"teams": []any{
			map[string]any{"guid": "team-1", "name": "Default Team", "default": true, "roles": []any{"administrator"}},
			map[string]any{"guid": "team-2", "name": "Ops", "default": false, "roles": []any{"developer"}},
		},
		"user": map[string]any{"guid": guid, "email": email, "firstname": "Ada", "lastname": "Lovelace"},
	}
}

func amplifyError(status int) any {
	desc := map[int]string{
		http.StatusUnauthorized:        "Sign-in Required",
		http.StatusServiceUnavailable:  "Service Unavailable",
		http.StatusInternalServerError: "Internal Server Error",
	}[status]
	return map[string]any{"success": false, "description": desc, "code": status}
}

// ServeHTTP implements http.Handler.
func (a *Amplify) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f := a.enter(); f != Healthy {
		serveFault(w, f, amplifyError)
		return
	}
	if r.URL.Path != AmplifyPath {
		writeJSON(w, http.StatusNotFound, map[string]any{"success": false, "description": "Not Found", "code": 404})
		return
	}
	if r.Method != http.MethodGet {
		writeJSON(w, http.StatusMethodNotAllowed, map[string]any{"success": false, "description": "Method Not Allowed", "code": 405})
		return
	}
	token := rawCookie(r, "connect.sid")
	if token == "" {
		token = bearerToken(r)
	}
	a.mu.Lock()
	result, ok := a.sessions[token]
	device := a.deviceAuth[token]
	reject401 := a.reject401
	a.mu.Unlock()
	switch {
	case token != "" && device:
		writeJSON(w, http.StatusBadRequest, map[string]any{
			"success": false, "description": "Device authorization required.", "code": 400, "internalCode": 232,
		})
	case ok:
		writeJSON(w, http.StatusOK, map[string]any{"success": true, "result": result})
	case reject401:
		writeJSON(w, http.StatusUnauthorized, amplifyError(http.StatusUnauthorized))
	default:
		writeJSON(w, http.StatusOK, map[string]any{"success": true, "result": nil})
	}
}
