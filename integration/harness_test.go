// Package integration runs sessiongate inside a real Caddy (caddytest) in
// front of real HTTP session services and upstreams. Every caddytest test of
// the project lives in this one package: caddytest's admin endpoint is
// localhost:2999, which only one test binary at a time can hold.
package integration

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/sessiongate/caddy-sessiongate/caddymodule"
)

// Ports the test Caddy listens on. SESSIONGATE_TEST_PORT_OFFSET moves all
// three, so two checkouts can run their integration tests side by side.
var (
	portOffset = envInt("SESSIONGATE_TEST_PORT_OFFSET")
	httpPort   = 9080 + portOffset
	httpsPort  = 9443 + portOffset
	adminPort  = 2999 + portOffset
)

func envInt(name string) int {
	n, err := strconv.Atoi(os.Getenv(name))
	if err != nil {
		return 0
	}
	return n
}

// siteURL is the address of the test Caddy's HTTP site.
var siteURL = fmt.Sprintf("http://localhost:%d", httpPort)

// altPort is a second HTTP site of the test Caddy, for a test that runs
// two configurations of one handler side by side on one Caddy.
var (
	altPort = httpsPort + 1
	altURL  = fmt.Sprintf("http://localhost:%d", altPort)
)

func TestMain(m *testing.M) {
	// Every test here starts a real Caddy: none belongs to the fast gate
	// (go test -short), which runs before .ci/run installs the peers.
	flag.Parse()
	if testing.Short() {
		fmt.Println("integration: skipped under -short (each test runs a real Caddy)")
		os.Exit(0)
	}
	// Caddy writes its autosave and storage under XDG dirs: keep them out
	// of the home directory.
	dir, err := os.MkdirTemp("", "sessiongate-it-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("XDG_CONFIG_HOME", dir+"/config")
	os.Setenv("XDG_DATA_HOME", dir+"/data")
	caddy.ConfigAutosavePath = dir + "/autosave.json"
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// globalOptions is the global block every test Caddyfile starts with.
var globalOptions = fmt.Sprintf(`{
	admin localhost:%d
	skip_install_trust
	auto_https off
	persist_config off
	http_port %d
	https_port %d
	grace_period 1s
}
`, adminPort, httpPort, httpsPort)

// startCaddy loads site (a Caddyfile without the global block) into the
// test Caddy.
func startCaddy(t *testing.T, site string) *caddytest.Tester {
	t.Helper()
	return initCaddy(t, globalOptions, site)
}

// startCaddyWith is startCaddy with extra global options (a log
// configuration): the harness's global block is fixed. One answered
// request (retried if the previous config drops it) goes before the
// test's own, which use Go's client and do not retry.
func startCaddyWith(t *testing.T, extraGlobal, site string) *caddytest.Tester {
	t.Helper()
	tester := initCaddy(t, withGlobal(extraGlobal), site)
	rawRequest(t, rawGet("/.settle"))
	return tester
}

// withGlobal is the harness's global block with extra options in it.
func withGlobal(extra string) string {
	return strings.TrimSuffix(strings.TrimSpace(globalOptions), "}") + extra + "\n}\n"
}

// debugLogTo is the global option that writes Caddy's log as JSON, DEBUG
// and up, to path.
func debugLogTo(path string) string {
	return fmt.Sprintf("\tlog {\n\t\toutput file %s\n\t\tformat json\n\t\tlevel DEBUG\n\t}", path)
}

// initCaddy loads global and site into the test Caddy. caddytest reports
// a Caddy that cannot start as SKIP; that would hide a broken plugin, so
// it fails the test instead.
func initCaddy(t *testing.T, global, site string) *caddytest.Tester {
	t.Helper()
	started := false
	t.Cleanup(func() {
		if !started {
			t.Errorf("the test Caddy did not start (caddytest skipped): see the log above")
		}
	})
	tester := newTester(t)
	tester.InitServer(global+site, "caddyfile")
	markLoad()
	if t.Failed() {
		t.FailNow()
	}
	started = true
	// Clients on http.DefaultTransport (real clients such as govmomi's)
	// would reuse a keep-alive connection to the Caddy of the previous
	// config, which closes it as it stops: EOF on the next request.
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	return tester
}

// newTester is caddytest.NewTester on this package's admin port.
func newTester(t *testing.T) *caddytest.Tester {
	return caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort})
}

