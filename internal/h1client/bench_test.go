package h1client

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The session-service round trip through Client and through the bare
// Transport: one POST with a small body to a service on loopback (in the
// same process, so cpu-ns/op counts its CPU too), the answer read whole.
// Serial is one lookup at a time; Parallel 16 at once, as under load.
// H1CLIENT_BENCH_URL names a service in another process instead.
func BenchmarkRoundTrip(b *testing.B) {
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"user_id":"u1","user":"alice","roles":["a","b"]}`))
	}))
	defer svc.Close()
	target := svc.URL + "/whoami"
	if u := os.Getenv("H1CLIENT_BENCH_URL"); u != "" {
		target = u // a service in another process: cpu-ns/op is the client's alone
	}
	for _, client := range []string{"h1client", "transport"} {
		for _, par := range []int{0, 16} {
			name := client + "/serial"
			if par > 0 {
				name = client + "/parallel"
			}
			b.Run(name, func(b *testing.B) {
				t := &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute}
				var rt http.RoundTripper = t
				if client == "h1client" {
					c := New(t)
					defer c.CloseIdleConnections()
					rt = c
				}
				defer t.CloseIdleConnections()
				one := func() {
					req, _ := http.NewRequest(http.MethodPost, target, strings.NewReader(`{"token":"t"}`)) //nolint:gosec // G704: the benchmark's own service
					resp, err := rt.RoundTrip(req)
					if err != nil {
						b.Fatal(err)
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				b.ReportAllocs()
				start := cpuTime()
				if par == 0 {
					for b.Loop() {
						one()
					}
				} else {
					b.SetParallelism(par / 2)
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							one()
						}
					})
				}
				b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
