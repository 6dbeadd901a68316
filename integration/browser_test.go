//go:build unix

package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// chromiumPath is Debian's chromium package; .ci/run installs it.
const chromiumPath = "/usr/bin/chromium"

// demoPorts moves the demo's sites off the ports a running demo would
// hold: the proxy onto the test Caddy's port, the emulated session service
// and legacy app next to it.
var demoPorts = strings.NewReplacer(
	"127.0.0.1:8080", fmt.Sprintf("127.0.0.1:%d", httpPort),
	"localhost:8080", fmt.Sprintf("localhost:%d", httpPort),
	"127.0.0.1:9001", fmt.Sprintf("127.0.0.1:%d", 19001+portOffset),
	"127.0.0.1:9002", fmt.Sprintf("127.0.0.1:%d", 19002+portOffset),
	"http://:9002", fmt.Sprintf("http://:%d", 19002+portOffset),
)

// loadDemo starts the test Caddy with Caddyfile.example itself, its global
// block swapped for the test's, so the browser sees the demo as shipped.
func loadDemo(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	start := strings.Index(text, "\n{\n")
	end := strings.Index(text, "\n}\n")
	if start < 0 || end < start {
		t.Fatal("Caddyfile.example: no global options block to replace")
	}
	startCaddy(t, demoPorts.Replace(text[end+3:]))
	return fmt.Sprintf("http://127.0.0.1:%d", httpPort)
}

// dumpDOM loads url in a fresh headless Chromium and returns the DOM once
// the page's scripts have run. As root, on a machine without network,
// Chromium needs every one of these flags, or it stalls.
func dumpDOM(t *testing.T, url string) string {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing in CI (.ci/run installs the chromium package): %v", chromiumPath, err)
		}
		t.Skipf("%s not installed (apt-get install chromium); the browser test runs in CI", chromiumPath)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromiumPath,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(),
		"--virtual-time-budget=5000", "--dump-dom", url)
	// Chromium forks helpers: a time-out must kill them all.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %s: %v\n%s", url, err, tail(stderr.String(), 2000))
	}
	return string(out)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestBrowserFlow: a real browser without a session is sent to the login
// page; once the login page has set the session cookie, the demo page
// greets the user by the name its script read from /session.
func TestBrowserFlow(t *testing.T) {
	base := loadDemo(t)

	dom := dumpDOM(t, base+"/hello")
	if !strings.Contains(dom, `<h1 id="login">Sign in</h1>`) {
		t.Errorf("without a session the browser should land on the login page; DOM:\n%s", dom)
	}
	if strings.Contains(dom, "Hello,") {
		t.Errorf("the greeting page rendered without a session; DOM:\n%s", dom)
	}

	for token, name := range map[string]string{"alice-token": "Alice Admin", "bob-token": "Bob Viewer"} {
		dom = dumpDOM(t, base+"/login?token="+token)
		if want := `<h1 id="greeting">Hello, ` + name + `!</h1>`; !strings.Contains(dom, want) {
			t.Errorf("with %s's session cookie the page should show %q; DOM:\n%s", name, want, dom)
		}
	}
}
