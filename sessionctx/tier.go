package sessionctx

import (
	"context"
	"time"
)

// SharedEntry is a resolver's answer as a Tier keeps it for other
// resolvers (other nodes): a session, or a rejection when Session is nil,
// with the times the answering resolver gave it.
type SharedEntry struct {
	Session      *Session
	Fresh, Stale time.Time
}

// Tier is a cache shared by the resolvers of several nodes, consulted
// after a resolver's own cache and before the session service. It is an
// interface so that a Go user of this package who needs no shared cache
// links no client for one (the Redis tier is in package cluster).
type Tier interface {
	// Lookup returns what some resolver stored for key, or nil. fill is
	// nil when the entry is fresh at now; otherwise the caller must call
	// fill exactly once, with its own answer to share or with nil when it
	// has none (a service error, or a forget during the lookup). Lookup
	// may wait, for a bounded time, for another node fetching the same key.
	Lookup(ctx context.Context, key Key, now time.Time) (e *SharedEntry, fill func(*SharedEntry))
	// Forget removes key on every node (logout, purge, rejection).
	Forget(key Key)
	// Purge removes every entry of this tier on every node.
	Purge()
	// Attach gives the tier the resolver's local forget and purge, which
	// it calls when another node forgets or purges, and purge alone when
	// it may have missed such a message (a lost subscription).
	Attach(forget func(Key), purge func())
}
