package sessionctx

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/sessiongate/caddy-sessiongate/internal/emulator"
)

// An id never comes from a name: each dialect fills user_id only from
// what its product calls the id, and only vSphere and ETERNUS, whose
// products have one value for both, give user and user_id alike.
func TestDialectsNeverFillIDFromName(t *testing.T) {
	now := time.Now()
	for _, tt := range []struct {
		dialect        string
		decode         func([]byte, time.Time) (*Session, error)
		raw            string
		userID, user   string
		orgID, org     string
		kind           string
		rolesAndTrimOK []string
	}{
		{dialect: "amplify", decode: decodeAmplify, raw: `{"success":true,"result":{"username":"mallory","org":{"name":"acme"}}}`, user: "mallory", org: "acme", kind: kindUser},
		{dialect: "amplify", decode: decodeAmplify, raw: `{"success":true,"result":{"guid":"","username":"mallory"}}`, user: "mallory", kind: kindUser},
		{dialect: "amplify", decode: decodeAmplify, raw: `{"success":true,"result":{"guid":null,"username":"mallory"}}`, user: "mallory", kind: kindUser},
		{dialect: "amplify", decode: decodeAmplify, raw: `{"success":true,"result":{"guid":"g-1"}}`, userID: "g-1", kind: kindUser},
		{dialect: "tr50", decode: decodeTR50, raw: `{"1":{"success":true,"params":{"userName":"mallory","orgKey":"ACME"}}}`, user: "mallory", org: "ACME", kind: kindUser},
		{dialect: "tr50", decode: decodeTR50, raw: `{"1":{"success":true,"params":{"appName":"alice"}}}`, user: "alice", kind: kindApp},
		{dialect: "tr50", decode: decodeTR50, raw: `{"1":{"success":true,"params":{"userId":"u-1","orgId":"o-1"}}}`, userID: "u-1", orgID: "o-1", kind: kindUser},
		{dialect: "trifacta", decode: decodeTrifacta, raw: `{"email":"mallory@example.com"}`, user: "mallory@example.com", kind: kindUser},
		{dialect: "trifacta", decode: decodeTrifacta, raw: `{"id":null,"email":"mallory@example.com"}`, user: "mallory@example.com", kind: kindUser},
		{dialect: "vsphere", decode: func(raw []byte, now time.Time) (*Session, error) { return decodeVSphere(raw, now, 0) }, raw: `{"user":"VSPHERE.LOCAL\\ann"}`, userID: `VSPHERE.LOCAL\ann`, user: `VSPHERE.LOCAL\ann`, org: "VSPHERE.LOCAL", kind: kindUser},
		{dialect: "eternus", decode: decodeEternus, raw: `{"session_id":1,"user_name":"root"}`, userID: "root", user: "root", kind: kindUser},
	} {
		s, err := tt.decode([]byte(tt.raw), now)
		if err != nil {
			t.Errorf("%s %s: %v", tt.dialect, tt.raw, err)
			continue
		}
		if s.UserID != tt.userID || s.User != tt.user || s.OrgID != tt.orgID || s.Org != tt.org || s.Kind != tt.kind {
			t.Errorf("%s %s: user_id %q user %q org_id %q org %q kind %q; want %q %q %q %q %q",
				tt.dialect, tt.raw, s.UserID, s.User, s.OrgID, s.Org, s.Kind, tt.userID, tt.user, tt.orgID, tt.org, tt.kind)
		}
	}
}

