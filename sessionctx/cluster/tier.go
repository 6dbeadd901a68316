package cluster

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// Defaults, as the docs give them.
const (
	DefaultKeyPrefix = "sessiongate:"
	DefaultTimeout   = 100 * time.Millisecond
	// MaxPoolSize bounds PoolSize: far more connections than requests a
	// node can serve at once only hold Redis's.
	MaxPoolSize = 10000
)

// DefaultPoolSize is the pool size when none is given: 64, or go-redis's
// own default (10 per CPU) where that is more. go-redis's default alone
// is smaller than the requests a small node serves at once, and a
// request that finds every connection busy waits for one.
func DefaultPoolSize() int { return max(64, 10*runtime.GOMAXPROCS(0)) }

// Kinds of message on the channel: a token's entry was invalidated, or
// filled (for the nodes waiting on another's lock), or every entry was
// purged (a new generation).
const (
	kindInvalidate = 'i'
	kindFilled     = 'f'
	kindPurge      = 'p'
)

// Config shapes a Tier.
type Config struct {
	// URL is the Redis server: redis://[user:password@]host:port/db, or
	// rediss:// for TLS. URLs, when set, replaces it.
	URL string
	// URLs, Mode, MasterName, SentinelUsername, SentinelPassword and TLS
	// say which Redis deployment to use and how to reach it (client.go).
	URLs                               []string
	Mode, MasterName                   string
	SentinelUsername, SentinelPassword string
	TLS                                *tls.Config
	// Secret seals every entry; at least MinSecretLen bytes.
	Secret string
	// KeyPrefix starts every Redis key and the invalidation channel.
	KeyPrefix string
	// Timeout bounds every Redis operation.
	Timeout time.Duration
	// PoolSize is the most connections to each Redis server for
	// requests; 0 is DefaultPoolSize().
	PoolSize int
	// Backend is the identity of the session service the entries come
	// from (a hash of its config), so that two backends on one Redis
	// never share entries.
	Backend string
	// Warn, if set, is told of Redis failures, at most once per 10s, and
	// of a purge of all that could not reach the other nodes, each time
	// (that warning shares no rate limit with the others).
	Warn func(msg string, err error)
	// Info, if set, is told once when the subscription is back after a
	// failure Warn was told of.
	Info func(msg string)
}

// Stats are a Tier's counters since it was made.
type Stats struct {
	Connected             bool   `json:"connected"`
	L2Hits                uint64 `json:"l2_hits"`
	L2Misses              uint64 `json:"l2_misses"`
	InvalidationsSent     uint64 `json:"invalidations_sent"`
	InvalidationsReceived uint64 `json:"invalidations_received"`
	// FillsSent counts the notices this node published that it answered
	// (or gave up) a token other nodes waited for; FillsReceived those of
	// other nodes it heard. A node publishes one only when another waits
	// for that token, never for every login, and neither counts as an
	// invalidation.
	FillsSent      uint64 `json:"fills_sent"`
	FillsReceived  uint64 `json:"fills_received"`
	SealedRejected uint64 `json:"sealed_rejected"`
	// RevokedRefused counts session entries refused because they were
	// filled before a revocation or purge this node knows of.
	RevokedRefused uint64 `json:"revoked_refused"`
	// MessagesRefused counts messages that opened but were too old or
	// seen before (replayed), or too large to open.
	MessagesRefused uint64 `json:"messages_refused"`
	// Undelivered is the number of revocations waiting for Redis to be
	// reachable again (a purge of all counts as one).
	Undelivered int `json:"undelivered"`
}

