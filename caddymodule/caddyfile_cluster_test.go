package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestCaddyfileClusterAdapts(t *testing.T) {
	got, err := adaptSessionAuth(t, `session_auth http https://a.example {
	cluster redis://user:pw@redis.internal:6379/0 {
		secret {env.SESSIONGATE_CLUSTER_SECRET}
		key_prefix sg1:
		timeout 50ms
		pool_size 200
	}
}`)
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Cluster map[string]any `json:"cluster"`
	}
	if err := json.Unmarshal([]byte(got), &h); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"url": "redis://user:pw@redis.internal:6379/0", "secret": "{env.SESSIONGATE_CLUSTER_SECRET}", "key_prefix": "sg1:", "timeout": float64(50e6), "pool_size": float64(200)}
	if fmt.Sprint(h.Cluster) != fmt.Sprint(want) {
		t.Fatalf("cluster = %v, want %v (handler %s)", h.Cluster, want, got)
	}
}

func TestCaddyfileClusterErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lines []string
		line  int
		want  string
	}{
		{"no secret", []string{"session_auth http https://a.example {", "cluster redis://r:6379 {", "timeout 50ms", "}", "}"}, 3, "cluster needs a secret"},
		{"no block", []string{"session_auth http https://a.example {", "cluster redis://r:6379", "}"}, 3, "cluster needs a secret"},
		{"short secret", []string{"session_auth http https://a.example {", "cluster redis://r:6379 {", "secret tooshort", "}", "}"}, 4, "cluster secret is 8 bytes, need at least 32"},
		{"short secret from the environment", []string{"session_auth http https://a.example {", "cluster redis://r:6379 {", "secret {env.SG_TEST_SHORT_SECRET}", "}", "}"}, 4, "cluster secret is 5 bytes, need at least 32 (from {env.SG_TEST_SHORT_SECRET})"},
		{"short app_session_secret from the environment", []string{"session_auth http https://a.example {", "app_session grafana_session", "app_session_secret {env.SG_TEST_SHORT_SECRET}", "}"}, 4, "app_session_secret is 5 bytes, need at least 32 (from {env.SG_TEST_SHORT_SECRET})"},
		{"short log_hash_key from the environment", []string{"session_auth http https://a.example {", "log_hash_key {env.SG_TEST_SHORT_SECRET}", "}"}, 3, "log_hash_key is 5 bytes, need at least 16 (from {env.SG_TEST_SHORT_SECRET})"},
		{"no url", []string{"session_auth http https://a.example {", "cluster", "}"}, 3, "want cluster <redis-url>"},
		{"unknown option", []string{"session_auth http https://a.example {", "cluster redis://r:6379 {", "password x", "}", "}"}, 4, `unknown cluster option "password"`},
		{"unknown option without a value", []string{"session_auth http https://a.example {", "cluster redis://r:6379 {", "master", "}", "}"}, 4, `unknown cluster option "master"`},
		{"unknown option with two values", []string{"session_auth http https://a.example {", "cluster redis://r:6379 {", "password user x", "}", "}"}, 4, `unknown cluster option "password"`},
		{"bad timeout", []string{"session_auth http https://a.example {", "cluster redis://r:6379 {", "timeout -1s", "}", "}"}, 4, "cluster timeout must not be negative (got -1s)"},
		{"zero timeout", []string{"session_auth http https://a.example {", "cluster redis://r:6379 {", "secret " + strings.Repeat("s", 32), "timeout 0s", "}", "}"}, 5, "cluster timeout 0 would mean its default, not none"},
		{"unparsable timeout", []string{"session_auth http https://a.example {", "cluster redis://r:6379 {", "timeout soon", "}", "}"}, 4, `cluster timeout "soon"`},
		{"pool_size zero", []string{"session_auth http https://a.example {", "cluster redis://r:6379 {", "pool_size 0", "}", "}"}, 4, `cluster pool_size "0": want a whole number of connections, at least 1`},
		{"pool_size not a number", []string{"session_auth http https://a.example {", "cluster redis://r:6379 {", "pool_size many", "}", "}"}, 4, `cluster pool_size "many"`},
		{"pool_size too large", []string{"session_auth http https://a.example {", "cluster redis://r:6379 {", "pool_size 10001", "}", "}"}, 4, "cluster pool_size must be 1 to 10000 (got 10001)"},
		{"pool_size given twice", []string{"session_auth http https://a.example {", "cluster redis://r:6379 {", "pool_size 10", "pool_size 20", "}", "}"}, 5, "cluster pool_size given twice"},
		{"secret given twice", []string{"session_auth http https://a.example {", "cluster redis://r:6379 {", "secret " + strings.Repeat("s", 32), "secret " + strings.Repeat("t", 32), "}", "}"}, 5, "cluster secret given twice"},
		{"not a redis url", []string{"session_auth http https://a.example {", "cluster http://r:6379 {", "secret " + strings.Repeat("s", 32), "}", "}"}, 3, "cluster url"},
		{"given twice", []string{"session_auth http https://a.example {", "cluster redis://r:6379 {", "secret " + strings.Repeat("s", 32), "}", "cluster redis://r:6379 {", "secret " + strings.Repeat("s", 32), "}", "}"}, 6, "cluster given twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SG_TEST_SHORT_SECRET", "short")
			_, err := adaptSessionAuth(t, strings.Join(tc.lines, "\n"))
			if err == nil {
				t.Fatalf("adapted without error; want %q", tc.want)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not say %q", msg, tc.want)
			}
			// Caddy's own form, at the end: ", at Caddyfile:3".
			if at := fmt.Sprintf(", at Caddyfile:%d", tc.line); !strings.HasSuffix(msg, at) {
				t.Errorf("error %q does not end naming line %s", msg, at)
			}
		})
	}
}
