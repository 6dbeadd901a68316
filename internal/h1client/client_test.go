package h1client

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rawServer is a session service written by hand on a real socket, for
// the answers net/http's server does not give. serve is called for each
// request read on a connection with the connection's number (from 1) and
// the request's on that connection (from 1); it writes the answer itself
// and returns false to stop serving the connection (closing it).
type rawServer struct {
	ln       net.Listener
	accepted atomic.Int64
	open     atomic.Int64
	maxOpen  atomic.Int64
	closedCh chan int64 // connection numbers, as they end
}

func newRawServer(t *testing.T, serve func(w *bufio.Writer, nc net.Conn, req *http.Request, conn, n int64) bool) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln, closedCh: make(chan int64, 100)}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			id := s.accepted.Add(1)
			open := s.open.Add(1)
			for m := s.maxOpen.Load(); open > m && !s.maxOpen.CompareAndSwap(m, open); m = s.maxOpen.Load() {
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					s.open.Add(-1)
					c.Close()
					select {
					case s.closedCh <- id:
					default:
					}
				}()
				br, bw := bufio.NewReader(c), bufio.NewWriter(c)
				for n := int64(1); ; n++ {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					keep := serve(bw, c, req, id, n)
					_ = bw.Flush()
					if !keep {
						return
					}
				}
			}()
		}
	}()
	return s
}

func (s *rawServer) url() string { return "http://" + s.ln.Addr().String() + "/session" }

// waitClosed waits for connection id to end: closed by the client, when
// the server keeps it.
func (s *rawServer) waitClosed(t *testing.T, id int64) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case got := <-s.closedCh:
			if got == id {
				return
			}
		case <-timeout:
			t.Fatalf("connection %d not closed by the client", id)
		}
	}
}

func ok(w *bufio.Writer, body string) {
	fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

func newClient(tb testing.TB, mod func(*http.Transport)) *Client {
	t := &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute}
	if mod != nil {
		mod(t)
	}
	c := New(t)
	tb.Cleanup(c.CloseIdleConnections)
	return c
}

