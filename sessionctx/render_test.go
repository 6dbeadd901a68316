package sessionctx

import (
	"encoding/json"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/caddy-sessiongate/internal/dialecttest"
)

var renderNow = time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)

// translated is a session from the http dialect, to be rendered in the
// other dialects' shapes.
func infoSession() *Session {
	return &Session{
		ID: "1000042", UserID: "17", User: "alice", Email: "alice@example.com", Name: "Alice Liddell",
		OrgID: "55", Org: "acme", Roles: []string{"wrangler", "dataAdmin"}, Perms: []string{"read", "write"},
		Admin: true, Kind: kindUser,
		CreatedAt:      time.Date(2026, 3, 4, 9, 0, 0, 0, time.UTC),
		LastAccessedAt: time.Date(2026, 3, 4, 9, 59, 0, 0, time.UTC),
		ExpiresAt:      renderNow.Add(90 * time.Second),
		Attrs:          map[string]any{"days_to_password_expiration": 12},
		Dialect:        "http",
		Raw:            []byte(`{"whatever":true}`),
	}
}

func renderShape(t *testing.T, shape string, s *Session, req InfoRequest) (int, map[string]any) {
	t.Helper()
	if req.Now.IsZero() {
		req.Now = renderNow
	}
	a := infoShapeOf(t, shape).Render(s, req)
	var m map[string]any
	if err := json.Unmarshal(a.Body, &m); err != nil {
		t.Fatalf("%s: body is not a JSON object: %v: %s", shape, err, a.Body)
	}
	return a.Status, m
}

// field walks a decoded JSON value by dotted path (numbers index lists).
func infoField(t *testing.T, v any, path string) any {
	t.Helper()
	for _, p := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[p]; !ok {
				t.Fatalf("no %q in %v (path %s)", p, x, path)
			}
		case []any:
			var i int
			for _, c := range p {
				i = i*10 + int(c-'0')
			}
			if i >= len(x) {
				t.Fatalf("index %d out of %v (path %s)", i, x, path)
			}
			v = x[i]
		default:
			t.Fatalf("cannot walk %q into %v (path %s)", p, v, path)
		}
	}
	return v
}

func checkInfoFields(t *testing.T, m map[string]any, want map[string]any) {
	t.Helper()
	for path, w := range want {
		got := infoField(t, m, path)
		wj, _ := json.Marshal(w)
		gj, _ := json.Marshal(got)
		if string(wj) != string(gj) {
			t.Errorf("%s = %s, want %s", path, gj, wj)
		}
	}
}

// infoShapeOf is the shape called name, which the test knows exists.
func infoShapeOf(tb testing.TB, name string) InfoShape {
	tb.Helper()
	sh, err := LookupInfoShape(name)
	if err != nil {
		tb.Fatal(err)
	}
	return sh
}

func TestRenderUnknownShape(t *testing.T) {
	if _, err := LookupInfoShape("kerberos"); err == nil || !strings.Contains(err.Error(), "vsphere") || !strings.Contains(err.Error(), "normalized") {
		t.Fatalf("want an error listing the known shapes, got %v", err)
	}
	want := slices.Sorted(slices.Values(append(dialecttest.Names(), normalizedShape)))
	var got []string
	for _, sh := range InfoShapes() {
		got = append(got, sh.Name())
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("InfoShapes() are %v, want %v", got, want)
	}
}

// TestInfoShapeValues: every name LookupInfoShape knows gives a shape
// that says its own name, "" is the normalized shape, and so is the zero
// InfoShape, which renders as the looked-up one does.
func TestInfoShapeValues(t *testing.T) {
	for _, name := range infoShapeNames() {
		if got := infoShapeOf(t, name).Name(); got != name {
			t.Errorf("LookupInfoShape(%q).Name() = %q", name, got)
		}
	}
	if got := infoShapeOf(t, "").Name(); got != normalizedShape {
		t.Errorf(`LookupInfoShape("").Name() = %q, want normalized`, got)
	}
	var zero InfoShape
	if zero.Name() != normalizedShape || !zero.Handles(InfoRequest{Method: "DELETE"}) || zero.ReadsBody() || zero.IsProductRead(InfoRequest{Method: "GET"}) {
		t.Errorf("the zero InfoShape is not the normalized one")
	}
	req := InfoRequest{Now: renderNow}
	for _, s := range []*Session{nil, infoSession()} {
		if got, want := zero.Render(s, req), infoShapeOf(t, normalizedShape).Render(s, req); !reflect.DeepEqual(got, want) {
			t.Errorf("zero InfoShape renders %d %s, normalized %d %s", got.Status, got.Body, want.Status, want.Body)
		}
	}
}

