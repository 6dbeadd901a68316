package cluster

import (
	"testing"
	"time"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

func TestTombstonesExpireAndOverflowRaiseFloor(t *testing.T) {
	ts := newTombstones()
	ts.setRetain(time.Minute)
	now := time.Now().UnixNano()
	k1, k2 := key("t1"), key("t2")
	ts.add(k1, now, now)
	if got := ts.revokedAt(k1); got != now {
		t.Fatalf("revokedAt = %d, want %d", got, now)
	}
	if got := ts.revokedAt(k2); got != 0 {
		t.Fatalf("a key never revoked has revokedAt %d", got)
	}
	// Past retention (and the clock slack) it is gone: no entry filled
	// before it can still be fresh.
	later := now + int64(time.Minute+clockSlack) + 1
	ts.add(k2, later, later)
	if got := ts.revokedAt(k1); got != 0 {
		t.Fatalf("expired tombstone kept: %d", got)
	}
	// Overflow: the oldest goes, and its time applies to every key.
	for i := range maxTombstones + 1 {
		var k sessionctx.Key
		k[0], k[1], k[2] = byte(i), byte(i>>8), byte(i>>16)
		k[3] = 1
		ts.add(k, later+int64(i), later+int64(i))
	}
	if got := ts.revokedAt(key("never")); got < later {
		t.Fatalf("floor after overflow = %d, want at least %d", got, later)
	}
	if n := len(ts.at); n > maxTombstones {
		t.Fatalf("%d tombstones kept, bound %d", n, maxTombstones)
	}
}

func TestReplayGuard(t *testing.T) {
	g := newReplayGuard()
	now := time.Now().UnixNano()
	id := msgID{1}
	if !g.fresh(id, now, now) {
		t.Fatal("a new message refused")
	}
	if g.fresh(id, now, now+1) {
		t.Fatal("a repeated message accepted")
	}
	if g.fresh(msgID{2}, now-int64(messageWindow)-1, now) {
		t.Fatal("an old message accepted")
	}
	if g.fresh(msgID{3}, now+int64(messageWindow)+1, now) {
		t.Fatal("a message from the far future accepted")
	}
	// Overflow: ids dropped for room raise a floor, so they cannot come
	// back either.
	for i := range maxMessageIDs + 1 {
		var m msgID
		m[0], m[1], m[2], m[3] = 9, byte(i), byte(i>>8), byte(i>>16)
		g.fresh(m, now+int64(i), now)
	}
	if g.fresh(id, now, now) {
		t.Fatal("a message forgotten for room accepted again")
	}
}
