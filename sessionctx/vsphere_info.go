package sessionctx

import (
	"strings"
)

// vSphere answers the current API (/api/...) unwrapped and the legacy one
// (/rest/...) wrapped in {"value": ...}, errors included; govmomi's rest
// client still calls the legacy path.
func renderVSphereInfo(s *Session, req InfoRequest) InfoAnswer {
	legacy := strings.HasPrefix(req.Path, "/rest/") || req.Path == "/rest"
	if s == nil {
		messages := []map[string]any{{
			"args":            []string{},
			"default_message": "Authentication required.",
			"id":              "com.vmware.vapi.endpoint.method.authentication.required",
		}}
		if legacy {
			return infoJSON(401, map[string]any{
				"type":  "com.vmware.vapi.std.errors.unauthenticated",
				"value": map[string]any{"messages": messages},
			})
		}
		return infoJSON(401, map[string]any{"error_type": "UNAUTHENTICATED", "messages": messages})
	}

	var obj any
	if raw, ok := infoRawObject(s, "vsphere"); ok {
		obj = raw
	} else {
		obj = vsphereSession(s)
	}
	if legacy {
		return infoJSON(200, map[string]any{"value": obj})
	}
	return infoJSON(200, obj)
}

// vsphereSession translates a session of another dialect. Times a session
// does not know are left out rather than invented: clients parse them as
// timestamps, and an empty string is not one.
func vsphereSession(s *Session) map[string]any {
	user := s.User
	if user == "" {
		user = s.UserID
	}
	obj := map[string]any{"user": user}
	if !s.CreatedAt.IsZero() {
		obj["created_time"] = infoMillis(s.CreatedAt)
	}
	if !s.LastAccessedAt.IsZero() {
		obj["last_accessed_time"] = infoMillis(s.LastAccessedAt)
	}
	return obj
}

// vsphereInfoHandles: under /rest/ the legacy API also reads a session
// with POST ?~action=get; a POST or DELETE elsewhere is a login or logout.
func vsphereInfoHandles(req InfoRequest) bool {
	if strings.HasPrefix(req.Path, "/rest/") {
		return isRead(req) || (req.Method == "POST" && req.Query.Get("~action") == "get")
	}
	return isRead(req)
}

func vsphereProductRead(req InfoRequest) bool {
	return strings.HasSuffix(req.Path, "/api/session") || strings.HasSuffix(req.Path, "/rest/com/vmware/cis/session")
}