// Tier is a sessionctx.Tier on Redis. Every Redis operation is bounded by
// the configured timeout, and any failure is a miss: the node goes on
// with its own cache and the session service.
type Tier struct {
	client  redis.UniversalClient
	reads   *batcher // the reads of Get, pipelined under load
	sealer  *sealer
	timeout time.Duration
	prefix  string // key_prefix + backend identity
	channel string
	warn    func(string, error)
	info    func(msg string)
	warnAt  rate.Sometimes
	retryAt rate.Sometimes
	node    [8]byte // random: a node ignores its own messages

	mu      sync.Mutex
	link    sessionctx.TierLink
	waiters map[sessionctx.Key][]chan struct{}
	held    map[sessionctx.Key]*lease
	// attached is set by the first Attach: link is a client's.
	attached bool

	// gen is the highest generation of this backend's entries the node
	// has seen: the time (unix ns) of the last purge of all. A purge
	// stores a new one, sealed, in Redis and names it in its message;
	// a lower one, read or received, is never adopted. Entries live
	// under their generation and carry it sealed inside.
	gen atomic.Int64
	// purgedAt is the time of the last purge of all this node knows of
	// (the generation's time, or this node's own clock for its own
	// purge): no session entry filled before it is served.
	purgedAt atomic.Int64

	tombs  *tombstones
	replay *replayGuard
	outbox *outbox

	// subscribed is true while the subscription is live; synced once
	// the generation was read for it. Connected is both.
	subscribed, synced atomic.Bool
	syncGen            chan struct{}

	hits, misses, sent, received, rejected, revoked, refused atomic.Uint64
	fillsSent, fillsReceived                                 atomic.Uint64

	cancel context.CancelFunc
	wg     sync.WaitGroup
	// ps is the subscription, which Close closes so that a read blocked
	// on a quiet channel ends at once.
	ps *redis.PubSub
}

// lease is the lock this node holds for a token it looks up for every
// node.
type lease struct {
	lockKey, waitKey string
	token            string
	sawSession       bool // Redis held a session for the token
}

var _ sessionctx.Tier = (*Tier)(nil)

// New connects to Redis and starts the subscription to invalidations. It
// does not fail when Redis is down: the tier starts disconnected and
// connects by itself.
func New(cfg Config) (*Tier, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = DefaultKeyPrefix
	}
	s, err := newSealer(cfg.Secret, cfg.KeyPrefix, cfg.Backend)
	if err != nil {
		return nil, err
	}
	client, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	backend := cfg.Backend
	if len(backend) > 16 {
		backend = backend[:16]
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Tier{
		client:  client,
		reads:   newBatcher(client, cfg.mode(), cfg.Timeout),
		sealer:  s,
		timeout: cfg.Timeout,
		prefix:  cfg.KeyPrefix + backend + ":",
		warn:    cfg.Warn,
		info:    cfg.Info,
		warnAt:  rate.Sometimes{Interval: warnEvery},
		retryAt: rate.Sometimes{Interval: warnEvery},
		held:    map[sessionctx.Key]*lease{},
		tombs:   newTombstones(),
		replay:  newReplayGuard(),
		outbox:  newOutbox(),
		syncGen: make(chan struct{}, 1),
		cancel:  cancel,
	}
	t.channel = t.prefix + "invalidate"
	t.reads.abandoned = t.abandonedRead
	rand.Read(t.node[:])
	t.link.Lookup = 3 * time.Second
	t.wg.Add(3)
	go t.subscribe(ctx)
	go t.syncGeneration(ctx)
	go t.deliver(ctx)
	return t, nil
}

// Close stops the subscription and the retries and closes the
// connections. Revocations not delivered by then are lost with the node.
func (t *Tier) Close() error {
	t.cancel()
	t.mu.Lock()
	if t.ps != nil {
		_ = t.ps.Close()
	}
	t.mu.Unlock()
	t.wg.Wait()
	return t.client.Close()
}

// Stats returns the counters.
func (t *Tier) Stats() Stats {
	return Stats{
		Connected:             t.connected(),
		L2Hits:                t.hits.Load(),
		L2Misses:              t.misses.Load(),
		InvalidationsSent:     t.sent.Load(),
		InvalidationsReceived: t.received.Load(),
		FillsSent:             t.fillsSent.Load(),
		FillsReceived:         t.fillsReceived.Load(),
		SealedRejected:        t.rejected.Load(),
		RevokedRefused:        t.revoked.Load(),
		MessagesRefused:       t.refused.Load(),
		Undelivered:           t.outbox.len(),
	}
}

func (t *Tier) connected() bool { return t.subscribed.Load() && t.synced.Load() }

