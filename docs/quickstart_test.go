//go:build unix

package docs

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// quickStart is the README's "Quick start" section: the command that runs
// the demo, and the commands a user then types in another terminal.
func quickStart(t *testing.T) (run string, tries []string) {
	t.Helper()
	_, section, ok := strings.Cut(read(t, "README.md"), "\n## Quick start\n")
	if !ok {
		t.Fatal("README.md has no \"## Quick start\" section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var shell []string
	for _, b := range blocksOf(section) {
		if b.lang == "sh" {
			shell = append(shell, b.text)
		}
	}
	if len(shell) != 2 {
		t.Fatalf("the Quick start has %d sh blocks, want 2 (the demo, then what to try)", len(shell))
	}
	run = strings.TrimSpace(shell[0])
	for line := range strings.Lines(shell[1]) {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			tries = append(tries, line)
		}
	}
	return run, tries
}

// blocksOf is blocks for a piece of a document already read.
func blocksOf(text string) []block {
	var out []block
	var cur *block
	for line := range strings.Lines(text) {
		line = strings.TrimSuffix(line, "\n")
		m := fence.FindStringSubmatch(line)
		switch {
		case m != nil && cur == nil:
			cur = &block{lang: strings.TrimSpace(m[1])}
		case m != nil && m[1] == "":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		}
	}
	return out
}

// TestQuickStart runs the README's Quick start as a user does, from the
// repository root: the demo by its own command, on the ports and names it
// prints, then every command of "in another terminal" with the real curl,
// then the demo's documented stop. A command added to the README without
// an expectation here fails the test.
func TestQuickStart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the demo")
	}
	for _, tool := range []string{"go", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to run the Quick start: %v", tool, err)
		}
	}
	run, tries := quickStart(t)
	if want := "go run ./cmd/caddy run --config Caddyfile.example"; run != want {
		t.Fatalf("the Quick start runs %q; this test knows %q", run, want)
	}
	// What each command of the README must print, in the README's order.
	expect := []struct {
		has, hasNot []string
	}{
		{has: []string{"X-Session-User:    alice", "X-Session-Roles:   admin,developer"}, hasNot: []string{"mallory"}},
		{has: []string{"X-Session-User:    bob"}, hasNot: []string{"alice"}},
		{has: []string{"HTTP/1.1 401", "Www-Authenticate: Bearer"}},
		{has: []string{`"user":"alice"`, `"email":"alice@example.com"`}},
	}
	if len(tries) != len(expect) {
		t.Fatalf("the Quick start has %d commands to try, this test expects %d: %q", len(tries), len(expect), tries)
	}
	for _, port := range []string{"8080", "9001", "9002", "2020"} {
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second); err == nil {
			c.Close()
			t.Fatalf("port %s is taken: the demo needs it (is a demo already running?)", port)
		}
	}

	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	env := append(os.Environ(), "XDG_CONFIG_HOME="+home+"/config", "XDG_DATA_HOME="+home+"/data")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	demo := exec.CommandContext(ctx, "sh", "-c", run)
	demo.Dir, demo.Env = root, env
	// go run starts Caddy as its child: a failed test must stop both.
	demo.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	demo.Cancel = func() error { return syscall.Kill(-demo.Process.Pid, syscall.SIGKILL) }
	out, err := demo.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := demo.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	var log strings.Builder
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
		}
		exited <- demo.Wait()
	}()
	defer func() {
		if demo.ProcessState == nil {
			_ = syscall.Kill(-demo.Process.Pid, syscall.SIGKILL)
			t.Logf("killed the demo: %v", <-exited)
		}
	}()

	// The first run builds all of Caddy: minutes on a busy machine.
	deadline := time.Now().Add(7 * time.Minute)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:8080", time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("the demo exited before serving: %v\n%s", err, log.String())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the demo serves nothing on :8080 after 7 minutes\n%s", log.String())
		}
	}

	for i, cmd := range tries {
		c := exec.CommandContext(ctx, "sh", "-c", cmd)
		c.Dir, c.Env = root, env
		var stderr strings.Builder
		c.Stderr = &stderr
		got, err := c.Output()
		if err != nil {
			t.Errorf("%s: %v\n%s%s", cmd, err, got, stderr.String())
			continue
		}
		for _, want := range expect[i].has {
			if !strings.Contains(string(got), want) {
				t.Errorf("%s\nprints no %q:\n%s", cmd, want, got)
			}
		}
		for _, bad := range expect[i].hasNot {
			if strings.Contains(string(got), bad) {
				t.Errorf("%s\nprints %q:\n%s", cmd, bad, got)
			}
		}
	}

	// The demo's own stop instruction ends go run and its Caddy alike.
	stop := exec.CommandContext(ctx, "go", "run", "./cmd/caddy", "stop", "--config", "Caddyfile.example")
	stop.Dir, stop.Env = root, env
	if got, err := stop.CombinedOutput(); err != nil {
		t.Fatalf("caddy stop --config Caddyfile.example: %v\n%s", err, got)
	}
	select {
	case err := <-exited:
		t.Logf("the demo exited after caddy stop: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the demo still runs 30s after caddy stop")
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:8080", time.Second); err == nil {
		c.Close()
		t.Error("something still serves :8080 after the demo stopped")
	}
}
