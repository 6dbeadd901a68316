package sessionctx

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// answerServer answers every request on a real socket with what answer
// writes, then keeps the connection or closes it as answer says.
func answerServer(t *testing.T, answer func(w *bufio.Writer, path string) (keep bool)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				br, bw := bufio.NewReader(c), bufio.NewWriter(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					keep := answer(bw, req.URL.Path)
					_ = bw.Flush()
					if !keep {
						return
					}
				}
			})
		}
	})
	return "http://" + ln.Addr().String()
}

// The session-service calls of a Go user go through h1client on plain
// http, and every answer, good or bad, comes out of service.Do as it does
// through the bare transport: the same status, body, failure kind and
// message. Each failure is followed by a good answer, which a connection
// left half-read would spoil.
func TestServiceDoSameOverBothClients(t *testing.T) {
	base := answerServer(t, func(w *bufio.Writer, path string) bool {
		switch path {
		case "/ok":
			fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(`{"user":"alice"}`), `{"user":"alice"}`)
		case "/chunked":
			_, _ = w.WriteString("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n")
		case "/401":
			_, _ = w.WriteString("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
		case "/redirect":
			_, _ = w.WriteString("HTTP/1.1 302 Found\r\nLocation: /login\r\nContent-Length: 0\r\n\r\n")
		case "/large":
			fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nContent-Length: 300\r\n\r\n%s", strings.Repeat("x", 300))
		case "/large-chunked":
			_, _ = w.WriteString("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
			for range 3 {
				fmt.Fprintf(w, "64\r\n%s\r\n", strings.Repeat("y", 100))
			}
			_, _ = w.WriteString("0\r\n\r\n")
		case "/http10":
			_, _ = w.WriteString("HTTP/1.0 200 OK\r\n\r\n{\"old\":true}")
			return false
		case "/cut":
			_, _ = w.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"user\":")
			return false
		case "/garbage":
			_, _ = w.WriteString("SSH-2.0-OpenSSH_9.6\r\n\r\n")
			return false
		case "/silent":
			return false
		case "/slow-header":
			_ = w.Flush()
			time.Sleep(400 * time.Millisecond)
			_, _ = w.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
		case "/slow-body":
			_, _ = w.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n{\"user\":")
			_ = w.Flush()
			time.Sleep(400 * time.Millisecond)
			_, _ = w.WriteString("\"alice\"}   ")
		case "/early-hints":
			_, _ = w.WriteString("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n")
			_, _ = w.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
		}
		return true
	})
	cfg := Config{Dialect: "http", URL: base, MaxBody: 200, Timeout: 200 * time.Millisecond}
	fast, err := newService(cfg)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := newService(cfg)
	if err != nil {
		t.Fatal(err)
	}
	plain.Client.Transport = plainTransport(&tls.Config{})
	t.Cleanup(fast.Client.CloseIdleConnections)
	t.Cleanup(plain.Client.CloseIdleConnections)
	if _, isTransport := fast.Client.Transport.(*http.Transport); isTransport {
		t.Fatal("the service's client is the bare transport")
	}

	do := func(s *service, path string) string {
		req, err := s.NewRequest(context.Background(), http.MethodPost, s.Endpoint(path, ""), strings.NewReader(`{"token":"t"}`))
		if err != nil {
			t.Fatal(err)
		}
		status, body, err := s.Do(req)
		return fmt.Sprintf("%d %q kind=%s err=%v", status, body, FailureKindOf(err), err)
	}
	refused, _ := net.Listen("tcp", "127.0.0.1:0")
	refusedURL := "http://" + refused.Addr().String()
	refused.Close()
	for _, path := range []string{
		"/ok", "/chunked", "/401", "/redirect", "/large", "/large-chunked", "/http10", "/cut",
		"/garbage", "/silent", "/slow-header", "/slow-body", "/early-hints",
	} {
		got, want := do(fast, path), do(plain, path)
		t.Logf("%s: %s", path, got)
		if got != want {
			t.Errorf("%s:\n got %s\nwant %s (the transport's)", path, got, want)
		}
		if got, want := do(fast, "/ok"), do(plain, "/ok"); got != want || !strings.HasPrefix(got, "200") {
			t.Errorf("after %s: %s, want %s", path, got, want)
		}
	}
	fast.URL.Host, plain.URL.Host = strings.TrimPrefix(refusedURL, "http://"), strings.TrimPrefix(refusedURL, "http://")
	if got, want := do(fast, "/ok"), do(plain, "/ok"); got != want {
		t.Errorf("refused:\n got %s\nwant %s", got, want)
	}
}
