package sessionctx

import (
	"context"
	"errors"
	"sync"
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
