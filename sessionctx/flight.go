package sessionctx

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// errNobodyWaits ends a lookup whose every requester is gone (their
// clients disconnected) before it called the session service: nobody
// would read the answer.
var errNobodyWaits = errors.New("every request waiting for this lookup is gone")

// flights counts the requests waiting for each token's lookup, and gives
// each lookup a context that ends when the last of them is gone. A
// lookup serves every request of the node for its token, so it must not
// end with the first one's client; but when no request waits any more it
// need not start a session-service call, nor wait on another node.
type flights struct {
	mu sync.Mutex
	m  map[Key]*flightWaiters
}

type flightWaiters struct {
	ctx    context.Context
	cancel context.CancelFunc
	n      int
}

// join counts a request waiting for key's lookup and returns what it
// waits with: the lookup runs with its context, and the request hands it
// to leave when it stops waiting (answered or gone).
func (f *flights) join(ctx context.Context, key Key) *flightWaiters {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.m[key]
	if w == nil {
		if f.m == nil {
			f.m = map[Key]*flightWaiters{}
		}
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		w = &flightWaiters{ctx: fctx, cancel: cancel}
		f.m[key] = w
	}
	w.n++
	return w
}

// leave ends a request's wait; the last one gone ends the lookup's
// context.
func (f *flights) leave(key Key, w *flightWaiters) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.n--
	if w.n == 0 {
		w.cancel()
		if f.m[key] == w {
			delete(f.m, key)
		}
	}
}

// lookups runs each token's lookup once for every request of the node
// that waits for it (as singleflight does). The request that starts a
// lookup runs its first part itself (a step that ends quickly, such as
// one read of the cluster's tier); the rest, when the first part did not
// answer, runs on a goroutine of its own, so that the requests may leave
// while it goes on.
type lookups struct {
	mu    sync.Mutex
	calls map[Key]*lookupCall
}

type lookupCall struct {
	waiters []chan<- lookupResult
}

type lookupResult struct {
	res Result
	err error
}

// do runs first for key, and rest when first has no answer (ok false),
// unless a lookup for key runs already; it returns the channel the
// result comes on (buffered: a request that leaves need not read it).
// first runs on the caller's goroutine (nil: none); rest on another.
func (l *lookups) do(key Key, first func() (Result, error, bool), rest func() (Result, error)) <-chan lookupResult {
	ch := make(chan lookupResult, 1)
	l.mu.Lock()
	if c, ok := l.calls[key]; ok {
		c.waiters = append(c.waiters, ch)
		l.mu.Unlock()
		return ch
	}
	if l.calls == nil {
		l.calls = map[Key]*lookupCall{}
	}
	c := &lookupCall{waiters: []chan<- lookupResult{ch}}
	l.calls[key] = c
	l.mu.Unlock()
	if first != nil {
		if res, err, ok := l.runFirst(key, c, first); ok {
			l.finish(key, c, res, err)
			return ch
		}
	}
	workers.start(func() {
		res, err := rest()
		l.finish(key, c, res, err)
	})
	return ch
}

// runFirst runs a lookup's first part. Should it panic (on a request's
// goroutine, which the server recovers), the requests waiting for the
// lookup are answered first, rather than left waiting for a lookup that
// is gone.
func (l *lookups) runFirst(key Key, c *lookupCall, first func() (Result, error, bool)) (Result, error, bool) {
	defer func() {
		if p := recover(); p != nil {
			l.finish(key, c, Result{Key: key}, fmt.Errorf("%w: the lookup failed", ErrUnavailable))
			panic(p)
		}
	}()
	return first()
}

// finish hands the result of key's lookup c to every request waiting.
func (l *lookups) finish(key Key, c *lookupCall, res Result, err error) {
	l.mu.Lock()
	delete(l.calls, key)
	waiters := c.waiters
	l.mu.Unlock()
	for _, w := range waiters {
		w <- lookupResult{res, err}
	}
}

// workerPool runs functions on goroutines it keeps a while between them.
// A new goroutine starts on a small stack, and a lookup (an HMAC, an HTTP
// or Redis round trip, a decode) grows it by copying: about 6 µs of every
// L2 hit in a CPU profile of a node. A kept goroutine's stack is grown
// already. The pool is the process's, whatever the clients: a goroutine
// waiting for work holds no client.
type workerPool struct {
	// idle hands work to a goroutine waiting for it; none waiting, a
	// new one starts.
	idle    chan func()
	started atomic.Int64 // goroutines started (tests)
}

var workers = &workerPool{idle: make(chan func())}

// workerIdle is how long a goroutine of the pool waits for more work
// before it ends.
const workerIdle = 5 * time.Second

// start runs f on a waiting goroutine, or on a new one.
func (p *workerPool) start(f func()) {
	select {
	case p.idle <- f:
	default:
		p.started.Add(1)
		go p.work(f)
	}
}

func (p *workerPool) work(f func()) {
	var timer *time.Timer
	for {
		f()
		if timer == nil {
			timer = time.NewTimer(workerIdle)
		} else {
			timer.Reset(workerIdle)
		}
		select {
		case f = <-p.idle:
			timer.Stop()
		case <-timer.C:
			return
		}
	}
}