// Attach implements sessionctx.Tier. A Tier serves one client: a second
// Attach is an error, and leaves the first client's link in place.
func (t *Tier) Attach(link sessionctx.TierLink) error {
	t.mu.Lock()
	if t.attached {
		t.mu.Unlock()
		return errAttached
	}
	t.attached = true
	t.link = link
	if t.link.Lookup <= 0 {
		t.link.Lookup = 3 * time.Second
	}
	t.mu.Unlock()
	// An entry filled before a revocation is fresh here at most TTL after
	// its fill, and in a node's own cache stale at most StaleIfError
	// past that: the revocation is remembered as long.
	t.tombs.setRetain(max(link.Cache.TTL+link.Cache.StaleIfError, link.Cache.NegativeTTL))
	return nil
}

// errAttached is a second Attach: two clients on one Tier would leave the
// first without the other nodes' forgets and purges.
var errAttached = errors.New("this cluster tier serves another client already: make one Tier per client")

func (t *Tier) local() sessionctx.TierLink {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.link
}

// warnEvery is how often at most a failure of each kind (Redis
// unreachable, revocations not delivered) is warned of. A variable so
// that a test of the warnings need not wait for it.
var warnEvery = 10 * time.Second

func (t *Tier) failed(msg string, err error) {
	if t.warn != nil {
		t.warnAt.Do(func() { t.warn(msg, err) })
	}
}

func (t *Tier) failedRetry(err error) {
	if t.warn != nil {
		t.retryAt.Do(func() { t.warn("cluster revocations not delivered yet; retrying", err) })
	}
}

// keys are the Redis keys of a token in a generation: its entry, its
// lock and its waiting mark. They share the hash tag {name}, so one
// script may touch them all on a Redis Cluster. No token, nor its plain
// hash, only an HMAC of it.
type keys struct{ entry, lock, wait string }

func (t *Tier) keysOf(gen int64, key sessionctx.Key) keys {
	// The three names are built in one buffer and made one string: they
	// differ in one byte, and an L2 read names them all.
	var stack [192]byte
	b := append(stack[:0], t.prefix...)
	b = append(b, 's', ':')
	b = strconv.AppendInt(b, gen, 10)
	b = append(b, ':', '{')
	b = t.sealer.appendName(b, key[:])
	b = append(b, '}')
	n := len(b)
	b = append(b, b[:n]...)
	b = append(b, b[:n]...)
	at := len(t.prefix)
	b[n+at], b[2*n+at] = 'l', 'w'
	all := string(b)
	return keys{entry: all[:n], lock: all[n : 2*n], wait: all[2*n:]}
}

func (t *Tier) genKey() string { return t.prefix + "gen" }

// Get implements sessionctx.Tier. It reads the token's entry; when there
// is none this node takes the token's lock and looks it up for every
// node (nil back), or, when another node holds the lock, waits for that
// node's answer as long as its lookup may take, notified on the channel
// and polling Redis. It looks the token up itself only when the holder
// is gone (it gave its lookup up without an answer, or its lock
// expired).
//
// An entry that does not open (tampered, moved to another key, sealed
// with another secret), a session filled before a revocation or purge
// this node knows of, and an entry past what this node's own TTLs allow
// are never served.
func (t *Tier) Get(ctx context.Context, key sessionctx.Key, now time.Time) *sessionctx.SharedEntry {
	e, rest := t.Start(ctx, key, now)
	if rest != nil {
		return rest()
	}
	return e
}

