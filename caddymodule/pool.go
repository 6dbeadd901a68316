package caddymodule

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
	"github.com/sessiongate/caddy-sessiongate/sessionctx/cluster"
)

// resolvers holds every live resolver, keyed by a hash of the config that
// shapes it, so that a config reload with the same backend keeps its cache
// and two handlers naming the same backend share one.
var resolvers = caddy.NewUsagePool()

// pooledResolver is a resolver with what the admin API and the metrics
// need to name it. It is shared by every handler with the same config, so
// it outlives any one of them.
type pooledResolver struct {
	*sessionctx.Client
	key     string
	dialect string
	url     string // without credentials or query: safe to show

	// metricsUsers counts the handlers using this resolver that have
	// metrics on; the resolver-level observations (service calls, errors,
	// evictions) are recorded only while it is positive.
	metricsUsers atomic.Int64

	// tier is the cache shared with other nodes through Redis, or nil.
	tier *cluster.Tier

	// transport carries the session-service requests.
	transport *serviceTransport
}

// Destruct implements caddy.Destructor: the last handler using the
// resolver is gone, and so is the reason to keep connections to the
// session service or stay subscribed to Redis.
func (p *pooledResolver) Destruct() error {
	p.transport.close()
	if p.tier != nil {
		return p.tier.Close()
	}
	return nil
}

// resolverKey is a hash of everything that shapes a client: the service,
// its options as configured (raw JSON), the token sources, the cache, the
// cluster settings, secret and all, so a reload that changes any of them
// builds a new one, and the transport's settings, so that handlers
// reaching the same service with different TLS settings never share a
// client (nor its cache).
func resolverKey(cfg sessionctx.Config, options json.RawMessage, cl *clusterSettings, transport json.RawMessage) string {
	raw, _ := json.Marshal(struct {
		Dialect, URL string
		Options      json.RawMessage `json:",omitempty"`
		Tokens       []sessionctx.TokenSource
		Header       map[string][]string
		Timeout      time.Duration
		MaxBody      int64
		TLSInsecure  bool
		TLSCAs       []string
		Cache        sessionctx.CacheConfig
		Lookups      [2]int           `json:",omitzero"`
		Window       time.Duration    `json:",omitempty"`
		CL           *clusterSettings `json:",omitempty"`
		Transport    json.RawMessage  `json:",omitempty"`
	}{cfg.Dialect, cfg.URL, options, cfg.Tokens, cfg.Header, cfg.Timeout, cfg.MaxBody,
		cfg.TLSInsecureSkipVerify, cfg.TLSTrustedCACerts, cfg.Cache, [2]int{cfg.LookupLimit, cfg.ClientMissLimit}, cfg.ClientMissWindow, cl, transport})
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// loadResolver returns the shared resolver for this config; its key is
// what Cleanup must release. rt, built from the settings transportKey
// describes, carries its session-service requests from now on. On error
// nothing is held.
func loadResolver(cfg sessionctx.Config, options json.RawMessage, cl *clusterSettings, transportKey json.RawMessage, rt *http.Transport) (*pooledResolver, error) {
	key := resolverKey(cfg, options, cl, transportKey)
	val, loaded, err := resolvers.LoadOrNew(key, func() (caddy.Destructor, error) {
		p := &pooledResolver{key: key, dialect: cfg.Dialect, url: redactURL(cfg.URL), transport: newServiceTransportHolder(rt)}
		cfg.Transport = p.transport
		cfg.Prepare = prepareIdentity
		cfg.Observe = func(d time.Duration, err error) {
			if p.metricsUsers.Load() > 0 {
				observeServiceCall(p.dialect, d, err)
			}
		}
		cfg.OnEvict = func(n int) {
			if p.metricsUsers.Load() > 0 {
				observeEvictions("capacity", n)
			}
		}
		if cl != nil {
			// The backend's identity alone (not the cache settings or
			// where tokens are read) names its entries in Redis: nodes
			// with the same session service share, whatever their
			// cache_ttl.
			id := cfg
			id.Tokens, id.Cache = nil, sessionctx.CacheConfig{}
			id.LookupLimit, id.ClientMissLimit, id.ClientMissWindow = 0, 0, 0
			tier, err := newTier(cl, resolverKey(id, options, nil, nil))
			if err != nil {
				return nil, fmt.Errorf("cluster: %w", err)
			}
			p.tier, cfg.Tier = tier, tier
		}
		client, err := sessionctx.New(cfg)
		if err != nil {
			if p.tier != nil {
				p.tier.Close()
			}
			return nil, err
		}
		p.Client = client
		return p, nil
	})
	if err != nil {
		// LoadOrNew has already dropped the failed entry from the pool
		// (with any reference a concurrent loader took on it), so there
		// is nothing for Cleanup to give back.
		rt.CloseIdleConnections()
		return nil, err
	}
	p := val.(*pooledResolver)
	if loaded {
		p.transport.install(rt)
	}
	return p, nil
}

// releaseResolver gives back a reference that loadResolver handed out.
func releaseResolver(key string) error {
	_, err := resolvers.Delete(key)
	return err
}

// liveResolvers lists the pooled resolvers, ordered so that the admin
// API's answer is stable.
func liveResolvers() []*pooledResolver {
	var out []*pooledResolver
	resolvers.Range(func(_, v any) bool {
		if p, ok := v.(*pooledResolver); ok {
			out = append(out, p)
		}
		return true
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].dialect != out[j].dialect {
			return out[i].dialect < out[j].dialect
		}
		if out[i].url != out[j].url {
			return out[i].url < out[j].url
		}
		return out[i].key < out[j].key
	})
	return out
}

// redactURL drops what may be a secret from a backend URL before it is
// shown: user info, the query (token_to query, API keys) and the fragment.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(unparsable url)"
	}
	u.User = nil
	u.RawQuery = ""
	u.ForceQuery = false
	u.Fragment = ""
	u.RawFragment = ""
	return u.String()
}
