package redistest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TLSFiles are PEM files of a test CA, a server certificate it signed
// (for 127.0.0.1 and the name redis.test) and a client certificate it
// signed, each with its key.
type TLSFiles struct {
	CA                    string
	ServerCert, ServerKey string
	ClientCert, ClientKey string
	OtherCA               string // a CA that signed nothing here
	OtherClient, OtherKey string // a client certificate of OtherCA
	ServerName            string // the DNS name in the server certificate
	dir                   string
	caCert, otherCert     *x509.Certificate
	caKey, otherKey       *ecdsa.PrivateKey
	serialNumber          int64
}

// NewTLSFiles writes a fresh CA, server and client certificates to a
// directory of the test.
func NewTLSFiles(t testing.TB) *TLSFiles {
	t.Helper()
	f := &TLSFiles{dir: t.TempDir(), ServerName: "redis.test"}
	f.caCert, f.caKey, f.CA = f.newCA(t, "sessiongate test CA", "ca")
	f.otherCert, f.otherKey, f.OtherCA = f.newCA(t, "another CA", "other-ca")
	f.ServerCert, f.ServerKey = f.leaf(t, "server", f.caCert, f.caKey, x509.ExtKeyUsageServerAuth)
	f.ClientCert, f.ClientKey = f.leaf(t, "client", f.caCert, f.caKey, x509.ExtKeyUsageClientAuth)
	f.OtherClient, f.OtherKey = f.leaf(t, "other-client", f.otherCert, f.otherKey, x509.ExtKeyUsageClientAuth)
	return f
}

func (f *TLSFiles) newCA(t testing.TB, cn, name string) (*x509.Certificate, *ecdsa.PrivateKey, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f.serialNumber++
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(f.serialNumber),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key, f.write(t, name+".pem", "CERTIFICATE", der)
}

func (f *TLSFiles) leaf(t testing.TB, name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f.serialNumber++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(f.serialNumber),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	if usage == x509.ExtKeyUsageServerAuth {
		tmpl.DNSNames = []string{f.ServerName}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return f.write(t, name+".pem", "CERTIFICATE", der), f.write(t, name+"-key.pem", "PRIVATE KEY", kder)
}

func (f *TLSFiles) write(t testing.TB, name, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(f.dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TLSServer is a redis-server that also listens with TLS, requiring a
// client certificate signed by the test CA. Addr (plain TCP, from
// Server) stays for the test's own look into Redis; TLSAddr is what the
// code under test is given.
type TLSServer struct {
	*Server
	TLSAddr string
	Files   *TLSFiles
}

// StartTLS runs a redis-server with a TLS port, its certificates from
// files. args are extra redis-server options (ACL users, ...).
func StartTLS(t testing.TB, files *TLSFiles, args ...string) *TLSServer {
	t.Helper()
	tlsPort := freePort(t)
	s := Start(t, append([]string{
		"--tls-port", strconv.Itoa(tlsPort),
		"--tls-cert-file", files.ServerCert,
		"--tls-key-file", files.ServerKey,
		"--tls-ca-cert-file", files.CA,
		"--tls-auth-clients", "yes",
	}, args...)...)
	return &TLSServer{Server: s, TLSAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(tlsPort)), Files: files}
}
