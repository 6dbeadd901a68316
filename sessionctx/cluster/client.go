package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"
)

// Modes of a Redis deployment, as Config.Mode names them.
const (
	// ModeStandalone is one Redis server (or a proxy in front of many):
	// one URL.
	ModeStandalone = "standalone"
	// ModeCluster is a Redis Cluster: the URLs are seed nodes, from which
	// the client learns the others and which slots each holds.
	ModeCluster = "cluster"
	// ModeSentinel is a master and its replicas watched by Redis
	// Sentinel: the URLs are Sentinels, which name the current master.
	ModeSentinel = "sentinel"
)

// Modes lists the modes, for errors and docs.
var Modes = []string{ModeStandalone, ModeCluster, ModeSentinel}

// redisURL is one URL of the config, taken apart.
type redisURL struct {
	scheme, user, host string
	password           string
	hasPassword        bool
	db                 int
	query              string
}

func parseRedisURL(raw string) (*redisURL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("not a URL")
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, fmt.Errorf("scheme %q: want redis:// or rediss://", u.Scheme)
	}
	if u.Host == "" || u.Opaque != "" {
		return nil, errors.New("no host")
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		host, port = u.Host, "6379"
	}
	if host == "" {
		host = "localhost"
	}
	r := &redisURL{scheme: u.Scheme, host: net.JoinHostPort(host, port), query: u.RawQuery}
	if u.User != nil {
		r.user = u.User.Username()
		r.password, r.hasPassword = u.User.Password()
	}
	if p := strings.Trim(u.Path, "/"); p != "" {
		if r.db, err = strconv.Atoi(p); err != nil || r.db < 0 {
			return nil, fmt.Errorf("database %q: want a number", p)
		}
	}
	return r, nil
}

// checkURLs parses the URLs of one mode and refuses what one client
// cannot use: URLs that differ in scheme, credentials or database (one
// client speaks to every node the same way), more than one URL in
// standalone mode, a master name outside sentinel mode or none in it, a
// database other than 0 in a Redis Cluster.
func checkURLs(urls []string, mode, masterName string) ([]*redisURL, error) {
	if len(urls) == 0 {
		return nil, errors.New("no url")
	}
	switch mode {
	case ModeStandalone, ModeCluster, ModeSentinel:
	default:
		return nil, fmt.Errorf("unknown mode %q (want %s)", mode, strings.Join(Modes, ", "))
	}
	if mode == ModeStandalone && len(urls) > 1 {
		return nil, fmt.Errorf("%d urls in mode standalone, which takes one (several are the seeds of mode cluster or the Sentinels of mode sentinel)", len(urls))
	}
	if mode == ModeSentinel && masterName == "" {
		return nil, errors.New("mode sentinel needs master_name, the name the Sentinels monitor the master by")
	}
	if mode != ModeSentinel && masterName != "" {
		return nil, fmt.Errorf("master_name is for mode sentinel only (mode is %s)", mode)
	}
	parsed := make([]*redisURL, len(urls))
	for i, raw := range urls {
		r, err := parseRedisURL(raw)
		if err != nil {
			return nil, fmt.Errorf("url %d of %d: %w", i+1, len(urls), err)
		}
		if mode != ModeStandalone && r.query != "" {
			return nil, fmt.Errorf("url %d of %d: query parameters are read in mode standalone only", i+1, len(urls))
		}
		if mode == ModeCluster && r.db != 0 {
			return nil, fmt.Errorf("url %d of %d: database %d: a Redis Cluster has database 0 only", i+1, len(urls), r.db)
		}
		first := parsed[0]
		if i > 0 {
			switch {
			case r.scheme != first.scheme:
				return nil, fmt.Errorf("url %d of %d is %s:// and url 1 is %s://: all urls of one cluster block share scheme, credentials and TLS", i+1, len(urls), r.scheme, first.scheme)
			case r.user != first.user || r.password != first.password || r.hasPassword != first.hasPassword:
				return nil, fmt.Errorf("url %d of %d has other credentials than url 1: all urls of one cluster block share scheme, credentials and TLS", i+1, len(urls))
			case r.db != first.db:
				return nil, fmt.Errorf("url %d of %d names database %d and url 1 database %d: all urls of one cluster block share one database", i+1, len(urls), r.db, first.db)
			}
		}
		parsed[i] = r
	}
	return parsed, nil
}

// CheckURLs reports what New would refuse in the URLs and mode of cfg,
// without connecting: for config checks that run before the tier is
// built.
func CheckURLs(cfg Config) error {
	_, err := checkURLs(cfg.urls(), cfg.mode(), cfg.MasterName)
	return err
}

func (cfg Config) urls() []string {
	if len(cfg.URLs) > 0 {
		return cfg.URLs
	}
	if cfg.URL != "" {
		return []string{cfg.URL}
	}
	return nil
}

