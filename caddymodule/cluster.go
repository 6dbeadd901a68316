package caddymodule

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"go.uber.org/zap"

	"github.com/sessiongate/caddy-sessiongate/sessionctx/cluster"
)

// ClusterConfig makes the nodes that name the same Redis share their
// resolved sessions, rejections and revocations.
type ClusterConfig struct {
	// URL is the Redis server: redis://[user:password@]host:port/db, or
	// rediss:// for TLS. May use {env.*}. For several URLs (the seeds of
	// a Redis Cluster, the Sentinels), use URLs; give one of the two.
	URL string `json:"url,omitempty"`
	// URLs are the Redis URLs: the server (mode standalone: one URL),
	// seed nodes of a Redis Cluster (mode cluster), or the Sentinels (mode
	// sentinel). They share scheme, credentials and database. May use
	// {env.*}.
	URLs []string `json:"urls,omitempty"`
	// Mode is standalone (default), cluster or sentinel.
	Mode string `json:"mode,omitempty"`
	// MasterName is the name the Sentinels monitor the master by: mode
	// sentinel only, required there.
	MasterName string `json:"master_name,omitempty"`
	// SentinelUsername and SentinelPassword authenticate to the
	// Sentinels (their requirepass or ACL user), which the URLs'
	// credentials do not: those are the master's. May use {env.*}.
	SentinelUsername string `json:"sentinel_username,omitempty"`
	SentinelPassword string `json:"sentinel_password,omitempty"`
	// TLS configures rediss:// connections as reverse_proxy's transport
	// tls does: the trusted CAs (ca, a tls.ca_pool.source module), a
	// client certificate, the server name.
	TLS *reverseproxy.TLSConfig `json:"tls,omitempty"`
	// Secret seals every entry in Redis; at least 32 bytes. Required.
	// May use {env.*}.
	Secret string `json:"secret"`
	// KeyPrefix starts every Redis key and the channel. Default
	// "sessiongate:".
	KeyPrefix string `json:"key_prefix,omitempty"`
	// Timeout bounds each Redis operation. Default 100ms.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// PoolSize is the most connections to each Redis server this node
	// keeps for requests (the subscription has its own): size it to the
	// requests that miss the node's cache at once, as a request that
	// finds every connection busy waits for one. Default 64, or 10 per
	// CPU where that is more.
	PoolSize int `json:"pool_size,omitempty"`
}

// clusterSettings is a ClusterConfig with its placeholders expanded, as
// the pool keys and builds tiers by.
type clusterSettings struct {
	URLs                               []string
	Mode, MasterName                   string
	SentinelUsername, SentinelPassword string
	// TLS is the tls config as given, for the pool key; tls is what it
	// makes.
	TLS               json.RawMessage `json:",omitempty"`
	tls               *tls.Config
	Secret, KeyPrefix string
	Timeout           time.Duration
	PoolSize          int `json:",omitempty"`
}

// urls is the URL or the URLs, as given.
func (c *ClusterConfig) urls() []string {
	if c.URL != "" {
		return append([]string{c.URL}, c.URLs...)
	}
	return c.URLs
}

