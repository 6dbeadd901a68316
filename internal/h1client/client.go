// Package h1client carries plain-HTTP/1.1 requests on the calling
// goroutine over kept connections, driven by the settings of an
// *http.Transport. net/http's Transport hands every request to two
// goroutines of its connection (one writes, one reads) and back; a session
// service answers one small request at a time, and those hand-offs cost
// more of a cold lookup than the request itself. Client writes the
// request and reads the answer's header with net/http's own Request.Write
// and ReadResponse where the caller runs, and gives the connection back
// when the caller has read the body to its end.
//
// Whatever Client cannot carry exactly as the Transport would, the
// Transport carries: https (TLS, ALPN and HTTP/2 stay the Transport's), a
// request the Transport's Proxy sends through a proxy, HTTP/2 as the only
// protocol for plain http (h2c), a request with a trailer, a transfer
// encoding of its own, an Expect header, an invalid method or header,
// Request.Cancel, an httptrace in its context, a host that is not ASCII,
// and a Transport with the deprecated Dial alone.
package h1client

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Client is an http.RoundTripper over the settings of one *http.Transport,
// which also carries what Client does not (see the package doc). The
// settings it honors keep their meaning: DialContext, ReadBufferSize,
// WriteBufferSize, ResponseHeaderTimeout, MaxResponseHeaderBytes,
// MaxConnsPerHost (a request waits for a connection, as the Transport's
// does), MaxIdleConns, MaxIdleConnsPerHost, IdleConnTimeout,
// DisableKeepAlives and DisableCompression (gzip asked for and decoded
// when compression is on). The Transport must not be changed once
// Client uses it.
type Client struct {
	t    *http.Transport
	dial func(ctx context.Context, network, addr string) (net.Conn, error)

	mu        sync.Mutex
	hosts     map[string]*host // by Request.URL.Host
	idleTotal int
	closed    bool // by Close: no connection is kept any more
}

// New returns a Client driven by t.
func New(t *http.Transport) *Client {
	c := &Client{t: t, hosts: make(map[string]*host)}
	switch {
	case t.DialContext != nil:
		c.dial = t.DialContext
	case t.Dial == nil: //nolint:staticcheck // SA1019: a Transport with Dial alone is left to itself
		c.dial = new(net.Dialer).DialContext
	}
	return c
}

// Transport returns the Transport that drives c.
func (c *Client) Transport() *http.Transport { return c.t }

// CloseIdleConnections closes the connections that carry no request,
// Client's and the Transport's. Requests under way finish on theirs,
// which are closed when they are done if Client is then closed again.
func (c *Client) CloseIdleConnections() {
	c.mu.Lock()
	var idle []*conn
	for _, h := range c.hosts {
		idle = append(idle, h.idle...)
		clear(h.idle)
		h.idle = h.idle[:0]
	}
	c.idleTotal = 0
	c.mu.Unlock()
	for _, pc := range idle {
		pc.close()
	}
	c.t.CloseIdleConnections()
}

// Close closes the idle connections, as CloseIdleConnections does, and
// each connection under way when its request is done: c is being
// replaced. Requests sent after still go, each on a connection of its own.
func (c *Client) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.CloseIdleConnections()
}

// RoundTrip implements http.RoundTripper.
func (c *Client) RoundTrip(req *http.Request) (*http.Response, error) {
	h := c.route(req)
	if h == nil {
		return c.t.RoundTrip(req)
	}
	ctx := req.Context()
	wreq, gzipped := c.outgoing(req)
	for retried := false; ; retried = true {
		if ctx.Err() != nil {
			closeBody(wreq)
			return nil, context.Cause(ctx)
		}
		pc, err := h.get(ctx, retried)
		if err != nil {
			closeBody(wreq)
			return nil, err
		}
		resp, retry, err := pc.roundTrip(ctx, wreq, req, gzipped)
		if err == nil {
			return resp, nil
		}
		if !retry || retried {
			return nil, err
		}
		// A kept connection the server had closed, nothing of an answer
		// read: once more on a new one, the body rewound.
		if wreq.Body != nil && wreq.Body != http.NoBody {
			body, gerr := req.GetBody()
			if gerr != nil {
				return nil, err
			}
			if wreq == req {
				r := *req
				wreq = &r
			}
			wreq.Body = body
		}
	}
}

