package caddymodule

import (
	"context"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

// TestClusterProvisionErrors: what only the loaded config can tell (the
// environment, the files) is refused by Provision, naming the variable,
// the setting or the file.
func TestClusterProvisionErrors(t *testing.T) {
	t.Setenv("SG_TEST_SHORT_CLUSTER_SECRET", "short-secret")
	t.Setenv("SG_TEST_REDIS_HOST", "127.0.0.1:1")
	secret := strings.Repeat("s", 32)
	be := BackendConfig{Dialect: "http", URL: "http://127.0.0.1:1/whoami"}
	for _, tc := range []struct {
		name string
		c    ClusterConfig
		want []string
	}{
		{"short secret from the environment", ClusterConfig{URL: "redis://127.0.0.1:1", Secret: "{env.SG_TEST_SHORT_CLUSTER_SECRET}"},
			[]string{"cluster secret", "{env.SG_TEST_SHORT_CLUSTER_SECRET}", "12 bytes", "at least 32"}},
		{"unset secret", ClusterConfig{URL: "redis://127.0.0.1:1", Secret: "{env.SG_TEST_UNSET_CLUSTER_SECRET}"},
			[]string{"cluster secret", "SG_TEST_UNSET_CLUSTER_SECRET", "not set"}},
		{"unset url variable", ClusterConfig{URL: "redis://:{env.SG_TEST_UNSET_REDIS_PW}@127.0.0.1:1", Secret: secret},
			[]string{"cluster url", "SG_TEST_UNSET_REDIS_PW", "not set"}},
		{"unset variable in the second url", ClusterConfig{URLs: []string{"redis://{env.SG_TEST_REDIS_HOST}", "redis://{env.SG_TEST_UNSET_HOST}"}, Mode: "cluster", Secret: secret},
			[]string{"cluster url 2", "SG_TEST_UNSET_HOST", "not set"}},
		{"unset sentinel password", ClusterConfig{URL: "redis://127.0.0.1:1", Mode: "sentinel", MasterName: "m", SentinelPassword: "{env.SG_TEST_UNSET_SENTINEL_PW}", Secret: secret},
			[]string{"sentinel_auth", "SG_TEST_UNSET_SENTINEL_PW", "not set"}},
		{"url and urls", ClusterConfig{URL: "redis://127.0.0.1:1", URLs: []string{"redis://127.0.0.1:2"}, Secret: secret},
			[]string{"url or urls, not both"}},
		{"two urls standalone", ClusterConfig{URLs: []string{"redis://127.0.0.1:1", "redis://127.0.0.1:2"}, Secret: secret},
			[]string{"mode standalone, which takes one"}},
		{"expanded urls differ", ClusterConfig{URLs: []string{"redis://{env.SG_TEST_REDIS_HOST}", "rediss://127.0.0.1:2"}, Mode: "cluster", Secret: secret},
			[]string{"share scheme, credentials and TLS"}},
		{"tls on redis://", ClusterConfig{URL: "redis://127.0.0.1:1", TLS: &reverseproxy.TLSConfig{ServerName: "r"}, Secret: secret},
			[]string{"tls settings need rediss://"}},
		{"missing client certificate", ClusterConfig{URL: "rediss://127.0.0.1:1", TLS: &reverseproxy.TLSConfig{ClientCertificateFile: "/nonexistent/c.pem", ClientCertificateKeyFile: "/nonexistent/k.pem"}, Secret: secret},
			[]string{"cluster tls", "/nonexistent/c.pem"}},
		{"missing CA file", ClusterConfig{URL: "rediss://127.0.0.1:1", TLS: &reverseproxy.TLSConfig{CARaw: []byte(`{"provider":"file","pem_files":["/nonexistent/ca.pem"]}`)}, Secret: secret},
			[]string{"cluster tls", "/nonexistent/ca.pem"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c
			h := SessionAuth{Backend: be, Cluster: &c}
			before := len(liveResolvers())
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			err := h.Provision(ctx)
			_ = h.Cleanup()
			if err == nil {
				t.Fatalf("Provision accepted it; want an error saying %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if after := len(liveResolvers()); after != before {
				t.Errorf("a refused config changed the pool from %d to %d resolvers", before, after)
			}
		})
	}
}