// Start is Get's first read, one round trip: it returns Get's answer, or
// nil and rest, which does what Get would do after it (read again past an
// entry this node refuses, wait for another node's lookup) and must be
// called once. A sessionctx client makes this read on the goroutine of
// the request that starts the lookup, and hands only rest to the
// lookup's own. A type that embeds *Tier to change what Get answers must
// change what Start answers too: the client calls Start, not Get.
func (t *Tier) Start(ctx context.Context, key sessionctx.Key, now time.Time) (*sessionctx.SharedEntry, func() *sessionctx.SharedEntry) {
	if ctx.Err() != nil {
		// Nobody waits for the answer: not a miss, nothing to read.
		return nil, nil
	}
	if !t.connected() {
		t.misses.Add(1)
		return nil, nil
	}
	link := t.local()
	g := &getter{t: t, key: key, gen: t.gen.Load(), token: randomToken(), lockTTL: link.Lookup + t.timeout}
	g.ks = t.keysOf(g.gen, key)
	// The wait serves every request of this node for the token, not only
	// the first one's: its deadline, not a request's, bounds it, and ctx
	// ends it only when nobody waits any more (a sessionctx client's
	// lookup context ends when its last request is gone). A read waiting
	// for a batch in flight (under load, reads share round trips) ends
	// then too; a round trip itself, once sent, is not cut short: a reply
	// read halfway would leave the connection to be thrown away.
	g.done = ctx.Done()
	g.deadline = now.Add(g.lockTTL + t.timeout)
	e, more := g.step()
	if !more {
		return e, nil
	}
	return nil, g.rest
}

// getter is one Get: the token's keys and lock owner token, and what
// its reads found so far.
type getter struct {
	t        *Tier
	key      sessionctx.Key
	gen      int64
	ks       keys
	token    string
	lockTTL  time.Duration
	done     <-chan struct{}
	deadline time.Time
	// refused is the entry this node refused (read again past it).
	refused    string
	sawSession bool
	// locked says that the last read found another node's lock: the
	// next waits for its answer, a notice of which comes on wait.
	locked bool
	wait   chan struct{}
}

// step makes one read: it returns the answer, or nil and false (a miss:
// this node looks the token up, or may not wait; a failure; nobody
// waits), or more when the next read must follow (after waiting, when
// another node holds the lock).
func (g *getter) step() (e *sessionctx.SharedEntry, more bool) {
	t := g.t
	res, err := t.read(g.done, g.key, g.ks, g.token, g.lockTTL, g.refused)
	if errors.Is(err, errGone) {
		// Every request waiting left while the read waited for its
		// round trip: neither a miss nor a failure.
		g.drop()
		return nil, false
	}
	if err != nil {
		t.failed("cluster read failed; resolving locally", err)
		t.misses.Add(1)
		g.drop()
		return nil, false
	}
	state, _ := res[0].(int64)
	var raw string
	if len(res) > 1 {
		raw, _ = res[1].(string)
	}
	switch state {
	case 1:
		e, session := t.decode(g.ks.entry, raw, g.key, g.gen, time.Now())
		g.sawSession = g.sawSession || session
		if e != nil {
			t.hits.Add(1)
			g.drop()
			return e, false
		}
		// An entry this node refuses: take the lock to look it up.
		g.refused, g.locked = raw, false
		return nil, true
	case 2:
		t.mu.Lock()
		t.held[g.key] = &lease{lockKey: g.ks.lock, waitKey: g.ks.wait, token: g.token, sawSession: g.sawSession}
		t.mu.Unlock()
		t.misses.Add(1)
		g.drop()
		return nil, false
	case 4:
		t.misses.Add(1)
		g.drop()
		return nil, false
	}
	// Another node looks the token up: wait for its answer (the notice
	// is listened for from now, the read that found the lock).
	if g.wait == nil {
		g.wait = t.addWaiter(g.key)
	}
	g.locked = true
	return nil, true
}

// rest goes on from a step that asked for more, to Get's answer.
func (g *getter) rest() *sessionctx.SharedEntry {
	for {
		if g.locked {
			left := time.Until(g.deadline)
			if left <= 0 {
				g.t.misses.Add(1)
				g.drop()
				return nil
			}
			timer := time.NewTimer(min(left, pollEvery))
			select {
			case <-g.wait:
			case <-timer.C:
			case <-g.done:
				// Every request waiting is gone: neither a miss nor a
				// failure, and no lookup follows.
				timer.Stop()
				g.drop()
				return nil
			}
			timer.Stop()
		}
		if e, more := g.step(); !more {
			return e
		}
	}
}

// drop stops listening for notices of another node's answer.
func (g *getter) drop() {
	if g.wait != nil {
		g.t.dropWaiter(g.key, g.wait)
		g.wait = nil
	}
}