func TestRenderNormalized(t *testing.T) {
	for _, shape := range []string{"", normalizedShape} {
		st, m := renderShape(t, shape, infoSession(), InfoRequest{})
		if st != 200 {
			t.Fatalf("status %d", st)
		}
		checkInfoFields(t, m, map[string]any{
			"id": "1000042", "user_id": "17", "user": "alice", "email": "alice@example.com",
			"name": "Alice Liddell", "org_id": "55", "org": "acme", "roles": []string{"wrangler", "dataAdmin"},
			"perms": []string{"read", "write"}, "admin": true, "kind": "user",
			"created_at": "2026-03-04T09:00:00Z", "expires_at": "2026-03-04T10:01:30Z",
			"attrs.days_to_password_expiration": 12,
		})
		if _, leaked := m["whatever"]; leaked {
			t.Errorf("normalized shape shows the raw answer: %v", m)
		}
		st, m = renderShape(t, shape, nil, InfoRequest{})
		if st != 401 || m["error"] != "unauthenticated" {
			t.Fatalf("anonymous: %d %v", st, m)
		}
	}
}

func TestRenderHTTPRawAndTranslated(t *testing.T) {
	st, m := renderShape(t, "http", infoSession(), InfoRequest{})
	if st != 200 || len(m) != 1 || m["whatever"] != true {
		t.Fatalf("http shape of an http session should be its raw answer: %d %v", st, m)
	}
	// Mapping.Decode keeps the raw answer without naming a dialect.
	s := infoSession()
	s.Dialect = ""
	a := infoShapeOf(t, "http").Render(s, InfoRequest{})
	if string(a.Body) != `{"whatever":true}` {
		t.Errorf("http shape of a session without a dialect: %s", a.Body)
	}
	s.Dialect, s.Raw = "vsphere", []byte(`{"user":"x"}`)
	_, m = renderShape(t, "http", s, InfoRequest{})
	checkInfoFields(t, m, map[string]any{"user": "alice", "user_id": "17"})
}

func TestRenderVSphere(t *testing.T) {
	raw := `{"user":"VSPHERE.LOCAL\\Administrator","created_time":"2026-03-04T09:00:00.123Z","last_accessed_time":"2026-03-04T09:30:00.456Z"}`
	own := &Session{User: `VSPHERE.LOCAL\Administrator`, Dialect: "vsphere", Raw: []byte(raw)}

	a := infoShapeOf(t, "vsphere").Render(own, InfoRequest{Method: "GET", Path: "/api/session"})
	if a.Status != 200 || string(a.Body) != raw {
		t.Fatalf("current API: %d %s, want the raw object %s", a.Status, a.Body, raw)
	}
	a = infoShapeOf(t, "vsphere").Render(own, InfoRequest{Method: "POST", Path: "/rest/com/vmware/cis/session", Query: url.Values{"~action": {"get"}}})
	if a.Status != 200 || string(a.Body) != `{"value":`+raw+`}` {
		t.Fatalf("legacy API: %d %s", a.Status, a.Body)
	}

	st, m := renderShape(t, "vsphere", infoSession(), InfoRequest{Path: "/api/session"})
	if st != 200 || len(m) != 3 {
		t.Fatalf("translated: %d %v", st, m)
	}
	checkInfoFields(t, m, map[string]any{
		"user": "alice", "created_time": "2026-03-04T09:00:00.000Z", "last_accessed_time": "2026-03-04T09:59:00.000Z",
	})
	bare := &Session{UserID: "u-9"}
	_, m = renderShape(t, "vsphere", bare, InfoRequest{Path: "/api/session"})
	if len(m) != 1 || m["user"] != "u-9" {
		t.Fatalf("a session without times should render only the user (user_id when no user): %v", m)
	}

	st, m = renderShape(t, "vsphere", nil, InfoRequest{Path: "/api/session"})
	if st != 401 {
		t.Fatalf("anonymous: %d", st)
	}
	checkInfoFields(t, m, map[string]any{
		"error_type": "UNAUTHENTICATED", "messages.0.default_message": "Authentication required.",
		"messages.0.id": "com.vmware.vapi.endpoint.method.authentication.required", "messages.0.args": []string{},
	})
	st, m = renderShape(t, "vsphere", nil, InfoRequest{Path: "/rest/com/vmware/cis/session"})
	if st != 401 {
		t.Fatalf("anonymous legacy: %d", st)
	}
	checkInfoFields(t, m, map[string]any{
		"type":                             "com.vmware.vapi.std.errors.unauthenticated",
		"value.messages.0.default_message": "Authentication required.",
		"value.messages.0.id":              "com.vmware.vapi.endpoint.method.authentication.required",
	})
}