// get sends a request through c and reads the answer the way the
// session-service code does: the whole body, then Close.
func get(t *testing.T, c http.RoundTripper, ctx context.Context, method, target, body string) (int, string, error) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.RoundTrip(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func mustGet(t *testing.T, c http.RoundTripper, target string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	code, body, err := get(t, c, ctx, http.MethodPost, target, `{"token":"t"}`)
	if err != nil || code != 200 {
		t.Fatalf("got %d %q %v, want 200", code, body, err)
	}
	return body
}

func TestKeptConnectionReused(t *testing.T) {
	srv := newRawServer(t, func(w *bufio.Writer, nc net.Conn, _ *http.Request, conn, n int64) bool {
		ok(w, fmt.Sprintf("conn %d req %d", conn, n))
		return true
	})
	c := newClient(t, nil)
	for i := 1; i <= 3; i++ {
		if got, want := mustGet(t, c, srv.url()), fmt.Sprintf("conn 1 req %d", i); got != want {
			t.Fatalf("answer %q, want %q", got, want)
		}
	}
}

// A kept connection the server closed while it was idle: the next request
// goes again on a new connection, its body sent again.
func TestServerClosedIdleConnection(t *testing.T) {
	srv := newRawServer(t, func(w *bufio.Writer, nc net.Conn, req *http.Request, conn, n int64) bool {
		ok(w, fmt.Sprintf("conn %d", conn))
		return false // answers, then closes: the client still holds it as idle
	})
	c := newClient(t, nil)
	mustGet(t, c, srv.url())
	srv.waitClosed(t, 1)
	time.Sleep(10 * time.Millisecond) // the FIN reaches the client's socket
	if got := mustGet(t, c, srv.url()); got != "conn 2" {
		t.Fatalf("answer %q, want conn 2's", got)
	}

	// A body that cannot be sent again is not: the error is the Transport's.
	srv.waitClosed(t, 2)
	time.Sleep(10 * time.Millisecond)
	req, _ := http.NewRequest(http.MethodPost, srv.url(), io.NopCloser(strings.NewReader("x")))
	req.ContentLength = 1
	if resp, err := c.RoundTrip(req); err == nil {
		resp.Body.Close()
		t.Fatal("a request with a body it cannot send again was sent again")
	}
}

// A server that says Connection: close and then leaves the connection
// open: the client must not send the next request on it.
func TestConnectionCloseFromServer(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	srv := newRawServer(t, func(w *bufio.Writer, nc net.Conn, req *http.Request, conn, n int64) bool {
		_, _ = w.WriteString("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
		_ = w.Flush()
		<-hold // not closed yet, nor read
		return false
	})
	c := newClient(t, nil)
	mustGet(t, c, srv.url())
	start := time.Now()
	mustGet(t, c, srv.url())
	if d := time.Since(start); d > time.Second {
		t.Fatalf("the second request took %v: sent on the connection the server said it closes?", d)
	}
	if n := srv.accepted.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

// A request that says Connection: close, and DisableKeepAlives: one
// connection each, closed by the client.
func TestConnectionCloseFromClient(t *testing.T) {
	var sawClose atomic.Int64
	srv := newRawServer(t, func(w *bufio.Writer, nc net.Conn, req *http.Request, conn, n int64) bool {
		if req.Close {
			sawClose.Add(1)
		}
		ok(w, "ok")
		return true
	})
	c := newClient(t, func(t *http.Transport) { t.DisableKeepAlives = true })
	mustGet(t, c, srv.url())
	srv.waitClosed(t, 1)
	mustGet(t, c, srv.url())
	srv.waitClosed(t, 2)
	if sawClose.Load() != 2 {
		t.Fatalf("Connection: close sent %d times, want 2", sawClose.Load())
	}

	// A request of its own that says so, on a transport that keeps them.
	c = newClient(t, nil)
	req, _ := http.NewRequest(http.MethodGet, srv.url(), nil)
	req.Close = true
	resp, err := c.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	srv.waitClosed(t, 3)
}

func TestChunkedAnswer(t *testing.T) {
	srv := newRawServer(t, func(w *bufio.Writer, nc net.Conn, req *http.Request, conn, n int64) bool {
		_, _ = w.WriteString("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
		return true
	})
	c := newClient(t, nil)
	for range 3 {
		if got := mustGet(t, c, srv.url()); got != "hello world" {
			t.Fatalf("answer %q", got)
		}
	}
	if n := srv.accepted.Load(); n != 1 {
		t.Fatalf("%d connections, want 1 (a chunked answer read to its end keeps it)", n)
	}
}

// HTTP/1.0 with no length: the body is all until the server closes, and
// the connection is not kept.
func TestHTTP10WithoutLength(t *testing.T) {
	srv := newRawServer(t, func(w *bufio.Writer, nc net.Conn, req *http.Request, conn, n int64) bool {
		fmt.Fprintf(w, "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"conn\":%d}", conn)
		return false
	})
	c := newClient(t, nil)
	for i := 1; i <= 2; i++ {
		if got, want := mustGet(t, c, srv.url()), fmt.Sprintf(`{"conn":%d}`, i); got != want {
			t.Fatalf("answer %q, want %q", got, want)
		}
	}
}

func TestInformationalAnswers(t *testing.T) {
	srv := newRawServer(t, func(w *bufio.Writer, nc net.Conn, req *http.Request, conn, n int64) bool {
		_, _ = w.WriteString("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n")
		ok(w, "final")
		return true
	})
	c := newClient(t, nil)
	for range 2 {
		if got := mustGet(t, c, srv.url()); got != "final" {
			t.Fatalf("answer %q, want the final one", got)
		}
	}
}

// sameError runs one request through the Transport and through Client,
// each on its own connections, and wants the same error text.
func sameError(t *testing.T, target string, mod func(*http.Transport), ctx context.Context) error {
	t.Helper()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	if mod != nil {
		mod(tr)
	}
	_, _, want := get(t, tr, ctx, http.MethodPost, target, "{}")
	tr.CloseIdleConnections()
	c := newClient(t, mod)
	_, _, got := get(t, c, ctx, http.MethodPost, target, "{}")
	if got == nil || want == nil || got.Error() != want.Error() {
		t.Fatalf("error %v, the Transport's %v", got, want)
	}
	return got
}

func TestResponseHeaderTimeout(t *testing.T) {
	srv := newRawServer(t, func(w *bufio.Writer, nc net.Conn, req *http.Request, conn, n int64) bool {
		time.Sleep(time.Second)
		ok(w, "late")
		return true
	})
	start := time.Now()
	err := sameError(t, srv.url(), func(t *http.Transport) { t.ResponseHeaderTimeout = 100 * time.Millisecond }, context.Background())
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("error %v is not a timeout", err)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Fatalf("took %v", d)
	}
}

func TestResponseHeaderLimit(t *testing.T) {
	srv := newRawServer(t, func(w *bufio.Writer, nc net.Conn, req *http.Request, conn, n int64) bool {
		fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nX-Big: %s\r\nContent-Length: 0\r\n\r\n", strings.Repeat("a", 4000))
		return true
	})
	_ = sameError(t, srv.url(), func(t *http.Transport) { t.MaxResponseHeaderBytes = 1000 }, context.Background())
}

func TestNoAnswer(t *testing.T) {
	srv := newRawServer(t, func(w *bufio.Writer, nc net.Conn, req *http.Request, conn, n int64) bool { return false })
	_ = sameError(t, srv.url(), nil, context.Background())
}

func TestGarbageAnswer(t *testing.T) {
	srv := newRawServer(t, func(w *bufio.Writer, nc net.Conn, req *http.Request, conn, n int64) bool {
		_, _ = w.WriteString("SSH-2.0-OpenSSH\r\n\r\n")
		return false
	})
	_ = sameError(t, srv.url(), nil, context.Background())
}

func TestRefused(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	_ = sameError(t, "http://"+addr+"/", nil, context.Background())
}

// A request canceled while its body is read: the read ends with the
// cancellation, the connection is closed, and no later request gets it.
func TestCancelMidBody(t *testing.T) {
	srv := newRawServer(t, func(w *bufio.Writer, nc net.Conn, req *http.Request, conn, n int64) bool {
		if conn == 1 {
			_, _ = w.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
			_ = w.Flush()
			_, _ = io.Copy(io.Discard, nc) // until the client closes
			return false
		}
		ok(w, "fresh")
		return true
	})
	c := newClient(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.url(), nil)
	resp, err := c.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 7)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err = io.ReadAll(resp.Body)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("read error %v, want the cancellation", err)
	}
	resp.Body.Close()
	srv.waitClosed(t, 1)
	if got := mustGet(t, c, srv.url()); got != "fresh" {
		t.Fatalf("answer %q", got)
	}
}

// A body closed before its end closes its connection.
func TestEarlyCloseDropsConnection(t *testing.T) {
	srv := newRawServer(t, func(w *bufio.Writer, nc net.Conn, req *http.Request, conn, n int64) bool {
		ok(w, strings.Repeat("x", 100<<10)) // more than the client buffers
		return true
	})
	c := newClient(t, nil)
	req, _ := http.NewRequest(http.MethodGet, srv.url(), nil)
	resp, err := c.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = resp.Body.Read(make([]byte, 10))
	resp.Body.Close()
	srv.waitClosed(t, 1)
	mustGet(t, c, srv.url())
	if n := srv.accepted.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

func TestMaxConnsPerHost(t *testing.T) {
	srv := newRawServer(t, func(w *bufio.Writer, nc net.Conn, req *http.Request, conn, n int64) bool {
		time.Sleep(5 * time.Millisecond)
		ok(w, "ok")
		return true
	})
	c := newClient(t, func(t *http.Transport) { t.MaxConnsPerHost = 3; t.MaxIdleConnsPerHost = 1 })
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if code, _, err := get(t, c, ctx, http.MethodPost, srv.url(), "{}"); err != nil || code != 200 {
				errs <- fmt.Errorf("%d %w", code, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if m := srv.maxOpen.Load(); m > 3 {
		t.Fatalf("%d connections open at once, want at most 3", m)
	}
}

// A request waiting for a connection at MaxConnsPerHost ends with its context.
func TestMaxConnsPerHostWaitCancelled(t *testing.T) {
	release := make(chan struct{})
	srv := newRawServer(t, func(w *bufio.Writer, nc net.Conn, req *http.Request, conn, n int64) bool {
		<-release
		ok(w, "ok")
		return true
	})
	c := newClient(t, func(t *http.Transport) { t.MaxConnsPerHost = 1 })
	done := make(chan error)
	go func() { _, _, err := get(t, c, context.Background(), http.MethodGet, srv.url(), ""); done <- err }()
	for srv.accepted.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, _, err := get(t, c, ctx, http.MethodGet, srv.url(), ""); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want the deadline", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mustGet(t, c, srv.url())
	if n := srv.accepted.Load(); n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
}

func TestIdleConnTimeout(t *testing.T) {
	srv := newRawServer(t, func(w *bufio.Writer, nc net.Conn, req *http.Request, conn, n int64) bool {
		ok(w, "ok")
		return true
	})
	c := newClient(t, func(t *http.Transport) { t.IdleConnTimeout = 100 * time.Millisecond })
	mustGet(t, c, srv.url())
	srv.waitClosed(t, 1)
}

func TestCloseIdleConnections(t *testing.T) {
	srv := newRawServer(t, func(w *bufio.Writer, nc net.Conn, req *http.Request, conn, n int64) bool {
		ok(w, "ok")
		return true
	})
	c := newClient(t, nil)
	mustGet(t, c, srv.url())
	c.CloseIdleConnections()
	srv.waitClosed(t, 1)

	// Close also closes a connection busy at the time, once its request is done.
	release := make(chan struct{})
	srv2 := newRawServer(t, func(w *bufio.Writer, nc net.Conn, req *http.Request, conn, n int64) bool {
		<-release
		ok(w, "ok")
		return true
	})
	done := make(chan string)
	go func() { done <- mustGet(t, c, srv2.url()) }()
	for srv2.accepted.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	c.Close()
	close(release)
	<-done
	srv2.waitClosed(t, 1)
}

func TestCompression(t *testing.T) {
	var sawAE atomic.Value
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawAE.Store(r.Header.Get("Accept-Encoding"))
		if r.Header.Get("Accept-Encoding") == "gzip" {
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			_, _ = zw.Write([]byte(`{"user":"alice"}`))
			_ = zw.Close()
			return
		}
		_, _ = w.Write([]byte(`{"user":"alice"}`))
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, disable := range []bool{false, true} {
		c := newClient(t, func(t *http.Transport) { t.DisableCompression = disable })
		for range 2 {
			if got := mustGet(t, c, srv.URL); got != `{"user":"alice"}` {
				t.Fatalf("DisableCompression %v: answer %q", disable, got)
			}
		}
		want := "gzip"
		if disable {
			want = ""
		}
		if got := sawAE.Load(); got != want {
			t.Fatalf("DisableCompression %v: Accept-Encoding %q, want %q", disable, got, want)
		}
	}
}

// What Client does not carry, the Transport does: a proxy, https, h2c.
func TestFallbacks(t *testing.T) {
	var proxied atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.IsAbs() {
			proxied.Add(1)
		}
		_, _ = w.Write([]byte("via proxy"))
	}))
	defer proxy.Close()
	pu, _ := url.Parse(proxy.URL)
	c := newClient(t, func(t *http.Transport) { t.Proxy = http.ProxyURL(pu) })
	if got := mustGet(t, c, "http://session.invalid/"); got != "via proxy" || proxied.Load() != 1 {
		t.Fatalf("answer %q, %d proxied", got, proxied.Load())
	}

	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("tls")) }))
	defer tlsSrv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(tlsSrv.Certificate())
	c = newClient(t, func(t *http.Transport) { t.TLSClientConfig = &tls.Config{RootCAs: pool} })
	if got := mustGet(t, c, tlsSrv.URL); got != "tls" {
		t.Fatalf("answer %q", got)
	}
	c = newClient(t, func(t *http.Transport) { t.TLSClientConfig = &tls.Config{RootCAs: x509.NewCertPool()} })
	if _, _, err := get(t, c, context.Background(), http.MethodGet, tlsSrv.URL, ""); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a server signed by another CA: error %v", err)
	}

	var protos atomic.Value
	h2c := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { protos.Store(r.Proto) }))
	h2c.Config.Protocols = new(http.Protocols)
	h2c.Config.Protocols.SetUnencryptedHTTP2(true)
	h2c.Start()
	defer h2c.Close()
	c = newClient(t, func(t *http.Transport) {
		t.Protocols = new(http.Protocols)
		t.Protocols.SetUnencryptedHTTP2(true)
	})
	mustGet(t, c, h2c.URL)
	if got := protos.Load(); got != "HTTP/2.0" {
		t.Fatalf("h2c only: the service saw %v", got)
	}
}

