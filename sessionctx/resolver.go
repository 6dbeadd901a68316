package sessionctx

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"
)

// Cache defaults, as the docs give them.
const (
	defaultCacheTTL    = 5 * time.Minute
	defaultNegativeTTL = 10 * time.Second
	defaultCacheMax    = 100000
)

// CacheConfig shapes a Client's cache. Zero values take the defaults.
type CacheConfig struct {
	// TTL is the upper bound on a cached session; the session's own
	// expiry shortens it.
	TTL time.Duration
	// NegativeTTL is how long a rejected token stays rejected.
	NegativeTTL time.Duration
	// StaleIfError lets a session be served this long past its TTL while
	// the session service fails (never past the session's own expiry).
	StaleIfError time.Duration
	// Max bounds the sessions kept, and separately the rejections kept, so
	// a flood of random tokens can only push out other rejections.
	Max int
	// RefreshAhead is the fraction of a session's cache life after which
	// a request that finds it is still served from the cache but starts
	// one refresh in the background, so that a session in use never
	// expires into a lookup its request must wait for. New takes 0 for
	// the default, 0.8; negative turns it off. Must be
	// below 1.
	RefreshAhead float64 `json:",omitempty"`
}

func (c CacheConfig) withDefaults() CacheConfig {
	if c.TTL <= 0 {
		c.TTL = defaultCacheTTL
	}
	if c.NegativeTTL <= 0 {
		c.NegativeTTL = defaultNegativeTTL
	}
	if c.StaleIfError < 0 {
		c.StaleIfError = 0
	}
	if c.Max <= 0 {
		c.Max = defaultCacheMax
	}
	return c
}

// Result is a resolved session and how it was obtained.
type Result struct {
	Session *Session
	// Prepared is what Config.Prepare made of the session.
	Prepared any
	// Key is the token's cache key.
	Key Key
	// Source is where the token was read; set with an error too, so that a
	// malformed token can still be stripped.
	Source TokenSource
	// Ambiguous is set with an error when the request carries its
	// credential in a form parsers may read differently (a TR50
	// envelope with two sessionId keys, or naming another session than
	// the sessionId header): answer 400, optional or not, since the app
	// behind could act on a session other than the one checked.
	Ambiguous bool
	// Hit is true when no session-service call was made for this request.
	Hit bool
	// Stale is true when the session was served past its TTL because the
	// session service failed.
	Stale bool

	// called is true when the answer came from a session-service call
	// (the request's own or one it joined).
	called bool
}

// Stats are a Client's counters since it was made.
type Stats struct {
	Entries           int           `json:"entries"`
	Rejections        int           `json:"rejections"`
	Hits              uint64        `json:"hits"`
	Misses            uint64        `json:"misses"`
	StaleServes       uint64        `json:"stale_serves"`
	ServiceCalls      uint64        `json:"service_calls"`
	ServiceErrors     uint64        `json:"service_errors"`
	Evictions         uint64        `json:"evictions"`
	ServiceLatencyAvg time.Duration `json:"service_latency_avg_ns,omitempty"`
	// Waited counts the requests that waited on a session-service call
	// (their own, or one they joined): what refresh ahead drives to zero
	// for the tokens in use.
	Waited uint64 `json:"waited"`
	// RefreshesStarted counts the refreshes ahead started, and
	// RefreshesSkipped those not started for want of a lookup slot.
	RefreshesStarted uint64 `json:"refreshes_started"`
	RefreshesSkipped uint64 `json:"refreshes_skipped"`
	// RefusedLookupLimit and RefusedClientLimit count the lookups refused
	// by each limit, without a session-service call.
	RefusedLookupLimit uint64 `json:"refused_lookup_limit"`
	RefusedClientLimit uint64 `json:"refused_client_limit"`
	// LookupsWaiting and LookupsInFlight are now: lookups waiting for a
	// slot, and lookups holding one.
	LookupsWaiting  int64 `json:"lookups_waiting"`
	LookupsInFlight int64 `json:"lookups_in_flight"`
}

