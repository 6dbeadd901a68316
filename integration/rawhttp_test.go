package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rawUpstream is a legacy app that reports the request exactly as it came
// off the wire: header names in the spelling and order sent, repeated
// lines kept, trailers apart. net/http would canonicalize names and merge
// lines, hiding the very spellings a spoofing test looks for.
type rawUpstream struct {
	ln   net.Listener
	hits atomic.Int64
}

// rawSeen is what a rawUpstream answers.
type rawSeen struct {
	RequestLine string   `json:"request_line"`
	Lines       []string `json:"lines"`
	Trailer     []string `json:"trailer"`
}

func newRawUpstream(t *testing.T) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go u.serve(c)
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return u
}

func (u *rawUpstream) addr() string { return u.ln.Addr().String() }

func (u *rawUpstream) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second)) // fails only on a closed conn, which the read reports
	var raw bytes.Buffer
	br := bufio.NewReader(io.TeeReader(c, &raw))
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, req.Body) // reads the trailers too
	u.hits.Add(1)

	head, rest, _ := bytes.Cut(raw.Bytes(), []byte("\r\n\r\n"))
	lines := strings.Split(string(head), "\r\n")
	seen := rawSeen{RequestLine: lines[0], Lines: lines[1:], Trailer: []string{}}
	if chunked(req) {
		// After the last chunk ("0"), every line up to the blank one is
		// a trailer.
		after := false
		for _, l := range strings.Split(string(rest), "\r\n") {
			switch {
			case !after && l == "0":
				after = true
			case after && l != "":
				seen.Trailer = append(seen.Trailer, l)
			}
		}
	}
	body, _ := json.Marshal(seen)
	fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
}

func chunked(r *http.Request) bool {
	for _, te := range r.TransferEncoding {
		if te == "chunked" {
			return true
		}
	}
	return false
}

// rawRequest sends text over a fresh TCP connection to the test Caddy, so
// that header names and repeated lines go out exactly as written: Go's
// client would canonicalize them. It returns the response and its body.
// It is sent again only when Caddy's own config reload dropped it
// (afterLoad).
func rawRequest(t testing.TB, text string) (*http.Response, string) {
	t.Helper()
	var resp *http.Response
	var body string
	afterLoad(t, fmt.Sprintf("%q", firstLine(text)), func() (err error) {
		resp, body, err = rawRoundTrip(text)
		return err
	})
	return resp, body
}

func rawRoundTrip(text string) (*http.Response, string, error) {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", httpPort), 5*time.Second)
	if err != nil {
		return nil, "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(15 * time.Second)) // fails only on a closed conn, which the write reports
	if _, err := io.WriteString(c, text); err != nil {
		return nil, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, string(body), err
}

// rawGet builds a GET with the given header lines, written as is.
func rawGet(path string, lines ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: localhost:%d\r\nConnection: close\r\n", path, httpPort)
	for _, l := range lines {
		b.WriteString(l)
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\r\n")
	return l
}

// fold reads a header name the way the most lenient upstream does: any
// case, '_' for '-' (CGI/PHP HTTP_*, nginx underscores_in_headers, WSGI).
// fold reads a name as the loosest upstream does: any case, and every
// byte that is not a letter or digit as one separator.
func fold(name string) string {
	b := []byte(strings.ToLower(strings.TrimSpace(name)))
	for i, c := range b {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			b[i] = '-'
		}
	}
	return string(b)
}

func decodeRawSeen(t *testing.T, body string) rawSeen {
	t.Helper()
	var s rawSeen
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatalf("the raw upstream's answer is not JSON: %v: %q", err, body)
	}
	return s
}
