package caddymodule

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"sort"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// resolvers holds every live resolver, keyed by a hash of the config that
// shapes it, so that a config reload with the same backend keeps its cache
// and two handlers naming the same backend share one.
var resolvers = caddy.NewUsagePool()

// pooledResolver is a resolver with what the admin API and the metrics
// need to name it. It is shared by every handler with the same config, so
// it outlives any one of them.
type pooledResolver struct {
	*sessionctx.Resolver
	key     string
	dialect string
	url     string // without credentials or query: safe to show

	// metricsUsers counts the handlers using this resolver that have
	// metrics on; the resolver-level observations (service calls, errors,
	// evictions) are recorded only while it is positive.
	metricsUsers atomic.Int64
}

// Destruct implements caddy.Destructor. A resolver holds no goroutine or
// file; dropping the last reference frees it.
func (*pooledResolver) Destruct() error { return nil }

func resolverKey(b sessionctx.BackendConfig, c sessionctx.CacheConfig) string {
	raw, _ := json.Marshal(struct {
		B sessionctx.BackendConfig
		C sessionctx.CacheConfig
	}{b, c})
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// loadResolver returns the shared resolver for this config; its key is
// what Cleanup must release. On error nothing is held.
func loadResolver(b sessionctx.BackendConfig, c sessionctx.CacheConfig) (*pooledResolver, error) {
	key := resolverKey(b, c)
	val, _, err := resolvers.LoadOrNew(key, func() (caddy.Destructor, error) {
		backend, _, err := sessionctx.NewBackend(b)
		if err != nil {
			return nil, err
		}
		p := &pooledResolver{
			Resolver: sessionctx.NewResolver(backend, c),
			key:      key,
			dialect:  b.Dialect,
			url:      redactURL(b.URL),
		}
		p.Prepare = prepareIdentity
		p.Observe = func(d time.Duration, err error) {
			if p.metricsUsers.Load() > 0 {
				observeServiceCall(p.dialect, d, err)
			}
		}
		p.OnEvict = func(n int) {
			if p.metricsUsers.Load() > 0 {
				observeEvictions("capacity", n)
			}
		}
		return p, nil
	})
	if err != nil {
		// LoadOrNew has already dropped the failed entry from the pool
		// (with any reference a concurrent loader took on it), so there
		// is nothing for Cleanup to give back.
		return nil, err
	}
	return val.(*pooledResolver), nil
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
