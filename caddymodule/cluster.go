package caddymodule

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/sessiongate/caddy-sessiongate/sessionctx/cluster"
)

// ClusterConfig makes the nodes that name the same Redis share their
// resolved sessions, rejections and revocations.
type ClusterConfig struct {
	// URL is the Redis server: redis://[user:password@]host:port/db, or
	// rediss:// for TLS. May use {env.*}.
	URL string `json:"url"`
	// Secret seals every entry in Redis; at least 32 bytes. Required.
	// May use {env.*}.
	Secret string `json:"secret"`
	// KeyPrefix starts every Redis key and the channel. Default
	// "sessiongate:".
	KeyPrefix string `json:"key_prefix,omitempty"`
	// Timeout bounds each Redis operation. Default 100ms.
	Timeout caddy.Duration `json:"timeout,omitempty"`
}

// clusterSettings is a ClusterConfig with its placeholders expanded, as
// the pool keys and builds tiers by.
type clusterSettings struct {
	URL, Secret, KeyPrefix string
	Timeout                time.Duration
}

// settings expands and checks the config at Provision.
func (c *ClusterConfig) settings() (*clusterSettings, error) {
	if c == nil {
		return nil, nil
	}
	if err := checkEnvSet("cluster url", c.URL); err != nil {
		return nil, err
	}
	if err := checkEnvSet("cluster secret", c.Secret); err != nil {
		return nil, err
	}
	repl := caddy.NewReplacer()
	s := &clusterSettings{
		URL:       repl.ReplaceKnown(c.URL, ""),
		Secret:    repl.ReplaceKnown(c.Secret, ""),
		KeyPrefix: c.KeyPrefix,
		Timeout:   time.Duration(c.Timeout),
	}
	if s.URL == "" {
		return nil, fmt.Errorf("cluster: no url")
	}
	if !strings.HasPrefix(s.URL, "redis://") && !strings.HasPrefix(s.URL, "rediss://") {
		return nil, fmt.Errorf("cluster url %q: want redis:// or rediss://", redactURL(s.URL))
	}
	if len(s.Secret) < cluster.MinSecretLen {
		return nil, fmt.Errorf("cluster secret is %d bytes, need at least %d", len(s.Secret), cluster.MinSecretLen)
	}
	if s.Timeout < 0 {
		return nil, fmt.Errorf("cluster timeout must not be negative")
	}
	if s.KeyPrefix == "" {
		s.KeyPrefix = cluster.DefaultKeyPrefix
	}
	if s.Timeout == 0 {
		s.Timeout = cluster.DefaultTimeout
	}
	return s, nil
}

// parseCluster reads `cluster <url> { secret ...; key_prefix ...;
// timeout ... }`. A literal secret that is too short is refused here, so
// the error names its line; one from {env.*} is checked at Provision.
func parseCluster(d *caddyfile.Dispenser) (*ClusterConfig, error) {
	c := &ClusterConfig{}
	if !d.NextArg() {
		return nil, d.Err("want cluster <redis-url> { secret <secret> }")
	}
	c.URL = d.Val()
	if d.NextArg() {
		return nil, d.Err("want cluster <redis-url> { ... }: one url")
	}
	line := d.Line()
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		var val string
		if !d.AllArgs(&val) {
			return nil, d.Errf("want %s <value>", sub)
		}
		switch sub {
		case "secret":
			if !strings.Contains(val, "{") && len(val) < cluster.MinSecretLen {
				return nil, d.Errf("cluster secret is %d bytes, need at least %d", len(val), cluster.MinSecretLen)
			}
			c.Secret = val
		case "key_prefix":
			c.KeyPrefix = val
		case "timeout":
			dur, err := caddy.ParseDuration(val)
			if err != nil || dur <= 0 {
				return nil, d.Errf("cluster timeout %q: want a positive duration", val)
			}
			c.Timeout = caddy.Duration(dur)
		default:
			return nil, d.Errf("unknown cluster option %q (want secret, key_prefix, timeout)", sub)
		}
	}
	if c.Secret == "" {
		return nil, fmt.Errorf("%s:%d: cluster needs a secret (secret <at least %d bytes>)", d.File(), line, cluster.MinSecretLen)
	}
	return c, nil
}

