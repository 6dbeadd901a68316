package sessionctx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sessiongate/caddy-sessiongate/internal/emulator"
)

// eternusLogin creates a session the way ETERNUS does: POST
// /api/v1/session with a user name and password.
func eternusLogin(t *testing.T, url, user, password string) (string, string, int) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"user_name": user, "password": password})
	resp, err := http.Post(url+emulator.EternusPath, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out struct {
		SessionID int64  `json:"session_id"`
		Token     string `json:"token"`
		Lifetime  int    `json:"lifetime"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &out) != nil || out.Token == "" {
		t.Fatalf("login: %d %s", resp.StatusCode, raw)
	}
	return strconv.FormatInt(out.SessionID, 10), out.Token, out.Lifetime
}

func TestEternusExtract(t *testing.T) {
	d, err := lookupDialect("eternus")
	if err != nil {
		t.Fatal(err)
	}
	bearerOnly := []TokenSource{{From: FromBearer}}
	cases := []struct {
		name    string
		options string
		header  http.Header
		sources []TokenSource
		value   string
		want    error
	}{
		{name: "id in the default header", header: http.Header{"Authorization": {"Bearer tok"}, "X-Eternus-Session-Id": {"1000001"}}, value: "1000001:tok"},
		{name: "id in the token", header: http.Header{"Authorization": {"Bearer 1000002:tok"}, "X-Eternus-Session-Id": {"1000001"}}, value: "1000002:tok"},
		{name: "id in a configured cookie", options: `{"session_id_from":{"from":"cookie","name":"eternus_sid"}}`,
			header: http.Header{"Authorization": {"Bearer tok"}, "Cookie": {"a=b; eternus_sid=1000003"}}, value: "1000003:tok"},
		{name: "configured source replaces the default", options: `{"session_id_from":{"from":"cookie","name":"eternus_sid"}}`,
			header: http.Header{"Authorization": {"Bearer tok"}, "X-Eternus-Session-Id": {"1000001"}}, want: ErrUnauthenticated},
		{name: "token from a configured header", sources: []TokenSource{{From: FromHeader, Name: "X-Eternus-Token"}},
			header: http.Header{"X-Eternus-Token": {"1000004:t2"}}, value: "1000004:t2"},
		{name: "no session id", header: http.Header{"Authorization": {"Bearer tok"}}, want: ErrUnauthenticated},
		{name: "session id not a number", header: http.Header{"Authorization": {"Bearer tok"}, "X-Eternus-Session-Id": {"../admin"}}, want: ErrUnauthenticated},
		{name: "no token", header: http.Header{"X-Eternus-Session-Id": {"1000001"}}, want: ErrUnauthenticated},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header = tc.header
			sources := tc.sources
			if sources == nil {
				sources = bearerOnly
			}
			opts, err := d.checkOptions(nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.options != "" {
				opts = optsJSON(t, "eternus", tc.options)
			}
			cred, err := d.extractor(opts)(r, sources)
			wantOutcome(t, err, tc.want)
			if err == nil && cred.Value != tc.value {
				t.Errorf("Value %q, want %q", cred.Value, tc.value)
			}
		})
	}
	// Without options, the default session-id header is read.
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header = http.Header{"Authorization": {"Bearer tok"}, "X-Eternus-Session-Id": {"42"}}
	if c, err := d.extractor(nil)(r, bearerOnly); err != nil || c.Value != "42:tok" {
		t.Errorf("extract: %q, %v", c.Value, err)
	}
	var opts EternusOptions
	if err := opts.SetOption("session_id_from", []string{"bearer", "x"}); err == nil {
		t.Errorf("session_id_from bearer accepted")
	}
	if err := opts.SetOption("session_id_from", []string{"query", "sid"}); err != nil || opts.SessionIDFrom != (TokenSource{From: FromQuery, Name: "sid"}) {
		t.Errorf("session_id_from query sid: %v %+v", err, opts.SessionIDFrom)
	}
	if err := opts.SetOption("fields", []string{"a"}); err == nil {
		t.Errorf("unknown option accepted")
	}
}

func TestEternusResolve(t *testing.T) {
	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	emu := emulator.NewEternus()
	emu.SetClock(now)
	emu.AddUser("root", "pw", []string{"Status_Display", "User_Management"}, 12)
	emu.AddUser("monitor", "pw2", []string{"Status_Display"}, 90)
	srv := httptest.NewServer(emu)
	defer srv.Close()
	b := dialectBackend(t, "eternus", srv.URL, "")
	resolve := func(value string) (*Session, error) {
		return b.Resolve(context.Background(), credential{Value: value, Source: TokenSource{From: FromBearer}})
	}

	sid, tok, lifetime := eternusLogin(t, srv.URL, "root", "pw")
	if lifetime != 1800 {
		t.Errorf("login lifetime %d, want 1800", lifetime)
	}
	before := time.Now()
	s, err := resolve(sid + ":" + tok)
	if err != nil {
		t.Fatal(err)
	}
	if s.ID != sid || s.User != "root" || s.UserID != "root" || !s.Admin || !s.HasPerms("Status_Display", "User_Management") || s.Dialect != "eternus" {
		t.Errorf("got %+v", s)
	}
	if s.Attrs["days_to_password_expiration"] != int64(12) {
		t.Errorf("attrs %v", s.Attrs)
	}
	if s.ExpiresAt.Before(before.Add(1799*time.Second)) || s.ExpiresAt.After(time.Now().Add(1801*time.Second)) {
		t.Errorf("ExpiresAt %v, want now+1800s", s.ExpiresAt)
	}
	var obj map[string]any
	if json.Unmarshal(s.Raw, &obj) != nil || obj["user_name"] != "root" || obj["lifetime"] == nil {
		t.Errorf("Raw %s, want the session object", s.Raw)
	}

	sid2, tok2, _ := eternusLogin(t, srv.URL, "monitor", "pw2")
	if s, err := resolve(sid2 + ":" + tok2); err != nil || s.Admin || s.HasPerms("User_Management") {
		t.Errorf("monitor: %+v, %v", s, err)
	}

	// The lifetime does not slide: 20 minutes later 600s are left.
	mu.Lock()
	clock = clock.Add(20 * time.Minute)
	mu.Unlock()
	if s, err := resolve(sid + ":" + tok); err != nil || s.ExpiresAt.After(time.Now().Add(601*time.Second)) {
		t.Errorf("after 20m: %+v, %v", s, err)
	}

	for _, tc := range []struct{ name, value string }{
		{"wrong token (401)", sid + ":nope"},
		{"another session's id (403)", sid2 + ":" + tok},
		{"no such session (404)", "999:" + tok},
		{"not <session_id>:<token>", tok},
	} {
		if _, err := resolve(tc.value); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s: %v, want unauthenticated", tc.name, err)
		}
	}

	for _, f := range []emulator.Fault{emulator.Unavailable, emulator.InternalError, emulator.Garbage, emulator.WrongShape} {
		emu.SetFault(f)
		if _, err := resolve(sid + ":" + tok); !errors.Is(err, ErrUnavailable) {
			t.Errorf("fault %d: %v, want unavailable", f, err)
		}
	}
	emu.SetFault(emulator.Healthy)

	// Past its lifetime the session is gone.
	mu.Lock()
	clock = clock.Add(11 * time.Minute)
	mu.Unlock()
	if _, err := resolve(sid + ":" + tok); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("expired: %v, want unauthenticated", err)
	}
}

// TestEternusEmulatorFields: the fields filter keeps session_id and the
// named properties only.
func TestEternusEmulatorFields(t *testing.T) {
	emu := emulator.NewEternus()
	id, tok := emu.AddSession("root", []string{"User_Management"}, time.Hour)
	srv := httptest.NewServer(emu)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+emulator.EternusPath+"/"+strconv.FormatInt(id, 10)+"?fields=user_name,bogus", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var obj map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&obj)
	if len(obj) != 2 || obj["user_name"] != "root" || obj["session_id"] == nil {
		t.Errorf("filtered answer %v", obj)
	}
}

func TestDecodeEternus(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name, body string
		want       error
		expires    time.Time
	}{
		{"full", `{"session_id":1000001,"user_name":"u","lifetime":300,"auth_list":["User_Management"],"days_to_password_expiration":3}`, nil, now.Add(5 * time.Minute)},
		{"no lifetime", `{"session_id":1,"user_name":"u"}`, nil, time.Time{}},
		{"negative lifetime is over", `{"user_name":"u","lifetime":-5}`, nil, now},
		{"no user", `{"session_id":1,"lifetime":300}`, ErrUnavailable, time.Time{}},
		{"error body", `{"error_code":1001,"message":"x","internal_code":"y"}`, ErrUnavailable, time.Time{}},
		{"not JSON", `nope`, ErrUnavailable, time.Time{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := decodeEternus([]byte(tc.body), now)
			wantOutcome(t, err, tc.want)
			if err == nil && !s.ExpiresAt.Equal(tc.expires) {
				t.Errorf("ExpiresAt %v, want %v", s.ExpiresAt, tc.expires)
			}
		})
	}
}

// TestEternusStripTokens: stripping an ETERNUS credential strips both its
// parts, the token and the session id, wherever the options read it; zero
// options read the default header.
func TestEternusStripTokens(t *testing.T) {
	for name, opts := range map[string]*EternusOptions{
		"zero options": {},
		"query id":     {SessionIDFrom: TokenSource{From: FromQuery, Name: "sid"}},
	} {
		c, err := New(Config{Dialect: "eternus", URL: "http://eternus.invalid", Options: opts})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		r := httptest.NewRequest(http.MethodGet, "/volumes?sid=1000042&x=1", nil)
		r.Header.Set("Authorization", "Bearer t0k3n")
		r.Header.Set("X-Eternus-Session-Id", "1000042")
		c.StripTokens(r)
		idGone := r.Header.Get("X-Eternus-Session-Id") == ""
		if opts.SessionIDFrom.From == FromQuery {
			idGone = r.URL.Query().Get("sid") == "" && r.URL.Query().Get("x") == "1"
		}
		if r.Header.Get("Authorization") != "" || !idGone {
			t.Errorf("%s: after StripTokens: %v %q", name, r.Header, r.URL.RawQuery)
		}
	}
}

// A purge that names an ETERNUS token while the token's first lookup is
// in flight keeps that lookup's answer out of the cache, as a forget of
// the credential itself would.
func TestEternusPurgeTokenDuringFlight(t *testing.T) {
	emu := emulator.NewEternus()
	emu.AddUser("root", "pw", []string{"Status_Display"}, 90)
	entered, release := make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			entered <- struct{}{}
			<-release
		}
		emu.ServeHTTP(w, r)
	}))
	defer srv.Close()
	r := newResolver(dialectBackend(t, "eternus", srv.URL, ""), CacheConfig{})
	sid, tok, _ := eternusLogin(t, srv.URL, "root", "pw")
	done := make(chan error)
	go func() {
		_, err := r.Resolve(context.Background(), credential{Value: sid + ":" + tok, Source: TokenSource{From: FromBearer}})
		done <- err
	}()
	<-entered
	r.ForgetToken(tok)
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.Entries != 0 {
		t.Fatalf("%d entries: the lookup in flight during a purge of its token was cached", st.Entries)
	}
}