// pollEvery is how often a node waiting on another's lock looks at
// Redis, in case the notice of the answer was lost.
const pollEvery = 100 * time.Millisecond

// run runs a script, bounded by the timeout.
func (t *Tier) run(ctx context.Context, s *redis.Script, keys []string, args ...any) ([]any, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	return replies(runOnce(ctx, t.client, s, keys, args))
}

// read runs readScript for Get through the batcher.
func (t *Tier) read(gone <-chan struct{}, key sessionctx.Key, ks keys, token string, lockTTL time.Duration, refused string) ([]any, error) {
	return replies(t.reads.run(gone, key, readScript, []string{ks.entry, ks.lock, ks.wait}, token, lockTTL.Milliseconds(), refused))
}

// abandonedRead is told of a read whose requests all left after it was
// sent: when it took the token's lock for this node, the lock is given
// up again, so that the other nodes waiting for it look the token up at
// once rather than when it expires.
func (t *Tier) abandonedRead(c *call) {
	res, err := replies(c.res, c.err)
	if err != nil {
		return
	}
	if state, _ := res[0].(int64); state == 2 {
		token, _ := c.args[0].(string)
		go t.release(&lease{lockKey: c.keys[1], waitKey: c.keys[2], token: token}, c.key)
	}
}

// replies is a script's reply as a list.
func replies(v any, err error) ([]any, error) {
	if err != nil {
		return nil, err
	}
	if res, ok := v.([]any); ok && len(res) > 0 {
		return res, nil
	}
	return []any{v}, nil
}

// decode opens an entry read from Redis and returns it if this node may
// serve it at now, and whether it was a session.
func (t *Tier) decode(redisKey, raw string, key sessionctx.Key, gen int64, now time.Time) (*sessionctx.SharedEntry, bool) {
	plain, err := t.sealer.openString(redisKey, raw)
	var st stored
	if err == nil {
		st, err = decodeEntry(plain)
	}
	if err == nil && st.Gen != gen {
		err = errOpen
	}
	if err != nil {
		t.rejected.Add(1)
		t.failed("cluster entry rejected (does not open); resolving locally", err)
		return nil, false
	}
	cache := t.local().Cache
	if st.Session != nil {
		revoked := max(t.tombs.revokedAt(key), t.purgedAt.Load(), gen)
		if revoked != 0 && st.Filled < revoked+int64(clockSlack) {
			t.revoked.Add(1)
			return nil, true
		}
	}
	// This node's own TTLs bound what it serves, whatever the writer's.
	ttl := cache.TTL
	if st.Session == nil {
		ttl = cache.NegativeTTL
	}
	fresh, stale := st.Fresh, st.Stale
	if ttl > 0 {
		fresh = min(fresh, st.Filled+int64(ttl))
		stale = min(stale, fresh+int64(cache.StaleIfError))
	}
	stale = max(stale, fresh)
	if now.UnixNano() >= fresh {
		return nil, st.Session != nil
	}
	return &sessionctx.SharedEntry{Session: st.Session, Fresh: time.Unix(0, fresh), Stale: time.Unix(0, stale), Filled: time.Unix(0, st.Filled)}, st.Session != nil
}

func randomToken() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (t *Tier) addWaiter(key sessionctx.Key) chan struct{} {
	ch := make(chan struct{}, 1)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.waiters == nil {
		t.waiters = map[sessionctx.Key][]chan struct{}{}
	}
	t.waiters[key] = append(t.waiters[key], ch)
	return ch
}

func (t *Tier) dropWaiter(key sessionctx.Key, ch chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ws := t.waiters[key]
	for i, w := range ws {
		if w == ch {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(t.waiters, key)
	} else {
		t.waiters[key] = ws
	}
}

func (t *Tier) wake(key sessionctx.Key) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, w := range t.waiters[key] {
		select {
		case w <- struct{}{}:
		default:
		}
	}
}

func (t *Tier) takeLease(key sessionctx.Key) *lease {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.held[key]
	delete(t.held, key)
	return l
}