// resolver resolves tokens through a Backend with a bounded cache: one
// service call per token however many requests race for it, sessions kept
// for min(TTL, what the session has left), rejections for NegativeTTL,
// service errors never.
type resolver struct {
	be     backend
	cfg    CacheConfig
	pos    entryStore
	neg    entryStore
	flight lookups
	// waiting ends a lookup's context when no request waits for it.
	waiting flights

	// The hooks of Config: Prepare, Observe and OnEvict.
	prepare func(*Session) any
	observe func(d time.Duration, err error)
	onEvict func(n int)

	now func() time.Time

	hits, misses, staleServes, calls, errs, evictions, callNanos atomic.Uint64

	waited, refreshes, refreshSkips atomic.Uint64

	// lim bounds the lookups (nil: no bound); clientOf names a request's
	// client for its per-client limit.
	lim      *limiter
	clientOf func(*http.Request) string

	// tier, if set, is the cache shared with other nodes, consulted on a
	// miss before the session service.
	tier Tier

	// forgets counts Forget and Purge calls. A lookup in flight when
	// its token is forgotten does not cache its answer: the session it
	// fetched may be the one just logged out or revoked.
	forgets forgetClock
}

// forgetClock counts forgets per stripe of keys and purges for all, so
// that forgetting one token (a logout, or another node's rejection of
// it) does not send lookups of other tokens to the session service.
type forgetClock struct {
	purges  atomic.Uint64
	stripes [64]atomic.Uint64
}

// at is the count that concerns key. Both counts only grow, so their sum
// is unchanged only when neither moved.
func (f *forgetClock) at(key Key) uint64 {
	return f.purges.Load() + f.stripes[key[0]%64].Load()
}

func (f *forgetClock) forget(key Key) { f.stripes[key[0]%64].Add(1) }

func (f *forgetClock) purge() { f.purges.Add(1) }

// newResolver makes a resolver for backend.
func newResolver(be backend, cfg CacheConfig) *resolver {
	cfg = cfg.withDefaults()
	return &resolver{
		be:  be,
		cfg: cfg,
		pos: newStore(cfg.Max),
		neg: newStore(cfg.Max),
		now: time.Now,
	}
}

// setTier makes the resolver share its answers and revocations with the
// other resolvers on t. Call it before the first Resolve. Its error is
// the tier's refusal (attached to another client already).
func (r *resolver) setTier(t Tier, lookup time.Duration) error {
	err := t.Attach(TierLink{
		Forget: func(k Key) { r.forgetLocal(k) },
		Purge:  func() { r.purgeLocal() },
		Cache:  r.cfg,
		Lookup: lookup,
	})
	if err != nil {
		return err
	}
	r.tier = t
	return nil
}

// Resolve returns the session that cred names. The error wraps
// ErrUnauthenticated or ErrUnavailable.
func (r *resolver) Resolve(ctx context.Context, cred credential) (Result, error) {
	return r.resolve(ctx, cred, nil)
}

// resolve is Resolve for the request req, whose client the per-client
// limit charges when a lookup must start (req may be nil: no client).
func (r *resolver) resolve(ctx context.Context, cred credential, req *http.Request) (Result, error) {
	key := keyOf(cred)
	now := r.now().UnixNano()
	if e := r.pos.get(key, now); e != nil && now < e.fresh {
		// The one cost of refresh ahead on a hit: this comparison.
		if now >= e.refresh {
			r.refreshAhead(e, key, cred)
		}
		r.hits.Add(1)
		return Result{Session: e.session, Prepared: e.prepared, Key: key, Hit: true}, nil
	}
	if e := r.neg.get(key, now); e != nil && now < e.fresh {
		r.hits.Add(1)
		return Result{Key: key, Hit: true}, fmt.Errorf("%w: token rejected (cached)", ErrUnauthenticated)
	}
	r.misses.Add(1)
	return r.resolveMiss(ctx, key, cred, req)
}

// resolveMiss is Resolve's slow path, in its own function so that the
// flight closure's capture of key does not move key to the heap on hits.
func (r *resolver) resolveMiss(ctx context.Context, key Key, cred credential, req *http.Request) (Result, error) {
	for {
		res, err := r.joinFlight(ctx, key, cred, req)
		// The lookup this request joined ended because every request
		// waiting for it was gone, and this one came just after: look
		// again.
		if errors.Is(err, errNobodyWaits) {
			if ctx.Err() == nil {
				continue
			}
			err = fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
		}
		return res, err
	}
}

