package sessionctx

import (
	"context"
	"time"
)

// SharedEntry is a client's answer as a Tier keeps it for other
// clients (other nodes): a session, or a rejection when Session is nil,
// with the times the answering client gave it.
type SharedEntry struct {
	Session      *Session
	Fresh, Stale time.Time
}

// Tier is a cache shared by the clients of several nodes, consulted
// after a client's own cache and before the session service. It is an
// interface so that a Go user of this package who needs no shared cache
// links no client for one (the Redis tier is in package cluster).
//
// A Tier must never fail a request: when its store is unreachable, Get
// answers nil and the other methods do nothing, so the client goes on
// alone.
type Tier interface {
	// Get returns what some client stored for key, or nil when there is
	// nothing fresh at now.
	Get(ctx context.Context, key Key, now time.Time) *SharedEntry
	// Set shares the client's answer for key.
	Set(ctx context.Context, key Key, e *SharedEntry, now time.Time)
	// Forget removes key on every node (logout, purge, rejection).
	Forget(key Key)
	// Purge removes every entry of this tier on every node.
	Purge()
	// Attach gives the tier the client's local forget and purge, which
	// it calls when another node forgets or purges, and purge alone when
	// it may have missed such a message (a lost subscription).
	Attach(forget func(Key), purge func())
}
