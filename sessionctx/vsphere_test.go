package sessionctx

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/caddy-sessiongate/internal/emulator"
)

// vsphereLogin creates a session the way vCenter does: POST /api/session
// with Basic auth, answered by the token as a JSON string.
func vsphereLogin(t *testing.T, url, user string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+emulator.VSphereCurrentPath, nil)
	req.SetBasicAuth(user, "secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var tok string
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(raw, &tok) != nil || tok == "" {
		t.Fatalf("login: %d %s", resp.StatusCode, raw)
	}
	return tok
}

func TestVSphereResolve(t *testing.T) {
	vcred := func(v string) credential {
		return credential{Value: v, Source: TokenSource{From: FromHeader, Name: "Vmware-Api-Session-Id"}}
	}
	cases := []struct {
		name    string
		options string
		legacy  bool // the server has only the legacy API
		setup   func(e *emulator.VSphere)
		token   string
		want    error
		// calls to each API over two resolutions of the same token
		current, legacyCalls int64
		check                func(t *testing.T, s *Session)
	}{
		{name: "current API", token: "t-dom", current: 2, check: func(t *testing.T, s *Session) {
			if s.User != `VSPHERE.LOCAL\Administrator` || s.UserID != s.User || s.Org != "VSPHERE.LOCAL" || s.Kind != kindUser || s.Dialect != "vsphere" {
				t.Errorf("got %+v", s)
			}
			if !strings.HasPrefix(string(s.Raw), `{"created_time"`) {
				t.Errorf("Raw %s, want the bare session object", s.Raw)
			}
		}},
		{name: "auto falls back to legacy on 404 and remembers", legacy: true, token: "t-upn", current: 1, legacyCalls: 2,
			check: func(t *testing.T, s *Session) {
				if s.User != "alice@corp.example" || s.Org != "corp.example" {
					t.Errorf("got %+v", s)
				}
				if strings.Contains(string(s.Raw), `"value"`) || !strings.Contains(string(s.Raw), `"user"`) {
					t.Errorf("Raw %s, want the object unwrapped from value", s.Raw)
				}
			}},
		{name: "api legacy never asks the current API", options: `{"api":"legacy"}`, token: "t-dom", legacyCalls: 2},
		{name: "api current does not fall back", options: `{"api":"current"}`, legacy: true, token: "t-dom", want: ErrUnavailable, current: 2},
		{name: "unknown token, current API", token: "nope", want: ErrUnauthenticated, current: 2},
		{name: "unknown token, legacy API", legacy: true, token: "nope", want: ErrUnauthenticated, current: 1, legacyCalls: 2},
		{name: "503", token: "t-dom", want: ErrUnavailable, setup: func(e *emulator.VSphere) { e.SetFault(emulator.Unavailable) }},
		{name: "500", token: "t-dom", want: ErrUnavailable, setup: func(e *emulator.VSphere) { e.SetFault(emulator.InternalError) }},
		{name: "garbage", token: "t-dom", want: ErrUnavailable, setup: func(e *emulator.VSphere) { e.SetFault(emulator.Garbage) }},
		{name: "wrong shape", token: "t-dom", want: ErrUnavailable, setup: func(e *emulator.VSphere) { e.SetFault(emulator.WrongShape) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			emu := emulator.NewVSphere()
			emu.LegacyOnly(tc.legacy)
			emu.AddSession("t-dom", `VSPHERE.LOCAL\Administrator`, time.Time{})
			emu.AddSession("t-upn", "alice@corp.example", time.Time{})
			if tc.setup != nil {
				tc.setup(emu)
			}
			srv := httptest.NewServer(emu)
			defer srv.Close()
			b := dialectBackend(t, "vsphere", srv.URL, tc.options)
			var s *Session
			for range 2 {
				var err error
				s, err = b.Resolve(context.Background(), vcred(tc.token))
				wantOutcome(t, err, tc.want)
			}
			if emu.CurrentCalls() != tc.current || emu.LegacyCalls() != tc.legacyCalls {
				t.Errorf("session gets: current %d legacy %d, want %d and %d", emu.CurrentCalls(), emu.LegacyCalls(), tc.current, tc.legacyCalls)
			}
			if tc.check != nil {
				tc.check(t, s)
			}
		})
	}
}

