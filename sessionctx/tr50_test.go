package sessionctx

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/caddy-sessiongate/internal/emulator"
)

func TestTR50Resolve(t *testing.T) {
	last := time.Now().Add(-10 * time.Second).UTC()
	user := emulator.TR50UserParams("u-17", "ops@acme.example", 3600, last)
	admin := emulator.TR50AdminParams("u-1", "root", 600, last)
	app := emulator.TR50AppParams("app-9", "Gateway Agent", 0, last)
	cred := func(v string) credential {
		return credential{Value: v, Source: TokenSource{From: FromHeader, Name: "SessionId"}}
	}
	cases := []struct {
		name  string
		setup func(e *emulator.TR50)
		cred  credential
		want  error
		check func(t *testing.T, s *Session)
	}{
		{name: "user session", cred: cred("sess-user"), check: func(t *testing.T, s *Session) {
			want := Session{
				ID: "sess-u-17", UserID: "u-17", User: "ops@acme.example", Email: "ops@acme.example",
				OrgID: "org-4711", Org: "ACME", Roles: []string{"operator", "viewer"},
				Perms: []string{"alarm.ack", "thing.list"}, Admin: true, Kind: kindUser, Dialect: "tr50",
			}
			got := *s
			got.Raw, got.Attrs, got.CreatedAt, got.LastAccessedAt, got.ExpiresAt = nil, nil, time.Time{}, time.Time{}, time.Time{}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("session\n got %+v\nwant %+v", got, want)
			}
			if !s.LastAccessedAt.Equal(last) {
				t.Errorf("LastAccessedAt %v, want %v", s.LastAccessedAt, last)
			}
			// ttl counts from lastAccessed, not from the call.
			if d := s.ExpiresAt.Sub(last.Add(time.Hour)); d < -time.Millisecond || d > time.Millisecond {
				t.Errorf("ExpiresAt %v, want lastAccessed+1h %v", s.ExpiresAt, last.Add(time.Hour))
			}
			if s.Attrs["serverId"] != "srv-eu-1" || s.Attrs["locale"] != "en-US" {
				t.Errorf("attrs %v", s.Attrs)
			}
			raw, _ := json.Marshal(user)
			if !sameJSON(t, s.Raw, raw) {
				t.Errorf("Raw is not the params object: %s", s.Raw)
			}
		}},
		{name: "admin session without perms", cred: cred("sess-admin"), check: func(t *testing.T, s *Session) {
			if s.User != "root" || !s.Admin || s.Perms != nil || s.Roles != nil || s.Email != "" {
				t.Errorf("got %+v", s)
			}
		}},
		{name: "application session", cred: cred("sess-app"), check: func(t *testing.T, s *Session) {
			if s.Kind != kindApp || s.UserID != "app-9" || s.User != "Gateway Agent" || s.Email != "" || s.Admin {
				t.Errorf("got %+v", s)
			}
			if s.Attrs["thingKey"] != "gateway-7" || !s.ExpiresAt.IsZero() {
				t.Errorf("attrs %v, ExpiresAt %v (ttl 0 sets none)", s.Attrs, s.ExpiresAt)
			}
		}},
		{name: "unknown session, failed auth", cred: cred("nope"), want: ErrUnauthenticated},
		{name: "unknown session, failed command", cred: cred("nope"), want: ErrUnauthenticated,
			setup: func(e *emulator.TR50) { e.FailOnCommand(true) }},
		{name: "503", cred: cred("sess-user"), want: ErrUnavailable, setup: func(e *emulator.TR50) { e.SetFault(emulator.Unavailable) }},
		{name: "500", cred: cred("sess-user"), want: ErrUnavailable, setup: func(e *emulator.TR50) { e.SetFault(emulator.InternalError) }},
		{name: "garbage", cred: cred("sess-user"), want: ErrUnavailable, setup: func(e *emulator.TR50) { e.SetFault(emulator.Garbage) }},
		{name: "wrong shape", cred: cred("sess-user"), want: ErrUnavailable, setup: func(e *emulator.TR50) { e.SetFault(emulator.WrongShape) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			emu := emulator.NewTR50()
			emu.AddSession("sess-user", user)
			emu.AddSession("sess-admin", admin)
			emu.AddSession("sess-app", app)
			if tc.setup != nil {
				tc.setup(emu)
			}
			srv := httptest.NewServer(emu)
			defer srv.Close()
			s, err := dialectBackend(t, "tr50", srv.URL, "").Resolve(context.Background(), tc.cred)
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

// TestTR50CommandKeyCmd: the documentation keys the command "cmd"; the
// emulator mirrors the key and the decoder takes any.
func TestTR50CommandKeyCmd(t *testing.T) {
	emu := emulator.NewTR50()
	emu.AddSession("s1", emulator.TR50UserParams("u-1", "alice", 60, time.Now()))
	srv := httptest.NewServer(emu)
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/api", "application/json",
		strings.NewReader(`{"auth":{"sessionId":"s1"},"cmd":{"command":"session.info"}}`))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasPrefix(string(raw), `{"cmd":`) {
		t.Fatalf("emulator did not mirror the cmd key: %s", raw)
	}
	s, err := decodeTR50(raw, time.Now())
	if err != nil || s.User != "alice" {
		t.Fatalf("decode: %v, %+v", err, s)
	}
}

func TestDecodeTR50(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name, body string
		want       error
		expires    time.Time
	}{
		{"ttl from lastAccessed", `{"1":{"success":true,"params":{"userId":"u","ttl":600,"lastAccessed":"2026-01-01T11:58:00Z"}}}`, nil, now.Add(8 * time.Minute)},
		{"ttl from now without lastAccessed", `{"1":{"success":true,"params":{"userId":"u","ttl":600}}}`, nil, now.Add(10 * time.Minute)},
		{"ttl as a string", `{"x":{"success":true,"params":{"userName":"u","ttl":"60"}}}`, nil, now.Add(time.Minute)},
		{"auth failed", `{"auth":{"success":false,"errorCodes":[-90008],"errorMessages":["Session not found"]}}`, ErrUnauthenticated, time.Time{}},
		{"command failed", `{"1":{"success":false,"errorCodes":[-90008]}}`, ErrUnauthenticated, time.Time{}},
		{"no command", `{"auth":{"success":true}}`, ErrUnavailable, time.Time{}},
		{"no params", `{"1":{"success":true}}`, ErrUnavailable, time.Time{}},
		{"neither user nor app", `{"1":{"success":true,"params":{"orgId":"o"}}}`, ErrUnavailable, time.Time{}},
		{"array", `[]`, ErrUnavailable, time.Time{}},
		{"not JSON", `{"1":`, ErrUnavailable, time.Time{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := decodeTR50([]byte(tc.body), now)
			wantOutcome(t, err, tc.want)
			if err == nil && !s.ExpiresAt.Equal(tc.expires) {
				t.Errorf("ExpiresAt %v, want %v", s.ExpiresAt, tc.expires)
			}
		})
	}
}