func TestRenderAmplify(t *testing.T) {
	raw := `{"guid":"g-1","username":"bob","org":{"guid":"o-g","org_id":100,"name":"Org","entitlements":{"x":1}},"role":"developer","teams":[{"guid":"t","name":"T","default":true,"roles":["admin"]}]}`
	own := &Session{User: "bob", Dialect: "amplify", Raw: []byte(raw)}
	a := infoShapeOf(t, "amplify").Render(own, InfoRequest{})
	if a.Status != 200 || string(a.Body) != `{"result":`+raw+`,"success":true}` {
		t.Fatalf("faithful: %d %s", a.Status, a.Body)
	}

	st, m := renderShape(t, "amplify", infoSession(), InfoRequest{})
	if st != 200 {
		t.Fatalf("status %d", st)
	}
	checkInfoFields(t, m, map[string]any{
		"success": true, "result.guid": "17", "result.username": "alice", "result.email": "alice@example.com",
		"result.firstname": "Alice", "result.lastname": "Liddell", "result.org.guid": "55", "result.org.name": "acme",
		"result.org_id": 55, "result.role": "administrator", "result.roles": []string{"wrangler", "dataAdmin"},
		"result.user.email": "alice@example.com", "result.user.guid": "17", "result.sessionID": "1000042",
		"result.expiry": renderNow.Add(90 * time.Second).UnixMilli(),
	})
	dev := infoSession()
	dev.Admin = false
	_, m = renderShape(t, "amplify", dev, InfoRequest{})
	checkInfoFields(t, m, map[string]any{"result.role": "wrangler"})

	st, m = renderShape(t, "amplify", nil, InfoRequest{})
	// The platform's findSession answer for a dead session, on which the
	// SDK retries with its bearer token.
	if st != 200 || len(m) != 2 || m["success"] != true || m["result"] != nil {
		t.Fatalf("anonymous: %d %v", st, m)
	}
}

