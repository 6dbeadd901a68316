// Package redistest runs a real redis-server for tests: on a free port of
// the loopback interface, with no persistence, stopped when the test ends.
// It is a non-test package so that the tests of every package (the cluster
// tier's own, the multi-node end-to-end tests, the benchmarks) share it.
//
// Without redis-server on the machine the tests that need it skip; under
// CI (the CI environment variable set) they fail instead, so a CI image
// that lost the package cannot pass by skipping.
package redistest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Path is where Debian's redis-server package installs the server.
const Path = "/usr/bin/redis-server"

// Server is one redis-server process the test owns. Its port stays the
// same across Stop/Start, so clients pointed at it reconnect after a
// restart just as they would to a production Redis that came back.
type Server struct {
	// Addr is host:port, for clients that take an address.
	Addr string

	t     testing.TB
	path  string
	port  int
	dir   string
	args  []string
	conf  string // a Sentinel's config file (sentinel.go)
	mu    sync.Mutex
	cmd   *exec.Cmd
	done  chan struct{}
	out   *logBuffer
	pause bool
}

// Start runs a redis-server for the test and stops it at the end of the
// test. args are extra redis-server options ("--requirepass", "pw").
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	return start(t, "", args)
}

// start is Start, for a Sentinel when conf names its config file.
func start(t testing.TB, conf string, args []string) *Server {
	t.Helper()
	if testing.Short() {
		t.Skip("needs redis-server: not part of the fast gate (go test -short)")
	}
	path := Path
	if p := os.Getenv("SESSIONGATE_REDIS_SERVER"); p != "" {
		path = p
	}
	if conf != "" {
		path = requireTool(t, SentinelPath, "redis-sentinel")
	}
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing in CI (install the redis-server package): %v", path, err)
		}
		t.Skipf("%s not installed (apt-get install redis-server); the cluster tests run in CI", path)
	}
	s := &Server{
		t:    t,
		path: path,
		port: freePort(t),
		dir:  t.TempDir(),
		args: args,
		conf: conf,
	}
	// A port found free may be taken before the server listens on it:
	// then another one.
	for attempt := 1; ; attempt++ {
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
		s.mu.Lock()
		err := s.start()
		s.mu.Unlock()
		if err == nil {
			break
		}
		if !errors.Is(err, errPortInUse) || attempt == 5 {
			t.Fatal(err)
		}
		s.port = freePort(t)
	}
	t.Cleanup(s.Stop)
	return s
}

// URL is the redis:// URL of the server's database 0, without credentials.
func (s *Server) URL() string { return "redis://" + s.Addr + "/0" }

// Start starts the server again after Stop or Kill, on the same port and
// with an empty dataset (nothing is persisted). A port taken meanwhile by
// something else (a connection of another process, between Stop and
// Start) is tried again for a few seconds.
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for deadline := time.Now().Add(5 * time.Second); ; {
		err := s.start()
		if err == nil {
			return
		}
		if !errors.Is(err, errPortInUse) || time.Now().After(deadline) {
			s.t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// errPortInUse is a redis-server that could not listen on its port.
var errPortInUse = errors.New("port in use")

// start runs the server and waits until it answers; s.mu is held.
func (s *Server) start() error {
	if s.cmd != nil {
		return nil
	}
	var args []string
	if s.conf != "" {
		args = []string{s.conf, "--sentinel"}
	}
	args = append(append(args,
		"--bind", "127.0.0.1",
		"--port", strconv.Itoa(s.port),
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--daemonize", "no",
		"--loglevel", "warning"),
		s.args...)
	cmd := exec.Command(s.path, args...)
	out := new(logBuffer)
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }() // the exit status is Stop's kill
	s.cmd, s.done, s.out, s.pause = cmd, done, out, false
	exited := func() error {
		select {
		case <-done:
		default:
			return nil
		}
		s.cmd = nil
		if strings.Contains(out.String(), "Address already in use") {
			return fmt.Errorf("redis-server on %s: %w: %s", s.Addr, errPortInUse, out.String())
		}
		return fmt.Errorf("redis-server exited on start: %s", out.String())
	}

	// Ready is the first moment a client's connection gets an answer; a
	// failed AUTH (the test passed --requirepass) is an answer too. The
	// answer must be this process's: one that has exited did not give it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.Close()
			cl := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err = cl.Ping(ctx).Err()
			cancel()
			cl.Close()
			if err == nil || isAuthError(err) {
				return exited()
			}
		}
		if err := exited(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server not ready on %s after 10s: %w\n%s", s.Addr, err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func isAuthError(err error) bool {
	msg := err.Error()
	return strings.HasPrefix(msg, "NOAUTH") || strings.HasPrefix(msg, "WRONGPASS")
}

// logBuffer takes the server's output from exec's copying goroutine while
// the test may read it.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Stop ends the server (SIGKILL, so no shutdown work is done) and waits
// for it to exit. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	if s.pause {
		_ = s.cmd.Process.Signal(syscall.SIGCONT) // the kill below ends it either way
	}
	_ = s.cmd.Process.Kill() // fails only if it has already exited, which is what Stop wants
	<-s.done
	s.cmd = nil
}

// Kill is Stop by another name, for tests that read as a fault: the
// server dies at once, mid-load.
func (s *Server) Kill() { s.Stop() }

// Restart stops the server and starts it again on the same port, empty.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.Start()
}

// Pause freezes the server (SIGSTOP): connections stay open and every
// command hangs, as when Redis is overloaded or swapped out.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP, true) }

// Resume undoes Pause (SIGCONT).
func (s *Server) Resume() { s.signal(syscall.SIGCONT, false) }

func (s *Server) signal(sig syscall.Signal, paused bool) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.t.Fatalf("redis-server is not running")
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("signaling redis-server: %v", err)
	}
	s.pause = paused
}

// PID is the server's process id, for tests that signal it themselves.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Client is a go-redis client of the server, closed at the end of the
// test, for tests that look into Redis (scan keys, tamper with values).
// opts may set credentials; Addr is filled in.
func (s *Server) Client(opts *redis.Options) *redis.Client {
	s.t.Helper()
	if opts == nil {
		opts = &redis.Options{}
	}
	o := *opts
	o.Addr = s.Addr
	c := redis.NewClient(&o)
	s.t.Cleanup(func() { c.Close() })
	return c
}

// Log is what the server printed so far (warnings and errors only).
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out == nil {
		return ""
	}
	return s.out.String()
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// String names the server in test output.
func (s *Server) String() string { return fmt.Sprintf("redis-server %s", s.Addr) }
