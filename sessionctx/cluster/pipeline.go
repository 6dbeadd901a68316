package cluster

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// batcher runs the scripts of concurrent requests as pipelines: a command
// that arrives while a batch is in flight waits for it to end, and the
// commands waiting by then go together in the next one: one write for
// all of them and one read of their replies. A command that finds no
// batch in flight is sent at once, by its own goroutine, with no added
// wait; only under load do commands share round trips, and then they
// save the system calls that are most of an L2 hit's cost on loopback.
//
// Each command keeps its own reply or error; a caller whose request is
// gone leaves the queue, or, once its command is sent, leaves its reply
// to the batch, which hands it to the abandoned hook.
type batcher struct {
	client  redis.UniversalClient
	timeout time.Duration
	// limit is the most batches in flight at once; each holds one pool
	// connection while it runs.
	limit int
	// abandoned, if set, is given each call whose caller left after its
	// command was sent, with its reply (run by the batch's goroutine).
	abandoned func(*call)

	mu       sync.Mutex
	inflight int
	queue    []*call

	// pipelines counts the round trips that carried more than one
	// command (tests).
	pipelines int
}

// maxPipeline bounds the commands of one round trip.
const maxPipeline = 128

// batchLimit is how many batches may be in flight at once. Against one
// Redis server (standalone, or Sentinel's primary), one: a command waits
// at most for the round trip under way, and every command that arrives
// meanwhile shares the next one. In the load test of a 2-core node that
// cost 9 to 25 µs of CPU less an L2 hit than four batches in flight, at
// the same latency: the fewer round trips, the fewer system calls and
// wake-ups. A Redis Cluster's batch ends with the reply of its slowest
// shard, so there a few go at once (two per CPU, at least 4), and a slow
// shard does not hold up the reads of the others behind it.
func batchLimit(mode string) int {
	if mode == ModeCluster {
		return max(4, 2*runtime.GOMAXPROCS(0))
	}
	return 1
}

// errGone is what a caller whose request was gone before its reply came
// is told.
var errGone = errors.New("request gone")

// call is one script run.
type call struct {
	script   *redis.Script
	keys     []string
	args     []any
	deadline time.Time
	// key is the token the command is for, for the abandoned hook.
	key sessionctx.Key

	// Set by the batch before done is signaled.
	res any
	err error

	done chan struct{}
	// sent, delivered and left are under batcher.mu: the command was
	// taken into a batch, its reply handed over, the caller left.
	sent, delivered, left bool
}

func newBatcher(client redis.UniversalClient, mode string, timeout time.Duration) *batcher {
	return &batcher{client: client, timeout: timeout, limit: batchLimit(mode)}
}

// run runs one script and returns its reply. gone ends the wait of a
// caller whose command still waits for a batch or whose batch is in
// flight on another goroutine (errGone); a command the caller sends
// itself is not cut short, like any single round trip.
func (b *batcher) run(gone <-chan struct{}, key sessionctx.Key, s *redis.Script, keys []string, args ...any) (any, error) {
	b.mu.Lock()
	if b.inflight < b.limit {
		b.inflight++
		b.mu.Unlock()
		// The client's own timeouts bound each step (connection, write,
		// read) by the tier's timeout: no timer of its own for this one.
		v, err := runOnce(context.Background(), b.client, s, keys, args)
		b.next()
		return v, err
	}
	c := &call{script: s, keys: keys, args: args, key: key, deadline: time.Now().Add(b.timeout), done: make(chan struct{}, 1)}
	b.queue = append(b.queue, c)
	b.mu.Unlock()
	select {
	case <-c.done:
		return c.res, c.err
	case <-gone:
	}
	b.mu.Lock()
	if !c.sent {
		for i, q := range b.queue {
			if q == c {
				b.queue = append(b.queue[:i], b.queue[i+1:]...)
				break
			}
		}
		b.mu.Unlock()
		return nil, errGone
	}
	if c.delivered {
		// The reply came meanwhile: the caller takes it after all.
		b.mu.Unlock()
		return c.res, c.err
	}
	c.left = true
	b.mu.Unlock()
	return nil, errGone
}

// next is called by the goroutine of a batch that ended: the commands
// queued meanwhile go in the next batch, on a goroutine of its own, so
// that the caller who ran the batch returns at once.
func (b *batcher) next() {
	b.mu.Lock()
	if len(b.queue) == 0 {
		b.inflight--
		b.mu.Unlock()
		return
	}
	batch := b.take()
	b.mu.Unlock()
	go b.drain(batch)
}

// take takes the next batch off the queue; b.mu is held.
func (b *batcher) take() []*call {
	n := min(len(b.queue), maxPipeline)
	batch := make([]*call, n)
	copy(batch, b.queue)
	for i, c := range batch {
		c.sent = true
		b.queue[i] = nil
	}
	b.queue = b.queue[n:]
	if len(b.queue) == 0 {
		b.queue = b.queue[:0:0]
	}
	if n > 1 {
		b.pipelines++
	}
	return batch
}

// drain runs batches until the queue is empty.
func (b *batcher) drain(batch []*call) {
	for {
		b.exec(batch)
		b.deliver(batch)
		b.mu.Lock()
		if len(b.queue) == 0 {
			b.inflight--
			b.mu.Unlock()
			return
		}
		batch = b.take()
		b.mu.Unlock()
	}
}

// deliver hands each call its reply, or, when its caller left, the
// call's abandon hook.
func (b *batcher) deliver(batch []*call) {
	for _, c := range batch {
		b.mu.Lock()
		left := c.left
		c.delivered = !left
		b.mu.Unlock()
		if !left {
			c.done <- struct{}{} // buffered
		} else if b.abandoned != nil {
			b.abandoned(c)
		}
	}
}

// exec runs a batch in one round trip, bounded by the earliest deadline
// of its calls. A command that fails on a connection Redis closed while
// it sat in the pool (it never reached Redis), or that names a script
// Redis does not have cached, is sent again once, with the whole script.
func (b *batcher) exec(batch []*call) {
	deadline := batch[0].deadline
	for _, c := range batch[1:] {
		if c.deadline.Before(deadline) {
			deadline = c.deadline
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if len(batch) == 1 {
		c := batch[0]
		c.res, c.err = runOnce(ctx, b.client, c.script, c.keys, c.args)
		return
	}
	cmds := make([]*redis.Cmd, len(batch))
	_, _ = b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range batch {
			cmds[i] = c.script.EvalSha(ctx, p, c.keys, c.args...)
		}
		return nil
	})
	var again []int
	for i, c := range batch {
		c.res, c.err = cmds[i].Result()
		if c.err != nil && (brokenConn(c.err) || redis.HasErrorPrefix(c.err, "NOSCRIPT")) {
			again = append(again, i)
		}
	}
	if len(again) == 0 {
		return
	}
	_, _ = b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, i := range again {
			c := batch[i]
			cmds[i] = c.script.Eval(ctx, p, c.keys, c.args...)
		}
		return nil
	})
	for _, i := range again {
		batch[i].res, batch[i].err = cmds[i].Result()
	}
}

// runOnce runs one script, and once more on another connection when its
// connection was one Redis had closed while it sat in the pool.
func runOnce(ctx context.Context, client redis.UniversalClient, s *redis.Script, keys []string, args []any) (any, error) {
	v, err := s.Run(ctx, client, keys, args...).Result()
	if err != nil && brokenConn(err) {
		v, err = s.Run(ctx, client, keys, args...).Result()
	}
	return v, err
}
