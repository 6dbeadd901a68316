package sessionctx

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/caddy-sessiongate/internal/emulator"
)

// dialectBackend builds the named dialect's client for an emulator; the
// dialect tests share it.
func dialectBackend(t *testing.T, dialect, url, options string) backend {
	t.Helper()
	cfg := Config{Dialect: dialect, URL: url}
	if options != "" {
		cfg.Options = optsJSON(t, dialect, options)
	}
	b, d, err := newBackend(cfg)
	if err != nil {
		t.Fatalf("newBackend(%s): %v", dialect, err)
	}
	if d.name != dialect {
		t.Fatalf("newBackend(%s) gave dialect %s", dialect, d.name)
	}
	return b
}

// optsJSON decodes a dialect's options from JSON the way the Caddy side
// does, strictly.
func optsJSON(t testing.TB, dialect, raw string) Options {
	t.Helper()
	opts, err := DialectOptions(dialect)
	if err != nil || opts == nil {
		t.Fatalf("DialectOptions(%s): %v %v", dialect, opts, err)
	}
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(opts); err != nil {
		t.Fatalf("%s options %s: %v", dialect, raw, err)
	}
	return opts
}

// wantOutcome checks that err is nil, or wraps the sentinel want.
func wantOutcome(t *testing.T, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != nil && !errors.Is(err, want):
		t.Fatalf("error %v, want one wrapping %q", err, want)
	}
}

// sameJSON reports whether two JSON texts hold the same value.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("not JSON: %v: %s", err, a)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	return reflect.DeepEqual(va, vb)
}

func TestAmplifyResolve(t *testing.T) {
	// An express-signed connect.sid: the percent sign and dot must reach
	// the service untouched, or the emulator finds no session.
	const cookieTok = "s%3AbQ8xZ1.Jd0%2Bq9kLsig"
	admin := emulator.AmplifyResult("u-guid-1", "ada", "ada@example.com", "administrator")
	dev := emulator.AmplifyResult("u-guid-2", "bob", "bob@example.com", "developer")
	expiryMillis := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	withMillis := emulator.AmplifyResult("u-guid-3", "cy", "cy@example.com", "consumer")
	withMillis["expiry"] = expiryMillis.UnixMilli()
	withRFC := emulator.AmplifyResult("u-guid-4", "di", "di@example.com", "auditor")
	withRFC["expiry"] = "2030-01-02T03:04:05Z"

	cookie := func(v string) credential {
		return credential{Value: v, Source: TokenSource{From: FromCookie, Name: "connect.sid"}}
	}
	bearer := func(v string) credential { return credential{Value: v, Source: TokenSource{From: FromBearer}} }

	cases := []struct {
		name  string
		setup func(a *emulator.Amplify)
		cred  credential
		want  error
		check func(t *testing.T, s *Session)
	}{
		{name: "signed cookie, administrator", cred: cookie(cookieTok), check: func(t *testing.T, s *Session) {
			want := Session{
				ID: "sess-u-guid-1", UserID: "u-guid-1", User: "ada", Email: "ada@example.com", Name: "Ada Lovelace",
				OrgID: "org-guid-1", Org: "Acme", Roles: []string{"administrator", "usage_reporter"}, Admin: true,
				Kind: kindUser, Dialect: "amplify",
			}
			got := *s
			got.Raw, got.Attrs = nil, nil
			if !reflect.DeepEqual(got, want) {
				t.Errorf("session\n got %+v\nwant %+v", got, want)
			}
			if !reflect.DeepEqual(s.Attrs["teams"], []string{"Default Team", "Ops"}) || !reflect.DeepEqual(s.Attrs["orgs"], []string{"Acme"}) {
				t.Errorf("attrs %v", s.Attrs)
			}
			raw, _ := json.Marshal(admin)
			if !sameJSON(t, s.Raw, raw) {
				t.Errorf("Raw is not the result object: %s", s.Raw)
			}
			if !s.ExpiresAt.IsZero() {
				t.Errorf("no expiry in the answer, got ExpiresAt %v", s.ExpiresAt)
			}
		}},
		{name: "bearer access token, developer", cred: bearer("access-bob"), check: func(t *testing.T, s *Session) {
			if s.User != "bob" || s.Admin || !s.HasRole("developer") {
				t.Errorf("got %+v", s)
			}
		}},
		{name: "expiry in epoch ms", cred: bearer("access-cy"), check: func(t *testing.T, s *Session) {
			if !s.ExpiresAt.Equal(expiryMillis) {
				t.Errorf("ExpiresAt %v, want %v", s.ExpiresAt, expiryMillis)
			}
		}},
		{name: "expiry in RFC 3339", cred: bearer("access-di"), check: func(t *testing.T, s *Session) {
			if !s.ExpiresAt.Equal(expiryMillis) {
				t.Errorf("ExpiresAt %v, want %v", s.ExpiresAt, expiryMillis)
			}
		}},
		{name: "cookie decoded on the way is not the session", cred: cookie("s:bQ8xZ1.Jd0+q9kLsig"), want: ErrUnauthenticated},
		{name: "unknown token: result null", cred: bearer("nobody"), want: ErrUnauthenticated},
		{name: "unknown token: 401 Sign-in Required", cred: bearer("nobody"), want: ErrUnauthenticated,
			setup: func(a *emulator.Amplify) { a.RejectWith401(true) }},
		{name: "device authorization required", cred: bearer("pending"), want: ErrUnauthenticated,
			setup: func(a *emulator.Amplify) { a.RequireDeviceAuth("pending") }},
		{name: "503", cred: bearer("access-bob"), want: ErrUnavailable,
			setup: func(a *emulator.Amplify) { a.SetFault(emulator.Unavailable) }},
		{name: "500", cred: bearer("access-bob"), want: ErrUnavailable,
			setup: func(a *emulator.Amplify) { a.SetFault(emulator.InternalError) }},
		{name: "garbage", cred: bearer("access-bob"), want: ErrUnavailable,
			setup: func(a *emulator.Amplify) { a.SetFault(emulator.Garbage) }},
		{name: "wrong shape", cred: bearer("access-bob"), want: ErrUnavailable,
			setup: func(a *emulator.Amplify) { a.SetFault(emulator.WrongShape) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			emu := emulator.NewAmplify()
			emu.AddSession(cookieTok, admin)
			emu.AddSession("access-bob", dev)
			emu.AddSession("access-cy", withMillis)
			emu.AddSession("access-di", withRFC)
			if tc.setup != nil {
				tc.setup(emu)
			}
			srv := httptest.NewServer(emu)
			defer srv.Close()
			s, err := dialectBackend(t, "amplify", srv.URL, "").Resolve(context.Background(), tc.cred)
			wantOutcome(t, err, tc.want)
			if emu.Calls() != 1 {
				t.Errorf("%d calls to the service, want 1", emu.Calls())
			}
			if tc.check != nil {
				tc.check(t, s)
			}
		})
	}
}