// TestVSphereLoginAndIdleTTL: a session created as vCenter creates it
// resolves, and is cached no longer than the idle timeout after its last
// access.
func TestVSphereLoginAndIdleTTL(t *testing.T) {
	emu := emulator.NewVSphere()
	srv := httptest.NewServer(emu)
	defer srv.Close()
	tok := vsphereLogin(t, srv.URL, "bob@vsphere.local")
	last := time.Now().Add(-10 * time.Minute)
	emu.AddSession("idle", "carol", last)

	for _, tc := range []struct {
		options string
		token   string
		left    time.Duration
	}{
		{"", tok, 30 * time.Minute},
		{"", "idle", 20 * time.Minute},
		{`{"idle_timeout":"1h"}`, "idle", 50 * time.Minute},
	} {
		emu.AddSession("idle", "carol", last) // each get refreshes the last access
		before := time.Now()
		s, err := dialectBackend(t, "vsphere", srv.URL, tc.options).Resolve(context.Background(),
			credential{Value: tc.token, Source: TokenSource{From: FromHeader, Name: "Vmware-Api-Session-Id"}})
		if err != nil {
			t.Fatalf("%s %s: %v", tc.options, tc.token, err)
		}
		after := time.Now()
		if s.ExpiresAt.Before(before.Add(tc.left).Add(-time.Second)) || s.ExpiresAt.After(after.Add(tc.left).Add(time.Second)) {
			t.Errorf("%s %s: ExpiresAt %v, want about now+%v", tc.options, tc.token, s.ExpiresAt, tc.left)
		}
	}
}

func TestDecodeVSphere(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name, body string
		want       error
		expires    time.Time
	}{
		{"current", `{"user":"u","created_time":"2026-01-01T11:00:00Z","last_accessed_time":"2026-01-01T11:50:00Z"}`, nil, now.Add(20 * time.Minute)},
		{"legacy", `{"value":{"user":"u","last_accessed_time":"2026-01-01T11:45:00Z"}}`, nil, now.Add(15 * time.Minute)},
		{"no last access", `{"user":"u"}`, nil, now.Add(30 * time.Minute)},
		{"clock skew ahead", `{"user":"u","last_accessed_time":"2026-01-01T12:05:00Z"}`, nil, now.Add(30 * time.Minute)},
		{"clock skew behind", `{"user":"u","last_accessed_time":"2026-01-01T10:00:00Z"}`, nil, now.Add(30 * time.Minute)},
		{"no user", `{"value":{"created_time":"x"}}`, ErrUnavailable, time.Time{}},
		{"user not a string", `{"user":7}`, ErrUnavailable, time.Time{}},
		{"vcsim 401 body is empty", ``, ErrUnavailable, time.Time{}},
		{"string", `"token"`, ErrUnavailable, time.Time{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := decodeVSphere([]byte(tc.body), now, 0)
			wantOutcome(t, err, tc.want)
			if err == nil && !s.ExpiresAt.Equal(tc.expires) {
				t.Errorf("ExpiresAt %v, want %v", s.ExpiresAt, tc.expires)
			}
		})
	}
}

func TestVSphereOptions(t *testing.T) {
	cases := []struct {
		name string
		args []string
		ok   bool
	}{
		{"api", []string{"auto"}, true},
		{"api", []string{"legacy"}, true},
		{"api", []string{"current"}, true},
		{"api", []string{"newest"}, false},
		{"api", nil, false},
		{"idle_timeout", []string{"45m"}, true},
		{"idle_timeout", []string{"-1m"}, false},
		{"idle_timeout", []string{"soon"}, false},
		{"timeout", []string{"1s"}, false},
	}
	for _, tc := range cases {
		err := (&VSphereOptions{}).SetOption(tc.name, tc.args)
		if (err == nil) != tc.ok {
			t.Errorf("SetOption(%s %v) = %v, want ok=%v", tc.name, tc.args, err, tc.ok)
		}
	}
	if _, _, err := newBackend(Config{Dialect: "vsphere", URL: "https://vc.example", Options: &VSphereOptions{API: "v9"}}); err == nil {
		t.Errorf("newBackend took api v9")
	}
}
