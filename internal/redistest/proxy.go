package redistest

import (
	"net"
	"sync"
	"testing"
)

// Proxy is a TCP proxy the test controls, between one client and the
// server: it forwards both ways until Stall, which holds every byte
// (connections stay open, new ones are accepted, nothing passes) until
// Resume. It stalls one node's Redis connection while the others' stay
// healthy.
type Proxy struct {
	// Addr is host:port to dial in place of the server's.
	Addr string

	target string
	ln     net.Listener
	mu     sync.Mutex
	cond   *sync.Cond
	stall  bool
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// NewProxy starts a proxy to target (host:port), closed at the end of
// the test.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln, conns: map[net.Conn]struct{}{}}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// URL is the redis:// URL of database 0 through the proxy.
func (p *Proxy) URL() string { return "redis://" + p.Addr + "/0" }

// Stall holds every byte from now on, both ways.
func (p *Proxy) Stall() {
	p.mu.Lock()
	p.stall = true
	p.mu.Unlock()
}

// Resume lets the held bytes and the next ones pass.
func (p *Proxy) Resume() {
	p.mu.Lock()
	p.stall = false
	p.cond.Broadcast()
	p.mu.Unlock()
}

// Close stops the proxy and closes its connections.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.stall = false
	p.cond.Broadcast()
	for c := range p.conns {
		_ = c.Close() // ending the copies; their errors are expected
	}
	p.mu.Unlock()
	_ = p.ln.Close() // ends accept
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close() // the server is down: so is the client's connection
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = c.Close()
			_ = s.Close()
			return
		}
		p.conns[c], p.conns[s] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.copy(s, c)
		go p.copy(c, s)
	}
}

// copy forwards from src to dst, each chunk waiting while stalled.
func (p *Proxy) copy(dst, src net.Conn) {
	defer p.wg.Done()
	defer func() {
		_ = dst.Close() // one side gone: so is the other
		_ = src.Close()
		p.mu.Lock()
		delete(p.conns, dst)
		delete(p.conns, src)
		p.mu.Unlock()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for p.stall && !p.closed {
				p.cond.Wait()
			}
			p.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // EOF or a closed connection: the deferred closes end both sides
		}
	}
}
