// Command protectload is the load generator of bench/protect.sh: it
// measures how session_auth shields the session service (lookup_limit,
// client_miss_limit) and what refresh_ahead does for users, against the
// Caddy and the session services that script starts. Loopback only: each
// simulated client sends from its own loopback address (127.0.0.2,
// 127.0.1.7, ...), which Caddy sees as its client_ip.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	mode := flag.String("mode", "", "flood, stampede or steady")
	site := flag.String("site", "", "the Caddy site's URL")
	svc := flag.String("svc", "", "the session service's base URL (its /_stats)")
	adminURL := flag.String("admin", "", "Caddy's admin URL (GET /sessiongate/stats)")
	backend := flag.String("backend", "", "the backend URL whose stats line to read")
	secs := flag.Float64("secs", 10, "how long the load runs")
	workers := flag.Int("workers", 16, "concurrent request loops")
	clients := flag.Int("clients", 200, "stampede: clients, each with one new token, at once")
	tokens := flag.Int("tokens", 300, "steady: tokens in use")
	flag.Parse()
	d := time.Duration(*secs * float64(time.Second))
	switch *mode {
	case "flood":
		flood(*site, *svc, d, *workers)
	case "stampede":
		stampede(*site, *svc, *clients)
	case "steady":
		steady(*site, *adminURL, *backend, d, *workers, *tokens)
	default:
		log.Fatalf("unknown -mode %q", *mode)
	}
}

// clientFrom is an HTTP client whose connections come from local.
func clientFrom(local string) *http.Client {
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DialContext:         dialer.DialContext,
			MaxIdleConnsPerHost: 256,
		},
	}
}

// get sends one request with token and returns its status and latency.
func get(c *http.Client, site, token string) (int, time.Duration) {
	req, _ := http.NewRequest(http.MethodGet, site, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	start := time.Now()
	resp, err := c.Do(req)
	took := time.Since(start)
	if err != nil {
		return 0, took
	}
	resp.Body.Close()
	return resp.StatusCode, took
}

type latencies struct {
	mu   sync.Mutex
	all  []time.Duration
	code map[int]int
}

func (l *latencies) add(code int, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.code == nil {
		l.code = map[int]int{}
	}
	l.all = append(l.all, d)
	l.code[code]++
}

func (l *latencies) pct(p float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.all) == 0 {
		return 0
	}
	s := slices.Clone(l.all)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func (l *latencies) over(d time.Duration) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, x := range l.all {
		if x > d {
			n++
		}
	}
	return n
}

func (l *latencies) String() string {
	return fmt.Sprintf("%d requests, statuses %v, p50 %v, p99 %v", len(l.all), l.code,
		l.pct(0.50).Round(10*time.Microsecond), l.pct(0.99).Round(10*time.Microsecond))
}

type svcStats struct {
	Calls     int64 `json:"calls"`
	MaxActive int64 `json:"max_active"`
	MaxConns  int64 `json:"max_conns"`
}

func readStats(svc string, reset bool) svcStats {
	var resp *http.Response
	var err error
	if reset {
		resp, err = http.Post(svc+"/_stats", "", nil)
	} else {
		resp, err = http.Get(svc + "/_stats")
	}
	if err != nil {
		log.Fatalf("session service stats: %v", err)
	}
	defer resp.Body.Close()
	var st svcStats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		log.Fatalf("session service stats: %v", err)
	}
	return st
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "junk-" + hex.EncodeToString(b)
}

