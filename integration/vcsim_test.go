package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// vcsim is govmomi's vCenter simulator, a real vSphere peer: it speaks
// the legacy /rest session API over self-signed TLS and answers 404 on
// /api/session, so the vsphere dialect must fall back. It is a tool of
// the repository's tools module (tools/go.mod pins it), so a fresh clone
// builds it with nothing else installed.
type vcsim struct {
	url  string // https://127.0.0.1:PORT
	cert []byte // its TLS certificate, PEM
	out  *lockedBuffer
}

// lockedBuffer collects the simulator's output for failure messages.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startVcsim builds and starts the simulator; it fails the test (never
// skips) when either cannot be done.
func startVcsim(t *testing.T) *vcsim {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "vcsim")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-C", "../tools", "-o", bin, "github.com/vmware/govmomi/vcsim")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building vcsim (a tool of tools/go.mod): %v\n%s", err, out)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	sim := &vcsim{url: "https://" + addr, out: &lockedBuffer{}}
	cmd := exec.Command(bin, "-l", addr)
	cmd.Stdout, cmd.Stderr = sim.out, sim.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting vcsim: %v", err)
	}
	t.Cleanup(func() {
		// The process is killed on purpose: Wait's error is the kill.
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})

	// Ready when it completes a TLS handshake; the handshake also gives
	// the certificate to trust.
	eventually(t, 30*time.Second, "vcsim up on "+addr, func() error {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			return fmt.Errorf("%w\n%s", err, sim.out)
		}
		cs := conn.ConnectionState()
		conn.Close()
		if len(cs.PeerCertificates) == 0 {
			t.Fatal("vcsim presented no certificate")
		}
		sim.cert = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cs.PeerCertificates[0].Raw})
		return nil
	})
	return sim
}

// call sends a session request to the simulator itself.
func (v *vcsim) call(t *testing.T, method, path string, h http.Header) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, v.url+path, nil)
	for k, vals := range h {
		req.Header[k] = vals
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("vcsim %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b.Bytes()
}

// login creates a session as a vSphere client does on the legacy API.
func (v *vcsim) login(t *testing.T, user string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "/", nil)
	req.SetBasicAuth(user, "pass")
	status, body := v.call(t, http.MethodPost, "/rest/com/vmware/cis/session", http.Header{"Authorization": req.Header["Authorization"]})
	var out struct {
		Value string `json:"value"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &out) != nil || out.Value == "" {
		t.Fatalf("vcsim login: %d %s", status, body)
	}
	return out.Value
}

func TestVcsimSession(t *testing.T) {
	sim := startVcsim(t)
	token := sim.login(t, "sguser")
	other := sim.login(t, `VSPHERE.LOCAL\ops`)
	caFile := filepath.Join(t.TempDir(), "vcsim.pem")
	if err := os.WriteFile(caFile, sim.cert, 0o600); err != nil {
		t.Fatal(err)
	}
	up := newUpstream(t)
	// One route per way of trusting vcsim's self-signed certificate; each
	// is its own backend, with its own cache.
	var site strings.Builder
	fmt.Fprintf(&site, ":%d {\n", httpPort)
	for _, r := range []struct{ path, tlsLine string }{
		{"/skip", "tls_insecure_skip_verify"},
		{"/untrusted", ""},
		{"/ca", "tls_trusted_ca_certs " + caFile},
	} {
		fmt.Fprintf(&site, "\thandle %s/* {\n\t\tsession_auth {\n\t\t\tbackend vsphere %s\n\t\t\t%s\n\t\t\tcache_ttl 1s\n\t\t\tnegative_ttl 1s\n\t\t}\n\t\treverse_proxy %s\n\t}\n",
			r.path, sim.url, r.tlsLine, up.Listener.Addr())
	}
	site.WriteString("}\n")
	startCaddy(t, site.String())

	session := func(tok string) http.Header { return http.Header{"Vmware-Api-Session-Id": {tok}} }
	expectUser := func(route, tok, user, org string) {
		t.Helper()
		resp, body := do(t, nil, "GET", route+"/vm", session(tok))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d, body %q\nvcsim log:\n%s", route, resp.StatusCode, body, sim.out)
		}
		h := upstreamSaw(t, body).Headers
		if h.Get("X-Session-User") != user || h.Get("X-Session-User-Id") != user || h.Get("X-Session-Org") != org {
			t.Errorf("%s: upstream saw user %q id %q org %q, want %q %q %q", route,
				h.Get("X-Session-User"), h.Get("X-Session-User-Id"), h.Get("X-Session-Org"), user, user, org)
		}
	}

	t.Run("tls_insecure_skip_verify", func(t *testing.T) {
		expectUser("/skip", token, "sguser", "")
		expectUser("/skip", other, `VSPHERE.LOCAL\ops`, "VSPHERE.LOCAL")
		if resp, body := do(t, nil, "GET", "/skip/vm", session("not-a-session")); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("unknown token: status %d, want 401 (body %q)", resp.StatusCode, body)
		}
	})

	t.Run("untrusted certificate is a 503", func(t *testing.T) {
		resp, body := do(t, nil, "GET", "/untrusted/vm", session(token))
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("status %d, want 503: vcsim's self-signed certificate must not be trusted by default (body %q)", resp.StatusCode, body)
		}
	})

	t.Run("tls_trusted_ca_certs, then DELETE", func(t *testing.T) {
		expectUser("/ca", token, "sguser", "")

		if status, body := sim.call(t, http.MethodDelete, "/rest/com/vmware/cis/session", session(token)); status != http.StatusOK {
			t.Fatalf("DELETE session: %d %s", status, body)
		}
		if status, _ := sim.call(t, http.MethodPost, "/rest/com/vmware/cis/session?~action=get", session(token)); status != http.StatusUnauthorized {
			t.Fatalf("vcsim still knows the deleted session: %d", status)
		}
		// The cached session may serve until cache_ttl (1s) runs out;
		// then vcsim's answer must turn it away.
		eventually(t, 15*time.Second, "the deleted session refused once cache_ttl (1s) ran out", func() error {
			resp, body := do(t, nil, "GET", "/ca/vm", session(token))
			if resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d while waiting for the cache to expire, body %q", resp.StatusCode, body)
			}
			return fmt.Errorf("still accepted (200)")
		})
		// The other session is untouched.
		expectUser("/ca", other, `VSPHERE.LOCAL\ops`, "VSPHERE.LOCAL")
	})
	if t.Failed() {
		t.Logf("vcsim output:\n%s", sim.out)
	}
}
