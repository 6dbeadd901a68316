package integration

import (
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// failRecorder is a testing.TB whose Fatalf ends the calling goroutine
// and records the message instead of failing the test, so the harness's
// own failures can be checked.
type failRecorder struct {
	testing.TB
	mu    sync.Mutex
	fatal string
	logs  []string
}

func (r *failRecorder) Helper() {}

func (r *failRecorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.fatal = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	// Ends the goroutine run by harnessRun, as testing's FailNow does.
	runtime.Goexit()
}

func (r *failRecorder) Fatal(args ...any) { r.Fatalf("%s", fmt.Sprint(args...)) }

func (r *failRecorder) Logf(format string, args ...any) {
	r.mu.Lock()
	r.logs = append(r.logs, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

// harnessRun runs f with a failRecorder on a goroutine of its own (its
// Fatalf ends that goroutine) and returns the recorder.
func harnessRun(t *testing.T, f func(tb testing.TB)) *failRecorder {
	r := &failRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r
}

// withLastLoad runs f as if the last config load had been ago.
func withLastLoad(t *testing.T, ago time.Duration, f func()) {
	t.Helper()
	saved := lastLoad.Load()
	lastLoad.Store(time.Now().Add(-ago).UnixNano())
	defer lastLoad.Store(saved)
	f()
}

// TestHarnessRetriesOnlyWhatAReloadDrops: the request helpers send a
// request again only when Caddy's own config reload dropped it (refused,
// reset or closed unanswered, within reloadWindow of a load); any other
// failure, and any failure later, fails at once, on the first try, and
// says what happened.
func TestHarnessRetriesOnlyWhatAReloadDrops(t *testing.T) {
	timeout := &net.OpError{Op: "read", Net: "tcp", Err: fmt.Errorf("i/o timeout")}
	cases := []struct {
		name      string
		ago       time.Duration
		errs      []error // what the tries return, in order; then success
		wantTries int
		wantFatal string
	}{
		{"a reset just after a load is sent again", 100 * time.Millisecond,
			[]error{&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, io.EOF}, 3, ""},
		{"a reset long after a load is a failure", time.Minute,
			[]error{&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}}, 1, "connection reset"},
		{"a closed connection long after a load is a failure", time.Minute,
			[]error{io.EOF}, 1, "EOF"},
		{"a timeout just after a load is a failure", 100 * time.Millisecond,
			[]error{timeout}, 1, "i/o timeout"},
	}
	for _, c := range cases {
		tries := 0
		var r *failRecorder
		withLastLoad(t, c.ago, func() {
			r = harnessRun(t, func(tb testing.TB) {
				afterLoad(tb, "GET /x", func() error {
					tries++
					if tries <= len(c.errs) {
						return c.errs[tries-1]
					}
					return nil
				})
			})
		})
		if tries != c.wantTries {
			t.Errorf("%s: %d tries, want %d (logged: %q)", c.name, tries, c.wantTries, r.logs)
		}
		switch {
		case c.wantFatal == "" && r.fatal != "":
			t.Errorf("%s: failed: %s", c.name, r.fatal)
		case c.wantFatal != "" && !strings.Contains(r.fatal, c.wantFatal):
			t.Errorf("%s: failure %q does not say %q", c.name, r.fatal, c.wantFatal)
		case c.wantFatal != "" && !strings.Contains(r.fatal, "GET /x"):
			t.Errorf("%s: failure %q does not name the request", c.name, r.fatal)
		}
		if got := len(r.logs); got != c.wantTries-1 {
			t.Errorf("%s: %d retries logged, want one per retry (%d): %q", c.name, got, c.wantTries-1, r.logs)
		}
	}
}

// TestHarnessReportsADroppedConnection: a request that Caddy's handler
// chain drops (here abort, as a crashing handler would) fails the test
// on its first try, naming the request and the error, instead of being
// sent again until it passes or the retries run out.
func TestHarnessReportsADroppedConnection(t *testing.T) {
	startCaddy(t, fmt.Sprintf(`
:%d {
	abort /drop
	respond "ok"
}
`, httpPort))
	if resp, body := do(t, nil, "GET", "/ok", nil); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("GET /ok answered %d %q", resp.StatusCode, body)
	}
	for _, c := range []struct {
		name string
		send func(tb testing.TB)
	}{
		{"do", func(tb testing.TB) { send(tb, "GET", "/drop", nil, "") }},
		{"rawRequest", func(tb testing.TB) { rawRequest(tb, rawGet("/drop")) }},
	} {
		var r *failRecorder
		withLastLoad(t, time.Minute, func() { r = harnessRun(t, c.send) })
		if !strings.Contains(r.fatal, "GET /drop") || !strings.Contains(r.fatal, "EOF") ||
			!strings.Contains(r.fatal, "after the last config load") || len(r.logs) != 0 {
			t.Errorf("%s: the dropped request failed with %q after %d retries, want its EOF at once, with the time since the last load",
				c.name, r.fatal, len(r.logs))
		}
	}
}

// TestEventuallySaysWhatItAwaited: eventually returns once its condition
// holds, and otherwise fails after the timeout naming what it awaited
// and the condition's last answer.
func TestEventuallySaysWhatItAwaited(t *testing.T) {
	n := 0
	r := harnessRun(t, func(tb testing.TB) {
		eventually(tb, 5*time.Second, "the third try", func() error {
			if n++; n < 3 {
				return fmt.Errorf("try %d", n)
			}
			return nil
		})
	})
	if r.fatal != "" || n != 3 {
		t.Errorf("a condition true on the third try: %d tries, failure %q", n, r.fatal)
	}
	n = 0
	r = harnessRun(t, func(tb testing.TB) {
		eventually(tb, 50*time.Millisecond, "a condition never true", func() error {
			n++
			return fmt.Errorf("still %d", n)
		})
	})
	want := fmt.Sprintf("a condition never true: not within 50ms: still %d", n)
	if r.fatal != want || n < 2 {
		t.Errorf("a condition never true: %d tries, failure %q, want %q", n, r.fatal, want)
	}
}
