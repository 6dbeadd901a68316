package cluster

import (
	"context"
	"time"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// Refresh is what sessionctx asks of a tier that can lead a refresh
// ahead: it makes a refresh one session-service call for the whole
// cluster. The node whose entry comes
// due first takes the token's lock, as a miss does, although Redis still
// holds the entry (the one this node holds, filled at filled); a node
// that finds an answer filled since adopts it, and one that finds the
// lock taken leaves the refresh to its holder. Without Redis, the node
// refreshes on its own (lead, with no lock to release).
func (t *Tier) Refresh(ctx context.Context, key sessionctx.Key, filled, now time.Time) (*sessionctx.SharedEntry, bool) {
	_ = now
	if !t.connected() {
		return nil, true
	}
	link := t.local()
	gen := t.gen.Load()
	ks := t.keysOf(gen, key)
	lockTTL := link.Lookup + t.timeout
	token := randomToken()
	ctx = context.WithoutCancel(ctx)
	refused := ""
	// The entry may change between two reads (another node's fill): a few
	// tries, then the refresh is left to that node.
	for range 3 {
		res, err := t.run(ctx, readScript, []string{ks.entry, ks.lock, ks.wait}, token, lockTTL.Milliseconds(), refused)
		if err != nil {
			t.failed("cluster read failed; refreshing locally", err)
			return nil, true
		}
		state, _ := res[0].(int64)
		switch state {
		case 1:
			raw := ""
			if len(res) > 1 {
				raw, _ = res[1].(string)
			}
			if e, _ := t.decode(ks.entry, raw, key, gen, time.Now()); e != nil && e.Filled.After(filled) {
				t.hits.Add(1)
				return e, false
			}
			// What this node holds already (or one it refuses): take
			// the lock past it.
			refused = raw
		case 2:
			t.mu.Lock()
			t.held[key] = &lease{lockKey: ks.lock, waitKey: ks.wait, token: token, sawSession: true}
			t.mu.Unlock()
			return nil, true
		default:
			// 3: another node looks the token up; 4: one gave up a
			// moment ago. Either way not this node's turn.
			return nil, false
		}
	}
	return nil, false
}