// newTier builds the Redis tier of one pooled resolver. Redis failures
// are warned about through Caddy's log, at a bounded rate.
func newTier(s *clusterSettings, backendID string) (*cluster.Tier, error) {
	logger := caddy.Log().Named("sessiongate.cluster")
	return cluster.New(cluster.Config{
		URL: s.URL, Secret: s.Secret, KeyPrefix: s.KeyPrefix, Timeout: s.Timeout,
		Backend: backendID,
		Warn: func(msg string, err error) {
			logger.Warn(msg, zap.Error(err))
		},
	})
}

// clusterCollector reports the tiers' counters when scraped, summed by
// dialect.
type clusterCollector struct {
	connected, hits, misses, sent, received, rejected *prometheus.Desc
}

func newClusterCollector() clusterCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(metricsNamespace, metricsSubsystem, "cluster_"+name), help, []string{"dialect"}, nil)
	}
	return clusterCollector{
		connected: d("connected", "Cluster tiers subscribed to Redis (1 each), by dialect."),
		hits:      d("l2_hits_total", "Tokens answered from Redis without a session-service call."),
		misses:    d("l2_misses_total", "Tokens Redis could not answer (absent, expired, unreachable)."),
		sent:      d("invalidations_sent_total", "Invalidations this node published (forget, logout, purge, rejection)."),
		received:  d("invalidations_received_total", "Invalidations from other nodes applied to this node's cache."),
		rejected:  d("sealed_rejected_total", "Entries or messages in Redis that did not open with the secret: never served."),
	}
}

func (c clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.connected, c.hits, c.misses, c.sent, c.received, c.rejected} {
		ch <- d
	}
}

func (c clusterCollector) Collect(ch chan<- prometheus.Metric) {
	by := map[string]*cluster.Stats{}
	conn := map[string]int{}
	for _, p := range liveResolvers() {
		if p.tier == nil || p.metricsUsers.Load() <= 0 {
			continue
		}
		st := p.tier.Stats()
		s := by[p.dialect]
		if s == nil {
			s = &cluster.Stats{}
			by[p.dialect] = s
		}
		if st.Connected {
			conn[p.dialect]++
		}
		s.L2Hits += st.L2Hits
		s.L2Misses += st.L2Misses
		s.InvalidationsSent += st.InvalidationsSent
		s.InvalidationsReceived += st.InvalidationsReceived
		s.SealedRejected += st.SealedRejected
	}
	for dialect, s := range by {
		ch <- prometheus.MustNewConstMetric(c.connected, prometheus.GaugeValue, float64(conn[dialect]), dialect)
		ch <- prometheus.MustNewConstMetric(c.hits, prometheus.CounterValue, float64(s.L2Hits), dialect)
		ch <- prometheus.MustNewConstMetric(c.misses, prometheus.CounterValue, float64(s.L2Misses), dialect)
		ch <- prometheus.MustNewConstMetric(c.sent, prometheus.CounterValue, float64(s.InvalidationsSent), dialect)
		ch <- prometheus.MustNewConstMetric(c.received, prometheus.CounterValue, float64(s.InvalidationsReceived), dialect)
		ch <- prometheus.MustNewConstMetric(c.rejected, prometheus.CounterValue, float64(s.SealedRejected), dialect)
	}
}

// redisLogger sends the Redis client's own messages (failed dials while
// Redis is down) to Caddy's log at a bounded rate, not to stderr per
// attempt.
type redisLogger struct {
	every rate.Sometimes
}

func (l *redisLogger) Printf(_ context.Context, format string, v ...any) {
	l.every.Do(func() {
		caddy.Log().Named("sessiongate.cluster").Warn("redis client", zap.String("message", fmt.Sprintf(format, v...)))
	})
}

func init() {
	redis.SetLogger(&redisLogger{every: rate.Sometimes{Interval: 10 * time.Second}})
}