// settings expands the config's placeholders at Provision (not when the
// config is adapted: `caddy adapt` keeps them) and checks the result.
func (c *ClusterConfig) settings(ctx caddy.Context) (*clusterSettings, error) {
	if c == nil {
		return nil, nil
	}
	if c.URL != "" && len(c.URLs) > 0 {
		return nil, fmt.Errorf("cluster: give url or urls, not both")
	}
	expanded := *c
	expanded.URL = ""
	expanded.URLs = nil
	for i, u := range c.urls() {
		what := "cluster url"
		if len(c.urls()) > 1 {
			what = fmt.Sprintf("cluster url %d", i+1)
		}
		e, err := expandPlaceholders(what, u)
		if err != nil {
			return nil, err
		}
		expanded.URLs = append(expanded.URLs, e)
	}
	var err error
	if expanded.Secret, err = expandPlaceholders("cluster secret", c.Secret); err != nil {
		return nil, err
	}
	if expanded.SentinelPassword, err = expandPlaceholders("cluster sentinel_auth", c.SentinelPassword); err != nil {
		return nil, err
	}
	if hasPlaceholder(c.Secret) && len(expanded.Secret) < cluster.MinSecretLen {
		return nil, fmt.Errorf("cluster secret is %d bytes, need at least %d (from %s)", len(expanded.Secret), cluster.MinSecretLen, c.Secret)
	}
	if err := expanded.validate(); err != nil {
		return nil, err
	}
	s := &clusterSettings{
		URLs:             expanded.URLs,
		Mode:             c.Mode,
		MasterName:       c.MasterName,
		SentinelUsername: c.SentinelUsername,
		SentinelPassword: expanded.SentinelPassword,
		Secret:           expanded.Secret,
		KeyPrefix:        c.KeyPrefix,
		Timeout:          time.Duration(c.Timeout),
		PoolSize:         c.PoolSize,
	}
	if s.Mode == "" {
		s.Mode = cluster.ModeStandalone
	}
	if s.KeyPrefix == "" {
		s.KeyPrefix = cluster.DefaultKeyPrefix
	}
	if s.Timeout == 0 {
		s.Timeout = cluster.DefaultTimeout
	}
	if c.TLS != nil {
		if s.TLS, err = json.Marshal(c.TLS); err != nil {
			return nil, fmt.Errorf("cluster tls: %w", err)
		}
		// MakeTLSClientConfig consumes the CA module's raw JSON: a copy
		// keeps the config as given.
		tc := new(reverseproxy.TLSConfig)
		if err := json.Unmarshal(s.TLS, tc); err != nil {
			return nil, fmt.Errorf("cluster tls: %w", err)
		}
		if s.tls, err = tc.MakeTLSClientConfig(ctx); err != nil {
			return nil, fmt.Errorf("cluster tls: %w", err)
		}
		if s.tls == nil {
			s.tls = &tls.Config{}
		}
	}
	return s, nil
}

// validate is the one check of the cluster settings, run by the parser
// after each line and by Provision once the placeholders are expanded
// (see SessionAuth.validate). A value that still holds an {env.*} or
// {file.*} placeholder is checked once expanded: an unset variable is
// no error until the config loads.
func (c *ClusterConfig) validate() error {
	if c.URL != "" && len(c.URLs) > 0 {
		return fmt.Errorf("cluster: give url or urls, not both")
	}
	urls := c.urls()
	waiting := false
	for i, u := range urls {
		if hasPlaceholder(u) {
			waiting = true
			continue
		}
		what := "cluster url"
		if len(urls) > 1 {
			what = fmt.Sprintf("cluster url %d", i+1)
		}
		if err := checkURL(what, u, redactURL(u), "redis", "rediss"); err != nil {
			return err
		}
	}
	if len(urls) > 0 {
		check := urls
		if waiting {
			// Until the placeholders are expanded, only the mode's rules
			// (how many URLs, master_name) can be checked.
			check = slices.Repeat([]string{"redis://placeholder"}, len(urls))
		}
		if err := cluster.CheckURLs(cluster.Config{URLs: check, Mode: c.Mode, MasterName: c.MasterName}); err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
		if c.TLS != nil && !waiting && !strings.HasPrefix(urls[0], "rediss://") {
			return fmt.Errorf("cluster: tls settings need rediss:// urls (got %s)", redactURL(urls[0]))
		}
	} else if c.Mode != "" && !slices.Contains(cluster.Modes, c.Mode) {
		return fmt.Errorf("cluster: unknown mode %q (want %s)", c.Mode, strings.Join(cluster.Modes, ", "))
	}
	if c.SentinelUsername != "" && c.SentinelPassword == "" {
		return fmt.Errorf("cluster sentinel_auth: a username needs a password")
	}
	if c.SentinelPassword != "" && c.Mode != cluster.ModeSentinel {
		return fmt.Errorf("cluster sentinel_auth is for mode sentinel only")
	}
	if err := checkSecretLen("cluster secret", c.Secret, cluster.MinSecretLen); err != nil {
		return err
	}
	if c.Timeout < 0 {
		return fmt.Errorf("cluster timeout must not be negative (got %s)", time.Duration(c.Timeout))
	}
	if c.PoolSize < 0 || c.PoolSize > cluster.MaxPoolSize {
		return fmt.Errorf("cluster pool_size must be 1 to %d (got %d)", cluster.MaxPoolSize, c.PoolSize)
	}
	if len(urls) == 0 {
		return missingError("cluster needs a url")
	}
	if c.Secret == "" {
		return missingError(fmt.Sprintf("cluster needs a secret (secret <at least %d bytes>)", cluster.MinSecretLen))
	}
	return nil
}

