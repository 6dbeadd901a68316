package cluster

import (
	"context"
	"sync"
	"time"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// maxOutbox bounds the revocations kept for a Redis that cannot be
// reached. Past it they become one purge of all, which covers them.
const maxOutbox = 10_000

// retryEvery is how often undelivered revocations are sent again.
const retryEvery = 100 * time.Millisecond

// outbox holds the revocations (forgets, purges) this node could not
// publish, until they are delivered. The node itself applied them at
// once (its cache, its tombstones); the outbox is for the other nodes.
type outbox struct {
	mu    sync.Mutex
	keys  map[sessionctx.Key]struct{}
	order []sessionctx.Key
	purge int64 // generation of an undelivered purge of all, or 0
	kick  chan struct{}
}

func newOutbox() *outbox {
	return &outbox{keys: map[sessionctx.Key]struct{}{}, kick: make(chan struct{}, 1)}
}

// add keeps key; false when the outbox is full (the caller turns that
// into a purge of all).
func (o *outbox) add(key sessionctx.Key) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.keys[key]; !ok {
		if len(o.keys) >= maxOutbox {
			return false
		}
		o.keys[key] = struct{}{}
		o.order = append(o.order, key)
	}
	o.wake()
	return true
}

// addPurge keeps a purge of all at gen, which covers every key kept.
func (o *outbox) addPurge(gen int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.purge = max(o.purge, gen)
	o.keys = map[sessionctx.Key]struct{}{}
	o.order = nil
	o.wake()
}

func (o *outbox) wake() {
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// maxBatch bounds the keys sent in one round trip.
const maxBatch = 256

// pending is what is to be sent next: a purge's generation (or 0) and
// up to maxBatch keys.
func (o *outbox) pending() (int64, []sessionctx.Key) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.purge, append([]sessionctx.Key(nil), o.order[:min(len(o.order), maxBatch)]...)
}

// delivered drops what was sent: the purge if it is still the one sent,
// and the keys.
func (o *outbox) delivered(purge int64, keys []sessionctx.Key) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.purge == purge {
		o.purge = 0
	}
	for _, k := range keys {
		delete(o.keys, k)
	}
	kept := o.order[:0]
	for _, k := range o.order {
		if _, ok := o.keys[k]; ok {
			kept = append(kept, k)
		}
	}
	o.order = kept
}

func (o *outbox) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := len(o.keys)
	if o.purge != 0 {
		n++
	}
	return n
}

// deliver sends what the outbox holds until Close, every retryEvery
// while something is pending.
func (t *Tier) deliver(ctx context.Context) {
	defer t.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.outbox.kick:
		}
		for t.outbox.len() > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(retryEvery):
			}
			purge, keys := t.outbox.pending()
			if err := t.send(ctx, purge, keys); err != nil {
				t.failedRetry(err)
				continue
			}
			t.outbox.delivered(purge, keys)
		}
	}
}