// Role and permission names are exact in every dialect: a list element
// keeps its spaces, and a string is one name where the product gives one.
func TestDialectRolesExact(t *testing.T) {
	odd := `["admin\u00a0","\u2003admin"," admin ","admin\u0085","Sales admin","\tadmin"]`
	want := []string{"admin\u00a0", "\u2003admin", " admin ", "admin\u0085", "Sales admin", "\tadmin"}
	now := time.Now()
	check := func(what string, got []string) {
		t.Helper()
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("%s: %q, want %q", what, got, want)
		}
		for _, g := range got {
			if g == "admin" {
				t.Errorf("%s: an odd spelling became admin", what)
			}
		}
	}
	s, err := decodeAmplify([]byte(`{"success":true,"result":{"guid":"g","roles":`+odd+`}}`), now)
	if err != nil {
		t.Fatal(err)
	}
	check("amplify roles", s.Roles)
	s, err = decodeAmplify([]byte(`{"success":true,"result":{"guid":"g","role":"Sales admin"}}`), now)
	if err != nil || len(s.Roles) != 1 || s.Roles[0] != "Sales admin" || s.HasRole("admin") {
		t.Errorf("amplify role string: %q %v, want the one role \"Sales admin\"", s.Roles, err)
	}
	s, err = decodeTR50([]byte(`{"1":{"success":true,"params":{"userId":"u","roleKeys":`+odd+`,"perms":{" admin ":true}}}}`), now)
	if err != nil {
		t.Fatal(err)
	}
	check("tr50 roleKeys", s.Roles)
	if len(s.Perms) != 1 || s.Perms[0] != " admin " {
		t.Errorf("tr50 perms %q", s.Perms)
	}
	s, err = decodeEternus([]byte(`{"session_id":1,"user_name":"u","auth_list":`+odd+`}`), now)
	if err != nil {
		t.Fatal(err)
	}
	check("eternus auth_list", s.Perms)
	s, err = decodeTrifacta([]byte(`{"id":1,"email":"e","roles":[{"role":"admin\u00a0"},{"role":"Sales admin"}]}`), now)
	if err != nil || len(s.Roles) != 2 || s.HasRole("admin") {
		t.Errorf("trifacta roles %q %v", s.Roles, err)
	}
	m := defaultMapping()
	s, err = m.Decode([]byte(`{"user_id":"u","roles":"Sales admin","perms":" read "}`), now)
	if err != nil || len(s.Roles) != 1 || s.Roles[0] != "Sales admin" || len(s.Perms) != 1 || s.Perms[0] != " read " {
		t.Errorf("http default mapping: roles %q perms %q %v", s.Roles, s.Perms, err)
	}
}

// A mapping that names any identity field reads exactly what it names:
// the fields it leaves unmapped stay empty whatever paths of the default
// shape the answer holds. One that names none reads the default shape.
func TestHTTPMappingReadsOnlyWhatItMaps(t *testing.T) {
	answer := `{"login":"ann","user_id":"root","user":"root","admin":true,"roles":["admin"],"perms":["all"],"org_id":"o","org":"acme","email":"root@x","name":"Root","id":"s","expires_at":"2099-01-01T00:00:00Z"}`
	for _, opts := range []string{`{"user_from":"login"}`, `{"user_from":"login","expires_from":"exp"}`, `{"user_from":"login","valid_from":"admin"}`} {
		srv, _, _ := recordingService(t, 200, answer)
		b, _, err := newBackend(Config{Dialect: "http", URL: srv.URL, Options: optsJSON(t, "http", opts)})
		if err != nil {
			t.Fatal(err)
		}
		s, err := b.Resolve(context.Background(), credential{Value: "tok"})
		if err != nil {
			t.Fatal(err)
		}
		if s.User != "ann" || s.UserID != "" || s.Admin || s.Roles != nil || s.Perms != nil || s.Org != "" || s.OrgID != "" ||
			s.Email != "" || s.Name != "" || s.ID != "" || !s.ExpiresAt.IsZero() {
			t.Errorf("%s: read what it does not map: %+v", opts, s)
		}
	}
	srv, _, _ := recordingService(t, 200, answer)
	for _, opts := range []string{`{}`, `{"method":"GET"}`, `{"expires_from":"expires_at"}`} {
		b, _, err := newBackend(Config{Dialect: "http", URL: srv.URL, Options: optsJSON(t, "http", opts)})
		if err != nil {
			t.Fatal(err)
		}
		s, err := b.Resolve(context.Background(), credential{Value: "tok"})
		if err != nil || s.User != "root" || !s.Admin || s.ExpiresAt.IsZero() {
			t.Errorf("%s: the default shape is not read: %+v %v", opts, s, err)
		}
	}
	// What the Caddyfile adapter writes out: every path read.
	o := newHTTPOptions()
	if err := o.SetOption("method", []string{"POST"}); err != nil {
		t.Fatal(err)
	}
	if r := o.Resolved().(*HTTPOptions); r.Mapping != defaultMapping() {
		t.Errorf("Resolved of a block that maps nothing: %+v", r.Mapping)
	}
	if err := o.SetOption("user_from", []string{"login"}); err != nil {
		t.Fatal(err)
	}
	if r := o.Resolved().(*HTTPOptions); r.Mapping != (Mapping{UserFrom: "login"}) {
		t.Errorf("Resolved of a block that maps user: %+v", r.Mapping)
	}
}

