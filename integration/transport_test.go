package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// testCA issues the certificates of the transport tests, so that nothing
// the system trusts is involved.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // the CA certificate, PEM
	dir  string
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "sessiongate test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{cert: cert, key: key, dir: t.TempDir()}
	ca.file = ca.write(t, "ca.pem", "CERTIFICATE", der)
	return ca
}

func (ca *testCA) write(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	f := filepath.Join(ca.dir, name)
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// issue makes a leaf certificate for the names (DNS names, or IPs), for
// a server or a client, and writes it and its key as PEM files.
func (ca *testCA) issue(t *testing.T, name string, client bool, names ...string) (cert tls.Certificate, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = ca.write(t, name+".pem", "CERTIFICATE", der)
	keyFile = ca.write(t, name+"-key.pem", "EC PRIVATE KEY", keyDER)
	cert, err = tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return cert, certFile, keyFile
}

// TestTransportTLS reaches HTTPS session services through the backend
// block's transport settings, reverse_proxy's names: a private CA through
// tls_trust_pool, a service that wants a client certificate through
// tls_client_auth, a certificate for another name through
// tls_server_name. Each route has a twin without the setting, which must
// answer 503 (and never reach the upstream) for the same token, just after
// the route with it resolved the token: handlers whose transports differ
// share no resolver and no cache.
func TestTransportTLS(t *testing.T) {
	const token = "tok-alice-transport-51c2"
	ca := newTestCA(t)
	other := newTestCA(t) // issues a client certificate the service does not trust

	serverCert, _, _ := ca.issue(t, "service", false, "127.0.0.1")
	plain := newSessionService(t, overTLS(&serverCert, nil))
	plain.addSession(token, aliceSession())

	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(ca.cert)
	mtls := newSessionService(t, overTLS(&serverCert, clientCAs))
	mtls.addSession(token, aliceSession())
	_, clientCert, clientKey := ca.issue(t, "client", true, "gateway")
	_, strangerCert, strangerKey := other.issue(t, "stranger", true, "gateway")

	namedCert, _, _ := ca.issue(t, "named", false, "auth.internal")
	named := newSessionService(t, overTLS(&namedCert, nil))
	named.addSession(token, aliceSession())

	cases := []struct {
		path, url, backend string
		want               int
	}{
		{"/pool", plain.URL, "tls_trust_pool file " + ca.file, 200},
		{"/no-pool", plain.URL, "", 503},
		{"/other-pool", plain.URL, "tls_trust_pool file " + other.file, 503},
		{"/client-cert", mtls.URL, fmt.Sprintf("tls_trust_pool file %s\n\t\t\t\ttls_client_auth %s %s", ca.file, clientCert, clientKey), 200},
		{"/no-client-cert", mtls.URL, "tls_trust_pool file " + ca.file, 503},
		{"/stranger-cert", mtls.URL, fmt.Sprintf("tls_trust_pool file %s\n\t\t\t\ttls_client_auth %s %s", ca.file, strangerCert, strangerKey), 503},
		{"/server-name", named.URL, "tls_trust_pool file " + ca.file + "\n\t\t\t\ttls_server_name auth.internal", 200},
		{"/no-server-name", named.URL, "tls_trust_pool file " + ca.file, 503},
		{"/wrong-server-name", named.URL, "tls_trust_pool file " + ca.file + "\n\t\t\t\ttls_server_name auth.external", 503},
	}
	var site strings.Builder
	fmt.Fprintf(&site, ":%d {\n", httpPort)
	for _, c := range cases {
		fmt.Fprintf(&site, "\thandle %s {\n\t\tsession_auth {\n\t\t\tbackend http %s {\n\t\t\t\t%s\n\t\t\t}\n\t\t}\n\t\trespond \"user={session.user}\"\n\t}\n", c.path, c.url, c.backend)
	}
	site.WriteString("}\n")
	tester := startCaddy(t, site.String())

	for _, c := range cases {
		resp, body := do(t, tester, "GET", c.path, bearer(token))
		if resp.StatusCode != c.want {
			t.Errorf("%s: status %d, want %d: %q", c.path, resp.StatusCode, c.want, body)
		}
		if c.want == 200 && body != "user=alice" {
			t.Errorf("%s: body %q, want user=alice", c.path, body)
		}
		if c.want != 200 && strings.Contains(body, "alice") {
			t.Errorf("%s: a refused request got through: %q", c.path, body)
		}
	}
	if n := mtls.calls.Load(); n != 1 {
		t.Errorf("the client-certificate service answered %d requests, want 1 (the others fail the handshake)", n)
	}
}

// TestTransportTimeouts: the transport's response_header_timeout bounds
// the wait for a slow session service within the overall timeout, and
// dial_timeout the connection to one that never accepts; both answer 503
// long before the overall timeout.
func TestTransportTimeouts(t *testing.T) {
	const token = "tok-alice-slow-8d41"
	slow := newSessionService(t)
	slow.addSession(token, aliceSession())
	slow.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
		return true
	})
	blackhole := newBlackhole(t)

	site := fmt.Sprintf(`:%d {
	handle /slow {
		session_auth {
			backend http %s {
				response_header_timeout 300ms
			}
			timeout 5s
		}
		respond "user={session.user}"
	}
	handle /blackhole {
		session_auth {
			backend http http://%s/whoami {
				dial_timeout 300ms
			}
			timeout 5s
		}
		respond "user={session.user}"
	}
}
`, httpPort, slow.URL, blackhole)
	tester := startCaddy(t, site)
	for _, path := range []string{"/slow", "/blackhole"} {
		start := time.Now()
		resp, body := do(t, tester, "GET", path, bearer(token))
		took := time.Since(start)
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("%s: status %d, want 503: %q", path, resp.StatusCode, body)
		}
		if took > 2500*time.Millisecond {
			t.Errorf("%s: answered after %s: the transport's timeout did not bound the wait", path, took)
		}
	}
}

