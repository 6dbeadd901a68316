package sessionctx

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// Lookup limit defaults, as the docs give them.
const (
	defaultLookupLimit        = 64
	defaultClientMissLimit    = 30
	defaultClientMissWindow   = time.Second
	defaultRefreshAhead       = 0.8
	defaultClientTableEntries = 65536
)

// lookupLimits protect the session service from a flood of tokens it
// has never seen: only lookups (a token neither the cache nor the shared
// tier can answer) count; a cached session or a cached rejection never
// does, and is never refused. Config gives them.
type lookupLimits struct {
	inFlight, perClient int
	window              time.Duration
}

func (l lookupLimits) withDefaults() lookupLimits {
	if l.inFlight == 0 {
		l.inFlight = defaultLookupLimit
	}
	if l.perClient == 0 {
		l.perClient = defaultClientMissLimit
	}
	if l.window <= 0 {
		l.window = defaultClientMissWindow
	}
	return l
}

var (
	errLookupLimit = &unavailableError{Kind: FailureLookupLimit, msg: "too many session-service lookups in flight"}
	errClientLimit = &unavailableError{Kind: FailureClientLimit, msg: "too many session lookups from this client"}
)

// limiter holds a resolver's lookup limits and their counters.
type limiter struct {
	// slots has one element per lookup under way; nil when unbounded.
	slots chan struct{}
	// wait is how long a lookup waits for a slot: the backend timeout.
	wait    time.Duration
	clients *clientTable // nil when unbounded

	waiting, inFlight           atomic.Int64
	refusedLimit, refusedClient atomic.Uint64
}

func newLimiter(l lookupLimits, wait time.Duration) *limiter {
	l = l.withDefaults()
	lim := &limiter{wait: wait}
	if l.inFlight > 0 {
		lim.slots = make(chan struct{}, l.inFlight)
	}
	if l.perClient > 0 {
		lim.clients = newClientTable(l.perClient, l.window, defaultClientTableEntries)
	}
	return lim
}

// acquire takes a lookup slot, waiting at most l.wait. It reports false
// when none came free: the lookup must not be made. The wait is not cut
// short when the first requester leaves: others may have joined it.
func (l *limiter) acquire() bool {
	if l == nil || l.slots == nil {
		return true
	}
	select {
	case l.slots <- struct{}{}:
		l.inFlight.Add(1)
		return true
	default:
	}
	l.waiting.Add(1)
	defer l.waiting.Add(-1)
	t := time.NewTimer(l.wait)
	defer t.Stop()
	select {
	case l.slots <- struct{}{}:
		l.inFlight.Add(1)
		return true
	case <-t.C:
	}
	l.refusedLimit.Add(1)
	return false
}

// tryAcquire takes a slot only if one is free now: what a refresh ahead
// does, which is skipped rather than queued.
func (l *limiter) tryAcquire() bool {
	if l == nil || l.slots == nil {
		return true
	}
	select {
	case l.slots <- struct{}{}:
		l.inFlight.Add(1)
		return true
	default:
		return false
	}
}

func (l *limiter) release() {
	if l == nil || l.slots == nil {
		return
	}
	l.inFlight.Add(-1)
	<-l.slots
}

// admit charges client one lookup; a nil error lets it start.
func (l *limiter) admit(client string, now int64) error {
	if l == nil || l.clients == nil || client == "" {
		return nil
	}
	if _, ok := l.clients.take(client, now); !ok {
		l.refusedClient.Add(1)
		return errClientLimit
	}
	return nil
}

// clientTable is a token bucket per client address in a fixed number of
// shards, each bounded: memory does not grow with the number of
// addresses. A shard that is full drops an idle client's bucket (one
// that has refilled completely, which loses nothing), or failing that
// any one: a client so evicted starts again with a full bucket, which the
// in-flight bound still caps.
type clientTable struct {
	burst    float64
	perNanos float64 // tokens regained per nanosecond
	window   int64
	perShard int
	seed     maphash.Seed
	shards   [64]clientShard
}

type clientShard struct {
	mu sync.Mutex
	m  map[string]*bucket
}

type bucket struct {
	tokens float64
	last   int64
}

// evictScan bounds the buckets one insert into a full shard looks at
// for an idle one.
const evictScan = 8

func newClientTable(n int, window time.Duration, entries int) *clientTable {
	t := &clientTable{
		burst:    float64(n),
		perNanos: float64(n) / float64(window),
		window:   int64(window),
		perShard: max(1, entries/64),
		seed:     maphash.MakeSeed(),
	}
	for i := range t.shards {
		t.shards[i].m = make(map[string]*bucket)
	}
	return t
}

// take spends one of client's tokens at now. When there is none it
// reports false and how long until there is.
func (t *clientTable) take(client string, now int64) (time.Duration, bool) {
	sh := &t.shards[maphash.String(t.seed, client)%uint64(len(t.shards))]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b := sh.m[client]
	if b == nil {
		if len(sh.m) >= t.perShard {
			t.evict(sh, now)
		}
		b = &bucket{tokens: t.burst, last: now}
		sh.m[client] = b
	}
	if now > b.last {
		b.tokens = min(t.burst, b.tokens+float64(now-b.last)*t.perNanos)
		b.last = now
	}
	if b.tokens < 1 {
		return time.Duration((1 - b.tokens) / t.perNanos), false
	}
	b.tokens--
	return 0, true
}

func (t *clientTable) evict(sh *clientShard, now int64) {
	seen := 0
	var any string
	for k, b := range sh.m {
		if now-b.last >= t.window {
			delete(sh.m, k)
			return
		}
		if seen == 0 {
			any = k
		}
		if seen++; seen >= evictScan {
			break
		}
	}
	delete(sh.m, any)
}

// size is how many clients the table holds now.
func (t *clientTable) size() int {
	n := 0
	for i := range t.shards {
		t.shards[i].mu.Lock()
		n += len(t.shards[i].m)
		t.shards[i].mu.Unlock()
	}
	return n
}