// clusterTLSSubdirectives are the lines of reverse_proxy's `transport
// http` block that configure TLS, which the cluster block hands to
// reverseproxy.HTTPTransport's parser for its rediss:// connections.
var clusterTLSSubdirectives = []string{
	"tls_trust_pool", "tls_trusted_ca_certs", "tls_client_auth", "tls_server_name",
	"tls_insecure_skip_verify", "tls_curves", "tls_renegotiation",
}

// clusterOptions are the cluster block's lines other than its TLS ones.
var clusterOptions = []string{"mode", "master_name", "sentinel_auth", "secret", "key_prefix", "timeout", "pool_size"}

// parseCluster reads `cluster <url> [<url>...] { mode ...; master_name
// ...; sentinel_auth ...; secret ...; key_prefix ...; timeout ...; tls_*
// ... }`.
func parseCluster(d *caddyfile.Dispenser) (*ClusterConfig, error) {
	c := &ClusterConfig{}
	urls := d.RemainingArgs()
	if len(urls) == 0 {
		return nil, d.Err("want cluster <redis-url> [<redis-url>...] { secret <secret> }")
	}
	if len(urls) == 1 {
		c.URL = urls[0]
	} else {
		c.URLs = urls
	}
	line := d.Line()
	if err := c.validate(); err != nil && !isMissing(err) && !isModeError(err) {
		return nil, d.Err(err.Error())
	}
	if len(urls) > 1 && !slices.ContainsFunc(urls, hasPlaceholder) {
		// What several URLs must share, whatever the mode the block
		// gives later, is said at the URLs' line.
		if err := cluster.CheckURLs(cluster.Config{URLs: urls, Mode: cluster.ModeSentinel, MasterName: "-"}); err != nil {
			return nil, d.Errf("cluster: %v", err)
		}
	}
	var tlsLines reverseproxy.HTTPTransport
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		if seen[sub] {
			return nil, d.Errf("cluster %s given twice", sub)
		}
		seen[sub] = true
		if slices.Contains(clusterTLSSubdirectives, sub) {
			if err := unmarshalTransportLine(d, &tlsLines); err != nil {
				return nil, err
			}
			c.TLS = tlsLines.TLS
		} else if !slices.Contains(clusterOptions, sub) {
			return nil, d.Errf("unknown cluster option %q (want %s, %s)", sub, strings.Join(clusterOptions, ", "), strings.Join(clusterTLSSubdirectives, ", "))
		} else {
			args := d.RemainingArgs()
			want := 1
			if sub == "sentinel_auth" && len(args) == 2 {
				want = 2
			}
			if len(args) != want {
				if sub == "sentinel_auth" {
					return nil, d.Err("want sentinel_auth [<username>] <password>")
				}
				return nil, d.Errf("want %s <value>", sub)
			}
			val := args[len(args)-1]
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
				if dur == 0 {
					return nil, d.Err("cluster timeout 0 would mean its default, not none: give a positive duration, or leave the line out for the default")
				}
				c.Timeout = caddy.Duration(dur)
			case "pool_size":
				n, err := strconv.Atoi(val)
				if err != nil || n < 1 {
					return nil, d.Errf("cluster pool_size %q: want a whole number of connections, at least 1", val)
				}
				c.PoolSize = n
			case "mode":
				c.Mode = val
			case "master_name":
				c.MasterName = val
			case "sentinel_auth":
				if len(args) == 2 {
					c.SentinelUsername = args[0]
				}
				c.SentinelPassword = val
			}
		}
		// mode and master_name may come in either order: their rules
		// are checked at the end of the block.
		if err := c.validate(); err != nil && !isMissing(err) && !isModeError(err) {
			return nil, d.Err(err.Error())
		}
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("%w, at %s:%d", err, d.File(), line)
	}
	return c, nil
}