// TR50 envelopes that parsers may read differently are refused: two auth
// objects or two sessionId keys, in any case or escape; and so is one
// that names another session than the sessionId header.
func TestTR50EnvelopeAmbiguity(t *testing.T) {
	hdr := TokenSource{From: FromHeader, Name: "Sessionid"}
	for _, tt := range []struct {
		name   string
		body   string
		header string
		want   string // the token, or "ambiguous", or "" for none
	}{
		{"one key", `{"auth":{"sessionId":"A"},"1":{"command":"session.info"}}`, "", "A"},
		{"duplicate sessionId", `{"auth":{"sessionId":"A","sessionId":"B"}}`, "", "ambiguous"},
		{"duplicate in another case", `{"auth":{"sessionId":"A","SessionID":"B"}}`, "", "ambiguous"},
		{"duplicate by Unicode folding", `{"auth":{"sessionId":"A","ſessionId":"B"}}`, "", "ambiguous"},
		{"duplicate escaped", `{"auth":{"sessionId":"A","session\u0049d":"B"}}`, "", "ambiguous"},
		{"duplicate auth", `{"auth":{"sessionId":"A"},"auth":{"sessionId":"B"}}`, "", "ambiguous"},
		{"duplicate auth in another case", `{"auth":{"sessionId":"A"},"AUTH":{"sessionId":"B"}}`, "", "ambiguous"},
		{"duplicate auth, one not an object", `{"auth":{"sessionId":"A"},"auth":null}`, "", "ambiguous"},
		{"duplicate sessionId, same value", `{"auth":{"sessionId":"A","sessionId":"A"}}`, "", "ambiguous"},
		{"key in another case alone", `{"auth":{"SESSIONID":"A"}}`, "", "A"},
		{"number", `{"auth":{"sessionId":7}}`, "", ""},
		{"not JSON", `{"auth":{"sessionId":"A"}`, "", ""},
		{"nested deeper is not the token", `{"x":{"auth":{"sessionId":"A"}}}`, "", ""},
		{"header alone", `{"1":{"command":"session.info"}}`, "H", "H"},
		{"header and the same body", `{"auth":{"sessionId":"H"}}`, "H", "H"},
		{"header and another body", `{"auth":{"sessionId":"B"}}`, "H", "ambiguous"},
		{"header and a duplicated body", `{"auth":{"sessionId":"H","sessionId":"B"}}`, "H", "ambiguous"},
	} {
		r := httptest.NewRequest(http.MethodPost, "/api", strings.NewReader(tt.body))
		if tt.header != "" {
			r.Header.Set("sessionId", tt.header)
		}
		cred, err := extractTR50(r, []TokenSource{hdr})
		got := cred.Value
		switch {
		case errors.Is(err, errAmbiguous):
			got = "ambiguous"
			if !errors.Is(err, ErrUnauthenticated) {
				t.Errorf("%s: errAmbiguous does not wrap ErrUnauthenticated", tt.name)
			}
		case err != nil && !errors.Is(err, ErrUnauthenticated):
			t.Errorf("%s: %v", tt.name, err)
		}
		if got != tt.want {
			t.Errorf("%s: got %q (%v), want %q", tt.name, got, err, tt.want)
		}
		if rest, _ := readAll(r); rest != tt.body {
			t.Errorf("%s: body not put back whole: %q", tt.name, rest)
		}
	}
}

func readAll(r *http.Request) (string, error) {
	b, err := io.ReadAll(r.Body)
	return string(b), err
}