// Set implements sessionctx.Tier: the entry lives in Redis until its
// stale time, and the lock is handed over in the same round trip. A
// rejection tells the other nodes to drop the session they may hold for
// the token only when one may exist: this node held one, or Redis did.
func (t *Tier) Set(ctx context.Context, key sessionctx.Key, e *sessionctx.SharedEntry, now time.Time) {
	l := t.takeLease(key)
	revokes := e.Session == nil && (e.Revokes || (l != nil && l.sawSession))
	if revokes {
		t.tombs.add(key, now.UnixNano(), now.UnixNano())
	}
	ttl := e.Stale.Sub(now)
	if !t.connected() || ttl < time.Millisecond {
		if revokes {
			t.keep(key)
		} else if l != nil {
			t.release(l, key)
		}
		return
	}
	gen := t.gen.Load()
	filled := e.Filled
	if filled.IsZero() {
		filled = now
	}
	st := stored{Session: e.Session, Fresh: e.Fresh.UnixNano(), Stale: e.Stale.UnixNano(), Filled: filled.UnixNano(), Gen: gen}
	plain := appendEntry(make([]byte, 0, 256), &st)
	ks := t.keysOf(gen, key)
	token := ""
	if l != nil {
		// The lock may be of an older generation: same slot, its own key.
		ks.lock, ks.wait, token = l.lockKey, l.waitKey, l.token
	}
	kind, always := byte(kindFilled), "0"
	if revokes {
		kind, always = kindInvalidate, "1"
	}
	res, err := t.run(context.WithoutCancel(ctx), fillScript, []string{ks.entry, ks.lock, ks.wait},
		t.sealer.seal(ks.entry, plain), ttl.Milliseconds(), token, t.channel, t.message(kind, key[:]), always)
	if err != nil {
		t.failed("cluster write failed; entry not shared", err)
		if revokes {
			t.keep(key)
		}
		return
	}
	if published, _ := res[0].(int64); published == 1 {
		if revokes {
			t.sent.Add(1)
		} else {
			t.fillsSent.Add(1)
		}
	}
}

// Release implements sessionctx.Tier.
func (t *Tier) Release(key sessionctx.Key) {
	if l := t.takeLease(key); l != nil {
		t.release(l, key)
	}
}

func (t *Tier) release(l *lease, key sessionctx.Key) {
	mark := max(2*pollEvery, t.timeout)
	res, err := t.run(context.Background(), releaseScript, []string{l.lockKey, l.waitKey}, l.token, t.channel, t.message(kindFilled, key[:]), mark.Milliseconds())
	if err != nil {
		t.failed("cluster lock not released; it expires by itself", err)
		return
	}
	if published, _ := res[0].(int64); published == 2 {
		t.fillsSent.Add(1)
	}
}

// message seals one message for the channel: this node's id, a random
// message id, the time it is sent, its kind and body (a key, or a
// generation). Receivers refuse old and repeated ones, and the channel
// carries nothing a reader without the secret could link to a token.
func (t *Tier) message(kind byte, body []byte) []byte {
	plain := make([]byte, 0, msgHeader+len(body))
	plain = append(plain, t.node[:]...)
	var id msgID
	rand.Read(id[:])
	plain = append(plain, id[:]...)
	plain = binary.BigEndian.AppendUint64(plain, uint64(time.Now().UnixNano()))
	plain = append(plain, kind)
	plain = append(plain, body...)
	return t.sealer.seal(t.channel, plain)
}

// msgHeader is the length of a message before its body; maxMessage the
// longest sealed message a node opens (a key body is the longest).
const (
	msgHeader  = 8 + 16 + 8 + 1
	maxMessage = sealedOverhead + msgHeader + len(sessionctx.Key{})
)

// Forget implements sessionctx.Tier. The node remembers the revocation
// at once, so that it never serves an entry filled before it; an
// invalidation Redis does not take now is kept and sent again until it
// is delivered.
func (t *Tier) Forget(key sessionctx.Key) {
	now := time.Now().UnixNano()
	t.tombs.add(key, now, now)
	if err := t.send(context.Background(), 0, []sessionctx.Key{key}); err != nil {
		t.failed("cluster invalidation not sent; retrying", err)
		t.keep(key)
	}
}