// isModeError is an error that a later line of the block may still
// resolve: several URLs before `mode`, a master_name before `mode
// sentinel`, sentinel_auth before it, or the other way round.
func isModeError(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "mode standalone, which takes one") ||
		strings.Contains(msg, "needs master_name") ||
		strings.Contains(msg, "master_name is for mode sentinel only") ||
		strings.Contains(msg, "sentinel_auth is for mode sentinel only")
}

// newTier builds the Redis tier of one pooled resolver. Redis failures
// are warned about through Caddy's log, at a bounded rate.
func newTier(s *clusterSettings, backendID string) (*cluster.Tier, error) {
	logger := caddy.Log().Named("sessiongate.cluster")
	return cluster.New(cluster.Config{
		URLs: s.URLs, Mode: s.Mode, MasterName: s.MasterName, TLS: s.tls,
		SentinelUsername: s.SentinelUsername, SentinelPassword: s.SentinelPassword,
		Secret: s.Secret, KeyPrefix: s.KeyPrefix, Timeout: s.Timeout,
		PoolSize: s.PoolSize,
		Backend:  backendID,
		Warn: func(msg string, err error) {
			logger.Warn(msg, zap.Error(err))
		},
		Info: func(msg string) { logger.Info(msg) },
	})
}

// clusterMetrics describe the tiers' counters.
func clusterMetrics() []statMetric[cluster.Stats] {
	return []statMetric[cluster.Stats]{
		statGauge("cluster_connected", "Cluster tiers subscribed to Redis (1 each), by dialect.",
			func(s cluster.Stats) int {
				if s.Connected {
					return 1
				}
				return 0
			}),
		statCounter("cluster_l2_hits_total", "Tokens answered from Redis without a session-service call.",
			func(s cluster.Stats) uint64 { return s.L2Hits }),
		statCounter("cluster_l2_misses_total", "Tokens Redis could not answer (absent, expired, unreachable).",
			func(s cluster.Stats) uint64 { return s.L2Misses }),
		statCounter("cluster_invalidations_sent_total", "Invalidations this node published (forget, logout, purge, rejection).",
			func(s cluster.Stats) uint64 { return s.InvalidationsSent }),
		statCounter("cluster_invalidations_received_total", "Invalidations from other nodes applied to this node's cache.",
			func(s cluster.Stats) uint64 { return s.InvalidationsReceived }),
		statCounter("cluster_fills_sent_total", "Notices this node published that it answered a token another node waited for (not invalidations).",
			func(s cluster.Stats) uint64 { return s.FillsSent }),
		statCounter("cluster_fills_received_total", "Notices from other nodes that they answered a token this node waited for (not invalidations).",
			func(s cluster.Stats) uint64 { return s.FillsReceived }),
		statCounter("cluster_sealed_rejected_total", "Entries or messages in Redis that did not open with the secret: never served.",
			func(s cluster.Stats) uint64 { return s.SealedRejected }),
		statCounter("cluster_revoked_refused_total", "Sessions in Redis refused because they were filled before a revocation or purge this node knows of.",
			func(s cluster.Stats) uint64 { return s.RevokedRefused }),
		statCounter("cluster_messages_refused_total", "Invalidation messages refused: too old, seen before (replayed), or too large.",
			func(s cluster.Stats) uint64 { return s.MessagesRefused }),
		statGauge("cluster_undelivered", "Revocations this node could not publish yet and keeps retrying.",
			func(s cluster.Stats) int { return s.Undelivered }),
	}
}
