package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
)

// clusterJSON adapts a session_auth whose block holds the cluster lines
// and returns the cluster object as JSON.
func clusterJSON(t *testing.T, lines ...string) (string, error) {
	t.Helper()
	got, err := adaptSessionAuth(t, "session_auth http https://a.example {\n"+strings.Join(lines, "\n")+"\n}")
	if err != nil {
		return "", err
	}
	var h struct {
		Cluster json.RawMessage `json:"cluster"`
	}
	if err := json.Unmarshal([]byte(got), &h); err != nil {
		t.Fatal(err)
	}
	return string(h.Cluster), nil
}

// sameJSON compares two JSON texts as values (the adapter sorts keys).
func sameJSON(t *testing.T, got, want string) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("%s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("%s: %v", want, err)
	}
	return fmt.Sprint(g) == fmt.Sprint(w)
}

func TestCaddyfileClusterModes(t *testing.T) {
	secret := "secret " + strings.Repeat("s", 32)
	for _, tc := range []struct {
		name  string
		lines []string
		want  string
	}{
		{"one url stays url", []string{"cluster redis://r:6379/0 {", secret, "}"},
			`{"url":"redis://r:6379/0","secret":"ssssssssssssssssssssssssssssssss"}`},
		{"cluster seeds", []string{"cluster redis://a:7000 redis://b:7000 redis://c:7000 {", "mode cluster", secret, "}"},
			`{"urls":["redis://a:7000","redis://b:7000","redis://c:7000"],"mode":"cluster","secret":"ssssssssssssssssssssssssssssssss"}`},
		{"one cluster seed", []string{"cluster redis://a:7000 {", "mode cluster", secret, "}"},
			`{"url":"redis://a:7000","mode":"cluster","secret":"ssssssssssssssssssssssssssssssss"}`},
		{"sentinels, master_name before mode", []string{"cluster redis://s1:26379 redis://s2:26379 {", "master_name mymaster", "mode sentinel", "sentinel_auth sentinel-user {env.SENTINEL_PW}", secret, "}"},
			`{"urls":["redis://s1:26379","redis://s2:26379"],"mode":"sentinel","master_name":"mymaster","sentinel_username":"sentinel-user","sentinel_password":"{env.SENTINEL_PW}","secret":"ssssssssssssssssssssssssssssssss"}`},
		{"sentinel password only", []string{"cluster redis://s1:26379 {", "mode sentinel", "master_name mymaster", "sentinel_auth pw", secret, "}"},
			`{"url":"redis://s1:26379","mode":"sentinel","master_name":"mymaster","sentinel_password":"pw","secret":"ssssssssssssssssssssssssssssssss"}`},
		{"tls", []string{"cluster rediss://sessiongate:pw@r:6380/0 {", "tls_trust_pool file /etc/redis/ca.pem", "tls_client_auth /etc/redis/client.pem /etc/redis/client-key.pem", "tls_server_name redis.internal", secret, "}"},
			`{"url":"rediss://sessiongate:pw@r:6380/0","tls":{"ca":{"pem_files":["/etc/redis/ca.pem"],"provider":"file"},"client_certificate_file":"/etc/redis/client.pem","client_certificate_key_file":"/etc/redis/client-key.pem","server_name":"redis.internal"},"secret":"ssssssssssssssssssssssssssssssss"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := clusterJSON(t, tc.lines...)
			if err != nil {
				t.Fatal(err)
			}
			if !sameJSON(t, got, tc.want) {
				t.Fatalf("cluster JSON\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

// TestCaddyfileClusterEnvAtLoad: `caddy adapt` of the documented example
// succeeds with its variables unset, and the JSON keeps the placeholders
// for Provision to expand.
func TestCaddyfileClusterEnvAtLoad(t *testing.T) {
	for _, name := range []string{"REDIS_PASSWORD", "SESSIONGATE_CLUSTER_SECRET", "SG_TEST_REDIS_URL", "SG_TEST_REDIS_HOST"} {
		if _, set := os.LookupEnv(name); set {
			t.Setenv(name, "") // restored at the end
			os.Unsetenv(name)
		}
	}
	for _, tc := range []struct {
		lines []string
		want  string
	}{
		{[]string{"cluster redis://sessiongate:{env.REDIS_PASSWORD}@redis.internal:6379/0 {", "secret {env.SESSIONGATE_CLUSTER_SECRET}", "}"},
			`{"url":"redis://sessiongate:{env.REDIS_PASSWORD}@redis.internal:6379/0","secret":"{env.SESSIONGATE_CLUSTER_SECRET}"}`},
		{[]string{"cluster {env.SG_TEST_REDIS_URL} {", "secret {env.SESSIONGATE_CLUSTER_SECRET}", "}"},
			`{"url":"{env.SG_TEST_REDIS_URL}","secret":"{env.SESSIONGATE_CLUSTER_SECRET}"}`},
		{[]string{"cluster rediss://{env.SG_TEST_REDIS_HOST}:7000 rediss://b:7000 {", "mode cluster", "tls_trust_pool file /ca.pem", "secret {env.SESSIONGATE_CLUSTER_SECRET}", "}"},
			`{"urls":["rediss://{env.SG_TEST_REDIS_HOST}:7000","rediss://b:7000"],"mode":"cluster","tls":{"ca":{"pem_files":["/ca.pem"],"provider":"file"}},"secret":"{env.SESSIONGATE_CLUSTER_SECRET}"}`},
	} {
		got, err := clusterJSON(t, tc.lines...)
		if err != nil {
			t.Fatalf("adapt with the variables unset: %v", err)
		}
		if !sameJSON(t, got, tc.want) {
			t.Fatalf("cluster JSON\n got %s\nwant %s", got, tc.want)
		}
	}
}

func TestCaddyfileClusterModeErrors(t *testing.T) {
	secret := "secret " + strings.Repeat("s", 32)
	for _, tc := range []struct {
		name  string
		lines []string
		line  int
		want  string
	}{
		{"standalone with two urls", []string{"cluster redis://a:1 redis://b:1 {", secret, "}"}, 2, "mode standalone, which takes one"},
		{"sentinel without master_name", []string{"cluster redis://a:1 {", "mode sentinel", secret, "}"}, 2, "mode sentinel needs master_name"},
		{"master_name without sentinel", []string{"cluster redis://a:1 redis://b:1 {", "mode cluster", "master_name m", secret, "}"}, 2, "master_name is for mode sentinel only"},
		{"unknown mode", []string{"cluster redis://a:1 {", "mode ring", secret, "}"}, 3, `unknown mode "ring"`},
		{"schemes differ", []string{"cluster redis://a:1 rediss://b:1 {", "mode cluster", secret, "}"}, 2, "share scheme, credentials and TLS"},
		{"credentials differ", []string{"cluster redis://u:p@a:1 redis://u:q@b:1 {", "mode cluster", secret, "}"}, 2, "other credentials than url 1"},
		{"database in a Redis Cluster", []string{"cluster redis://a:1/2 {", "mode cluster", secret, "}"}, 3, "database 0 only"},
		{"tls without rediss", []string{"cluster redis://a:1 {", "tls_server_name r", secret, "}"}, 3, "tls settings need rediss://"},
		{"tls line twice", []string{"cluster rediss://a:1 {", "tls_server_name r", "tls_server_name s", secret, "}"}, 4, "cluster tls_server_name given twice"},
		{"tls unknown trust pool", []string{"cluster rediss://a:1 {", "tls_trust_pool nosuch", secret, "}"}, 3, "nosuch"},
		{"sentinel_auth outside sentinel", []string{"cluster redis://a:1 {", "sentinel_auth pw", secret, "}"}, 2, "sentinel_auth is for mode sentinel only"},
		{"sentinel_auth three args", []string{"cluster redis://a:1 {", "mode sentinel", "master_name m", "sentinel_auth a b c", secret, "}"}, 5, "want sentinel_auth [<username>] <password>"},
		{"url with a path", []string{"cluster redis://a:1/x {", secret, "}"}, 2, `database "x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := clusterJSON(t, tc.lines...)
			if err == nil {
				t.Fatalf("adapted without error; want %q", tc.want)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not say %q", msg, tc.want)
			}
			if at := fmt.Sprintf("Caddyfile:%d", tc.line+1); !strings.Contains(msg, at) {
				t.Errorf("error %q does not name line %s", msg, at)
			}
		})
	}
}
