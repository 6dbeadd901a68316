package sessionctx

import (
	"encoding/json"
	"strconv"
	"strings"
)

// ETERNUS answers GET /api/v1/session/{session_id} with the session
// object, trimmed to ?fields= (session_id always kept), and errors as
// {"error_code", "message", "internal_code"}.
func renderEternusInfo(s *Session, req InfoRequest) InfoAnswer {
	if s == nil {
		return eternusError(401, 1001, "Authentication failed (Invalid token)")
	}
	var obj map[string]any
	raw, faithful := infoRawObject(s, "eternus")
	if faithful {
		obj, faithful = infoRawFields(raw)
	}
	if !faithful {
		obj = eternusSession(s)
	}
	// A session can only read itself: another id in the path is a
	// session this token does not own.
	if id, ok := eternusPathID(req.Path); ok && id != eternusIDString(obj["session_id"]) {
		return eternusError(403, 1002, "Access denied (Not the session owner)")
	}
	// lifetime counts down and does not slide: render what is left now,
	// not what was left when the session was fetched.
	if left, ok := infoSecondsLeft(s, req.Now); ok {
		obj["lifetime"] = left
	}
	return infoJSON(200, eternusFilter(obj, req.Query["fields"]))
}

func eternusError(status, code int, msg string) InfoAnswer {
	return infoJSON(status, map[string]any{"error_code": code, "message": msg, "internal_code": "0x" + strconv.Itoa(status)})
}

func eternusSession(s *Session) map[string]any {
	user := s.User
	if user == "" {
		user = s.UserID
	}
	obj := map[string]any{
		"session_id": infoNumberOrString(s.ID),
		"user_name":  user,
		"auth_list":  infoList(s.Perms),
	}
	if v, ok := s.Attrs["days_to_password_expiration"]; ok {
		obj["days_to_password_expiration"] = v
	}
	return obj
}

// eternusPathID is the {session_id} of .../session/{session_id}.
func eternusPathID(path string) (string, bool) {
	i := strings.LastIndex(path, "/session/")
	if i < 0 {
		return "", false
	}
	id := strings.Trim(path[i+len("/session/"):], "/")
	return id, id != ""
}

func eternusIDString(v any) string {
	switch v := v.(type) {
	case json.Number:
		return v.String()
	case string:
		return v
	}
	return ""
}

// eternusFilter keeps the fields asked for, session_id always; names the
// object does not have are ignored. No fields parameter keeps everything.
func eternusFilter(obj map[string]any, params []string) map[string]any {
	if len(params) == 0 {
		return obj
	}
	keep := map[string]bool{"session_id": true}
	for _, p := range params {
		for _, name := range strings.Split(p, ",") {
			keep[strings.TrimSpace(name)] = true
		}
	}
	out := make(map[string]any, len(keep))
	for k, v := range obj {
		if keep[k] {
			out[k] = v
		}
	}
	return out
}

func eternusProductRead(req InfoRequest) bool {
	_, id, ok := strings.Cut(req.Path, "/api/v1/session/")
	return ok && id != "" && !strings.Contains(id, "/")
}