func TestRenderTR50(t *testing.T) {
	raw := `{"id":"s-1","orgId":"o1","orgKey":"ACME","userId":"u1","userName":"bob@acme.io","hasOrgAdmin":false,"perms":{"thing.list":true,"thing.delete":false},"roleKeys":["ops"],"ttl":3600}`
	own := &Session{User: "bob@acme.io", Dialect: "tr50", Raw: []byte(raw)}
	for _, key := range []string{"cmd", "1", "getSession"} {
		body := `{"auth":{"sessionId":"x"},"` + key + `":{"command":"session.info"}}`
		a := infoShapeOf(t, "tr50").Render(own, InfoRequest{Method: "POST", Path: "/api", Body: []byte(body)})
		want := `{"` + key + `":{"params":` + raw + `,"success":true}}`
		if a.Status != 200 || string(a.Body) != want {
			t.Fatalf("key %s: %d %s, want %s", key, a.Status, a.Body, want)
		}
	}
	a := infoShapeOf(t, "tr50").Render(own, InfoRequest{Method: "POST", Body: []byte(`not json`)})
	if !strings.HasPrefix(string(a.Body), `{"1":{"params":`) {
		t.Fatalf("a body without commands should be answered under \"1\": %s", a.Body)
	}
	_, m := renderShape(t, "tr50", own, InfoRequest{Body: []byte(`{"1":{"command":"session.info"},"2":{"command":"thing.delete"}}`)})
	checkInfoFields(t, m, map[string]any{"1.success": true, "2.success": false, "2.errorCodes.0": -90004})

	_, m = renderShape(t, "tr50", infoSession(), InfoRequest{Body: []byte(`{"cmd":{"command":"session.info"}}`)})
	checkInfoFields(t, m, map[string]any{
		"cmd.success": true, "cmd.params.id": "1000042", "cmd.params.userId": "17",
		"cmd.params.userName": "alice@example.com", "cmd.params.orgId": "55", "cmd.params.orgKey": "acme",
		"cmd.params.hasOrgAdmin": true, "cmd.params.hasSuperAdmin": false,
		"cmd.params.perms":    map[string]bool{"read": true, "write": true},
		"cmd.params.roleKeys": []string{"dataAdmin", "wrangler"}, "cmd.params.ttl": 90,
		"cmd.params.startTime": "2026-03-04T09:00:00.000Z", "cmd.params.lastAccessed": "2026-03-04T09:59:00.000Z",
	})
	app := &Session{UserID: "a-1", User: "sensor-app", Kind: kindApp, OrgID: "o"}
	_, m = renderShape(t, "tr50", app, InfoRequest{})
	checkInfoFields(t, m, map[string]any{"1.params.appId": "a-1", "1.params.appName": "sensor-app"})
	if _, ok := m["1"].(map[string]any)["params"].(map[string]any)["userId"]; ok {
		t.Errorf("an application session should carry no userId: %v", m)
	}

	st, m := renderShape(t, "tr50", nil, InfoRequest{Body: []byte(`{"auth":{"sessionId":"bad"},"cmd":{"command":"session.info"}}`)})
	if st != 200 {
		t.Fatalf("TR50 reports failures with HTTP 200, got %d", st)
	}
	if len(m) != 1 {
		t.Errorf("a failed authentication is reported under auth alone: %v", m)
	}
	checkInfoFields(t, m, map[string]any{"auth.success": false, "auth.errorCodes.0": -90008, "auth.errorMessages.0": "Session not found or expired."})
}

func TestRenderEternus(t *testing.T) {
	raw := `{"session_id":1000001,"user_name":"root","lifetime":300,"auth_list":["Status_Display","User_Management"],"days_to_password_expiration":12}`
	own := &Session{ID: "1000001", User: "root", Dialect: "eternus", Raw: []byte(raw), ExpiresAt: renderNow.Add(250 * time.Second)}

	st, m := renderShape(t, "eternus", own, InfoRequest{Method: "GET", Path: "/api/v1/session/1000001"})
	if st != 200 || len(m) != 5 {
		t.Fatalf("faithful: %d %v", st, m)
	}
	checkInfoFields(t, m, map[string]any{
		"session_id": 1000001, "user_name": "root", "lifetime": 250,
		"auth_list": []string{"Status_Display", "User_Management"}, "days_to_password_expiration": 12,
	})
	a := infoShapeOf(t, "eternus").Render(own, InfoRequest{Path: "/api/v1/session/1000001", Now: renderNow})
	if !strings.Contains(string(a.Body), `"session_id":1000001`) {
		t.Errorf("session_id must stay a number: %s", a.Body)
	}

	st, m = renderShape(t, "eternus", own, InfoRequest{Path: "/api/v1/session/1000002"})
	if st != 403 {
		t.Fatalf("another session's id: %d %v", st, m)
	}
	checkInfoFields(t, m, map[string]any{"error_code": 1002})
	if _, ok := m["message"].(string); !ok {
		t.Errorf("error body without a message: %v", m)
	}

	st, m = renderShape(t, "eternus", infoSession(), InfoRequest{Path: "/api/v1/session/1000042"})
	if st != 200 {
		t.Fatalf("translated: %d %v", st, m)
	}
	checkInfoFields(t, m, map[string]any{
		"session_id": 1000042, "user_name": "alice", "lifetime": 90, "auth_list": []string{"read", "write"},
		"days_to_password_expiration": 12,
	})

	st, m = renderShape(t, "eternus", nil, InfoRequest{Path: "/api/v1/session/1"})
	if st != 401 {
		t.Fatalf("anonymous: %d", st)
	}
	for _, k := range []string{"error_code", "message", "internal_code"} {
		if _, ok := m[k]; !ok {
			t.Errorf("error body lacks %s: %v", k, m)
		}
	}
}