// flood: one client (127.0.0.2) sends random tokens from workers loops
// for d; meanwhile the same client uses its cached session, and another
// client (127.0.0.3) logs in with a new token every 100 ms.
func flood(site, svc string, d time.Duration, workers int) {
	flooder, other := clientFrom("127.0.0.2"), clientFrom("127.0.0.3")
	run := fmt.Sprint(time.Now().UnixNano())
	if code, _ := get(flooder, site, "bench-cached-"+run); code != 200 {
		log.Fatalf("warming the cached user: %d", code)
	}
	before := readStats(svc, false)
	var floodLat, cached, fresh latencies
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				floodLat.add(get(flooder, site, randomToken()))
			}
		}()
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		for time.Now().Before(end) {
			cached.add(get(flooder, site, "bench-cached-"+run))
			time.Sleep(10 * time.Millisecond)
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; time.Now().Before(end); i++ {
			fresh.add(get(other, site, fmt.Sprintf("bench-new-%s-%d", run, i)))
			time.Sleep(100 * time.Millisecond)
		}
	}()
	wg.Wait()
	after := readStats(svc, false)
	fmt.Printf("flood %v from one client (%d loops): %s\n", d, workers, &floodLat)
	fmt.Printf("  session-service calls during the flood: %d (%.0f/s); refused 429: %d\n",
		after.Calls-before.Calls, float64(after.Calls-before.Calls)/d.Seconds(), floodLat.code[429])
	fmt.Printf("  cached user on the flooding address:  %s\n", &cached)
	fmt.Printf("  new user on another address (a new token each 100 ms): %s\n", &fresh)
}

// stampede: clients at once, each from its own address with a new token,
// against a slow session service.
func stampede(site, svc string, clients int) {
	readStats(svc, true)
	run := fmt.Sprint(time.Now().UnixNano())
	var lat latencies
	var wg sync.WaitGroup
	var ready sync.WaitGroup
	start := make(chan struct{})
	var failed atomic.Int64
	for i := range clients {
		wg.Add(1)
		ready.Add(1)
		go func() {
			defer wg.Done()
			c := clientFrom(fmt.Sprintf("127.0.%d.%d", 1+i/250, 1+i%250))
			ready.Done()
			<-start
			code, took := get(c, site, fmt.Sprintf("bench-stampede-%s-%d", run, i))
			if code == 0 {
				failed.Add(1)
			}
			lat.add(code, took)
		}()
	}
	ready.Wait()
	close(start)
	wg.Wait()
	st := readStats(svc, false)
	fmt.Printf("stampede of %d new tokens from %d addresses: %s\n", clients, clients, &lat)
	fmt.Printf("  session service: %d calls, at most %d at once over at most %d connections\n", st.Calls, st.MaxActive, st.MaxConns)
}

type backendStats struct {
	URL    string `json:"url"`
	Waited uint64 `json:"waited"`
	Calls  uint64 `json:"service_calls"`
	Fresh  uint64 `json:"refreshes_started"`
}

func waited(adminURL, backend string) backendStats {
	resp, err := http.Get(adminURL + "/sessiongate/stats")
	if err != nil {
		log.Fatalf("stats: %v", err)
	}
	defer resp.Body.Close()
	var out struct {
		Backends []backendStats `json:"backends"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		log.Fatalf("stats: %v", err)
	}
	for _, b := range out.Backends {
		if b.URL == backend {
			return b
		}
	}
	fmt.Fprintf(os.Stderr, "no stats line for %s\n", backend)
	return backendStats{}
}

// steady: tokens in use, each requested again every few hundred ms by
// workers loops for d, from one address per token.
func steady(site, adminURL, backend string, d time.Duration, workers, tokens int) {
	run := fmt.Sprint(time.Now().UnixNano())
	cs := make([]*http.Client, tokens)
	for i := range cs {
		cs[i] = clientFrom(fmt.Sprintf("127.0.%d.%d", 10+i/250, 1+i%250))
	}
	tok := func(i int) string { return fmt.Sprintf("bench-steady-%s-%d", run, i) }
	// Warm every token: the first lookup of each is not what this measures.
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < tokens; i += workers {
				get(cs[i], site, tok(i))
			}
		}()
	}
	wg.Wait()
	before := waited(adminURL, backend)
	var lat latencies
	end := time.Now().Add(d)
	var next atomic.Int64
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				i := int(next.Add(1)) % tokens
				lat.add(get(cs[i], site, tok(i)))
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	after := waited(adminURL, backend)
	fmt.Printf("  %s\n", &lat)
	fmt.Printf("  requests that waited on the session service: %d (stats `waited`); slower than 250 ms: %d; service calls %d, refreshes started %d\n",
		after.Waited-before.Waited, lat.over(250*time.Millisecond), after.Calls-before.Calls, after.Fresh-before.Fresh)
}
