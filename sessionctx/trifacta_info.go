package sessionctx

import "strings"

// Trifacta answers GET /v2/session with the person object itself, and
// failures as {"exception": {...}}.
func renderTrifactaInfo(s *Session, _ InfoRequest) InfoAnswer {
	if s == nil {
		return infoJSON(401, map[string]any{"exception": map[string]any{
			"name": "AuthenticationException", "message": "Not authenticated", "details": "",
		}})
	}
	if raw, ok := infoRawObject(s, "trifacta"); ok {
		return InfoAnswer{Status: 200, Body: raw}
	}
	return infoJSON(200, trifactaPerson(s))
}

// trifactaPerson translates a session of another dialect into a person:
// the org becomes the workspace of every role.
func trifactaPerson(s *Session) map[string]any {
	email := s.Email
	if email == "" {
		email = s.User
	}
	roles := make([]map[string]any, 0, len(s.Roles))
	for _, r := range s.Roles {
		role := map[string]any{"role": r}
		if s.OrgID != "" {
			role["peopleworkspaces"] = map[string]any{"workspaceId": infoNumberOrString(s.OrgID)}
		}
		roles = append(roles, role)
	}
	return map[string]any{
		"id":                  infoNumberOrString(s.UserID),
		"email":               email,
		"name":                s.Name,
		"isAdmin":             s.Admin,
		"isDisabled":          false,
		"forcePasswordChange": false,
		"roles":               roles,
	}
}

func trifactaProductRead(req InfoRequest) bool { return strings.HasSuffix(req.Path, "/v2/session") }