// upstream is the legacy app: it answers the headers it received as JSON
// and counts the requests that reached it.
type upstream struct {
	*httptest.Server
	hits atomic.Int64
}

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"headers": r.Header, "uri": r.RequestURI}) // a write error is a gone client
	}))
	t.Cleanup(u.Close)
	return u
}

// seen is what the upstream reported receiving.
type seen struct {
	Headers http.Header `json:"headers"`
	URI     string      `json:"uri"`
}

// testClient sends the tests' requests. No keep-alive: a pooled
// connection to the server of a previous config load would be closed
// under the request. Redirects are answers to check, not to follow.
var testClient = &http.Client{
	Transport:     &http.Transport{DisableKeepAlives: true},
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// lastLoad is when the test Caddy last took a config (Unix nanoseconds):
// initCaddy and the admin helpers set it.
var lastLoad atomic.Int64

func markLoad() { lastLoad.Store(time.Now().UnixNano()) }

// reloadWindow is how long after a config load the previous config may
// still drop a connection. Caddy opens each config's listener with
// SO_REUSEPORT and, with a grace period, returns from /load once the old
// servers' shutdowns have started, not finished: until the old listener
// is closed the kernel can queue a new connection on it, and closing it
// resets what is queued. The same holds for the admin endpoint a refused
// load restores.
const reloadWindow = 2 * time.Second

// afterLoad runs try, a request to the test Caddy, and runs it again only
// when its failure is one that Caddy's own config reload causes: the
// connection refused, reset or closed without an answer, within
// reloadWindow of the last load (each retry is logged). Any other
// failure, or any failure later, fails the test at once with what
// happened: a connection the plugin drops is a finding, not noise.
func afterLoad(t testing.TB, what string, try func() error) {
	t.Helper()
	for {
		err := try()
		if err == nil {
			return
		}
		since := time.Since(time.Unix(0, lastLoad.Load()))
		if !droppedByReload(err) || since > reloadWindow {
			t.Fatalf("%s: %v (%v after the last config load)", what, err, since.Round(time.Millisecond))
		}
		t.Logf("%s: %v, %v after a config load: sent again", what, err, since.Round(time.Millisecond))
		time.Sleep(50 * time.Millisecond)
	}
}

// droppedByReload reports whether err is what a client sees of a
// connection a stopping listener or server dropped: refused, reset,
// broken pipe, or closed before any answer.
func droppedByReload(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// do sends a request to the test Caddy and returns the response and body.
// It is sent again only when Caddy's own config reload dropped it
// (afterLoad); any HTTP answer is the result.
func do(t *testing.T, tester *caddytest.Tester, method, path string, header http.Header) (*http.Response, string) {
	t.Helper()
	_ = tester // the caller shows the request needs a running Caddy
	return send(t, method, path, header, "")
}

// send is do with a request body.
func send(t testing.TB, method, path string, header http.Header, body string) (*http.Response, string) {
	t.Helper()
	var resp *http.Response
	var b []byte
	afterLoad(t, method+" "+path, func() error {
		req, err := http.NewRequest(method, siteURL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			req.Header[k] = v
		}
		r, err := testClient.Do(req)
		if err != nil {
			return err
		}
		defer r.Body.Close()
		resp = r
		b, err = io.ReadAll(r.Body)
		return err
	})
	return resp, string(b)
}

// eventually waits for cond: it calls cond until cond returns nil, at
// first every 2ms and then less often (up to every 100ms), and fails the
// test if timeout passes first, saying what was awaited and cond's last
// answer. A cond that meets an answer that can never turn good fails the
// test itself. It returns how long the wait took.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	began := time.Now()
	pause := 2 * time.Millisecond
	for {
		err := cond()
		if err == nil {
			return time.Since(began)
		}
		if time.Since(began) > timeout {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(pause)
		pause = min(2*pause, 100*time.Millisecond)
	}
}

// upstreamSaw decodes what the upstream received from a proxied answer.
func upstreamSaw(t *testing.T, body string) seen {
	t.Helper()
	var s seen
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatalf("upstream answer is not JSON: %v: %q", err, body)
	}
	return s
}

func bearer(tok string) http.Header {
	return http.Header{"Authorization": {"Bearer " + tok}}
}

// logLines reads a JSON-lines log file into maps; lines that are not JSON
// are kept under "raw".
func logLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading log %s: %v", path, err)
	}
	var out []map[string]any
	for _, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		m := map[string]any{}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			m = map[string]any{"raw": l}
		}
		out = append(out, m)
	}
	return out
}

