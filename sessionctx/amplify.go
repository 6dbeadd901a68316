package sessionctx

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/tidwall/gjson"
)

func init() {
	registerDialect(&dialect{
		name: "amplify",
		// The platform's browser session first: a page that also holds an
		// API token is still the signed-in user.
		tokens: []TokenSource{{From: FromCookie, Name: "connect.sid"}, {From: FromBearer}},
		backend: func(svc *service, _ Options) (backend, error) {
			// A cookie is sent on as the connect.sid cookie, byte for
			// byte (the express signature must verify); anything else is
			// an access token and goes as a bearer.
			b := newPreset(svc, http.MethodGet, amplifyFindSessionPath)
			b.cookie, b.rejects, b.decode = "connect.sid", amplifyRejects, decodeAmplify
			b.rejection = amplifyRejection
			return b, nil
		},
		info: infoShape{render: renderAmplifyInfo, handles: amplifyInfoHandles, productRead: func(InfoRequest) bool { return true }},
	})
}

// amplifyRejects reports whether a non-200 answer rejects the token.
// Amplify rejects a session with a 4xx (401, 400 internalCode 232 for a
// session that still awaits device authorization, ...) whose body is its
// own error object, {"success": false, ...}. The same status with any
// other body (a WAF's HTML page, a proxy's empty 403) comes from something
// in front of the platform and says nothing about the token: service
// trouble, as are 408, 429 and 5xx.
func amplifyRejects(status int, raw []byte) bool {
	return status >= 400 && status < 500 && status != http.StatusTooManyRequests && status != http.StatusRequestTimeout &&
		amplifyErrorBody(raw)
}

// amplifyRejection keeps the platform's own answer for a session that
// awaits device authorization; other rejections need none.
func amplifyRejection(raw []byte) error {
	if gjson.GetBytes(raw, "internalCode").Int() == amplifyDeviceAuthCode {
		return amplifyDeviceAuth(raw)
	}
	return nil
}

// amplifyErrorBody reports whether raw is the platform's error object.
func amplifyErrorBody(raw []byte) bool {
	if !gjson.ValidBytes(raw) {
		return false
	}
	doc := gjson.ParseBytes(raw)
	return doc.IsObject() && doc.Get("success").Type == gjson.False
}

// decodeAmplify maps a findSession answer ({"success", "result"}) to a
// session; Raw is the result object. now is unused, Amplify dates its
// sessions itself (expiry), but every decoder takes it.
func decodeAmplify(raw []byte, now time.Time) (*Session, error) {
	doc, err := parseObject(raw, "amplify answer")
	if err != nil {
		return nil, err
	}
	success := doc.Get("success")
	if success.Type == gjson.False {
		code := doc.Get("code").Int()
		if code >= 500 || code == http.StatusTooManyRequests {
			return nil, fmt.Errorf("%w: amplify answered an error with code %d", ErrUnavailable, code)
		}
		if doc.Get("internalCode").Int() == amplifyDeviceAuthCode {
			return nil, amplifyDeviceAuth(raw)
		}
		return nil, fmt.Errorf("%w: amplify reports no session (code %d)", ErrUnauthenticated, code)
	}
	result := doc.Get("result")
	if result.Type == gjson.Null {
		if success.Type == gjson.True {
			return nil, fmt.Errorf("%w: amplify has no session for the token", ErrUnauthenticated)
		}
		return nil, fmt.Errorf("%w: not an amplify findSession answer", ErrUnavailable)
	}
	if !result.IsObject() {
		return nil, fmt.Errorf("%w: amplify result is not an object", ErrUnavailable)
	}
	if result.Get("deviceAuthRequired").Type == gjson.True {
		return nil, amplifyDeviceAuth(nil)
	}

	s := &Session{
		ID:      firstString(result, "sessionID", "sid"),
		UserID:  firstString(result, "guid", "user_guid", "user.guid"),
		User:    firstString(result, "username", "email", "user.email"),
		Email:   firstString(result, "user.email", "email"),
		OrgID:   firstString(result, "org.guid", "org_id", "org.org_id"),
		Org:     firstString(result, "org.name", "org_name"),
		Kind:    kindUser,
		Dialect: "amplify",
		Raw:     []byte(result.Raw),
	}
	first := firstString(result, "user.firstname", "firstname")
	last := firstString(result, "user.lastname", "lastname")
	s.Name = strings.TrimSpace(first + " " + last)
	s.Roles = appendNew(list(result, "roles"), list(result, "role")...)
	s.Admin = containsAny(s.Roles, []string{"administrator"})
	if err := s.needsPrincipal("amplify result names no user"); err != nil {
		return nil, err
	}
	if t, ok := timeValue(result.Get("expiry")); ok {
		s.ExpiresAt = t
	}
	attrs := map[string]any{}
	if teams := list(result, "teams.#.name"); len(teams) > 0 {
		attrs["teams"] = teams
	}
	if orgs := list(result, "orgs.#.name"); len(orgs) > 0 {
		attrs["orgs"] = orgs
	}
	for _, k := range []string{"idp", "from"} {
		if v := str(result, k); v != "" {
			attrs[k] = v
		}
	}
	if len(attrs) > 0 {
		s.Attrs = attrs
	}
	return s, nil
}

// amplifyDeviceAuthCode is the internalCode of the platform's answer for
// a session that awaits device authorization.
const amplifyDeviceAuthCode = 232

// amplifyDeviceAuthAnswer is the platform's findSession answer for a
// session that awaits device authorization, when it did not give its own.
var amplifyDeviceAuthAnswer = []byte(`{"success":false,"description":"Device authorization required.","code":400,"internalCode":232}`)

// amplifyDeviceAuth is the rejection of a session that awaits device
// authorization. It keeps the platform's answer (raw, when it gave one),
// which findSession's clients get back as it was: the SDK prompts for
// device authorization on it. It is not cached: authorization granted,
// the next request must see the session.
func amplifyDeviceAuth(raw []byte) error {
	body := amplifyDeviceAuthAnswer
	if len(raw) > 0 {
		body = append([]byte(nil), raw...)
	}
	return rejectWithAnswer("amplify", true, InfoAnswer{Status: http.StatusBadRequest, Body: body}, "amplify session awaits device authorization")
}

// firstString reads the first of paths that holds a non-empty scalar:
// services spell the same field differently across answers.
func firstString(doc gjson.Result, paths ...string) string {
	for _, p := range paths {
		if v := str(doc, p); v != "" {
			return v
		}
	}
	return ""
}

// appendNew appends the values not already in have.
func appendNew(have []string, more ...string) []string {
	for _, m := range more {
		if !containsAny(have, []string{m}) {
			have = append(have, m)
		}
	}
	return have
}
