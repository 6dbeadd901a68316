package caddymodule

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func parseProtect(t *testing.T, lines string) (*SessionAuth, error) {
	t.Helper()
	h := new(SessionAuth)
	d := caddyfile.NewTestDispenser("session_auth http http://127.0.0.1:1/whoami {\n" + lines + "\n}")
	return h, h.UnmarshalCaddyfile(d)
}

// TestProtectCaddyfile: Caddyfile in, JSON out, for the three settings,
// and the defaults they stand for when left out.
func TestProtectCaddyfile(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"lookup_limit 16", `"lookup_limit":16`},
		{"lookup_limit off", `"lookup_limit":-1`},
		{"client_miss_limit 100 1m", `"client_miss_limit":{"n":100,"window":60000000000}`},
		{"client_miss_limit 5", `"client_miss_limit":{"n":5}`},
		{"client_miss_limit off", `"client_miss_limit":{"n":-1}`},
		{"refresh_ahead 0.5", `"refresh_ahead":0.5`},
		{"refresh_ahead off", `"refresh_ahead":0`},
		{"refresh_ahead 0", `"refresh_ahead":0`},
	} {
		h, err := parseProtect(t, tc.in)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		raw, _ := json.Marshal(h)
		if !strings.Contains(string(raw), tc.want) {
			t.Errorf("%s: adapted to %s, want %s in it", tc.in, raw, tc.want)
		}
	}
	h, _ := parseProtect(t, "")
	raw, _ := json.Marshal(h)
	for _, k := range []string{"lookup_limit", "client_miss_limit", "refresh_ahead"} {
		if strings.Contains(string(raw), k) {
			t.Errorf("%s written out though not given: %s", k, raw)
		}
	}
	if a, b, c := h.lookups(); a != 0 || b != 0 || c != 0 || h.refreshAhead() != 0 || h.defaultMaxConns() != 64 {
		t.Errorf("defaults: %v %v %v %v %d", a, b, c, h.refreshAhead(), h.defaultMaxConns())
	}
	if r := h.clientRetry(); r != "1" {
		t.Errorf("Retry-After of a 429 by default: %s", r)
	}
	if h, _ := parseProtect(t, "client_miss_limit 2 1m"); h.clientRetry() != "30" {
		t.Errorf("Retry-After of a 429 with 2 a minute: %s, want 30", h.clientRetry())
	}
	off, _ := parseProtect(t, "refresh_ahead off\nlookup_limit off")
	if off.refreshAhead() >= 0 || off.defaultMaxConns() != 0 {
		t.Errorf("off: refresh %v, max conns %d", off.refreshAhead(), off.defaultMaxConns())
	}
}

func TestProtectCaddyfileErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"lookup_limit", "want lookup_limit"},
		{"lookup_limit 0", `lookup_limit "0"`},
		{"lookup_limit -3", `lookup_limit "-3"`},
		{"lookup_limit many", `lookup_limit "many"`},
		{"lookup_limit 1 2", "want lookup_limit"},
		{"client_miss_limit", "want client_miss_limit"},
		{"client_miss_limit 0 1s", `client_miss_limit "0"`},
		{"client_miss_limit 10 soon", `client_miss_limit window "soon"`},
		{"client_miss_limit 10 0s", `client_miss_limit window "0s"`},
		{"client_miss_limit 10 1s 2", "want client_miss_limit"},
		{"refresh_ahead", "want refresh_ahead"},
		{"refresh_ahead 1", `refresh_ahead "1"`},
		{"refresh_ahead 1.5", `refresh_ahead "1.5"`},
		{"refresh_ahead -0.1", `refresh_ahead "-0.1"`},
		{"refresh_ahead NaN", `refresh_ahead "NaN"`},
		{"refresh_ahead 80%", `refresh_ahead "80%"`},
		{"lookup_limit 2\nlookup_limit 3", "given twice"},
	} {
		_, err := parseProtect(t, tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one with %q", tc.in, err, tc.want)
		}
	}
}

// TestProtectJSONValidate: the JSON path refuses what the Caddyfile does.
func TestProtectJSONValidate(t *testing.T) {
	be := BackendConfig{Dialect: "http", URL: "http://127.0.0.1:1/whoami"}
	f := func(v float64) *float64 { return &v }
	for _, tc := range []struct {
		h    SessionAuth
		want string
	}{
		{SessionAuth{Backend: be, LookupLimit: -2}, `lookup_limit "-2"`},
		{SessionAuth{Backend: be, ClientMissLimit: &ClientMissLimit{N: -5}}, `client_miss_limit n "-5"`},
		{SessionAuth{Backend: be, ClientMissLimit: &ClientMissLimit{N: 5, Window: caddy.Duration(-time.Second)}}, "client_miss_limit window"},
		{SessionAuth{Backend: be, RefreshAhead: f(1)}, "refresh_ahead 1"},
		{SessionAuth{Backend: be, RefreshAhead: f(-0.5)}, "refresh_ahead -0.5"},
		{SessionAuth{Backend: be, RefreshAhead: f(math.NaN())}, "refresh_ahead NaN"},
	} {
		if err := tc.h.validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error with %q", tc.h, err, tc.want)
		}
	}
	var h SessionAuth
	if err := json.Unmarshal([]byte(`{"backend":{"dialect":"http","url":"http://127.0.0.1:1/x"},"client_miss_limit":{"n":3,"window":"2s"}}`), &h); err != nil {
		t.Fatal(err)
	}
	if _, n, w := h.lookups(); n != 3 || w != 2*time.Second {
		t.Fatalf("a window written as a duration string: %d %v", n, w)
	}
}