// route returns the pool of connections to req's host when Client
// carries req itself, nil when the Transport does.
func (c *Client) route(req *http.Request) *host {
	u := req.URL
	if u == nil || u.Scheme != "http" || u.Host == "" || req.Header == nil || c.dial == nil ||
		req.Cancel != nil || req.TransferEncoding != nil || len(req.Trailer) > 0 || //nolint:staticcheck // SA1019: Request.Cancel is the Transport's to honor
		(c.t.Protocols != nil && !c.t.Protocols.HTTP1()) {
		return nil
	}
	if _, ok := req.Header["Expect"]; ok {
		return nil
	}
	if req.Method != "" && !httpguts.ValidHeaderFieldName(req.Method) {
		return nil
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return nil
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return nil
			}
		}
	}
	if httptrace.ContextClientTrace(req.Context()) != nil {
		return nil
	}
	if c.t.Proxy != nil {
		if p, err := c.t.Proxy(req); p != nil || err != nil {
			return nil
		}
	}
	c.mu.Lock()
	h, ok := c.hosts[u.Host]
	if !ok {
		h = newHost(c, u)
		c.hosts[u.Host] = h
	}
	c.mu.Unlock()
	return h
}

// outgoing returns the request as written: req, or a copy with the
// headers the Transport would add (Accept-Encoding: gzip when it may
// decode the answer, Connection: close without keep-alives). gzipped
// says that Client asked for gzip and so decodes it.
func (c *Client) outgoing(req *http.Request) (wreq *http.Request, gzipped bool) {
	gzipped = !c.t.DisableCompression && req.Method != http.MethodHead &&
		req.Header.Get("Accept-Encoding") == "" && req.Header.Get("Range") == ""
	closing := c.t.DisableKeepAlives && !req.Close
	if !gzipped && !closing {
		return req, false
	}
	r := *req
	if gzipped {
		r.Header = make(http.Header, len(req.Header)+1)
		for k, v := range req.Header {
			r.Header[k] = v
		}
		r.Header["Accept-Encoding"] = acceptGzip
	}
	r.Close = r.Close || closing
	return &r, gzipped
}

var acceptGzip = []string{"gzip"}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// host is the connections to one host: the idle ones, most recently used
// last, and the requests waiting for one when MaxConnsPerHost are open.
type host struct {
	c       *Client
	addr    string
	idle    []*conn
	open    int // connections open or being dialed
	waiters []chan *conn

	sweeping bool
	sweeper  *time.Timer
}

func newHost(c *Client, u *url.URL) *host {
	port := u.Port()
	if port == "" {
		port = "80"
	}
	return &host{c: c, addr: net.JoinHostPort(u.Hostname(), port)}
}

// get returns an idle connection (unless fresh), a new one, or, with
// MaxConnsPerHost open, the first one another request gives up.
func (h *host) get(ctx context.Context, fresh bool) (*conn, error) {
	c := h.c
	c.mu.Lock()
	var expired []*conn
	for n := len(h.idle); n > 0 && !fresh; n = len(h.idle) {
		pc := h.idle[n-1]
		h.idle[n-1] = nil
		h.idle = h.idle[:n-1]
		c.idleTotal--
		if d := c.t.IdleConnTimeout; d > 0 && time.Since(pc.idleAt) >= d {
			expired = append(expired, pc)
			continue
		}
		c.mu.Unlock()
		closeAll(expired)
		return pc, nil
	}
	if limit := c.t.MaxConnsPerHost; limit <= 0 || h.open < limit {
		h.open++
		c.mu.Unlock()
		closeAll(expired)
		return h.dial(ctx)
	}
	w := make(chan *conn, 1)
	h.waiters = append(h.waiters, w)
	c.mu.Unlock()
	closeAll(expired)
	select {
	case pc := <-w:
		if pc == nil {
			return h.dial(ctx)
		}
		return pc, nil
	case <-ctx.Done():
		c.mu.Lock()
		waiting := false
		for i, x := range h.waiters {
			if x == w {
				h.waiters = append(h.waiters[:i], h.waiters[i+1:]...)
				waiting = true
				break
			}
		}
		c.mu.Unlock()
		if !waiting {
			// Given a connection or a place as the context ended: pass it on.
			if pc := <-w; pc != nil {
				h.put(pc)
			} else {
				h.closed()
			}
		}
		return nil, context.Cause(ctx)
	}
}