// keep puts a revocation in the outbox; a full outbox becomes a purge
// of all.
func (t *Tier) keep(key sessionctx.Key) {
	if t.outbox.add(key) {
		return
	}
	t.outbox.addPurge(t.nextGen())
}

// Purge implements sessionctx.Tier: a new generation makes every entry of
// this backend unreachable at once, however many there are. The node
// itself adopts it at once; when Redis does not take it, the error says
// so and the purge is sent again until it is delivered.
func (t *Tier) Purge() error {
	gen := t.nextGen()
	if err := t.send(context.Background(), gen, nil); err != nil {
		t.outbox.addPurge(gen)
		err = fmt.Errorf("cluster purge not delivered to the other nodes yet (retrying): %w", err)
		if t.warn != nil {
			t.warn("cluster purge not delivered; retrying", err)
		}
		return err
	}
	return nil
}

// nextGen starts a new generation on this node: the time now, or one
// past the highest seen, and the purge time entries filled before may
// not pass.
func (t *Tier) nextGen() int64 {
	now := time.Now().UnixNano()
	for {
		old := t.gen.Load()
		gen := max(now, old+1)
		if t.gen.CompareAndSwap(old, gen) {
			t.raisePurgedAt(gen)
			return gen
		}
	}
}

func (t *Tier) raisePurgedAt(at int64) {
	for {
		old := t.purgedAt.Load()
		if at <= old || t.purgedAt.CompareAndSwap(old, at) {
			return
		}
	}
}

// adoptGen takes gen if it is higher than any seen, and then empties
// the node's cache (when purge is set): every entry it holds is older.
func (t *Tier) adoptGen(gen int64, purge bool) bool {
	for {
		old := t.gen.Load()
		if gen <= old {
			return false
		}
		if t.gen.CompareAndSwap(old, gen) {
			break
		}
	}
	t.raisePurgedAt(gen)
	if link := t.local(); purge && link.Purge != nil {
		link.Purge()
	}
	return true
}

// send delivers revocations in one round trip: a purge of all (when
// purge is not 0: the sealed generation stored, and announced) and the
// invalidation of each key (its entry deleted, and announced).
func (t *Tier) send(ctx context.Context, purge int64, ks []sessionctx.Key) error {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	gen := t.gen.Load()
	n := 0
	_, err := t.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		if purge != 0 {
			var b [8]byte
			binary.BigEndian.PutUint64(b[:], uint64(purge)) //nolint:gosec // G115: a time after 1970
			p.Set(ctx, t.genKey(), t.sealer.seal(t.genKey(), b[:]), 0)
			p.Publish(ctx, t.channel, t.message(kindPurge, b[:]))
			n++
		}
		for _, k := range ks {
			p.Del(ctx, t.keysOf(gen, k).entry)
			p.Publish(ctx, t.channel, t.message(kindInvalidate, k[:]))
			n++
		}
		return nil
	})
	if err != nil {
		return err
	}
	t.sent.Add(uint64(n))
	return nil
}

// readGen reads the sealed generation from Redis; one that does not open
// (written without the secret, or not a generation at all) is counted
// and ignored.
func (t *Tier) readGen(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	raw, err := t.client.Get(ctx, t.genKey()).Bytes()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(raw) > 0 && raw[0] == oldSealVersion {
		// The previous release's: its entries are under other names,
		// so the purges it names concern none this node reads.
		return 0, nil
	}
	plain, err := t.sealer.open(t.genKey(), raw)
	if err != nil || len(plain) != 8 {
		t.rejected.Add(1)
		t.failed("cluster generation rejected (does not open); keeping the highest seen", errOpen)
		return 0, nil
	}
	return int64(binary.BigEndian.Uint64(plain)), nil //nolint:gosec // G115: sealed by a node, a time after 1970
}

