package sessionctx

import (
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNewRefusesTransportWithTLS: the TLS fields shape only the transport
// New builds when Config.Transport is nil, so a Config that sets both is
// refused, naming both, rather than run with the TLS fields ignored. Each
// alone is accepted.
func TestNewRefusesTransportWithTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	base := Config{Dialect: "http", URL: srv.URL + "/whoami"}
	for _, tc := range []struct {
		name string
		set  func(*Config)
		want []string // in the error; nil: accepted
	}{
		{"transport alone", func(c *Config) { c.Transport = srv.Client().Transport }, nil},
		{"skip verify alone", func(c *Config) { c.TLSInsecureSkipVerify = true }, nil},
		{"CA alone", func(c *Config) { c.TLSTrustedCACerts = []string{ca} }, nil},
		{"transport and skip verify", func(c *Config) {
			c.Transport, c.TLSInsecureSkipVerify = srv.Client().Transport, true
		}, []string{"Transport", "TLSInsecureSkipVerify"}},
		{"transport and CA", func(c *Config) {
			c.Transport, c.TLSTrustedCACerts = srv.Client().Transport, []string{ca}
		}, []string{"Transport", "TLSTrustedCACerts"}},
		{"transport and both", func(c *Config) {
			c.Transport, c.TLSInsecureSkipVerify, c.TLSTrustedCACerts = srv.Client().Transport, true, []string{ca}
		}, []string{"Transport", "TLSInsecureSkipVerify", "TLSTrustedCACerts"}},
	} {
		cfg := base
		tc.set(&cfg)
		c, err := New(cfg)
		if tc.want == nil {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
				continue
			}
			// Accepted means usable: the service is reached over TLS.
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header.Set("Authorization", "Bearer tok")
			if _, err := c.Authenticate(r); !errors.Is(err, ErrUnauthenticated) {
				t.Errorf("%s: Authenticate: %v, want the service's rejection", tc.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not name %s", tc.name, err, w)
			}
		}
	}
}

// TestKeyNotPrinted: a Key is an unkeyed hash of the token, which anyone
// who guesses the token can compute; printed with any verb, alone or in
// a Result, it shows none of its bytes.
func TestKeyNotPrinted(t *testing.T) {
	k := TokenSource{From: FromBearer}.Key("password1")
	hexKey := hex.EncodeToString(k[:])
	dec := fmt.Sprintf("%d", k[:4]) // its first bytes as %v of an array writes them
	dec = strings.Trim(dec, "[]")
	res := Result{Key: k, Source: TokenSource{From: FromBearer}}
	for _, out := range []string{
		fmt.Sprintf("%v %s %x %X %d %q %+v %#v", k, k, k, k, k, k, k, k),
		fmt.Sprintf("%v %+v %#v", res, res, res),
		fmt.Sprintf("%v", &res),
		fmt.Errorf("lookup of %v failed", k).Error(),
	} {
		if strings.Contains(strings.ToLower(out), hexKey[:12]) || strings.Contains(out, dec) {
			t.Errorf("a Key printed its hash: %s", out)
		}
		if !strings.Contains(out, "redacted") {
			t.Errorf("no sign of the Key in %s", out)
		}
	}
}