// scrapeMetrics returns the admin endpoint's Prometheus text.
func scrapeMetrics(t *testing.T) string {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(fmt.Sprintf("http://localhost:%d/metrics", adminPort))
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: status %d", resp.StatusCode)
	}
	return string(b)
}

// sampleSum adds up the samples of family whose label set contains every
// given label="value" pair; found is false when there is none.
func sampleSum(text, family string, labels ...string) (sum float64, found bool) {
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, family)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		lbl, val := "", rest
		if strings.HasPrefix(rest, "{") {
			end := strings.Index(rest, "}")
			if end < 0 {
				continue
			}
			lbl, val = rest[:end+1], rest[end+1:]
		}
		match := true
		for _, l := range labels {
			if !strings.Contains(lbl, l) {
				match = false
			}
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if match && err == nil {
			sum += f
			found = true
		}
	}
	return sum, found
}

// adminURL is the test Caddy's admin endpoint.
var adminURL = fmt.Sprintf("http://localhost:%d", adminPort)

// admin sends a request to the admin API and returns the status and body.
func admin(t *testing.T, method, path, contentType, body string, header ...string) (int, string) {
	t.Helper()
	var status int
	var b []byte
	afterLoad(t, "admin "+method+" "+path, func() error {
		req, err := http.NewRequest(method, adminURL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		status = resp.StatusCode
		b, err = io.ReadAll(resp.Body)
		return err
	})
	if method != http.MethodGet && (path == "/load" || strings.HasPrefix(path, "/config")) {
		markLoad()
	}
	return status, string(b)
}

// reload loads site through the admin API, the way an operator's
// `caddy reload` does.
func reload(t *testing.T, site string, header ...string) (int, string) {
	t.Helper()
	return admin(t, "POST", "/load", "text/caddyfile", globalOptions+site, header...)
}

// expectCalls checks how many times the session service was asked in all.
func expectCalls(t *testing.T, svc *sessionService, want int64, when string) {
	t.Helper()
	if got := svc.calls.Load(); got != want {
		t.Errorf("%s: session service called %d times in all, want %d", when, got, want)
	}
}

// expectStatus sends a request and checks the status. tester is there to
// show the request needs a running Caddy.
func expectStatus(t *testing.T, tester *caddytest.Tester, method, path string, h http.Header, want int, when string) string {
	t.Helper()
	resp, body := do(t, nil, method, path, h)
	if resp.StatusCode != want {
		t.Errorf("%s: %s %s answered %d, want %d (%q)", when, method, path, resp.StatusCode, want, body)
	}
	return body
}

// aliceSession is the session most tests authenticate as: every
// identity field set, a non-ASCII name, two roles, admin.
func aliceSession() map[string]any {
	return map[string]any{
		"user_id": "u-1", "user": "alice", "email": "alice@example.com", "name": "Alice Ä",
		"org_id": "o-1", "org": "acme", "roles": []string{"admin", "dev"}, "perms": []string{"read", "write"},
		"admin": true,
	}
}

// callJSON sends a request with an optional body and decodes a JSON object
// answer.
func callJSON(t *testing.T, method, url string, header http.Header, body string) (*http.Response, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s %s: answer %d is not a JSON object: %v: %q", method, url, resp.StatusCode, err, raw)
	}
	return resp, m
}
