package sessionctx

import "strings"

// Amplify wraps every answer in {"success": ..., "result": ...}.
func renderAmplifyInfo(s *Session, _ InfoRequest) InfoAnswer {
	if s == nil {
		// The platform's answer for a dead session on findSession: the
		// SDK then retries with its bearer token, or takes the account
		// for a service account, where a 401 makes it throw.
		return infoJSON(200, map[string]any{"success": true, "result": nil})
	}
	var result any
	if raw, ok := infoRawObject(s, "amplify"); ok {
		result = raw
	} else {
		result = amplifySession(s)
	}
	return infoJSON(200, map[string]any{"success": true, "result": result})
}

// amplifySession translates a session of another dialect into Amplify's
// SessionInfo: the identity, the org as an object and as an id, and the
// single role Amplify front ends switch on.
func amplifySession(s *Session) map[string]any {
	first, last := infoSplitName(s.Name)
	user := map[string]any{"guid": s.UserID, "email": s.Email, "firstname": first, "lastname": last}
	r := map[string]any{
		"guid":      s.UserID,
		"user_guid": s.UserID,
		"username":  s.User,
		"email":     s.Email,
		"firstname": first,
		"lastname":  last,
		"user":      user,
		"roles":     infoList(s.Roles),
	}
	if s.ID != "" {
		r["sessionID"] = s.ID
		r["sid"] = s.ID
	}
	// The SDK dereferences org and orgs whatever the session: always an
	// object and an array, empty when the session names no org.
	r["org"] = map[string]any{}
	r["orgs"] = []map[string]any{}
	if s.OrgID != "" || s.Org != "" {
		r["org"] = map[string]any{"guid": s.OrgID, "org_id": infoNumberOrString(s.OrgID), "name": s.Org}
		r["org_id"] = infoNumberOrString(s.OrgID)
		r["org_name"] = s.Org
		r["orgs"] = []map[string]any{{"guid": s.OrgID, "org_id": infoNumberOrString(s.OrgID), "name": s.Org}}
	}
	switch {
	case s.Admin:
		r["role"] = "administrator"
	case len(s.Roles) > 0:
		r["role"] = s.Roles[0]
	}
	if !s.ExpiresAt.IsZero() {
		r["expiry"] = s.ExpiresAt.UnixMilli()
	}
	return r
}

// infoList keeps a list a list in JSON ([] rather than null).
func infoList(xs []string) []string {
	if xs == nil {
		return []string{}
	}
	return xs
}

// amplifyFindSessionPath is the one Amplify request session_info answers.
const amplifyFindSessionPath = "/api/v1/auth/findSession"

// amplifyInfoHandles: the SDK's next calls (/api/v1/team, /api/v1/org/<id>)
// are the platform's: answering them with the session crashes it.
func amplifyInfoHandles(req InfoRequest) bool {
	return isRead(req) && strings.HasSuffix(req.Path, amplifyFindSessionPath)
}
