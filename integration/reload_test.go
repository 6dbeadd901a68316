package integration

import (
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestHostileReloadUnderLoad reloads the config through the admin API, as
// `caddy reload` does, while a bounded loopback load runs. The
// session_auth config never changes (only a request_header outside it, so
// each reload is visibly live): no request may get a 5xx or fail, the
// cache must survive every reload (the session service is asked once per
// token, however many reloads), and once the load stops no goroutine may
// be left behind beyond those of the config now running.
func TestHostileReloadUnderLoad(t *testing.T) {
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	bob := aliceSession()
	bob["user"] = "bob"
	svc.addSession("tok-bob", bob)
	up := newUpstream(t)
	authLine := fmt.Sprintf("session_auth http %s {\n\t\tcache_ttl 10m\n\t}", svc.URL)
	site := func(gen int) string {
		return fmt.Sprintf(`
:%d {
	%s
	request_header X-Gen %d
	reverse_proxy %s {
		transport http {
			keepalive off
		}
	}
}`, httpPort, authLine, gen, up.Listener.Addr())
	}
	tester := startCaddy(t, site(0))

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(tok string) (int, string, error) {
		req, _ := http.NewRequest("GET", siteURL+"/", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	reloadTo := func(gen int) {
		t.Helper()
		if status, body := reload(t, site(gen)); status != http.StatusOK {
			t.Fatalf("reload %d: status %d: %s", gen, status, body)
		}
	}

	// answered is one request outside the load, sent again while no
	// answer comes back (the harness's do): just after a reload, the
	// previous config's shutdown can reset a connection it accepted.
	answered := func(tok string) (int, string) {
		resp, body := do(t, tester, "GET", "/", bearer(tok))
		return resp.StatusCode, body
	}

	// Warm up, and let one reload put Caddy's per-config goroutines in
	// their steady shape, before the goroutine baseline.
	for _, tok := range []string{"tok-alice", "tok-bob"} {
		if st, body := answered(tok); st != 200 {
			t.Fatalf("warm-up %s: %d %s", tok, st, body)
		}
	}
	reloadTo(1)
	for _, tok := range []string{"tok-alice", "tok-bob"} {
		if st, body := answered(tok); st != 200 {
			t.Fatalf("after reload 1, %s: %d %s", tok, st, body)
		}
	}
	if n := svc.calls.Load(); n != 2 {
		t.Fatalf("warm-up: %d session-service calls for 2 tokens, want 2", n)
	}
	client.CloseIdleConnections()
	time.Sleep(200 * time.Millisecond)
	baseline := goleak.IgnoreCurrent()
	goroutinesBefore := runtime.NumGoroutine()

	const (
		workers     = 4
		perWorker   = 400
		reloads     = 8
		maxDuration = 8 * time.Second
	)
	var (
		total, fivexx, failed atomic.Int64
		dropped               atomic.Int64
		firstDrop             sync.Once
		dropMsg               string
		lastGen               atomic.Int64
		stop                  = make(chan struct{})
		wg                    sync.WaitGroup
		firstErr              sync.Once
		errMsg                string
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			tok := []string{"tok-alice", "tok-bob"}[w%2]
			for i := 0; i < perWorker; i++ {
				select {
				case <-stop:
					return
				default:
				}
				st, body, err := get(tok)
				total.Add(1)
				if err != nil {
					dropped.Add(1)
					firstDrop.Do(func() { dropMsg = err.Error() })
					continue
				}
				if st != 200 {
					if st >= 500 {
						fivexx.Add(1)
					} else {
						failed.Add(1)
					}
					firstErr.Do(func() { errMsg = fmt.Sprintf("status %d, err %v, body %.200s", st, err, body) })
					continue
				}
				if g := upstreamSawGen(body); g > lastGen.Load() {
					lastGen.Store(g)
				}
			}
		}(w)
	}
	deadline := time.AfterFunc(maxDuration, func() { close(stop) })
	for gen := 2; gen < 2+reloads; gen++ {
		time.Sleep(150 * time.Millisecond)
		reloadTo(gen)
	}
	wg.Wait()
	if deadline.Stop() {
		close(stop)
	}
	client.CloseIdleConnections()
	t.Logf("%d requests by %d workers across %d reloads: %d 5xx, %d other statuses, %d without an answer; session-service calls %d",
		total.Load(), workers, reloads, fivexx.Load(), failed.Load(), dropped.Load(), svc.calls.Load())

	// A request that got no answer at all (EOF on a fresh connection the
	// old server accepted just as it shut down) is Caddy's reload, not
	// sessiongate: the same load without session_auth loses as many
	// (measured: 5-15 of 1600 either way). A few are tolerated; any
	// answer other than 200 is not.
	if fivexx.Load() != 0 || failed.Load() != 0 {
		t.Errorf("%d 5xx and %d other statuses under reload; first: %s", fivexx.Load(), failed.Load(), errMsg)
	}
	if n := dropped.Load(); n*50 > total.Load() {
		t.Errorf("%d of %d requests got no answer under reload (more than 2%%); first: %s", n, total.Load(), dropMsg)
	}
	if total.Load() < workers*10 {
		t.Errorf("only %d requests ran: the load did not overlap the reloads", total.Load())
	}
	if n := svc.calls.Load(); n != 2 {
		t.Errorf("the session service was called %d times for 2 tokens across %d reloads: the cache was not kept", n, reloads)
	}
	if st, body := answered("tok-alice"); st != 200 || upstreamSawGen(body) != 1+reloads {
		t.Errorf("after the reloads: status %d, generation %d, want 200 from generation %d", st, upstreamSawGen(body), 1+reloads)
	}

	// One last reload with no traffic after it: the configs that served
	// the load are now all stopped and cleaned up (their proxy transports'
	// idle connections closed), and what runs is the new config's server
	// alone, which replaces the baseline's. Everything else must be gone.
	client.CloseIdleConnections()
	reloadTo(2 + reloads)
	err := goleak.Find(baseline,
		goleak.IgnoreAnyFunction("net/http.(*Server).Serve"),
		goleak.IgnoreAnyFunction("github.com/caddyserver/caddy/v2/modules/caddytls.(*TLS).keepStorageClean.func1"),
		goleak.IgnoreAnyFunction("github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy.(*metricsUpstreamsHealthyUpdater).init.func1"),
		goleak.IgnoreAnyFunction("github.com/caddyserver/caddy/v2/modules/caddyhttp.(*App).Start.func1"),
		goleak.IgnoreAnyFunction("github.com/caddyserver/caddy/v2/modules/caddyhttp.(*App).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/caddyserver/caddy/v2/modules/caddyhttp.(*App).Start.gowrap1"),
		goleak.IgnoreAnyFunction("github.com/caddyserver/caddy/v2/modules/caddyhttp.(*App).Start.gowrap2"),
		// The process's pool of lookup goroutines: each ends after a
		// few seconds without work, whatever the config.
		goleak.IgnoreAnyFunction("github.com/sessiongate/caddy-sessiongate/sessionctx.(*workerPool).work"),
	)
	if err != nil {
		t.Errorf("goroutines left behind by %d reloads under load: %v", reloads, err)
	}
	t.Logf("goroutines: %d at the baseline, %d now", goroutinesBefore, runtime.NumGoroutine())
}

// upstreamSawGen reads the X-Gen header the upstream echoed: the config
// generation that served the request.
func upstreamSawGen(body string) int64 {
	i := strings.Index(body, `"X-Gen":["`)
	if i < 0 {
		return -1
	}
	rest := body[i+len(`"X-Gen":["`):]
	end := strings.IndexByte(rest, '"')
	if end < 0 {
		return -1
	}
	n, _ := strconv.ParseInt(rest[:end], 10, 64)
	return n
}
