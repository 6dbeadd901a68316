package cluster

import (
	"sync"
	"time"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// clockSlack is how far the clocks of two nodes may disagree: a session
// entry filled less than this after a revocation this node knows of is
// refused too, as the filling node's clock may be ahead.
const clockSlack = time.Second

// Bounds of the node-local memories, so that a flood (of logouts, of
// messages) costs bounded memory. Past a bound the oldest is forgotten
// and its time becomes a floor that applies to every key: refusing more,
// never less.
const (
	maxTombstones = 100_000
	maxMessageIDs = 100_000
)

// tombstones are the revocations this node knows of: key -> revoked-at,
// kept as long as a session entry filled before could still be served
// (the longest TTL of the node's cache, and the clock slack).
type tombstones struct {
	mu     sync.Mutex
	at     map[sessionctx.Key]int64
	order  []tomb // by time of adding, oldest first
	head   int
	floor  int64
	retain time.Duration
}

type tomb struct {
	key sessionctx.Key
	at  int64
}

func newTombstones() *tombstones {
	return &tombstones{at: map[sessionctx.Key]int64{}, retain: 10 * time.Minute}
}

func (ts *tombstones) setRetain(d time.Duration) {
	ts.mu.Lock()
	ts.retain = d + clockSlack
	ts.mu.Unlock()
}

// add remembers that key was revoked at (unix ns); now is the node's
// clock, which drops the tombstones no entry can outlive.
func (ts *tombstones) add(key sessionctx.Key, at, now int64) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.expire(now)
	if old, ok := ts.at[key]; ok && old >= at {
		return
	}
	ts.at[key] = at
	ts.order = append(ts.order, tomb{key, at})
	for len(ts.at) > maxTombstones {
		ts.pop(true)
	}
}

// revokedAt is the latest revocation of key this node knows of, or 0.
func (ts *tombstones) revokedAt(key sessionctx.Key) int64 {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return max(ts.at[key], ts.floor)
}

func (ts *tombstones) expire(now int64) {
	for ts.head < len(ts.order) && ts.order[ts.head].at+int64(ts.retain) < now {
		ts.pop(false)
	}
}

// pop drops the oldest tombstone; raise makes its time the floor of all
// (it is dropped for room, not because it expired).
func (ts *tombstones) pop(raise bool) {
	t := ts.order[ts.head]
	ts.order[ts.head] = tomb{}
	ts.head++
	if ts.at[t.key] == t.at {
		delete(ts.at, t.key)
		if raise {
			ts.floor = max(ts.floor, t.at)
		}
	}
	if ts.head > len(ts.order)/2 && ts.head > 1024 {
		ts.order = append(ts.order[:0], ts.order[ts.head:]...)
		ts.head = 0
	}
}

// replayGuard refuses invalidation messages that are too old or seen
// before: a message captured on the channel and published again is not
// applied again.
type replayGuard struct {
	mu     sync.Mutex
	seen   map[msgID]int64
	order  []seenID
	head   int
	floor  int64 // sent times at or below it are refused (ids dropped for room)
	window time.Duration
}

type msgID [16]byte

type seenID struct {
	id   msgID
	sent int64
}

// messageWindow is how old (by the sender's clock) a message may be when
// it arrives, and how long its id is remembered. Node clocks must agree
// well within it.
const messageWindow = 30 * time.Second

func newReplayGuard() *replayGuard {
	return &replayGuard{seen: map[msgID]int64{}, window: messageWindow}
}

// fresh reports whether a message with this id, sent at sent, may be
// applied now, and remembers it.
func (g *replayGuard) fresh(id msgID, sent, now int64) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	w := int64(g.window)
	for g.head < len(g.order) && g.order[g.head].sent+w < now {
		g.pop(false)
	}
	if sent+w < now || sent > now+w || sent <= g.floor {
		return false
	}
	if _, dup := g.seen[id]; dup {
		return false
	}
	g.seen[id] = sent
	g.order = append(g.order, seenID{id, sent})
	for len(g.seen) > maxMessageIDs {
		g.pop(true)
	}
	return true
}

func (g *replayGuard) pop(raise bool) {
	s := g.order[g.head]
	g.order[g.head] = seenID{}
	g.head++
	delete(g.seen, s.id)
	if raise {
		g.floor = max(g.floor, s.sent)
	}
	if g.head > len(g.order)/2 && g.head > 1024 {
		g.order = append(g.order[:0], g.order[g.head:]...)
		g.head = 0
	}
}