func TestRenderEternusFields(t *testing.T) {
	raw := `{"session_id":7,"user_name":"root","lifetime":300,"auth_list":["Status_Display"],"days_to_password_expiration":12}`
	own := &Session{ID: "7", Dialect: "eternus", Raw: []byte(raw)}
	cases := []struct {
		fields []string
		want   []string
	}{
		{nil, []string{"auth_list", "days_to_password_expiration", "lifetime", "session_id", "user_name"}},
		{[]string{"user_name"}, []string{"session_id", "user_name"}},
		{[]string{"user_name, lifetime,nonsense"}, []string{"lifetime", "session_id", "user_name"}},
		{[]string{"auth_list", "lifetime"}, []string{"auth_list", "lifetime", "session_id"}},
		{[]string{""}, []string{"session_id"}},
		{[]string{"session_id"}, []string{"session_id"}},
	}
	for _, c := range cases {
		_, m := renderShape(t, "eternus", own, InfoRequest{Path: "/api/v1/session/7", Query: url.Values{"fields": c.fields}})
		var got []string
		for k := range m {
			got = append(got, k)
		}
		sort.Strings(got)
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("fields=%q: got keys %v, want %v", c.fields, got, c.want)
		}
		if m["session_id"] != float64(7) {
			t.Errorf("fields=%q: session_id = %v", c.fields, m["session_id"])
		}
		if v, ok := m["lifetime"]; ok && v != float64(300) {
			t.Errorf("fields=%q: lifetime = %v, want the raw 300 when the session has no expiry", c.fields, v)
		}
	}
}

func TestRenderTrifacta(t *testing.T) {
	raw := `{"id":3,"email":"joe@x.io","name":"Joe","isAdmin":false,"isDisabled":false,"roles":[{"id":1,"role":"wrangler","peopleworkspaces":{"workspaceId":9,"personId":3,"roleId":1}}]}`
	own := &Session{UserID: "3", Dialect: "trifacta", Raw: []byte(raw)}
	a := infoShapeOf(t, "trifacta").Render(own, InfoRequest{Path: "/v2/session"})
	if a.Status != 200 || string(a.Body) != raw {
		t.Fatalf("faithful: %d %s", a.Status, a.Body)
	}

	st, m := renderShape(t, "trifacta", infoSession(), InfoRequest{})
	if st != 200 {
		t.Fatalf("translated: %d", st)
	}
	checkInfoFields(t, m, map[string]any{
		"id": 17, "email": "alice@example.com", "name": "Alice Liddell", "isAdmin": true, "isDisabled": false,
		"roles.0.role": "wrangler", "roles.1.role": "dataAdmin", "roles.0.peopleworkspaces.workspaceId": 55,
	})

	st, m = renderShape(t, "trifacta", nil, InfoRequest{})
	if st != 401 {
		t.Fatalf("anonymous: %d", st)
	}
	checkInfoFields(t, m, map[string]any{
		"exception.name": "AuthenticationException", "exception.message": "Not authenticated", "exception.details": "",
	})
}

// A raw answer that is not a JSON object (a corrupted or foreign Raw) is
// never echoed: the session is translated instead.
func TestRenderIgnoresBadRaw(t *testing.T) {
	for _, shape := range dialectNames() {
		s := infoSession()
		s.Dialect = shape
		s.Raw = []byte(`{"broken":`)
		a := infoShapeOf(t, shape).Render(s, InfoRequest{Now: renderNow})
		if a.Status != 200 || !json.Valid(a.Body) || strings.Contains(string(a.Body), "broken") {
			t.Errorf("%s: %d %s", shape, a.Status, a.Body)
		}
	}
}

