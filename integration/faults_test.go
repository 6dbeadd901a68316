package integration

import (
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// hugeFake answers an endless JSON string and counts the bytes it managed
// to write before the reader hung up.
type hugeFake struct {
	written atomic.Int64
	done    chan struct{}
}

const hugeTotal = 64 << 20

func (h *hugeFake) serve(w http.ResponseWriter, r *http.Request) bool {
	defer close(h.done)
	w.Header().Set("Content-Type", "application/json")
	chunk := []byte(strings.Repeat("a", 64<<10))
	n, _ := w.Write([]byte(`{"user":"`))
	h.written.Add(int64(n))
	for h.written.Load() < hugeTotal {
		n, err := w.Write(chunk)
		h.written.Add(int64(n))
		if err != nil {
			break
		}
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	return true
}

// TestHostileFaults runs each session-service fault behind its own route
// (so each handler's rate-limited warning is its own): the answer is a 503
// with Retry-After, the upstream is never reached, the fault is counted in
// caddy_sessiongate_service_errors_total under its kind, and a warning
// naming it is logged without the token. A slow answer within the timeout
// and a self-signed service with tls_insecure_skip_verify or its CA
// trusted pass, which shows the failures come from the fault alone.
func TestHostileFaults(t *testing.T) {
	dir := t.TempDir()
	logFile := filepath.Join(dir, "caddy.log")
	up := newUpstream(t)
	const token = "tok-alice-fault-7f3e"

	svc := func(fault func(w http.ResponseWriter, r *http.Request) bool) *sessionService {
		s := newSessionService(t)
		s.addSession(token, aliceSession())
		s.setFault(fault)
		return s
	}
	refusedURL := refusingURL(t)
	huge := &hugeFake{done: make(chan struct{})}

	tlsSvc := newSessionService(t, overTLS(nil, nil))
	tlsSvc.addSession(token, aliceSession())
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSvc.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}

	faults := []struct {
		name, path string
		svcURL     string
		extra      string
		kind       string // service_errors_total kind; "" = any
		inLog      string // in the warning's error field
	}{
		{"connection refused", "/refused", refusedURL, "", "refused", "connection refused"},
		{"hangs past timeout", "/hang", svc(func(w http.ResponseWriter, r *http.Request) bool {
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
			return true
		}).URL, "timeout 300ms", "timeout", "no answer within 300ms"},
		{"status 500", "/s500", svc(func(w http.ResponseWriter, r *http.Request) bool { w.WriteHeader(500); return true }).URL, "", "status", "500"},
		{"status 429", "/s429", svc(func(w http.ResponseWriter, r *http.Request) bool {
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(429)
			return true
		}).URL, "", "status", "429"},
		{"garbage", "/garbage", svc(func(w http.ResponseWriter, r *http.Request) bool {
			w.Write([]byte("<html><body>Login</body></html>"))
			return true
		}).URL, "", "garbage", "not JSON"},
		{"huge answer", "/huge", svc(huge.serve).URL, "", "too_large", "larger than"},
		{"closed mid-answer", "/closed", svc(hijackClose).URL, "", "garbage", "EOF"},
		{"bad TLS certificate", "/tls", tlsSvc.URL, "", "tls", "certificate"},
	}

	var site strings.Builder
	fmt.Fprintf(&site, ":%d {\n", httpPort)
	for _, f := range faults {
		fmt.Fprintf(&site, "\thandle %s/* {\n\t\tsession_auth http %s {\n\t\t\t%s\n\t\t}\n\t\treverse_proxy %s\n\t}\n",
			f.path, f.svcURL, f.extra, up.Listener.Addr())
	}
	slow := svc(func(w http.ResponseWriter, r *http.Request) bool { time.Sleep(300 * time.Millisecond); return false })
	fmt.Fprintf(&site, "\thandle /slow/* {\n\t\tsession_auth http %s {\n\t\t\ttimeout 3s\n\t\t}\n\t\treverse_proxy %s\n\t}\n", slow.URL, up.Listener.Addr())
	fmt.Fprintf(&site, "\thandle /tls-skip/* {\n\t\tsession_auth http %s {\n\t\t\ttls_insecure_skip_verify\n\t\t}\n\t\treverse_proxy %s\n\t}\n", tlsSvc.URL, up.Listener.Addr())
	fmt.Fprintf(&site, "\thandle /tls-ca/* {\n\t\tsession_auth http %s {\n\t\t\ttls_trusted_ca_certs %s\n\t\t}\n\t\treverse_proxy %s\n\t}\n", tlsSvc.URL, caFile, up.Listener.Addr())
	site.WriteString("}\n")

	startCaddyWith(t, debugLogTo(logFile), site.String())

	before := scrapeMetrics(t)
	for _, f := range faults {
		hits := up.hits.Load()
		resp, body := do(t, nil, "GET", f.path+"/x", bearer(token))
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("%s: status %d, want 503: %s", f.name, resp.StatusCode, body)
		}
		if ra := resp.Header.Get("Retry-After"); ra == "" {
			t.Errorf("%s: no Retry-After", f.name)
		}
		if up.hits.Load() != hits {
			t.Errorf("%s: the upstream was reached", f.name)
		}
		if strings.Contains(body, token) {
			t.Errorf("%s: the answer carries the token: %s", f.name, body)
		}
	}
	after := scrapeMetrics(t)
	for _, l := range strings.Split(after, "\n") {
		if strings.HasPrefix(l, "caddy_sessiongate_service_errors_total") {
			t.Logf("metric: %s", l)
		}
	}
	for _, f := range faults {
		if f.kind == "" {
			continue
		}
		b, _ := sampleSum(before, "caddy_sessiongate_service_errors_total", `kind="`+f.kind+`"`)
		a, ok := sampleSum(after, "caddy_sessiongate_service_errors_total", `kind="`+f.kind+`"`)
		if !ok || a <= b {
			t.Errorf("%s: caddy_sessiongate_service_errors_total{kind=%q} went from %v to %v (found %v)", f.name, f.kind, b, a, ok)
		}
	}
	b, _ := sampleSum(before, "caddy_sessiongate_service_errors_total")
	a, _ := sampleSum(after, "caddy_sessiongate_service_errors_total")
	if a-b < float64(len(faults)) {
		t.Errorf("caddy_sessiongate_service_errors_total rose by %v over %d faults", a-b, len(faults))
	}
	if strings.Contains(after, token) {
		t.Errorf("a token appears in the metrics")
	}

	// The huge answer is cut at the 1 MiB cap: the reader hangs up and
	// the service's writes fail long before its 64 MiB are out.
	select {
	case <-huge.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("the huge answer's writer is still writing after 10s: %d bytes so far", huge.written.Load())
	}
	written := huge.written.Load()
	t.Logf("huge answer: the service wrote %d bytes (%.1f MiB) of %d before the reader hung up", written, float64(written)/(1<<20), hugeTotal)
	if written >= hugeTotal/4 {
		t.Errorf("huge answer: %d bytes were taken from the service; the 1 MiB cap should stop reading far earlier", written)
	}

	// Within its timeout a slow service is just slow; a self-signed one
	// passes once trusted.
	for _, p := range []string{"/slow/x", "/tls-skip/x", "/tls-ca/x"} {
		resp, body := do(t, nil, "GET", p, bearer(token))
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: status %d, want 200: %s", p, resp.StatusCode, body)
		} else if got := upstreamSaw(t, body).Headers.Get("X-Session-User"); got != "alice" {
			t.Errorf("%s: upstream saw X-Session-User %q", p, got)
		}
	}

	// One warning per faulty route, naming the fault, never the token.
	var warns []map[string]any
	eventually(t, 5*time.Second, "a warning per faulty route", func() error {
		warns = warns[:0]
		for _, l := range logLines(t, logFile) {
			if l["msg"] == "session service unavailable" {
				warns = append(warns, l)
			}
		}
		if len(warns) < len(faults) {
			return fmt.Errorf("%d warnings for %d faults: %v", len(warns), len(faults), warns)
		}
		return nil
	})
	for _, w := range warns {
		t.Logf("warning: %v", w["error"])
	}
	for _, f := range faults {
		found := false
		for _, w := range warns {
			e, _ := w["error"].(string)
			if w["level"] == "warn" && w["dialect"] == "http" && w["token_hash"] != nil && strings.Contains(e, f.inLog) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no warning whose error mentions %q in %v", f.name, f.inLog, warns)
		}
	}
	raw, _ := os.ReadFile(logFile)
	if strings.Contains(string(raw), token) {
		t.Errorf("the log holds the token")
	}
}

// hijackClose answers a 200 whose body the connection cuts off.
func hijackClose(w http.ResponseWriter, r *http.Request) bool {
	conn, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return false
	}
	_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"user\":")
	buf.Flush()
	conn.Close()
	return true
}