// The answers as the Transport gives them: status, header, body.
func TestSameAnswerAsTransport(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Method", r.Method)
		w.Header().Set("X-Body-Len", fmt.Sprint(r.ContentLength))
		w.Header().Set("X-UA", r.UserAgent())
		switch r.URL.Path {
		case "/401":
			w.WriteHeader(http.StatusUnauthorized)
		case "/redirect":
			http.Redirect(w, r, "/login", http.StatusFound)
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		default:
			_, _ = w.Write(bytes.Repeat([]byte("ab"), 3000))
		}
	}))
	defer srv.Close()
	c := newClient(t, nil)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	for _, path := range []string{"/", "/401", "/redirect", "/empty"} {
		for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodHead, http.MethodDelete} {
			c1, b1, e1 := get(t, c, context.Background(), method, srv.URL+path, "{}")
			c2, b2, e2 := get(t, tr, context.Background(), method, srv.URL+path, "{}")
			if c1 != c2 || b1 != b2 || (e1 == nil) != (e2 == nil) {
				t.Errorf("%s %s: %d %d bytes %v, the Transport's %d %d bytes %v", method, path, c1, len(b1), e1, c2, len(b2), e2)
			}
		}
	}
	if n := len(c.hosts); n != 1 {
		t.Fatalf("%d hosts", n)
	}
}

// Close while a Read waits for the body: the Read fails, the connection
// is closed, and nothing panics.
func TestCloseDuringRead(t *testing.T) {
	srv := newRawServer(t, func(w *bufio.Writer, nc net.Conn, req *http.Request, conn, n int64) bool {
		_, _ = w.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{")
		_ = w.Flush()
		_, _ = io.Copy(io.Discard, nc)
		return false
	})
	c := newClient(t, nil)
	req, _ := http.NewRequest(http.MethodGet, srv.url(), nil)
	resp, err := c.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(50*time.Millisecond, func() { resp.Body.Close() })
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Fatal("a read cut by Close ended without an error")
	}
	srv.waitClosed(t, 1)
}