func TestInfoHandles(t *testing.T) {
	action := url.Values{"~action": {"get"}}
	for _, tc := range []struct {
		shape, method, path string
		query               url.Values
		want                bool
	}{
		{"vsphere", "GET", "/api/session", nil, true},
		{"vsphere", "POST", "/api/session", nil, false},   // login
		{"vsphere", "DELETE", "/api/session", nil, false}, // logout
		{"vsphere", "POST", "/rest/com/vmware/cis/session", action, true},
		{"vsphere", "POST", "/rest/com/vmware/cis/session", nil, false}, // legacy login
		{"vsphere", "DELETE", "/rest/com/vmware/cis/session", nil, false},
		{"tr50", "GET", "/api", nil, false},
		{"eternus", "GET", "/api/v1/session/1", nil, true},
		{"eternus", "DELETE", "/api/v1/session/1", nil, false},
		{"eternus", "POST", "/api/v1/session", nil, false},
		{"amplify", "HEAD", "/api/v1/auth/findSession", nil, true},
		{"amplify", "POST", "/api/v1/auth/findSession", nil, false},
		{"amplify", "GET", "/api/v1/team", nil, false},
		{"amplify", "GET", "/api/v1/org/42", nil, false},
		{"amplify", "GET", "/session", nil, false},
		{"amplify", "GET", "/platform/api/v1/auth/findSession", nil, true},
		{"trifacta", "PUT", "/v2/session", nil, false},
		{"normalized", "POST", "/session", nil, true},
		{"http", "DELETE", "/session", nil, true},
	} {
		if got := infoShapeOf(t, tc.shape).Handles(InfoRequest{Method: tc.method, Path: tc.path, Query: tc.query}); got != tc.want {
			t.Errorf("%s %s %s?%s: %v, want %v", tc.shape, tc.method, tc.path, tc.query.Encode(), got, tc.want)
		}
	}
}

// TR50 session_info answers session.info envelopes only: a login or any
// other command, alone or beside session.info, is the service's.
func TestInfoHandlesTR50Commands(t *testing.T) {
	for body, want := range map[string]bool{
		`{"1":{"command":"session.info"}}`:                                  true,
		`{"auth":{"sessionId":"x"},"cmd":{"command":"session.info"}}`:       true,
		`{"1":{"command":"session.info"},"2":{"command":"session.info"}}`:   true,
		`{"auth":{"command":"api.authenticate","params":{"username":"u"}}}`: false,
		`{"1":{"command":"api.authenticate","params":{"username":"u"}}}`:    false,
		`{"1":{"command":"session.info"},"2":{"command":"thing.list"}}`:     false,
		`{"auth":{"sessionId":"x"}}`:                                        false,
		`{"1":{"command":"session.end"}}`:                                   false,
		`not json`:                                                          false,
		``:                                                                  false,
		`{"1":"session.info"}`:                                              false,
	} {
		if got := infoShapeOf(t, "tr50").Handles(InfoRequest{Method: "POST", Path: "/api", Body: []byte(body)}); got != want {
			t.Errorf("%s: %v, want %v", body, got, want)
		}
	}
	if infoShapeOf(t, "tr50").Handles(InfoRequest{Method: "GET", Path: "/api", Body: []byte(`{"1":{"command":"session.info"}}`)}) {
		t.Error("GET answered")
	}
}

// TestRenderIDsNotWrittenAsJSON: ids strconv reads as integers but JSON
// does not ("+1", "-012") are rendered as strings, not as a failed answer.
func TestRenderIDsNotWrittenAsJSON(t *testing.T) {
	for _, id := range []string{"+1", "-012", "007", "-0", "12"} {
		for _, shape := range infoShapeNames() {
			s := infoSession()
			s.ID, s.UserID, s.OrgID = id, id, id
			a := infoShapeOf(t, shape).Render(s, InfoRequest{Method: "GET", Path: "/api/v1/session/" + id, Now: renderNow})
			if a.Status >= 500 || !json.Valid(a.Body) {
				t.Errorf("%s id %q: status %d body %s", shape, id, a.Status, a.Body)
			}
		}
	}
	for id, want := range map[string]any{"+1": "+1", "-012": "-012", "007": "007", "-0": json.Number("-0"), "12": json.Number("12")} {
		if got := infoNumberOrString(id); got != want {
			t.Errorf("infoNumberOrString(%q) = %#v, want %#v", id, got, want)
		}
	}
}

func TestInfoReadsBody(t *testing.T) {
	for _, shape := range infoShapeNames() {
		c, _ := dialecttest.Lookup(shape) // normalized: none, reads no body
		if got := infoShapeOf(t, shape).ReadsBody(); got != c.InfoReadsBody {
			t.Errorf("%s: ReadsBody() = %v, want %v", shape, got, c.InfoReadsBody)
		}
	}
}