func closeAll(conns []*conn) {
	for _, pc := range conns {
		pc.close()
	}
}

// dial opens a connection in a place get counted as open.
func (h *host) dial(ctx context.Context) (*conn, error) {
	nc, err := h.c.dial(ctx, "tcp", h.addr)
	if err != nil {
		h.closed()
		return nil, err
	}
	pc := &conn{h: h, nc: nc}
	pc.br = bufio.NewReaderSize(pc, bufferSize(h.c.t.ReadBufferSize))
	pc.bw = bufio.NewWriterSize(nc, bufferSize(h.c.t.WriteBufferSize))
	return pc, nil
}

func bufferSize(n int) int {
	if n > 0 {
		return n
	}
	return 4 << 10 // the Transport's default
}

// put makes pc, which has carried a request to its end, the next one's.
func (h *host) put(pc *conn) {
	c := h.c
	pc.reused = true
	c.mu.Lock()
	if len(h.waiters) > 0 {
		w := h.waiters[0]
		h.waiters = h.waiters[1:]
		c.mu.Unlock()
		w <- pc
		return
	}
	maxIdle := c.t.MaxIdleConnsPerHost
	if maxIdle == 0 {
		maxIdle = http.DefaultMaxIdleConnsPerHost
	}
	if len(h.idle) >= maxIdle || c.closed {
		c.mu.Unlock()
		pc.close()
		return
	}
	var evicted *conn
	if c.t.MaxIdleConns > 0 && c.idleTotal >= c.t.MaxIdleConns {
		evicted = c.oldestIdleLocked()
	}
	pc.idleAt = time.Now()
	h.idle = append(h.idle, pc)
	c.idleTotal++
	if d := c.t.IdleConnTimeout; d > 0 && !h.sweeping {
		h.sweeping = true
		if h.sweeper == nil {
			h.sweeper = time.AfterFunc(d, h.sweep)
		} else {
			h.sweeper.Reset(d)
		}
	}
	c.mu.Unlock()
	if evicted != nil {
		evicted.close()
	}
}

// oldestIdleLocked takes the connection idle the longest out of the pool.
func (c *Client) oldestIdleLocked() *conn {
	var oldest *host
	for _, h := range c.hosts {
		if len(h.idle) > 0 && (oldest == nil || h.idle[0].idleAt.Before(oldest.idle[0].idleAt)) {
			oldest = h
		}
	}
	if oldest == nil {
		return nil
	}
	pc := oldest.idle[0]
	oldest.idle = append(oldest.idle[:0], oldest.idle[1:]...)
	c.idleTotal--
	return pc
}

// sweep closes the connections idle for IdleConnTimeout and comes back
// when the next one will be.
func (h *host) sweep() {
	c := h.c
	d := c.t.IdleConnTimeout
	now := time.Now()
	c.mu.Lock()
	n := 0
	for n < len(h.idle) && now.Sub(h.idle[n].idleAt) >= d {
		n++
	}
	expired := make([]*conn, n)
	copy(expired, h.idle[:n])
	h.idle = append(h.idle[:0], h.idle[n:]...)
	c.idleTotal -= n
	if len(h.idle) > 0 {
		h.sweeper.Reset(h.idle[0].idleAt.Add(d).Sub(now))
	} else {
		h.sweeping = false
	}
	c.mu.Unlock()
	closeAll(expired)
}

