package sessionctx

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/sessiongate/caddy-sessiongate/internal/emulator"
)

func TestTrifactaResolve(t *testing.T) {
	admin := emulator.TrifactaPerson(42, "ada@example.com", "Ada L", true, false, "admin", "dataAdmin")
	wrangler := emulator.TrifactaPerson(7, "bob@example.com", "Bob", false, false, "wrangler")
	disabled := emulator.TrifactaPerson(9, "eve@example.com", "Eve", false, true, "wrangler")
	bearer := func(v string) credential { return credential{Value: v, Source: TokenSource{From: FromBearer}} }
	cases := []struct {
		name  string
		setup func(e *emulator.Trifacta)
		cred  credential
		want  error
		check func(t *testing.T, s *Session)
	}{
		{name: "admin by access token", cred: bearer("tok-ada"), check: func(t *testing.T, s *Session) {
			want := Session{
				UserID: "42", User: "ada@example.com", Email: "ada@example.com", Name: "Ada L", OrgID: "7",
				Roles: []string{"admin", "dataAdmin"}, Admin: true, Kind: kindUser, Dialect: "trifacta",
			}
			got := *s
			got.Raw, got.Attrs, got.CreatedAt = nil, nil, time.Time{}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("session\n got %+v\nwant %+v", got, want)
			}
			raw, _ := json.Marshal(admin)
			if !sameJSON(t, s.Raw, raw) {
				t.Errorf("Raw is not the person object: %s", s.Raw)
			}
			if s.Attrs["outputHomeDir"] != "/trifacta/queryResults/ada@example.com" || s.CreatedAt.IsZero() {
				t.Errorf("attrs %v, created %v", s.Attrs, s.CreatedAt)
			}
		}},
		{name: "browser cookie goes on as the cookie", cred: credential{Value: "cookie-bob", Source: TokenSource{From: FromCookie, Name: emulator.TrifactaCookie}},
			check: func(t *testing.T, s *Session) {
				if s.UserID != "7" || s.Admin || !s.HasRole("wrangler") {
					t.Errorf("got %+v", s)
				}
			}},
		{name: "disabled person", cred: bearer("tok-eve"), want: ErrUnauthenticated},
		{name: "unknown token", cred: bearer("nope"), want: ErrUnauthenticated},
		{name: "503", cred: bearer("tok-ada"), want: ErrUnavailable, setup: func(e *emulator.Trifacta) { e.SetFault(emulator.Unavailable) }},
		{name: "500", cred: bearer("tok-ada"), want: ErrUnavailable, setup: func(e *emulator.Trifacta) { e.SetFault(emulator.InternalError) }},
		{name: "garbage", cred: bearer("tok-ada"), want: ErrUnavailable, setup: func(e *emulator.Trifacta) { e.SetFault(emulator.Garbage) }},
		{name: "wrong shape", cred: bearer("tok-ada"), want: ErrUnavailable, setup: func(e *emulator.Trifacta) { e.SetFault(emulator.WrongShape) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			emu := emulator.NewTrifacta()
			emu.AddSession("tok-ada", admin)
			emu.AddSession("cookie-bob", wrangler)
			emu.AddSession("tok-eve", disabled)
			if tc.setup != nil {
				tc.setup(emu)
			}
			srv := httptest.NewServer(emu)
			defer srv.Close()
			s, err := dialectBackend(t, "trifacta", srv.URL, "").Resolve(context.Background(), tc.cred)
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

func TestDecodeTrifacta(t *testing.T) {
	cases := []struct {
		name, body string
		want       error
		userID     string
	}{
		{"float id", `{"id":12.0,"email":"a@b"}`, nil, "12"},
		{"exponent id", `{"id":1e3,"email":"a@b"}`, nil, "1000"},
		{"string id", `{"id":"p-1","email":"a@b"}`, nil, "p-1"},
		{"no email", `{"id":5}`, nil, "5"},
		{"disabled as a string", `{"id":5,"isDisabled":"true"}`, ErrUnauthenticated, ""},
		{"exception body", `{"exception":{"name":"AuthenticationException","message":"Not authenticated","details":""}}`, ErrUnavailable, ""},
		{"list", `[{"id":1}]`, ErrUnavailable, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := decodeTrifacta([]byte(tc.body), time.Now())
			wantOutcome(t, err, tc.want)
			if err == nil && (s.UserID != tc.userID || s.Dialect != "trifacta") {
				t.Errorf("got %+v, want user_id %q", s, tc.userID)
			}
		})
	}
}