// syncGeneration reads the generation each time the subscription starts
// (outside the subscriber's loop, which only reads messages), and marks
// the tier connected once it has.
func (t *Tier) syncGeneration(ctx context.Context) {
	defer t.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.syncGen:
		}
		for t.subscribed.Load() && !t.synced.Load() {
			gen, err := t.readGen(ctx)
			if err == nil {
				t.adoptGen(gen, true)
				t.synced.Store(true)
				break
			}
			t.failed("cluster generation not read", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}

// subscribe applies the other nodes' invalidations until Close. Every
// subscription after the first empties the node's cache: what was
// published while it was away is lost, so nothing it holds can be
// trusted.
func (t *Tier) subscribe(ctx context.Context) {
	defer t.wg.Done()
	ps := t.client.Subscribe(ctx, t.channel)
	t.mu.Lock()
	t.ps = ps
	t.mu.Unlock()
	if ctx.Err() != nil {
		// Close came first and found no subscription to close.
		_ = ps.Close()
		return
	}
	const idle = time.Second
	first := true
	failing := false // since the last subscription, a failure was warned of
	heard := time.Now()

	for ctx.Err() == nil {
		msg, err := ps.ReceiveTimeout(ctx, idle)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() {
				// Quiet channel: a ping tells a live server from a
				// silent one; its pong is heard on the next turn.
				pctx, cancel := context.WithTimeout(ctx, t.timeout)
				_ = ps.Ping(pctx)
				cancel()
				if time.Since(heard) > 2*idle+t.timeout {
					// Silent, not gone: what is published meanwhile
					// waits on the same connection.
					t.subscribed.Store(false)
				}
				continue
			}
			t.subscribed.Store(false)
			t.synced.Store(false)
			if first {
				t.failed("cluster subscription not established yet; node goes on alone", err)
			} else {
				t.failed("cluster subscription lost; node goes on alone", err)
			}
			failing = true
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		heard = time.Now()
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind != "subscribe" {
				continue
			}
			if !first {
				if link := t.local(); link.Purge != nil {
					link.Purge()
				}
			}
			if failing && t.info != nil {
				if first {
					t.info("cluster subscription established; sharing with the other nodes")
				} else {
					t.info("cluster subscription restored; node cache emptied, sharing again")
				}
			}
			first, failing = false, false
			t.synced.Store(false)
			t.subscribed.Store(true)
			select {
			case t.syncGen <- struct{}{}:
			default:
			}
		case *redis.Pong:
			if !first && !t.subscribed.Load() {
				t.subscribed.Store(true)
			}
		case *redis.Message:
			t.apply(m.Payload, time.Now())
		}
	}
}

// apply applies one message from the channel. Oversize messages are
// dropped before opening; old and repeated ones (a captured message
// published again) are refused.
func (t *Tier) apply(payload string, now time.Time) {
	if len(payload) > maxMessage {
		t.refused.Add(1)
		t.failed("cluster message refused (too large)", fmt.Errorf("%d bytes", len(payload)))
		return
	}
	plain, err := t.sealer.openString(t.channel, payload)
	if err != nil || len(plain) < msgHeader {
		t.rejected.Add(1)
		t.failed("cluster invalidation rejected (does not open)", errOpen)
		return
	}
	if string(plain[:8]) == string(t.node[:]) {
		return // this node's own, applied already
	}
	var id msgID
	copy(id[:], plain[8:24])
	sent := int64(binary.BigEndian.Uint64(plain[24:32])) //nolint:gosec // G115: sealed by a node, a time after 1970
	kind, body := plain[32], plain[msgHeader:]
	if !t.replay.fresh(id, sent, now.UnixNano()) {
		t.refused.Add(1)
		t.failed("cluster message refused (old or repeated)", errReplay)
		return
	}
	switch kind {
	case kindPurge:
		if len(body) != 8 {
			return
		}
		t.received.Add(1)
		t.adoptGen(int64(binary.BigEndian.Uint64(body)), true) //nolint:gosec // G115: sealed by a node
	case kindInvalidate, kindFilled:
		var key sessionctx.Key
		if len(body) != len(key) {
			return
		}
		copy(key[:], body)
		if kind == kindFilled {
			t.fillsReceived.Add(1)
		}
		if kind == kindInvalidate {
			t.received.Add(1)
			t.tombs.add(key, max(sent, now.UnixNano()), now.UnixNano())
			if link := t.local(); link.Forget != nil {
				link.Forget(key)
			}
		}
		t.wake(key)
	}
}

var errReplay = errors.New("message too old or seen before")