// closed gives up the place of a connection closed or never opened: to
// the first request waiting for one, which then dials.
func (h *host) closed() {
	c := h.c
	c.mu.Lock()
	if len(h.waiters) > 0 {
		w := h.waiters[0]
		h.waiters = h.waiters[1:]
		c.mu.Unlock()
		w <- nil
		return
	}
	h.open--
	c.mu.Unlock()
}

// conn is one connection. Its reads count the bytes of the answer under
// way and stop at the header limit.
type conn struct {
	h      *host
	nc     net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	reused bool
	idleAt time.Time

	nread int64 // bytes read since the request was written
	limit int64 // bytes that may still be read
	once  sync.Once
}

// Read implements io.Reader for br.
func (pc *conn) Read(p []byte) (int, error) {
	if pc.limit <= 0 {
		return 0, errHeaderLimit
	}
	if int64(len(p)) > pc.limit {
		p = p[:pc.limit]
	}
	n, err := pc.nc.Read(p)
	pc.nread += int64(n)
	pc.limit -= int64(n)
	return n, err
}

var errHeaderLimit = errors.New("response header limit reached")

func (pc *conn) close() {
	pc.once.Do(func() {
		pc.nc.Close()
		pc.h.closed()
	})
}

// headerLimit is the Transport's limit on a response header.
func (pc *conn) headerLimit() int64 {
	if n := pc.h.c.t.MaxResponseHeaderBytes; n != 0 {
		return n
	}
	return 10 << 20 // the Transport's default
}

// roundTrip writes wreq and reads the answer's header. retry says that
// the request may go again on a new connection: this one was kept, the
// server has closed it (or is closing it), and nothing of an answer came.
func (pc *conn) roundTrip(ctx context.Context, wreq, req *http.Request, gzipped bool) (resp *http.Response, retry bool, err error) {
	t := pc.h.c.t
	// A canceled request closes its connection: every read or write
	// under way on it then fails, and the connection is nobody's.
	stop := context.AfterFunc(ctx, pc.close)
	fail := func(err error) (*http.Response, bool, error) {
		stop()
		pc.close()
		if ctx.Err() != nil {
			return nil, false, context.Cause(ctx)
		}
		return nil, retry, err
	}
	reused := pc.reused
	pc.nread = 0
	pc.limit = pc.headerLimit()
	if err := wreq.Write(pc.bw); err != nil {
		retry = reused && pc.nread == 0 && replayable(req)
		return fail(fmt.Errorf("net/http: HTTP/1.x transport connection broken: write error: %w", err))
	}
	if err := pc.bw.Flush(); err != nil {
		retry = reused && pc.nread == 0 && replayable(req)
		return fail(fmt.Errorf("net/http: HTTP/1.x transport connection broken: write error: %w", err))
	}

	var timer *time.Timer
	if d := t.ResponseHeaderTimeout; d > 0 {
		timer = time.AfterFunc(d, pc.close)
	}
	_, err = pc.br.Peek(1)
	answered := err == nil
	for answered {
		resp, err = http.ReadResponse(pc.br, req)
		if err != nil {
			break
		}
		if code := resp.StatusCode; code < 100 || code > 199 || code == http.StatusSwitchingProtocols {
			break
		}
		// An informational answer before the answer: skipped, as the
		// Transport skips it; its header counts towards the limit.
	}
	if timer != nil && !timer.Stop() {
		// The header came too late, or not at all: the timer has closed
		// the connection.
		return fail(errHeaderTimeout)
	}
	switch {
	case err == nil && reused && resp.StatusCode == http.StatusRequestTimeout && replayable(req):
		// A server that times a kept connection out may say so before
		// closing it: that 408 answers no request of ours.
		retry = true
		return fail(errServerClosedIdle)
	case err == nil:
	case pc.limit <= 0:
		return fail(fmt.Errorf("net/http: HTTP/1.x transport connection broken: net/http: server response headers exceeded %d bytes; aborted", pc.headerLimit()))
	case !answered:
		// Not a byte of an answer: the Transport reports the read's own
		// error, and sends again on a new connection a request that
		// went on a kept one.
		retry = reused && replayable(req)
		return fail(err)
	default:
		return fail(fmt.Errorf("net/http: HTTP/1.x transport connection broken: %w", err))
	}
	pc.limit = 1<<63 - 1 // no limit on the body but the caller's

	keep := !resp.Close && !wreq.Close && resp.StatusCode != http.StatusSwitchingProtocols
	b := &body{rc: resp.Body, pc: pc, ctx: ctx, stop: stop, keep: keep}
	if resp.Body == http.NoBody {
		b.finish(true) // b is nobody else's yet
	} else {
		resp.Body = b
	}
	if gzipped && resp.Body != http.NoBody && strings.EqualFold(resp.Header.Get("Content-Encoding"), "gzip") {
		resp.Body = &gzipBody{body: b}
		resp.Header.Del("Content-Encoding")
		resp.Header.Del("Content-Length")
		resp.ContentLength = -1
		resp.Uncompressed = true
	}
	return resp, false, nil
}

