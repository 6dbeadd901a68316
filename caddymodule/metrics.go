package caddymodule

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// Metric labels are drawn from small fixed sets (outcome, dialect, error
// kind, eviction reason): nothing that grows with users or tokens.
const (
	metricsNamespace = "caddy"
	metricsSubsystem = "sessiongate"
)

// Request outcomes, as counted by caddy_sessiongate_requests_total.
var outcomes = []string{"authenticated", "anonymous", "unauthenticated", "forbidden", "service_error", "stale", "limited"}

// metrics are package-level, like Caddy's own: each config load has a
// fresh registry, and each Provision registers the same collectors with
// it, so counters run on across reloads.
var metrics = struct {
	requests        *prometheus.CounterVec
	cacheHits       *prometheus.CounterVec
	cacheMisses     *prometheus.CounterVec
	cacheEvictions  *prometheus.CounterVec
	serviceDuration *prometheus.HistogramVec
	serviceErrors   *prometheus.CounterVec
	entries         prometheus.Collector
	cluster         prometheus.Collector
	lookups         prometheus.Collector
}{
	requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem,
		Name: "requests_total",
		Help: "Requests seen by sessiongate handlers, by outcome.",
	}, []string{"outcome"}),
	cacheHits: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem,
		Name: "cache_hits_total",
		Help: "Tokens answered from the cache without a session-service call.",
	}, []string{"dialect"}),
	cacheMisses: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem,
		Name: "cache_misses_total",
		Help: "Tokens the cache could not answer on its own.",
	}, []string{"dialect"}),
	cacheEvictions: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem,
		Name: "cache_evictions_total",
		Help: "Cache entries removed before they expired: capacity (cache_max), purge (admin API) or logout.",
	}, []string{"reason"}),
	serviceDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem,
		Name:    "service_request_duration_seconds",
		Help:    "Time taken by session-service calls, by dialect.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"dialect"}),
	serviceErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem,
		Name: "service_errors_total",
		Help: "Session-service calls that gave no usable answer, by dialect and kind (refused, timeout, tls, status, garbage, too_large, other).",
	}, []string{"dialect", "kind"}),
	entries: entriesCollector{prometheus.NewDesc(
		prometheus.BuildFQName(metricsNamespace, metricsSubsystem, "cache_entries"),
		"Entries in the sessiongate caches, by dialect and kind (session or rejection).",
		[]string{"dialect", "kind"}, nil)},
	cluster: newClusterCollector(),
	lookups: newLookupsCollector(),
}

func init() {
	// Every outcome is exported from the start, at zero, so dashboards
	// and alerts need not wait for the first rejection or outage.
	for _, o := range outcomes {
		metrics.requests.WithLabelValues(o)
	}
}

// registerMetrics adds the collectors to this config's registry. Every
// session_auth handler calls it; the second one finds them there.
func registerMetrics(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{
		metrics.requests, metrics.cacheHits, metrics.cacheMisses, metrics.cacheEvictions,
		metrics.serviceDuration, metrics.serviceErrors, metrics.entries, metrics.cluster, metrics.lookups,
	} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}

// observeOutcome counts a request's outcome. session_require calls it
// with "forbidden" when a rule fails.
func observeOutcome(outcome string) {
	metrics.requests.WithLabelValues(outcome).Inc()
}

func observeEvictions(reason string, n int) {
	if n > 0 {
		metrics.cacheEvictions.WithLabelValues(reason).Add(float64(n))
	}
}

// observeServiceCall is the resolvers' Observe hook. A rejected token is
// a normal answer, not a service error.
func observeServiceCall(dialect string, d time.Duration, err error) {
	metrics.serviceDuration.WithLabelValues(dialect).Observe(d.Seconds())
	if err != nil && !errors.Is(err, sessionctx.ErrUnauthenticated) {
		metrics.serviceErrors.WithLabelValues(dialect, errorKind(err)).Inc()
	}
}

// errorKind is the metric label of a session-service failure: one of
// sessionctx's FailureKind constants, a small fixed set.
func errorKind(err error) string { return string(sessionctx.FailureKindOf(err)) }

// entriesCollector reports the pool's cache sizes when scraped, so the
// gauge is exact without hooks on every insert and delete.
type entriesCollector struct{ desc *prometheus.Desc }

func (c entriesCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c entriesCollector) Collect(ch chan<- prometheus.Metric) {
	type sizes struct{ sessions, rejections int }
	by := map[string]*sizes{}
	for _, p := range liveResolvers() {
		if p.metricsUsers.Load() <= 0 {
			continue
		}
		st := p.Stats()
		s := by[p.dialect]
		if s == nil {
			s = &sizes{}
			by[p.dialect] = s
		}
		s.sessions += st.Entries
		s.rejections += st.Rejections
	}
	for dialect, s := range by {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(s.sessions), dialect, "session")
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(s.rejections), dialect, "rejection")
	}
}

// observe counts one request of a handler: its outcome, and whether the
// cache answered when a token was looked up, with counters found at
// Provision (handlerCounters).
func (h *SessionAuth) observe(key sessionctx.Key, outcome string, hit bool) {
	if !h.metricsOn {
		return
	}
	if hit && outcome == "authenticated" { // a cache hit: most requests
		h.counters.authenticated.Inc()
		h.counters.hit.Inc()
		return
	}
	if c := h.counters.outcomes[outcome]; c != nil {
		c.Inc()
	} else {
		observeOutcome(outcome)
	}
	switch {
	case key == (sessionctx.Key{}):
	case hit:
		h.counters.hit.Inc()
	default:
		h.counters.miss.Inc()
	}
}

// handlerCounters are the children of the request and cache counters that
// a handler increments, found once at Provision: WithLabelValues hashes
// its labels and takes the vector's lock, a measurable share of a cache
// hit. Nothing deletes a child from these vectors, so a child found once
// stays the live one.
type handlerCounters struct {
	outcomes                 map[string]prometheus.Counter
	authenticated, hit, miss prometheus.Counter
}

func newHandlerCounters(dialect string) handlerCounters {
	c := handlerCounters{
		outcomes: make(map[string]prometheus.Counter, len(outcomes)),
		hit:      metrics.cacheHits.WithLabelValues(dialect),
		miss:     metrics.cacheMisses.WithLabelValues(dialect),
	}
	c.authenticated = metrics.requests.WithLabelValues("authenticated")
	for _, o := range outcomes {
		c.outcomes[o] = metrics.requests.WithLabelValues(o)
	}
	return c
}