func TestDecodeAmplify(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name, body string
		want       error
		user       string
	}{
		{"null result", `{"success":true,"result":null}`, ErrUnauthenticated, ""},
		{"missing result", `{"success":true}`, ErrUnauthenticated, ""},
		{"failure 401", `{"success":false,"description":"Sign-in Required","code":401}`, ErrUnauthenticated, ""},
		{"failure 232", `{"success":false,"code":400,"internalCode":232}`, ErrUnauthenticated, ""},
		{"failure 500 in a 200", `{"success":false,"code":500}`, ErrUnavailable, ""},
		{"deviceAuthRequired in result", `{"success":true,"result":{"guid":"g","deviceAuthRequired":true}}`, ErrUnauthenticated, ""},
		{"not an amplify answer", `{"foo":1}`, ErrUnavailable, ""},
		{"result not an object", `{"success":true,"result":[1]}`, ErrUnavailable, ""},
		{"result names no user", `{"success":true,"result":{"org_id":1}}`, ErrUnavailable, ""},
		{"not JSON", `<html>`, ErrUnavailable, ""},
		{"login-schema result", `{"success":true,"result":{"user_guid":"g9","email":"e@x","firstname":"E","lastname":"X","org_name":"O","org_id":5,"role":"developer"}}`, nil, "e@x"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := decodeAmplify([]byte(tc.body), now)
			wantOutcome(t, err, tc.want)
			if tc.want == nil && (s.User != tc.user || s.UserID == "" || s.Dialect != "amplify") {
				t.Errorf("got %+v", s)
			}
			if tc.name == "login-schema result" && (s.UserID != "g9" || s.Name != "E X" || s.Org != "O" || s.OrgID != "5" || s.Email != "e@x") {
				t.Errorf("login-schema fields: %+v", s)
			}
		})
	}
}

// A 4xx without Amplify's own error object comes from in front of the
// platform (a WAF, a proxy that blocked the caller's IP): it says nothing
// about the token.
func TestAmplifyRejectionNeedsPlatformBody(t *testing.T) {
	for _, tt := range []struct {
		status int
		body   string
		want   error
	}{
		{401, `{"success":false,"description":"Sign-in Required","code":401}`, ErrUnauthenticated},
		{400, `{"success":false,"description":"Device authorization required","code":400,"internalCode":232}`, ErrUnauthenticated},
		{403, `<html><body>Request blocked</body></html>`, ErrUnavailable},
		{403, ``, ErrUnavailable},
		{401, `{"message":"Unauthorized"}`, ErrUnavailable},
		{429, `{"success":false,"code":429}`, ErrUnavailable},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(tt.status)
			_, _ = io.WriteString(w, tt.body)
		}))
		_, err := dialectBackend(t, "amplify", srv.URL, "").Resolve(context.Background(), credential{Value: "tok", Source: TokenSource{From: FromBearer}})
		srv.Close()
		if !errors.Is(err, tt.want) {
			t.Errorf("%d %q: err %v, want %v", tt.status, tt.body, err, tt.want)
		}
	}
}
