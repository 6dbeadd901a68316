package docs

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// probe is a collector of one descriptor and no metric.
type probe struct{ d *prometheus.Desc }

func (p probe) Describe(ch chan<- *prometheus.Desc) { ch <- p.d }
func (p probe) Collect(chan<- prometheus.Metric)    {}

// metricNamed is a sessiongate metric a document names.
// A name ending in `*` (`caddy_sessiongate_cluster_*`) is a family, not a
// metric.
var metricNamed = regexp.MustCompile(`caddy_sessiongate_[a-z0-9_]*[a-z0-9](_?\*)?`)

// TestMetricNamesAgree loads a config with a session_auth and a cluster
// (its Redis need not answer: the cluster metrics are there from the
// start) into Caddy and compares the sessiongate metrics Caddy's registry
// holds with the ones the documents name: a name the documents give that
// Caddy does not register, or one it exports that no document names,
// fails.
func TestMetricNamesAgree(t *testing.T) {
	cfg := `{
		"admin": {"disabled": true, "config": {"persist": false}},
		"apps": {"http": {"servers": {"docs": {
			"listen": ["127.0.0.1:0"],
			"routes": [{"handle": [
				{"handler": "session_auth",
				 "backend": {"dialect": "http", "url": "http://127.0.0.1:1/whoami"},
				 "cluster": {"url": "redis://127.0.0.1:1", "secret": "` + strings.Repeat("s", 32) + `", "timeout": "10ms"}},
				{"handler": "static_response", "body": "ok"}
			]}]
		}}}}
	}`
	loadCaddy(t, cfg)
	ctx := caddy.ActiveContext()
	reg := ctx.GetMetricsRegistry()
	// A vector with no series yet gathers nothing, so what is registered
	// is asked of the registry: a name it holds refuses a second
	// descriptor with another help string.
	registered := func(name string) bool {
		p := probe{prometheus.NewDesc(name, "probe of docs/metrics_test.go", nil, nil)}
		if err := reg.Register(p); err != nil {
			return true
		}
		reg.Unregister(p)
		return false
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var exported []string
	for _, f := range families {
		if n := f.GetName(); strings.HasPrefix(n, "caddy_sessiongate_") {
			exported = append(exported, n)
		}
	}
	if len(exported) == 0 {
		t.Fatal("Caddy exports no caddy_sessiongate_ metric")
	}

	documented := map[string]string{} // name: the file naming it first
	for _, file := range markdownFiles(t) {
		if file == "CHANGELOG.md" {
			continue // history names metrics of its time
		}
		for _, m := range metricNamed.FindAllStringSubmatch(read(t, file), -1) {
			n := m[0]
			if m[1] != "" {
				continue
			}
			// A histogram's series are named after it.
			n = strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_sum"), "_count")
			if _, ok := documented[n]; !ok {
				documented[n] = file
			}
		}
	}
	for n, file := range documented {
		if !slices.Contains(exported, n) && !registered(n) {
			t.Errorf("%s names the metric %s, which Caddy does not export", file, n)
		}
	}
	for _, n := range exported {
		if _, ok := documented[n]; !ok {
			t.Errorf("Caddy exports the metric %s, which no document names", n)
		}
	}
}

// jsonKeys adds to keys every object key of v, at any depth.
func jsonKeys(v any, keys map[string]bool) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			keys[k] = true
			jsonKeys(e, keys)
		}
	case []any:
		for _, e := range v {
			jsonKeys(e, keys)
		}
	}
}

// TestStatsFieldsAgree: every field of the admin API's stats that the
// examples of docs/operations.md and docs/cluster.md show is one the
// admin API answers, for a config with a session_auth, a cluster and an
// assertion (whose keys are made here).
func TestStatsFieldsAgree(t *testing.T) {
	key := filepath.Join(t.TempDir(), "assertion.pem")
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := `{
		"admin": {"disabled": true, "config": {"persist": false}},
		"apps": {"http": {"servers": {"docs": {
			"listen": ["127.0.0.1:0"],
			"routes": [{"handle": [
				{"handler": "session_auth",
				 "backend": {"dialect": "http", "url": "http://127.0.0.1:1/whoami"},
				 "cluster": {"url": "redis://127.0.0.1:1", "secret": "` + strings.Repeat("s", 32) + `", "timeout": "10ms"},
				 "assertion": {"keys": [` + strconv.Quote(key) + `]}},
				{"handler": "static_response", "body": "ok"}
			]}]
		}}}}
	}`
	// One request, so the service has been called (the latency is
	// absent before the first call); the service does not answer.
	resp := getWithToken(t, loadCaddy(t, cfg))
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a request while the session service is down: %s, want 503", resp.Status)
	}
	mod, err := caddy.GetModule("admin.api.sessiongate")
	if err != nil {
		t.Fatal(err)
	}
	var stats http.Handler
	for _, r := range mod.New().(caddy.AdminRouter).Routes() {
		if r.Pattern == "/sessiongate/stats" {
			stats = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				if err := r.Handler.ServeHTTP(w, req); err != nil {
					t.Errorf("stats: %v", err)
				}
			})
		}
	}
	if stats == nil {
		t.Fatal("the admin API has no /sessiongate/stats")
	}
	rec := httptest.NewRecorder()
	stats.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/sessiongate/stats", nil))
	var got any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("stats answer %q: %v", rec.Body.String(), err)
	}
	answered := map[string]bool{}
	jsonKeys(got, answered)

	shown := 0
	for _, file := range []string{"docs/operations.md", "docs/cluster.md"} {
		for _, b := range blocks(t, file) {
			text := b.text
			switch {
			case b.lang == "console" && strings.HasPrefix(text, "$ curl -s localhost:2019/sessiongate/stats\n"):
				_, text, _ = strings.Cut(text, "\n")
			case b.lang == "json" && strings.HasPrefix(text, `"cluster": {`) && strings.Contains(text, `"connected"`): // not the config
				text = "{" + text + "}"
			default:
				continue
			}
			var doc any
			if err := json.Unmarshal([]byte(text), &doc); err != nil {
				t.Errorf("%s:%d: the stats example is not JSON: %v", file, b.line, err)
				continue
			}
			keys := map[string]bool{}
			jsonKeys(doc, keys)
			for k := range keys {
				shown++
				if !answered[k] {
					t.Errorf("%s:%d: the stats example shows %q, which the admin API does not answer (%s)", file, b.line, k, rec.Body.String())
				}
			}
		}
	}
	if shown == 0 {
		t.Fatal("no stats example found: the documents moved")
	}
}
