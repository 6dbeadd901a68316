package cluster

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
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
)

// purgeAll is the invalidation message that empties every node's cache.
const purgeAll = "*"

// Kinds of message on the channel, before the key: a token's entry was
// invalidated, or filled (for the nodes waiting on another's lock).
const (
	kindInvalidate = 'i'
	kindFilled     = 'f'
)

// Config shapes a Tier.
type Config struct {
	// URL is the Redis server: redis://[user:password@]host:port/db, or
	// rediss:// for TLS.
	URL string
	// Secret seals every entry; at least MinSecretLen bytes.
	Secret string
	// KeyPrefix starts every Redis key and the invalidation channel.
	KeyPrefix string
	// Timeout bounds every Redis operation.
	Timeout time.Duration
	// Backend is the identity of the session service the entries come
	// from (a hash of its config), so that two backends on one Redis
	// never share entries.
	Backend string
	// Warn, if set, is told of Redis failures, at most once per 10s.
	Warn func(msg string, err error)
}

// Stats are a Tier's counters since it was made.
type Stats struct {
	Connected             bool   `json:"connected"`
	L2Hits                uint64 `json:"l2_hits"`
	L2Misses              uint64 `json:"l2_misses"`
	InvalidationsSent     uint64 `json:"invalidations_sent"`
	InvalidationsReceived uint64 `json:"invalidations_received"`
	SealedRejected        uint64 `json:"sealed_rejected"`
}

// Tier is a sessionctx.Tier on Redis. Every Redis operation is bounded by
// the configured timeout, and any failure is a miss: the node goes on
// with its own cache and the session service.
type Tier struct {
	client  *redis.Client
	sealer  *sealer
	timeout time.Duration
	prefix  string // key_prefix + backend identity
	channel string
	warn    func(string, error)
	warnAt  rate.Sometimes
	node    string // random: a node ignores its own invalidations

	mu      sync.Mutex
	forget  func(sessionctx.Key)
	purge   func()
	waiters map[sessionctx.Key][]chan struct{}

	// gen is the generation of this backend's entries: a purge of all
	// bumps it in Redis, which leaves every older entry unreachable
	// until its TTL removes it.
	gen       atomic.Int64
	connected atomic.Bool

	hits, misses, sent, received, rejected atomic.Uint64

	cancel context.CancelFunc
	done   chan struct{}
	// ps is the subscription, which Close closes so that a read blocked
	// on a quiet channel ends at once.
	ps *redis.PubSub
}

var _ sessionctx.Tier = (*Tier)(nil)

// New connects to Redis and starts the subscription to invalidations. It
// does not fail when Redis is down: the tier starts disconnected and
// connects by itself.
func New(cfg Config) (*Tier, error) {
	s, err := newSealer(cfg.Secret)
	if err != nil {
		return nil, err
	}
	opts, err := redis.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("cluster url: %w", err)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = DefaultKeyPrefix
	}
	opts.DialTimeout = cfg.Timeout
	opts.ReadTimeout = cfg.Timeout
	opts.WriteTimeout = cfg.Timeout
	opts.PoolTimeout = cfg.Timeout
	opts.ContextTimeoutEnabled = true
	opts.MaxRetries = -1 // a retry would double the time a request waits on a sick Redis
	backend := cfg.Backend
	if len(backend) > 16 {
		backend = backend[:16]
	}
	var id [8]byte
	rand.Read(id[:])
	ctx, cancel := context.WithCancel(context.Background())
	t := &Tier{
		node:    string(id[:]),
		client:  redis.NewClient(opts),
		sealer:  s,
		timeout: cfg.Timeout,
		prefix:  cfg.KeyPrefix + backend + ":",
		channel: cfg.KeyPrefix + "invalidate",
		warn:    cfg.Warn,
		warnAt:  rate.Sometimes{Interval: 10 * time.Second},
		cancel:  cancel,
		done:    make(chan struct{}),
	}
	go t.subscribe(ctx)
	return t, nil
}

// Close stops the subscription and closes the connections.
func (t *Tier) Close() error {
	t.cancel()
	t.mu.Lock()
	if t.ps != nil {
		_ = t.ps.Close()
	}
	t.mu.Unlock()
	<-t.done
	return t.client.Close()
}

// Stats returns the counters.
func (t *Tier) Stats() Stats {
	return Stats{
		Connected:             t.connected.Load(),
		L2Hits:                t.hits.Load(),
		L2Misses:              t.misses.Load(),
		InvalidationsSent:     t.sent.Load(),
		InvalidationsReceived: t.received.Load(),
		SealedRejected:        t.rejected.Load(),
	}
}