func (cfg Config) mode() string {
	if cfg.Mode == "" {
		return ModeStandalone
	}
	return cfg.Mode
}

// newClient builds go-redis's client for the mode: a Client, a
// ClusterClient or a FailoverClient. Every operation is bounded by
// cfg.Timeout and none is retried: a retry would double the time a
// request waits on a sick Redis, and any failure is a miss anyway. The
// client does not send CLIENT SETINFO on connect (Redis 7.2+), so the
// ACL user of docs/cluster.md needs no rule for it.
func poolSize(cfg Config) int {
	if cfg.PoolSize > 0 {
		return min(cfg.PoolSize, MaxPoolSize)
	}
	return DefaultPoolSize()
}

func newClient(cfg Config) (redis.UniversalClient, error) {
	urls, err := checkURLs(cfg.urls(), cfg.mode(), cfg.MasterName)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	first := urls[0]
	if cfg.TLS != nil && first.scheme != "rediss" {
		return nil, errors.New("cluster: TLS settings need rediss:// urls")
	}
	var tlsConfig *tls.Config
	if first.scheme == "rediss" {
		if cfg.TLS != nil {
			tlsConfig = cfg.TLS.Clone()
		} else {
			tlsConfig = &tls.Config{}
		}
		if tlsConfig.MinVersion == 0 {
			tlsConfig.MinVersion = tls.VersionTLS12
		}
		// An empty ServerName is each node's own host, as the dialer
		// takes it from the address it dials.
	}
	addrs := make([]string, len(urls))
	for i, u := range urls {
		addrs[i] = u.host
	}
	switch cfg.mode() {
	case ModeCluster:
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs:    addrs,
			Username: first.user, Password: first.password,
			TLSConfig:   tlsConfig,
			DialTimeout: cfg.Timeout, ReadTimeout: cfg.Timeout, WriteTimeout: cfg.Timeout, PoolTimeout: cfg.Timeout,
			ContextTimeoutEnabled: true,
			MaxRetries:            -1,
			DisableIdentity:       true,
			PoolSize:              poolSize(cfg),
		}), nil
	case ModeSentinel:
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName:       cfg.MasterName,
			SentinelAddrs:    addrs,
			SentinelUsername: cfg.SentinelUsername, SentinelPassword: cfg.SentinelPassword,
			Username: first.user, Password: first.password, DB: first.db,
			TLSConfig:   tlsConfig,
			DialTimeout: cfg.Timeout, ReadTimeout: cfg.Timeout, WriteTimeout: cfg.Timeout, PoolTimeout: cfg.Timeout,
			ContextTimeoutEnabled: true,
			MaxRetries:            -1,
			DisableIdentity:       true,
			PoolSize:              poolSize(cfg),
		}), nil
	}
	opts, err := redis.ParseURL(cfg.urls()[0])
	if err != nil {
		return nil, fmt.Errorf("cluster url: %w", err)
	}
	if tlsConfig != nil {
		if tlsConfig.ServerName == "" && opts.TLSConfig != nil {
			tlsConfig.ServerName = opts.TLSConfig.ServerName
		}
		if opts.TLSConfig != nil && opts.TLSConfig.InsecureSkipVerify {
			tlsConfig.InsecureSkipVerify = true // ?skip_verify=true
		}
		opts.TLSConfig = tlsConfig
	}
	opts.DialTimeout = cfg.Timeout
	opts.ReadTimeout = cfg.Timeout
	opts.WriteTimeout = cfg.Timeout
	opts.PoolTimeout = cfg.Timeout
	opts.ContextTimeoutEnabled = true
	opts.MaxRetries = -1
	opts.DisableIdentity = true
	opts.Dialer = uncheckedDialer(redis.NewDialer(opts))
	if cfg.PoolSize > 0 || opts.PoolSize == 0 {
		// A pool_size in the URL's query is go-redis's own setting.
		opts.PoolSize = poolSize(cfg)
	}
	return redis.NewClient(opts), nil
}

// uncheckedDialer hides the socket of each connection from go-redis's
// pool, which otherwise peeks at it with a recvfrom system call at every
// checkout (a third of an L2 hit's cost in a profile). A connection
// Redis closed meanwhile fails its next command instead, and Tier.run
// sends that command again once, on another connection. (TLS connections
// hide their socket from that check already.)
func uncheckedDialer(dial func(context.Context, string, string) (net.Conn, error)) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return uncheckedConn{c}, nil
	}
}

// uncheckedConn is a net.Conn without its SyscallConn method.
type uncheckedConn struct{ net.Conn }

// brokenConn reports an error of a connection the other end closed (or
// reset) while it sat in the pool: the command never reached Redis, so
// sending it again on another is safe.
func brokenConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