func (r *resolver) joinFlight(ctx context.Context, key Key, cred credential, req *http.Request) (Result, error) {
	if err := ctx.Err(); err != nil {
		// Gone already: start nothing for it.
		return Result{Key: key}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	w := r.waiting.join(ctx, key)
	defer r.waiting.leave(key, w)
	fctx := w.ctx
	// For a tier that reads in two parts, the first part of the lookup
	// runs on this request's goroutine: the cache again (a flight that
	// ended between our lookup and this call may have filled it), and
	// the tier's first read. Only what may take long (a wait for another
	// node, a session-service call) goes to the lookup's own goroutine,
	// which the requests may leave.
	var (
		first func() (Result, error, bool)
		read  *tierRead
	)
	if st, ok := r.tier.(tierStarter); ok {
		read = &tierRead{}
		first = func() (Result, error, bool) { return r.firstRead(fctx, key, st, read) }
	}
	ch := r.flight.do(key, first, func() (Result, error) {
		if read == nil {
			// A flight that ended between our lookup and this call may
			// have filled the cache already.
			if res, err, ok := r.cached(key, r.now().UnixNano()); ok {
				return res, err
			}
			// Nobody waits any more: no Redis read, no service call.
			if fctx.Err() != nil {
				return Result{Key: key}, errNobodyWaits
			}
		}
		if r.tier != nil {
			switch {
			case read == nil:
				if res, err, ok := r.shared(fctx, key); ok {
					return res, err
				}
			case read.rest != nil:
				if e := read.rest(); e != nil {
					if res, err := r.adopt(key, e, read.forgets, read.at); res.Session != nil || err != nil {
						return res, err
					}
				}
			}
			// This node may now be the one looking the token up for
			// every node: whatever the answer, the others must not wait
			// for it past this lookup.
			defer r.tier.Release(key)
			if fctx.Err() != nil {
				return Result{Key: key}, errNobodyWaits
			}
		}
		// Only a lookup that would call the service is limited: the
		// cache and the tier answered nothing.
		if r.lim != nil {
			if req != nil && r.clientOf != nil {
				if err := r.lim.admit(r.clientOf(req), r.now().UnixNano()); err != nil {
					if e := r.pos.get(key, r.now().UnixNano()); e != nil {
						r.staleServes.Add(1)
						return Result{Session: e.session, Prepared: e.prepared, Key: key, Stale: true}, nil
					}
					return Result{Key: key}, err
				}
			}
			if !r.lim.acquire() {
				if e := r.pos.get(key, r.now().UnixNano()); e != nil {
					// stale_if_error: the service is as good as failing.
					r.staleServes.Add(1)
					return Result{Session: e.session, Prepared: e.prepared, Key: key, Stale: true}, nil
				}
				return Result{Key: key}, errLookupLimit
			}
			defer r.lim.release()
		}
		// The call serves every waiter, and once started it goes on even
		// when they are gone (its answer fills the cache); the backend's
		// own timeout bounds it.
		return r.fetch(context.WithoutCancel(fctx), key, cred, false)
	})
	select {
	case out := <-ch:
		res := out.res
		res.Hit = false
		if res.called {
			r.waited.Add(1)
		}
		return res, out.err
	case <-ctx.Done():
		return Result{Key: key}, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
}

// tierRead is what a lookup's first read of a two-part tier left to the
// rest of the lookup.
type tierRead struct {
	rest    func() *SharedEntry
	forgets uint64
	at      time.Time
}

// firstRead is the first part of a lookup on a tier that reads in two
// parts, run by the request that starts the lookup: the cache again,
// then the tier's first read. ok says that it answered; otherwise read
// holds what the rest of the lookup goes on from.
func (r *resolver) firstRead(fctx context.Context, key Key, st tierStarter, read *tierRead) (Result, error, bool) {
	if res, err, ok := r.cached(key, r.now().UnixNano()); ok {
		return res, err, true
	}
	// Nobody waits any more: no Redis read, no service call.
	if fctx.Err() != nil {
		return Result{Key: key}, errNobodyWaits, true
	}
	read.forgets, read.at = r.forgets.at(key), r.now()
	e, rest := st.Start(fctx, key, read.at)
	if e != nil {
		if res, err := r.adopt(key, e, read.forgets, read.at); res.Session != nil || err != nil {
			return res, err, true
		}
	}
	read.rest = rest
	return Result{}, nil, false
}

// cached answers from the cache when it can: a fresh session, or a fresh
// rejection.
func (r *resolver) cached(key Key, now int64) (Result, error, bool) {
	if e := r.pos.get(key, now); e != nil && now < e.fresh {
		return Result{Session: e.session, Prepared: e.prepared, Key: key, Hit: true}, nil, true
	}
	if e := r.neg.get(key, now); e != nil && now < e.fresh {
		return Result{Key: key, Hit: true}, fmt.Errorf("%w: token rejected (cached)", ErrUnauthenticated), true
	}
	return Result{}, nil, false
}

// shared answers from the tier when another node has: the answer fills
// the cache as if the service had given it, without calling the service.
func (r *resolver) shared(ctx context.Context, key Key) (Result, error, bool) {
	forgets := r.forgets.at(key)
	now := r.now()
	e := r.tier.Get(ctx, key, now)
	if e == nil {
		return Result{}, nil, false
	}
	res, err := r.adopt(key, e, forgets, now)
	if res.Session == nil && err == nil {
		return Result{}, nil, false
	}
	return res, err, true
}

// adopt caches what the tier answered for key, unless a forget since
// forgets says it may be what was revoked. A session that cannot be
// adopted gives an empty Result and no error.
func (r *resolver) adopt(key Key, e *SharedEntry, forgets uint64, now time.Time) (Result, error) {
	if e.Session == nil {
		// A rejection is served even when a forget came in during the
		// read: refusing the request is what revocation asks for, and the
		// node that rejected the token announces it with exactly such a
		// forget, which may reach this node mid-read. It is kept only
		// when nothing was forgotten meanwhile.
		if r.forgets.at(key) == forgets {
			exp := e.Fresh.UnixNano()
			r.evicted(r.neg.put(key, &entry{fresh: exp, stale: exp}, now.UnixNano()))
		}
		// A session held here (a refresh finding the token rejected
		// elsewhere) goes too.
		r.pos.delete(key)
		return Result{Key: key}, fmt.Errorf("%w: token rejected (shared)", ErrUnauthenticated)
	}
	if r.forgets.at(key) != forgets {
		// A forget (perhaps this very token's revocation from another
		// node) during the read: what was read may be what it revoked.
		return Result{}, nil
	}
	ent := &entry{session: e.Session, fresh: e.Fresh.UnixNano(), stale: e.Stale.UnixNano(), filled: e.Filled.UnixNano()}
	ent.refresh = r.refreshAt(ent.filled, ent.fresh)
	if r.prepare != nil {
		ent.prepared = r.prepare(e.Session)
	}
	if r.forgets.at(key) == forgets {
		r.neg.delete(key)
		r.evicted(r.pos.put(key, ent, now.UnixNano()))
	}
	return Result{Session: e.Session, Prepared: ent.prepared, Key: key}, nil
}

// fetch calls the session service and caches its answer. A refresh
// (ahead of the entry's end) leaves the entry alone on a service error,
// and serves nothing.
func (r *resolver) fetch(ctx context.Context, key Key, cred credential, refresh bool) (Result, error) {
	r.calls.Add(1)
	forgets := r.forgets.at(key)
	start := r.now()
	s, err := r.be.Resolve(ctx, cred)
	took := r.now().Sub(start)
	r.callNanos.Add(uint64(max(took, 0)))
	if r.observe != nil {
		r.observe(took, err)
	}
	now := r.now()
	if err == nil && s == nil {
		err = fmt.Errorf("%w: backend returned no session", ErrUnavailable)
	}
	if err == nil {
		s.dropUnwritableTimes()
	}
	if err == nil && !s.ExpiresAt.IsZero() && !now.Before(s.ExpiresAt) {
		err = fmt.Errorf("%w: session has expired", ErrUnauthenticated)
	}
	switch {
	case err == nil:
		fresh := now.Add(r.cfg.TTL)
		if !s.ExpiresAt.IsZero() && s.ExpiresAt.Before(fresh) {
			fresh = s.ExpiresAt
		}
		stale := fresh.Add(r.cfg.StaleIfError)
		if !s.ExpiresAt.IsZero() && s.ExpiresAt.Before(stale) {
			stale = s.ExpiresAt
		}
		e := &entry{session: s, fresh: fresh.UnixNano(), stale: stale.UnixNano(), filled: now.UnixNano()}
		e.refresh = r.refreshAt(e.filled, e.fresh)
		if r.prepare != nil {
			e.prepared = r.prepare(s)
		}
		if r.forgets.at(key) == forgets {
			r.neg.delete(key)
			r.evicted(r.pos.put(key, e, now.UnixNano()))
			if r.tier != nil {
				r.tier.Set(ctx, key, &SharedEntry{Session: s, Fresh: fresh, Stale: stale, Filled: now}, now)
			}
		}
		return Result{Session: s, Prepared: e.prepared, Key: key, called: true}, nil
	case errors.Is(err, ErrUnauthenticated) && transientRejection(err):
		// A state the session leaves on its own (Amplify's device
		// authorization): nothing is cached, here or on the tier, but a
		// session this node held is revoked on every node.
		if r.pos.delete(key) && r.tier != nil {
			r.tier.Forget(key)
		}
		return Result{Key: key, called: true}, err
	case errors.Is(err, ErrUnauthenticated):
		held := r.pos.delete(key)
		exp := now.Add(r.cfg.NegativeTTL)
		r.evicted(r.neg.put(key, &entry{fresh: exp.UnixNano(), stale: exp.UnixNano()}, now.UnixNano()))
		if r.tier != nil {
			r.tier.Set(ctx, key, &SharedEntry{Fresh: exp, Stale: exp, Filled: now, Revokes: held}, now)
		}
		return Result{Key: key, called: true}, err
	default:
		r.errs.Add(1)
		if !errors.Is(err, ErrUnavailable) {
			err = unavailable(FailureOther, "%v", err)
		}
		if refresh {
			return Result{Key: key, called: true}, err
		}
		if e := r.pos.get(key, now.UnixNano()); e != nil {
			r.staleServes.Add(1)
			return Result{Session: e.session, Prepared: e.prepared, Key: key, Stale: true, called: true}, nil
		}
		return Result{Key: key, called: true}, err
	}
}

func (r *resolver) evicted(n int) {
	if n <= 0 {
		return
	}
	r.evictions.Add(uint64(n))
	if r.onEvict != nil {
		r.onEvict(n)
	}
}

// ForgetKey is Forget by key, on every node when the resolver has a tier.
func (r *resolver) ForgetKey(key Key) bool {
	if r.tier != nil {
		r.tier.Forget(key)
	}
	return r.forgetLocal(key)
}

// forgetLocal is ForgetKey on this node only: what an invalidation from
// another node does.
func (r *resolver) forgetLocal(key Key) bool {
	r.forgets.forget(key)
	p := r.pos.delete(key)
	n := r.neg.delete(key)
	return p || n
}

// ForgetToken evicts the entry of token, which is the same whatever
// source it came in by (cookie, header, bearer, query, a TR50 body), and
// for a backend whose credentials hold more than the token (ETERNUS),
// every credential it resolved with it.
func (r *resolver) ForgetToken(token string) int {
	n := 0
	if r.ForgetKey(keyOf(credential{Value: token})) {
		n++
	}
	if tk, ok := r.be.(tokenKeyer); ok {
		for _, key := range tk.KeysOfToken(token) {
			if r.ForgetKey(key) {
				n++
			}
		}
	}
	return n
}

// Purge evicts every entry, on every node when the resolver has a tier,
// and returns how many there were here.
func (r *resolver) Purge() int {
	n, _ := r.PurgeAll()
	return n
}

// PurgeAll is Purge with the error of its tier's part: the other nodes
// were not told yet (the tier keeps trying).
func (r *resolver) PurgeAll() (int, error) {
	var err error
	if r.tier != nil {
		err = r.tier.Purge()
	}
	return r.purgeLocal(), err
}

func (r *resolver) purgeLocal() int {
	r.forgets.purge()
	return r.pos.clear() + r.neg.clear()
}

// Stats returns the counters.
func (r *resolver) Stats() Stats {
	now := r.now().UnixNano()
	st := Stats{
		Entries:       r.pos.live(now),
		Rejections:    r.neg.live(now),
		Hits:          r.hits.Load(),
		Misses:        r.misses.Load(),
		StaleServes:   r.staleServes.Load(),
		ServiceCalls:  r.calls.Load(),
		ServiceErrors: r.errs.Load(),
		Evictions:     r.evictions.Load(),
		Waited:        r.waited.Load(),

		RefreshesStarted: r.refreshes.Load(),
		RefreshesSkipped: r.refreshSkips.Load(),
	}
	if r.lim != nil {
		st.RefusedLookupLimit = r.lim.refusedLimit.Load()
		st.RefusedClientLimit = r.lim.refusedClient.Load()
		st.LookupsWaiting = r.lim.waiting.Load()
		st.LookupsInFlight = r.lim.inFlight.Load()
	}
	if st.ServiceCalls > 0 {
		st.ServiceLatencyAvg = time.Duration(r.callNanos.Load() / st.ServiceCalls) //nolint:gosec // G115: a mean of call times, each far below 2^63 ns
	}
	return st
}

// refreshAt is when an entry filled at filled and fresh until fresh is
// due for a refresh ahead: fresh itself (never, since a request past
// fresh does not find it) when refresh ahead is off.
func (r *resolver) refreshAt(filled, fresh int64) int64 {
	f := r.cfg.RefreshAhead
	if f <= 0 || f >= 1 || fresh <= filled {
		return fresh
	}
	return filled + int64(f*float64(fresh-filled))
}

// refreshAhead starts the refresh of e, which a request found past its
// refresh time, unless one is under way already: one per token, since a
// refreshed entry replaces e. A refresh takes a lookup slot only if one
// is free: it is skipped, not queued (a later request tries again).
func (r *resolver) refreshAhead(e *entry, key Key, cred credential) {
	if !atomic.CompareAndSwapUint32(&e.refreshing, 0, 1) {
		return
	}
	if !r.lim.tryAcquire() {
		r.refreshSkips.Add(1)
		atomic.StoreUint32(&e.refreshing, 0)
		return
	}
	r.refreshes.Add(1)
	go r.refresh(e, key, cred)
}

// refresh looks the token of e up again, off any request: its context is
// its own (the backend's timeout bounds the call). The answer replaces e,
// a rejection evicts it (and revokes it on every node, as any rejection
// of a held session does), a service error leaves it to its end. It goes
// through the flight of key, so a miss of the same token meanwhile joins
// it rather than making a second call.
func (r *resolver) refresh(old *entry, key Key, cred credential) {
	defer r.lim.release()
	ctx := context.Background()
	<-r.flight.do(key, nil, func() (Result, error) {
		if r.pos.get(key, r.now().UnixNano()) != old {
			// Forgotten, purged or replaced since: nothing to refresh,
			// or a newer answer already.
			return Result{Key: key}, nil
		}
		if tr, ok := r.tier.(tierRefresher); ok {
			forgets := r.forgets.at(key)
			now := r.now()
			se, lead := tr.Refresh(ctx, key, time.Unix(0, old.filled), now)
			switch {
			case se != nil:
				// Another node refreshed (or rejected) it already.
				return r.adopt(key, se, forgets, now)
			case !lead:
				// Another node is refreshing it: its answer will be in
				// the tier, where this node's next lookup of the token
				// (at this entry's end) finds it, without a call.
				return Result{Key: key}, nil
			}
			defer r.tier.Release(key)
		} else if r.tier != nil {
			forgets := r.forgets.at(key)
			now := r.now()
			se := r.tier.Get(ctx, key, now)
			if se == nil {
				// This node now looks the token up for every node.
				defer r.tier.Release(key)
			} else if se.Filled.UnixNano() > old.filled || se.Session == nil {
				// Another node refreshed it (or rejected it) already.
				return r.adopt(key, se, forgets, now)
			}
			// Otherwise the tier holds the answer this node holds:
			// this node refreshes it.
		}
		res, err := r.fetch(ctx, key, cred, true)
		if err == nil && res.Session != nil && !res.Session.ExpiresAt.IsZero() &&
			res.Session.ExpiresAt.Equal(old.session.ExpiresAt) {
			// The service gave the session no more time: refreshing it
			// again before its end would only ask the same question
			// again. The new entry is marked as refreshing for good.
			if e := r.pos.get(key, r.now().UnixNano()); e != nil && e.session == res.Session {
				atomic.StoreUint32(&e.refreshing, 1)
			}
		}
		return res, err
	})
}
