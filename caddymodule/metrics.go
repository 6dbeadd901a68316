package caddymodule

import (
	"errors"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
	"github.com/sessiongate/caddy-sessiongate/sessionctx/cluster"
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
	resolvers       prometheus.Collector
	cluster         prometheus.Collector
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
	resolvers: statsCollector[sessionctx.Stats]{
		stats:   func(p *pooledResolver) (sessionctx.Stats, bool) { return p.Stats(), true },
		metrics: slices.Concat(entriesMetrics(), lookupsMetrics()),
	},
	cluster: statsCollector[cluster.Stats]{
		stats: func(p *pooledResolver) (cluster.Stats, bool) {
			if p.tier == nil {
				return cluster.Stats{}, false
			}
			return p.tier.Stats(), true
		},
		metrics: clusterMetrics(),
	},
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
		metrics.serviceDuration, metrics.serviceErrors, metrics.resolvers, metrics.cluster,
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

// entriesMetrics describe the cache sizes.
func entriesMetrics() []statMetric[sessionctx.Stats] {
	entries := statDesc("cache_entries", "Entries in the sessiongate caches, by dialect and kind (session or rejection).", "kind")
	return []statMetric[sessionctx.Stats]{
		{entries, prometheus.GaugeValue, "session", func(s sessionctx.Stats) float64 { return float64(s.Entries) }},
		{entries, prometheus.GaugeValue, "rejection", func(s sessionctx.Stats) float64 { return float64(s.Rejections) }},
	}
}

// statMetric is one value a statsCollector reports per dialect: the sum
// of value over the dialect's resolvers.
type statMetric[S any] struct {
	desc *prometheus.Desc
	kind prometheus.ValueType
	// label is the value of the desc's label after dialect, if it has one.
	label string
	value func(S) float64
}

// statCounter and statGauge describe a metric with one value per dialect.
func statCounter[S any, N integer](name, help string, value func(S) N) statMetric[S] {
	return statMetric[S]{statDesc(name, help), prometheus.CounterValue, "", func(s S) float64 { return float64(value(s)) }}
}

func statGauge[S any, N integer](name, help string, value func(S) N) statMetric[S] {
	return statMetric[S]{statDesc(name, help), prometheus.GaugeValue, "", func(s S) float64 { return float64(value(s)) }}
}

type integer interface{ ~int | ~int64 | ~uint64 }

// statDesc describes a metric with the label dialect, then labels.
func statDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(metricsNamespace, metricsSubsystem, name),
		help, append([]string{"dialect"}, labels...), nil)
}

// statsCollector reports, when scraped, values read from the stats of
// the resolvers that count in the metrics, summed by dialect: they are
// exact without hooks on every request, insert and delete. stats says
// whether a resolver has stats of this kind (a Redis tier, say).
type statsCollector[S any] struct {
	stats   func(*pooledResolver) (S, bool)
	metrics []statMetric[S]
}

// Describe sends the desc of every value; the registry takes a desc that
// values share once.
func (c statsCollector[S]) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.metrics {
		ch <- m.desc
	}
}

func (c statsCollector[S]) Collect(ch chan<- prometheus.Metric) {
	sums := map[string][]float64{}
	for _, p := range liveResolvers() {
		if p.metricsUsers.Load() <= 0 {
			continue
		}
		st, ok := c.stats(p)
		if !ok {
			continue
		}
		sum := sums[p.dialect]
		if sum == nil {
			sum = make([]float64, len(c.metrics))
			sums[p.dialect] = sum
		}
		for i, m := range c.metrics {
			sum[i] += m.value(st)
		}
	}
	for dialect, sum := range sums {
		for i, m := range c.metrics {
			labels := []string{dialect}
			if m.label != "" {
				labels = append(labels, m.label)
			}
			ch <- prometheus.MustNewConstMetric(m.desc, m.kind, sum[i], labels...)
		}
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
