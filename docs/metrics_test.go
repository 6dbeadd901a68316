package docs

import (
	"regexp"
	"slices"
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
	if err := caddy.Load([]byte(cfg), false); err != nil {
		t.Fatalf("loading the config: %v", err)
	}
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Errorf("stopping Caddy: %v", err)
		}
	})
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
