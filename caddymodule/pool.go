package caddymodule

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"github.com/caddyserver/caddy/v2"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// resolvers holds every live resolver, keyed by a hash of the config that
// shapes it, so that a config reload with the same backend keeps its cache
// and two handlers naming the same backend share one.
var resolvers = caddy.NewUsagePool()

type pooledResolver struct{ *sessionctx.Resolver }

// Destruct implements caddy.Destructor. A resolver holds no goroutine or
// file; dropping the last reference frees it.
func (pooledResolver) Destruct() error { return nil }

func resolverKey(b sessionctx.BackendConfig, c sessionctx.CacheConfig) string {
	raw, _ := json.Marshal(struct {
		B sessionctx.BackendConfig
		C sessionctx.CacheConfig
	}{b, c})
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// loadResolver returns the shared resolver for this config and the pool
// key that Cleanup must release.
func loadResolver(b sessionctx.BackendConfig, c sessionctx.CacheConfig) (*sessionctx.Resolver, string, error) {
	key := resolverKey(b, c)
	val, _, err := resolvers.LoadOrNew(key, func() (caddy.Destructor, error) {
		backend, _, err := sessionctx.NewBackend(b)
		if err != nil {
			return nil, err
		}
		r := sessionctx.NewResolver(backend, c)
		r.Prepare = prepareIdentity
		return pooledResolver{r}, nil
	})
	if err != nil {
		return nil, "", err
	}
	return val.(pooledResolver).Resolver, key, nil
}