// Attach implements sessionctx.Tier.
func (t *Tier) Attach(forget func(sessionctx.Key), purge func()) {
	t.mu.Lock()
	t.forget, t.purge = forget, purge
	t.mu.Unlock()
}

func (t *Tier) local() (func(sessionctx.Key), func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.forget, t.purge
}

func (t *Tier) failed(msg string, err error) {
	if t.warn != nil {
		t.warnAt.Do(func() { t.warn(msg, err) })
	}
}

// entryKey is the Redis key of a token's entry: no token, nor its plain
// hash, only an HMAC of it.
func (t *Tier) entryKey(key sessionctx.Key) string {
	return t.prefix + "s:" + strconv.FormatInt(t.gen.Load(), 10) + ":" + t.sealer.name(key[:])
}

func (t *Tier) genKey() string { return t.prefix + "gen" }

func (t *Tier) lockKey(key sessionctx.Key) string {
	return t.prefix + "l:" + t.sealer.name(key[:])
}

// stored is an entry as sealed in Redis. The session's own JSON form
// leaves out the dialect and the service's raw answer, which rendering
// in the dialect's shape needs, so they travel beside it.
type stored struct {
	Session *sessionctx.Session `json:"s,omitempty"`
	Dialect string              `json:"d,omitempty"`
	Raw     []byte              `json:"r,omitempty"`
	Fresh   int64               `json:"f"`
	Stale   int64               `json:"st"`
}

// Get implements sessionctx.Tier. An entry that does not open (tampered,
// moved to another key, sealed with another secret) is counted and never
// served.
func (t *Tier) Get(ctx context.Context, key sessionctx.Key, now time.Time) *sessionctx.SharedEntry {
	if !t.connected.Load() {
		t.misses.Add(1)
		return nil
	}
	rk := t.entryKey(key)
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	raw, err := t.client.Get(ctx, rk).Bytes()
	if errors.Is(err, redis.Nil) {
		raw, err = t.awaitOther(ctx, key, rk)
	}
	if err != nil {
		if !errors.Is(err, redis.Nil) {
			t.failed("cluster read failed; resolving locally", err)
		}
		t.misses.Add(1)
		return nil
	}
	plain, err := t.sealer.open(rk, raw)
	var st stored
	if err == nil {
		err = json.Unmarshal(plain, &st)
	}
	if err != nil {
		t.rejected.Add(1)
		t.misses.Add(1)
		t.failed("cluster entry rejected (does not open); resolving locally", err)
		return nil
	}
	if now.UnixNano() >= st.Fresh {
		t.misses.Add(1)
		return nil
	}
	if st.Session != nil {
		st.Session.Dialect, st.Session.Raw = st.Dialect, st.Raw
	}
	t.hits.Add(1)
	return &sessionctx.SharedEntry{Session: st.Session, Fresh: time.Unix(0, st.Fresh), Stale: time.Unix(0, st.Stale)}
}

// awaitOther is a miss: this node takes the token's lock and resolves it
// (redis.Nil back), or, when another node holds the lock, waits for that
// node's answer (notified on the channel, not polling) up to the timeout
// and reads it. Past the timeout the node resolves the token itself.
func (t *Tier) awaitOther(ctx context.Context, key sessionctx.Key, rk string) ([]byte, error) {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.timeout)
	took, err := t.client.SetNX(lctx, t.lockKey(key), t.node, t.timeout).Result()
	cancel()
	if err != nil || took {
		if err == nil {
			err = redis.Nil
		}
		return nil, err
	}
	ch := make(chan struct{}, 1)
	t.mu.Lock()
	if t.waiters == nil {
		t.waiters = map[sessionctx.Key][]chan struct{}{}
	}
	t.waiters[key] = append(t.waiters[key], ch)
	t.mu.Unlock()
	defer t.dropWaiter(key, ch)
	timer := time.NewTimer(t.timeout)
	defer timer.Stop()
	select {
	case <-ch:
	case <-timer.C:
		return nil, redis.Nil
	case <-ctx.Done():
		return nil, redis.Nil
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.timeout)
	defer cancel()
	return t.client.Get(rctx, rk).Bytes()
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

