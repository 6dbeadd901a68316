package sessionctx

import (
	"bytes"
	"encoding/json"
	"sort"
)

// tr50CommandKey is the key a TR50 request without a readable command
// gets its answer under; clients number their commands from "1".
const tr50CommandKey = "1"

// TR50 answers every command of a request under the key the request used
// ("1", "cmd", ...), and reports failures inside the envelope with HTTP
// 200, so a client reads success from the body, never from the status.
func renderTR50Info(s *Session, req InfoRequest) InfoAnswer {
	commands := tr50Commands(req.Body)
	answer := make(map[string]any, len(commands)+1)
	if s == nil {
		// A failed authentication fails the whole envelope, under "auth".
		answer["auth"] = tr50Failure(tr50AuthFailed, "Session not found or expired.")
		return infoJSON(200, answer)
	}

	var params any
	if raw, ok := infoRawObject(s, "tr50"); ok {
		params = raw
	} else {
		params = tr50Session(s, req)
	}
	for key, command := range commands {
		if command != "session.info" && command != "" {
			answer[key] = tr50Failure(tr50UnknownCommand, "Unknown command.")
			continue
		}
		answer[key] = map[string]any{"success": true, "params": params}
	}
	return infoJSON(200, answer)
}

// Error codes of the failures this shape reports (inferred; clients test
// success, and show the messages).
const (
	tr50AuthFailed     = -90008
	tr50UnknownCommand = -90004
)

func tr50Failure(code int, msg string) map[string]any {
	return map[string]any{"success": false, "errorCodes": []int{code}, "errorMessages": []string{msg}}
}

// tr50OnlySessionInfo reports whether body is a TR50 envelope whose every
// command is session.info: the only request session_info answers. Any
// other command (a login, thing.list) is the service's, and so is an
// envelope that mixes them.
func tr50OnlySessionInfo(body []byte) bool {
	var env map[string]json.RawMessage
	if json.Unmarshal(body, &env) != nil {
		return false
	}
	n := 0
	for key, raw := range env {
		if key == "auth" {
			continue
		}
		var c struct {
			Command string `json:"command"`
		}
		if json.Unmarshal(raw, &c) != nil || c.Command != "session.info" {
			return false
		}
		n++
	}
	return n > 0
}

// tr50Commands maps each command key of a request body to its command
// name. The "auth" key holds credentials, not a command. A body that is
// not a TR50 request still gets one answer, under tr50CommandKey.
func tr50Commands(body []byte) map[string]string {
	var env map[string]json.RawMessage
	cmds := map[string]string{}
	if len(bytes.TrimSpace(body)) > 0 && json.Unmarshal(body, &env) == nil {
		for key, raw := range env {
			if key == "auth" {
				continue
			}
			var c struct {
				Command string `json:"command"`
			}
			_ = json.Unmarshal(raw, &c)
			cmds[key] = c.Command
		}
	}
	if len(cmds) == 0 {
		cmds[tr50CommandKey] = "session.info"
	}
	return cmds
}

// tr50Session translates a session of another dialect into session.info
// params: a user session, or an application session for kind app.
func tr50Session(s *Session, req InfoRequest) map[string]any {
	p := map[string]any{
		"id":            s.ID,
		"orgId":         s.OrgID,
		"orgKey":        s.Org,
		"hasSuperAdmin": false,
		"hasSuperOps":   false,
		"hasOrgAdmin":   s.Admin,
	}
	if s.Kind == kindApp {
		p["appId"] = s.UserID
		p["appName"] = s.User
	} else {
		user := s.User
		if s.Email != "" {
			user = s.Email
		}
		p["userId"] = s.UserID
		p["userName"] = user
		p["whoAmI"] = user
	}
	if len(s.Perms) > 0 {
		perms := make(map[string]bool, len(s.Perms))
		for _, name := range s.Perms {
			perms[name] = true
		}
		p["perms"] = perms
	}
	if len(s.Roles) > 0 {
		roles := append([]string(nil), s.Roles...)
		sort.Strings(roles)
		p["roleKeys"] = roles
	}
	if left, ok := infoSecondsLeft(s, req.Now); ok {
		p["ttl"] = left
	}
	if !s.CreatedAt.IsZero() {
		p["startTime"] = infoMillis(s.CreatedAt)
	}
	if !s.LastAccessedAt.IsZero() {
		p["lastAccessed"] = infoMillis(s.LastAccessedAt)
	}
	return p
}

// tr50InfoHandles: a POSTed envelope of session.info commands only; every
// other command goes on to the real service.
func tr50InfoHandles(req InfoRequest) bool {
	return req.Method == "POST" && tr50OnlySessionInfo(req.Body)
}