// replayable says whether req can be sent again: no body, or one
// GetBody gives again.
func replayable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

// body is an answer's body. Read to its end, it gives its connection to
// the next request; closed before, it closes the connection. Close may
// come while a Read is under way, as with the Transport's bodies: it
// closes the connection, and the Read fails.
type body struct {
	rc   io.ReadCloser
	ctx  context.Context
	stop func() bool
	keep bool

	mu  sync.Mutex
	pc  *conn // nil once finished
	err error // what Read returns once finished
}

func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	done, ferr := b.pc == nil, b.err
	b.mu.Unlock()
	if done {
		return 0, ferr
	}
	n, err := b.rc.Read(p)
	if err == nil {
		return n, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.pc == nil: // closed meanwhile
		err = b.err
	case errors.Is(err, io.EOF):
		b.finish(true)
		b.err = io.EOF
	default:
		b.finish(false)
		if b.ctx.Err() != nil {
			err = context.Cause(b.ctx)
		}
		b.err = err
	}
	return n, err
}

func (b *body) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pc != nil {
		b.finish(false)
		b.err = errBodyClosed
	}
	return nil
}

var errBodyClosed = errors.New("http: read on closed response body")

// finish ends the request: its connection goes to the next one when
// the answer was read to its end, nothing follows it, both sides keep
// it, and no cancellation has closed it meanwhile; else it is closed.
func (b *body) finish(eof bool) {
	pc := b.pc
	b.pc = nil
	if b.stop() && eof && b.keep && !pc.h.c.t.DisableKeepAlives && pc.br.Buffered() == 0 {
		pc.h.put(pc)
		return
	}
	pc.close()
}

// gzipBody decodes a body the Client asked gzip for, as the Transport does.
type gzipBody struct {
	body *body
	zr   *gzip.Reader
	err  error
}

func (g *gzipBody) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	if g.zr == nil {
		zr, err := gzip.NewReader(g.body)
		if err != nil {
			g.err = err
			return 0, err
		}
		g.zr = zr
	}
	n, err := g.zr.Read(p)
	if errors.Is(err, io.EOF) {
		// The gzip stream ends where the body should: read the body to
		// its end so that the connection goes back to the pool.
		if _, berr := g.body.Read(make([]byte, 1)); !errors.Is(berr, io.EOF) {
			g.body.Close()
		}
	}
	if err != nil {
		g.err = err
	}
	return n, err
}

func (g *gzipBody) Close() error { return g.body.Close() }

// The Transport's own errors, with its words, for the same logs.
var (
	errServerClosedIdle = errors.New("http: server closed idle connection")
	errHeaderTimeout    = &timeoutError{"net/http: timeout awaiting response headers"}
)

type timeoutError struct{ msg string }

func (e *timeoutError) Error() string   { return e.msg }
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return true }

// Interface guards
var (
	_ http.RoundTripper = (*Client)(nil)
	_ net.Error         = (*timeoutError)(nil)
)