// newBlackhole is an address that takes no connection: a socket
// listening with a backlog of 0 whose one queued connection is never
// accepted, so the kernel leaves further SYNs unanswered.
func newBlackhole(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	for range 8 {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return addr // a dial timed out: the queue is full
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Skip("could not fill the listen backlog of a loopback socket")
	return ""
}

// TestTransportNetworkProxy reaches the session service through the
// backend's network_proxy, and shows the session-service request does not
// write into the client request's Caddy state: Caddy's transport records
// the proxy it used in the request's vars, which would otherwise show in
// {http.vars.reverse_proxy.proxy} (and be written from the lookup's own
// goroutine, which may outlive the client request).
func TestTransportNetworkProxy(t *testing.T) {
	const token = "tok-alice-proxy-0b9e"
	// The proxy answers for the service itself: an http:// request sent
	// through a forward proxy names the whole URL, which is all the
	// test needs to see.
	proxy := newSessionService(t)
	proxy.addSession(token, aliceSession())
	var sawAbsolute atomic.Bool
	proxy.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		sawAbsolute.Store(r.URL.IsAbs() && r.URL.Host == "auth.invalid")
		return false
	})
	site := fmt.Sprintf(`:%d {
	session_auth {
		backend http http://auth.invalid/whoami {
			network_proxy url %s
		}
	}
	respond "user={session.user} proxy=[{http.vars.reverse_proxy.proxy}]"
}
`, httpPort, proxy.URL)
	tester := startCaddy(t, site)
	resp, body := do(t, tester, "GET", "/", bearer(token))
	if resp.StatusCode != 200 || !strings.HasPrefix(body, "user=alice ") {
		t.Fatalf("status %d, body %q: want 200 for alice through the proxy", resp.StatusCode, body)
	}
	if !sawAbsolute.Load() {
		t.Errorf("the proxy did not get the session-service request for http://auth.invalid/whoami")
	}
	if !strings.HasSuffix(body, "proxy=[]") {
		t.Errorf("body %q: the session-service request wrote into the client request's vars", body)
	}
}
