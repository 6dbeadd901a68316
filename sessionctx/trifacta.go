package sessionctx

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/tidwall/gjson"
)

func init() {
	registerDialect(&dialect{
		name: "trifacta",
		// Browser sessions use a cookie whose name each deployment picks:
		// configure it with `token cookie <name>`.
		tokens: []TokenSource{{From: FromBearer}},
		backend: func(svc *service, _ Options) (backend, error) {
			// A cookie goes on as the same cookie (a browser session);
			// anything else is an access token, sent as a bearer.
			b := newPreset(svc, http.MethodGet, "/v2/session")
			b.rejects, b.decode = trifactaRejects, decodeTrifacta
			return b, nil
		},
		info: infoShape{render: renderTrifactaInfo, handles: isRead, productRead: trifactaProductRead},
	})
}

// trifactaMapping is the person object of GET /v2/session as a preset of
// the http dialect's mapping.
var trifactaMapping = Mapping{
	UserIDFrom: "id",
	UserFrom:   "email",
	EmailFrom:  "email",
	NameFrom:   "name",
	OrgIDFrom:  "roles.0.peopleworkspaces.workspaceId",
	RolesFrom:  "roles.#.role",
	AdminFrom:  "isAdmin",
}

// trifactaRejects: Trifacta answers a dead token with 401 or 403 and its
// JSON ({"exception": ...}); an HTML page is from what stands in front.
func trifactaRejects(status int, raw []byte) bool {
	return (status == http.StatusUnauthorized || status == http.StatusForbidden) && serviceAnswer(raw, "")
}

// decodeTrifacta maps a person object to a session. A disabled person's
// token still answers, but names no one allowed in. Trifacta gives no
// expiry; the cache TTL bounds the session.
func decodeTrifacta(raw []byte, now time.Time) (*Session, error) {
	if !gjson.ValidBytes(raw) {
		return nil, fmt.Errorf("%w: trifacta answer is not JSON", ErrUnavailable)
	}
	doc := gjson.ParseBytes(raw)
	if doc.IsObject() && truthy(doc.Get("isDisabled")) {
		return nil, fmt.Errorf("%w: trifacta person is disabled", ErrUnauthenticated)
	}
	s, err := trifactaMapping.Decode(raw, now)
	if err != nil {
		return nil, err
	}
	s.Dialect = "trifacta"
	s.UserID = decimalID(doc.Get("id"), s.UserID)
	s.OrgID = decimalID(doc.Get(trifactaMapping.OrgIDFrom), s.OrgID)
	s.CreatedAt, _ = timeValue(doc.Get("createdAt"))
	attrs := map[string]any{}
	if v := str(doc, "lastLoginTime"); v != "" {
		attrs["lastLoginTime"] = v
	}
	if v := str(doc, "outputHomeDir"); v != "" {
		attrs["outputHomeDir"] = v
	}
	if doc.Get("forcePasswordChange").Type == gjson.True {
		attrs["forcePasswordChange"] = true
	}
	if len(attrs) > 0 {
		s.Attrs = attrs
	}
	return s, nil
}

// decimalID renders a whole-number id in decimal whatever its JSON
// spelling (7, 7.0, 7e0); anything else keeps the mapped text.
func decimalID(v gjson.Result, mapped string) string {
	if v.Type != gjson.Number {
		return mapped
	}
	if i, err := strconv.ParseInt(v.Raw, 10, 64); err == nil {
		return strconv.FormatInt(i, 10)
	}
	if v.Num == float64(int64(v.Num)) && v.Num > -1e18 && v.Num < 1e18 {
		return strconv.FormatInt(int64(v.Num), 10)
	}
	return mapped
}