// A token is one cache entry whatever carries it: a token first read from
// a TR50 body is forgotten by a purge of the token, and one forgotten
// through its cookie is forgotten for its header too.
func TestForgetTokenCoversEverySource(t *testing.T) {
	emu := emulator.NewTR50()
	emu.AddSession("S1", emulator.TR50UserParams("u-1", "ann", 3600, time.Now()))
	srv := httptest.NewServer(emu)
	defer srv.Close()
	c, err := New(Config{Dialect: "tr50", URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	body := func() *http.Request {
		return httptest.NewRequest(http.MethodPost, "/api", strings.NewReader(`{"auth":{"sessionId":"S1"},"1":{"command":"thing.list"}}`))
	}
	header := func() *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/x", nil)
		r.Header.Set("sessionId", "S1")
		return r
	}
	cookie := func() *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/x", nil)
		r.Header.Set("Cookie", "sessionId=S1")
		return r
	}
	for _, req := range []func() *http.Request{body, header, cookie} {
		if _, err := c.Authenticate(req()); err != nil {
			t.Fatal(err)
		}
	}
	if calls := emu.Calls(); calls != 1 {
		t.Fatalf("one token in three sources: %d service calls, want 1", calls)
	}
	if n := c.ForgetToken("S1"); n != 1 {
		t.Fatalf("ForgetToken evicted %d entries, want 1", n)
	}
	emu.RemoveSession("S1")
	for name, req := range map[string]func() *http.Request{"body": body, "header": header, "cookie": cookie} {
		if _, err := c.Authenticate(req()); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s after the purge: err %v, want the revoked session rejected", name, err)
		}
	}

	emu.AddSession("S2", emulator.TR50UserParams("u-2", "bob", 3600, time.Now()))
	r := cookie()
	r.Header.Set("Cookie", "sessionId=S2")
	res, err := c.Authenticate(r)
	if err != nil {
		t.Fatal(err)
	}
	c.Forget(res.Key) // a logout through the cookie
	emu.RemoveSession("S2")
	r = header()
	r.Header.Set("sessionId", "S2")
	if _, err := c.Authenticate(r); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("the header after a logout through the cookie: err %v, want rejected", err)
	}
}

// A session awaiting Amplify device authorization keeps the platform's
// answer: InfoShape.Render gives it back for findSession, and it is not cached,
// so the session is seen as soon as the platform grants it.
func TestAmplifyDeviceAuthorizationAnswer(t *testing.T) {
	emu := emulator.NewAmplify()
	emu.AddSession("pending", emulator.AmplifyResult("g-1", "ada", "ada@example.com", "developer"))
	emu.RequireDeviceAuth("pending")
	srv := httptest.NewServer(emu)
	defer srv.Close()
	c, err := New(Config{Dialect: "amplify", URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	req := func() *http.Request {
		r := httptest.NewRequest(http.MethodGet, emulator.AmplifyPath, nil)
		r.Header.Set("Authorization", "Bearer pending")
		return r
	}
	_, err = c.Authenticate(req())
	if !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("err %v, want a rejection", err)
	}
	find := InfoRequest{Method: http.MethodGet, Path: emulator.AmplifyPath, Rejection: err}
	ans := infoShapeOf(t, "amplify").Render(nil, find)
	if ans.Status != http.StatusBadRequest || gjson.GetBytes(ans.Body, "internalCode").Int() != 232 ||
		gjson.GetBytes(ans.Body, "success").Type != gjson.False {
		t.Fatalf("findSession answer %d %s, want the platform's 400 with internalCode 232", ans.Status, ans.Body)
	}
	// Other shapes, and a plain rejection, keep their "no session".
	if ans := infoShapeOf(t, "normalized").Render(nil, find); ans.Status == http.StatusBadRequest {
		t.Errorf("normalized shape gave Amplify's answer")
	}
	plain := find
	plain.Rejection = ErrUnauthenticated
	if ans := infoShapeOf(t, "amplify").Render(nil, plain); ans.Status != 200 || gjson.GetBytes(ans.Body, "result").Type != gjson.Null {
		t.Errorf("plain rejection: %d %s, want result null", ans.Status, ans.Body)
	}
	emu.GrantDeviceAuth("pending")
	if res, err := c.Authenticate(req()); err != nil || res.Session.UserID != "g-1" {
		t.Errorf("authorization granted: %v, want the session at once (the 232 was not cached)", err)
	}
}

// Authenticate marks an ambiguous credential in its Result, so that the
// caller answers 400 rather than 401 (or, optional, going on anonymously).
func TestAuthenticateMarksAmbiguous(t *testing.T) {
	c, err := New(Config{Dialect: "tr50", URL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "/api", strings.NewReader(`{"auth":{"sessionId":"A","sessionId":"B"}}`))
	res, err := c.Authenticate(r)
	if !res.Ambiguous || !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("two sessionId keys: Ambiguous %v, err %v", res.Ambiguous, err)
	}
	r = httptest.NewRequest(http.MethodPost, "/api", strings.NewReader(`{"1":{"command":"thing.list"}}`))
	if res, err := c.Authenticate(r); res.Ambiguous || !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("no session id: Ambiguous %v, err %v", res.Ambiguous, err)
	}
}
