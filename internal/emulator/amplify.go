package emulator

import (
	"fmt"
	"net/http"
	"strings"
)

// AmplifyPath is where Amplify answers who owns a session.
const AmplifyPath = "/api/v1/auth/findSession"

// Amplify emulates the Axway Amplify Platform's findSession endpoint. A
// session is found by its connect.sid cookie value (byte for byte) or by a
// bearer access token.
type Amplify struct {
	base
	sessions   map[string]map[string]any
	deviceAuth map[string]bool
	// services are service-account access tokens: the platform takes them
	// on its API but findSession has no session for them.
	services map[string]map[string]any
	// reject401 makes a dead session answer 401 "Sign-in Required"
	// instead of 200 with result null.
	reject401 bool
}

// NewAmplify returns an Amplify with no sessions.
func NewAmplify() *Amplify {
	return &Amplify{base: newBase(), sessions: map[string]map[string]any{}, deviceAuth: map[string]bool{}, services: map[string]map[string]any{}}
}

// AddSession makes token (a connect.sid value or an access token) name a
// session whose findSession result is result.
func (a *Amplify) AddSession(token string, result map[string]any) {
	a.mu.Lock()
	a.sessions[token] = copyMap(result)
	a.mu.Unlock()
}

// AddServiceAccount makes token a service account's access token in org
// (an object with guid, org_id and name). findSession answers result null
// for it, as the platform does; the team and org endpoints take it.
func (a *Amplify) AddServiceAccount(token string, org map[string]any) {
	a.mu.Lock()
	a.services[token] = copyMap(org)
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

// GrantDeviceAuth completes the device authorization of token's session:
// findSession answers it from then on.
func (a *Amplify) GrantDeviceAuth(token string) {
	a.mu.Lock()
	delete(a.deviceAuth, token)
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
	api := r.URL.Path == AmplifyTeamPath || strings.HasPrefix(r.URL.Path, AmplifyOrgPath)
	if r.URL.Path != AmplifyPath && !api {
		writeJSON(w, http.StatusNotFound, map[string]any{"success": false, "description": "Not Found", "code": 404})
		return
	}
	if r.Method != http.MethodGet {
		writeJSON(w, http.StatusMethodNotAllowed, map[string]any{"success": false, "description": "Method Not Allowed", "code": 405})
		return
	}
	if api {
		a.serveAPI(w, r)
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

// The platform endpoints Axway's SDK calls after findSession.
const (
	AmplifyTeamPath = "/api/v1/team"
	AmplifyOrgPath  = "/api/v1/org/"
)

// amplifyCaller is who a request to the platform API is: the org it acts in, and
// the user and teams of a session (none for a service account).
type amplifyCaller struct {
	org   map[string]any
	user  string
	teams []any
	role  string
}

// who finds the caller of r by connect.sid, then bearer, as the platform
// does: a stale cookie does not fall back to the bearer token.
func (a *Amplify) who(r *http.Request) (amplifyCaller, bool) {
	token := rawCookie(r, "connect.sid")
	if token == "" {
		token = bearerToken(r)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if s, ok := a.sessions[token]; ok && !a.deviceAuth[token] {
		org, _ := s["org"].(map[string]any)
		user, _ := s["guid"].(string)
		teams, _ := s["teams"].([]any)
		role, _ := s["role"].(string)
		return amplifyCaller{org: org, user: user, teams: teams, role: role}, true
	}
	if org, ok := a.services[token]; ok {
		return amplifyCaller{org: org}, true
	}
	return amplifyCaller{}, false
}

// serveAPI answers GET /api/v1/team[?org_id=<id>] (the caller's org's
// teams, with their members) and GET /api/v1/org/<id> (the caller's org).
// Another org is 403; no valid credential is 401 Sign-in Required.
func (a *Amplify) serveAPI(w http.ResponseWriter, r *http.Request) {
	c, ok := a.who(r)
	if !ok {
		writeJSON(w, http.StatusUnauthorized, amplifyError(http.StatusUnauthorized))
		return
	}
	orgID := fmt.Sprint(c.org["org_id"])
	forbidden := map[string]any{"success": false, "description": "Forbidden", "code": 403}
	if r.URL.Path == AmplifyTeamPath {
		if q := r.URL.Query().Get("org_id"); q != "" && q != orgID && q != fmt.Sprint(c.org["guid"]) {
			writeJSON(w, http.StatusForbidden, forbidden)
			return
		}
		teams := []any{}
		for _, t := range c.teams {
			t, _ := t.(map[string]any)
			team := copyMap(t)
			team["org_guid"] = c.org["guid"]
			team["tags"] = []any{}
			team["users"] = []any{map[string]any{"guid": c.user, "type": "user", "roles": t["roles"]}}
			teams = append(teams, team)
		}
		writeJSON(w, http.StatusOK, map[string]any{"success": true, "result": teams})
		return
	}
	id := strings.TrimPrefix(r.URL.Path, AmplifyOrgPath)
	if id == "" || (id != orgID && id != fmt.Sprint(c.org["guid"])) {
		writeJSON(w, http.StatusForbidden, forbidden)
		return
	}
	users := []any{}
	if c.user != "" {
		users = append(users, map[string]any{"guid": c.user, "roles": []any{c.role}})
	}
	entitlements, _ := c.org["entitlements"].(map[string]any)
	if entitlements == nil {
		entitlements = map[string]any{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "result": map[string]any{
		"guid": c.org["guid"], "org_id": c.org["org_id"], "name": c.org["name"],
		"active": true, "created": "2020-01-01T00:00:00.000Z", "region": "US",
		"entitlements": entitlements, "subscriptions": []any{}, "users": users,
	}})
}
