package caddymodule

import (
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

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

// settings expands the config's placeholders at Provision and checks the
// result.
func (c *ClusterConfig) settings() (*clusterSettings, error) {
	if c == nil {
		return nil, nil
	}
	expanded := *c
	var err error
	if expanded.URL, err = expandPlaceholders("cluster url", c.URL); err != nil {
		return nil, err
	}
	if expanded.Secret, err = expandPlaceholders("cluster secret", c.Secret); err != nil {
		return nil, err
	}
	if err := expanded.validate(); err != nil {
		return nil, err
	}
	s := &clusterSettings{
		URL:       expanded.URL,
		Secret:    expanded.Secret,
		KeyPrefix: c.KeyPrefix,
		Timeout:   time.Duration(c.Timeout),
	}
	if s.KeyPrefix == "" {
		s.KeyPrefix = cluster.DefaultKeyPrefix
	}
	if s.Timeout == 0 {
		s.Timeout = cluster.DefaultTimeout
	}
	return s, nil
}

// validate is the one check of the cluster settings, run by the parser
// after each line and by Provision once the placeholders are expanded
// (see SessionAuth.validate).
func (c *ClusterConfig) validate() error {
	if c.URL != "" {
		if err := checkURL("cluster url", c.URL, redactURL(c.URL), "redis", "rediss"); err != nil {
			return err
		}
	}
	if c.Secret != "" && !hasPlaceholder(c.Secret) && len(c.Secret) < cluster.MinSecretLen {
		return fmt.Errorf("cluster secret is %d bytes, need at least %d", len(c.Secret), cluster.MinSecretLen)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("cluster timeout must not be negative (got %s)", time.Duration(c.Timeout))
	}
	if c.URL == "" {
		return missingError("cluster needs a url")
	}
	if c.Secret == "" {
		return missingError(fmt.Sprintf("cluster needs a secret (secret <at least %d bytes>)", cluster.MinSecretLen))
	}
	return nil
}

// parseCluster reads `cluster <url> { secret ...; key_prefix ...;
// timeout ... }`.
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
	if err := c.validate(); err != nil && !isMissing(err) {
		return nil, d.Err(err.Error())
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		var val string
		if !d.AllArgs(&val) {
			return nil, d.Errf("want %s <value>", sub)
		}
		if seen[sub] {
			return nil, d.Errf("cluster %s given twice", sub)
		}
		seen[sub] = true
		switch sub {
		case "secret":
			c.Secret = val
		case "key_prefix":
			c.KeyPrefix = val
		case "timeout":
			dur, err := caddy.ParseDuration(val)
			if err != nil {
				return nil, d.Errf("cluster timeout %q: %v", val, err)
			}
			c.Timeout = caddy.Duration(dur)
		default:
			return nil, d.Errf("unknown cluster option %q (want secret, key_prefix, timeout)", sub)
		}
		if err := c.validate(); err != nil && !isMissing(err) {
			return nil, d.Err(err.Error())
		}
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", d.File(), line, err)
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
	revoked, refused, undelivered                     *prometheus.Desc
}

func newClusterCollector() clusterCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(metricsNamespace, metricsSubsystem, "cluster_"+name), help, []string{"dialect"}, nil)
	}
	return clusterCollector{
		connected:   d("connected", "Cluster tiers subscribed to Redis (1 each), by dialect."),
		hits:        d("l2_hits_total", "Tokens answered from Redis without a session-service call."),
		misses:      d("l2_misses_total", "Tokens Redis could not answer (absent, expired, unreachable)."),
		sent:        d("invalidations_sent_total", "Invalidations this node published (forget, logout, purge, rejection)."),
		received:    d("invalidations_received_total", "Invalidations from other nodes applied to this node's cache."),
		rejected:    d("sealed_rejected_total", "Entries or messages in Redis that did not open with the secret: never served."),
		revoked:     d("revoked_refused_total", "Sessions in Redis refused because they were filled before a revocation or purge this node knows of."),
		refused:     d("messages_refused_total", "Invalidation messages refused: too old, seen before (replayed), or too large."),
		undelivered: d("undelivered", "Revocations this node could not publish yet and keeps retrying."),
	}
}

func (c clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.connected, c.hits, c.misses, c.sent, c.received, c.rejected, c.revoked, c.refused, c.undelivered} {
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
		s.RevokedRefused += st.RevokedRefused
		s.MessagesRefused += st.MessagesRefused
		s.Undelivered += st.Undelivered
	}
	for dialect, s := range by {
		ch <- prometheus.MustNewConstMetric(c.connected, prometheus.GaugeValue, float64(conn[dialect]), dialect)
		ch <- prometheus.MustNewConstMetric(c.hits, prometheus.CounterValue, float64(s.L2Hits), dialect)
		ch <- prometheus.MustNewConstMetric(c.misses, prometheus.CounterValue, float64(s.L2Misses), dialect)
		ch <- prometheus.MustNewConstMetric(c.sent, prometheus.CounterValue, float64(s.InvalidationsSent), dialect)
		ch <- prometheus.MustNewConstMetric(c.received, prometheus.CounterValue, float64(s.InvalidationsReceived), dialect)
		ch <- prometheus.MustNewConstMetric(c.rejected, prometheus.CounterValue, float64(s.SealedRejected), dialect)
		ch <- prometheus.MustNewConstMetric(c.revoked, prometheus.CounterValue, float64(s.RevokedRefused), dialect)
		ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(s.MessagesRefused), dialect)
		ch <- prometheus.MustNewConstMetric(c.undelivered, prometheus.GaugeValue, float64(s.Undelivered), dialect)
	}
}