// Set implements sessionctx.Tier: the entry lives in Redis until its
// stale time. A rejection also tells the other nodes to drop the session
// they may hold for the token.
func (t *Tier) Set(ctx context.Context, key sessionctx.Key, e *sessionctx.SharedEntry, now time.Time) {
	if !t.connected.Load() {
		return
	}
	ttl := e.Stale.Sub(now)
	if ttl < time.Millisecond {
		return
	}
	st := stored{Session: e.Session, Fresh: e.Fresh.UnixNano(), Stale: e.Stale.UnixNano()}
	if e.Session != nil {
		st.Dialect, st.Raw = e.Session.Dialect, e.Session.Raw
	}
	plain, err := json.Marshal(st)
	if err != nil {
		t.failed("cluster entry not shared", err)
		return
	}
	rk := t.entryKey(key)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.timeout)
	defer cancel()
	if err := t.client.Set(ctx, rk, t.sealer.seal(rk, plain), ttl).Err(); err != nil {
		t.failed("cluster write failed; entry not shared", err)
		return
	}
	kind := byte(kindFilled)
	if e.Session == nil {
		kind = kindInvalidate
	}
	t.publish(ctx, t.message(kind, key))
	// The lock has done its work; the next miss (after expiry) may take it.
	t.client.Del(ctx, t.lockKey(key))
}

// message is the invalidation of one key: the key sealed to the channel,
// so that the channel carries no token hash a reader without the secret
// could link to a token.
func (t *Tier) message(kind byte, key sessionctx.Key) string {
	return string(t.sealer.seal(t.channel, []byte(t.prefix+t.node+string(kind)+string(key[:]))))
}

func (t *Tier) publish(ctx context.Context, msg string) {
	if err := t.client.Publish(ctx, t.channel, msg).Err(); err != nil {
		t.failed("cluster invalidation not sent", err)
		return
	}
	t.sent.Add(1)
}

// Forget implements sessionctx.Tier.
func (t *Tier) Forget(key sessionctx.Key) {
	ctx, cancel := context.WithTimeout(context.Background(), t.timeout)
	defer cancel()
	if err := t.client.Del(ctx, t.entryKey(key)).Err(); err != nil {
		t.failed("cluster delete failed", err)
	}
	t.publish(ctx, t.message(kindInvalidate, key))
}

// Purge implements sessionctx.Tier: a new generation makes every entry of
// this backend unreachable at once, however many there are.
func (t *Tier) Purge() {
	ctx, cancel := context.WithTimeout(context.Background(), t.timeout)
	defer cancel()
	gen, err := t.client.Incr(ctx, t.genKey()).Result()
	if err != nil {
		t.failed("cluster purge failed", err)
		return
	}
	t.gen.Store(gen)
	t.publish(ctx, string(t.sealer.seal(t.channel, []byte(t.prefix+t.node+purgeAll))))
}

func (t *Tier) readGen(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	gen, err := t.client.Get(ctx, t.genKey()).Int64()
	if errors.Is(err, redis.Nil) {
		gen, err = 0, nil
	}
	if err != nil {
		return err
	}
	t.gen.Store(gen)
	return nil
}

// subscribe applies the other nodes' invalidations until Close. Every
// subscription after the first empties the node's cache: what was
// published while it was away is lost, so nothing it holds can be
// trusted.
func (t *Tier) subscribe(ctx context.Context) {
	defer close(t.done)
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
					t.connected.Store(false)
				}
				continue
			}
			t.connected.Store(false)
			t.failed("cluster subscription lost; node goes on alone", err)
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
			if err := t.readGen(ctx); err != nil {
				t.failed("cluster generation not read", err)
			}
			if !first {
				if _, purge := t.local(); purge != nil {
					purge()
				}
			}
			first = false
			t.connected.Store(true)
		case *redis.Pong:
			if !first {
				t.connected.Store(true)
			}
		case *redis.Message:
			t.apply(ctx, m.Payload)
		}
	}
}

func (t *Tier) apply(ctx context.Context, payload string) {
	plain, err := t.sealer.open(t.channel, []byte(payload))
	if err != nil {
		t.rejected.Add(1)
		t.failed("cluster invalidation rejected (does not open)", err)
		return
	}
	body, ok := bytesCut(plain, t.prefix)
	if !ok || len(body) < len(t.node) {
		return // another backend's
	}
	if string(body[:len(t.node)]) == t.node {
		return // this node's own, applied already
	}
	body = body[len(t.node):]
	forget, purge := t.local()
	if string(body) == purgeAll {
		t.received.Add(1)
		if err := t.readGen(ctx); err != nil {
			t.failed("cluster generation not read", err)
		}
		if purge != nil {
			purge()
		}
		return
	}
	var key sessionctx.Key
	if len(body) != 1+len(key) {
		return
	}
	copy(key[:], body[1:])
	if body[0] == kindFilled {
		t.wake(key)
		return
	}
	t.received.Add(1)
	if forget != nil {
		forget(key)
	}
	t.wake(key)
}

func bytesCut(b []byte, prefix string) ([]byte, bool) {
	if len(b) < len(prefix) || string(b[:len(prefix)]) != prefix {
		return nil, false
	}
	return b[len(prefix):], true
}
