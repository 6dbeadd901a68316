package emulator

import (
	"encoding/json"
	"net/http"
	"time"
)

// TR50Path is where TR50 takes its command envelopes.
const TR50Path = "/api"

// TR50 emulates Telit deviceWISE's TR50 API for the session.info command:
// POST envelopes authenticated by auth.sessionId (or a sessionId header),
// answered under the key the request used for the command.
type TR50 struct {
	base
	sessions map[string]map[string]any
	// failOnCommand reports an unknown session on the command instead of
	// under "auth".
	failOnCommand bool
}

// NewTR50 returns a TR50 with no sessions.
func NewTR50() *TR50 { return &TR50{base: newBase(), sessions: map[string]map[string]any{}} }

// AddSession makes sessionID name a session whose session.info params are
// params. Use TR50UserParams, TR50AdminParams or TR50AppParams.
func (t *TR50) AddSession(sessionID string, params map[string]any) {
	t.mu.Lock()
	t.sessions[sessionID] = copyMap(params)
	t.mu.Unlock()
}

// RemoveSession ends a session.
func (t *TR50) RemoveSession(sessionID string) {
	t.mu.Lock()
	delete(t.sessions, sessionID)
	t.mu.Unlock()
}

// FailOnCommand makes an unknown session fail the command itself rather
// than the auth block; TR50 documents both shapes.
func (t *TR50) FailOnCommand(on bool) {
	t.mu.Lock()
	t.failOnCommand = on
	t.mu.Unlock()
}

func tr50Times(ttl int, lastAccessed time.Time) map[string]any {
	return map[string]any{
		"ttl":          ttl,
		"startTime":    lastAccessed.Add(-time.Hour).UTC().Format(time.RFC3339Nano),
		"lastAccessed": lastAccessed.UTC().Format(time.RFC3339Nano),
	}
}

// TR50UserParams is a user session's params: an org admin with a
// permission granted, one denied, and two roles. lastAccessed dates it and
// ttl (seconds) is its idle lifetime.
func TR50UserParams(userID, userName string, ttl int, lastAccessed time.Time) map[string]any {
	p := map[string]any{
		"id":            "sess-" + userID,
		"serverId":      "srv-eu-1",
		"orgId":         "org-4711",
		"orgKey":        "ACME",
		"userId":        userID,
		"userName":      userName,
		"whoAmI":        userName,
		"hasSuperAdmin": false,
		"hasSuperOps":   false,
		"hasOrgAdmin":   true,
		"connInfo":      map[string]any{"protocol": "http", "remoteAddr": "192.0.2.10"},
		"locale":        "en-US",
		"perms":         map[string]any{"thing.list": true, "thing.delete": false, "alarm.ack": true},
		"roleKeys":      []any{"operator", "viewer"},
	}
	for k, v := range tr50Times(ttl, lastAccessed) {
		p[k] = v
	}
	return p
}

// TR50AdminParams is a super-admin session: TR50 omits perms and roleKeys.
func TR50AdminParams(userID, userName string, ttl int, lastAccessed time.Time) map[string]any {
	p := TR50UserParams(userID, userName, ttl, lastAccessed)
	delete(p, "perms")
	delete(p, "roleKeys")
	p["hasSuperAdmin"] = true
	p["hasOrgAdmin"] = false
	return p
}

// TR50AppParams is an application session: app and token fields instead
// of user fields.
func TR50AppParams(appID, appName string, ttl int, lastAccessed time.Time) map[string]any {
	p := map[string]any{
		"id":            "sess-" + appID,
		"serverId":      "srv-eu-1",
		"orgId":         "org-4711",
		"orgKey":        "ACME",
		"appId":         appID,
		"appName":       appName,
		"tokenId":       "tok-" + appID,
		"tokenName":     "default",
		"thingKey":      "gateway-7",
		"hasSuperAdmin": false,
		"hasSuperOps":   false,
		"hasOrgAdmin":   false,
		"connInfo":      map[string]any{"protocol": "mqtt", "remoteAddr": "192.0.2.77"},
		"locale":        "en-US",
		"perms":         map[string]any{"property.publish": true},
		"roleKeys":      []any{"device"},
	}
	for k, v := range tr50Times(ttl, lastAccessed) {
		p[k] = v
	}
	return p
}

func tr50Failure(code int, msg string) map[string]any {
	return map[string]any{"success": false, "errorCodes": []any{code}, "errorMessages": []any{msg}}
}

// ServeHTTP implements http.Handler.
func (t *TR50) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f := t.enter(); f != Healthy {
		serveFault(w, f, func(status int) any { return tr50Failure(-90000-status, http.StatusText(status)) })
		return
	}
	if r.URL.Path != TR50Path || r.Method != http.MethodPost {
		http.NotFound(w, r)
		return
	}
	var env map[string]json.RawMessage
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&env); err != nil {
		writeJSON(w, http.StatusOK, map[string]any{"auth": tr50Failure(-90002, "Invalid JSON")})
		return
	}
	var auth struct {
		SessionID string `json:"sessionId"`
	}
	if a, ok := env["auth"]; ok {
		_ = json.Unmarshal(a, &auth) // a malformed auth object names no session: the header is tried next
	}
	if auth.SessionID == "" {
		auth.SessionID = r.Header.Get("sessionId")
	}
	t.mu.Lock()
	params, known := t.sessions[auth.SessionID]
	failOnCommand := t.failOnCommand
	t.mu.Unlock()

	out := map[string]any{}
	if !known && !failOnCommand {
		writeJSON(w, http.StatusOK, map[string]any{"auth": tr50Failure(-90008, "Session not found or expired.")})
		return
	}
	for key, raw := range env {
		if key == "auth" {
			continue
		}
		var cmd struct {
			Command string `json:"command"`
		}
		_ = json.Unmarshal(raw, &cmd) // a malformed command has no name: "Unknown command."
		switch {
		case !known:
			out[key] = tr50Failure(-90008, "Session not found or expired.")
		case cmd.Command != "session.info":
			out[key] = tr50Failure(-90004, "Unknown command.")
		default:
			out[key] = map[string]any{"success": true, "params": params}
		}
	}
	writeJSON(w, http.StatusOK, out)
}
