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
	// Filled is when the session service gave the answer. A Tier refuses
	// a session filled before a revocation it knows of, and serves an
	// entry no longer than its own client's TTLs allow from Filled.
	Filled time.Time
	// Revokes, on a rejection, says that the client held a session for
	// the token until the service rejected it: other nodes may hold one
	// too and must be told. A rejection of a token the client never saw
	// as a session revokes nothing anywhere the tier cannot see itself.
	Revokes bool
}

// TierLink is what a client gives its Tier: its local forget and purge,
// which the tier calls when another node forgets or purges (and purge
// alone when it may have missed such a message), and the bounds the tier
// needs to keep its promises.
type TierLink struct {
	Forget func(Key)
	Purge  func()
	// Cache is the client's cache settings, defaults applied: an entry
	// from another node is served no longer than these allow from its
	// fill, and a revocation is remembered as long as an entry filled
	// before it could still be served.
	Cache CacheConfig
	// Lookup is the longest one session-service lookup may take (the
	// backend's timeout): how long other nodes wait for this one's answer.
	Lookup time.Duration
}

// Tier is a cache shared by the clients of several nodes, consulted
// after a client's own cache and before the session service. It is an
// interface so that a Go user of this package who needs no shared cache
// links no client for one (the Redis tier is in package cluster).
//
// A Tier must never fail a request: when its store is unreachable, Get
// answers nil and the other methods do nothing but keep what must reach
// the other nodes (a revocation) to send it later, so the client goes on
// alone.
type Tier interface {
	// Get returns what some client stored for key, or nil when there is
	// nothing fresh at now. A nil answer may make this client the one
	// that looks the token up for every node: Set or Release ends that.
	Get(ctx context.Context, key Key, now time.Time) *SharedEntry
	// Set shares the client's answer for key.
	Set(ctx context.Context, key Key, e *SharedEntry, now time.Time)
	// Release ends the lookup a nil Get started when Set did not share
	// its answer (the service failed, or the token was forgotten
	// meanwhile), so that the nodes waiting for it look the token up
	// themselves. After Set it does nothing.
	Release(key Key)
	// Forget removes key on every node (logout, purge, rejection).
	Forget(key Key)
	// Purge removes every entry of this tier on every node. Its error
	// says that the other nodes could not be told yet; the tier keeps
	// trying.
	Purge() error
	// Attach links the tier to its client: New calls it, before the
	// first Get. A tier serves one client, whose forget and purge its
	// link carries: an Attach after the first returns an error, which New
	// returns, rather than leave the first client without them.
	Attach(link TierLink) error
}

// tierRefresher is a Tier that can lead a refresh ahead for every node
// (the cluster package's does).
// Refresh returns an answer some client filled after filled, when there
// is one; otherwise lead says whether this client took the token's
// lookup lock, and so refreshes it for every node (Set or Release ends
// that), or another client is looking the token up already (this one
// keeps its entry and does nothing). A Tier without it leaves each node
// to refresh its own entries, adopting an answer newer than its own when
// the tier has one.
type tierRefresher interface {
	Refresh(ctx context.Context, key Key, filled, now time.Time) (e *SharedEntry, lead bool)
}

// tierStarter is a Tier whose Get is one quick read of its store and then
// perhaps more (a wait for another node's lookup): Start makes that first
// read and returns an entry, or nil and no rest (Get's nil), or nil and
// rest, which goes on as Get would have and must be called once. The
// client makes the first read on the goroutine of the request that
// started the lookup and hands only the rest, when there is one, to the
// lookup's own goroutine (which the requests may leave): an answer from
// the tier then costs no hand-off between goroutines. The Redis tier has
// it.
type tierStarter interface {
	Start(ctx context.Context, key Key, now time.Time) (*SharedEntry, func() *SharedEntry)
}
