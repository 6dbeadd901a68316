package caddymodule

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// writePKCS8 writes key as a PKCS#8 PEM file in dir and returns its path.
func writePKCS8(t testing.TB, dir, name string, key any) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, dir, name, "PRIVATE KEY", der)
}

func writePEM(t testing.TB, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func newECKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newEdKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestAssertionKeysRefused: every key sessiongate cannot sign with is
// refused when the config loads, the error naming the file and never
// showing the key.
func TestAssertionKeysRefused(t *testing.T) {
	dir := t.TempDir()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ec := newECKey(t)
	sec1, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(ec.Public())
	if err != nil {
		t.Fatal(err)
	}
	good := writePKCS8(t, dir, "good.pem", ec)
	goodPEM, _ := os.ReadFile(good)
	writeFile := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	twoBlocks := writeFile("two.pem", append(append([]byte{}, goodPEM...), goodPEM...))
	garbage := writeFile("garbage.pem", []byte("not a key at all\n"))
	empty := writeFile("empty.pem", nil)
	badDER := writePEM(t, dir, "bad-der.pem", "PRIVATE KEY", []byte("\x30\x03\x02\x01\x00"))
	unreadable := writeFile("unreadable.pem", goodPEM)
	if err := os.Chmod(unreadable, 0); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		keys []string
		want string
	}{
		{"rsa", []string{writePKCS8(t, dir, "rsa.pem", rsaKey)}, "an RSA key"},
		{"p384", []string{writePKCS8(t, dir, "p384.pem", p384)}, "P-384"},
		{"sec1", []string{writePEM(t, dir, "sec1.pem", "EC PRIVATE KEY", sec1)}, "not PKCS#8"},
		{"public key", []string{writePEM(t, dir, "pub.pem", "PUBLIC KEY", pub)}, "a public key, not a private key"},
		{"garbage", []string{garbage}, "no PEM block"},
		{"empty", []string{empty}, "no PEM block"},
		{"bad der", []string{badDER}, "not a valid PKCS#8"},
		{"two blocks", []string{twoBlocks}, "more than one PEM block"},
		{"missing file", []string{filepath.Join(dir, "missing.pem")}, "no such file"},
		{"a directory", []string{dir}, "cannot read the key file"},
		{"second key bad", []string{good, garbage}, "no PEM block"},
		{"same key twice", []string{good, good}, "given twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &AssertionConfig{Keys: tc.keys}
			_, err := a.provision()
			if err == nil {
				t.Fatal("provisioned")
			}
			bad := tc.keys[len(tc.keys)-1]
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), bad) {
				t.Errorf("error %q: want %q naming %s", err, tc.want, bad)
			}
			raw, _ := os.ReadFile(bad)
			if block, _ := pem.Decode(raw); block != nil && len(block.Bytes) > 32 && strings.Contains(err.Error(), base64.StdEncoding.EncodeToString(block.Bytes)[:16]) {
				t.Errorf("error %q shows the key", err)
			}
		})
	}
	if os.Geteuid() != 0 { // root reads any file
		if _, err := (&AssertionConfig{Keys: []string{unreadable}}).provision(); err == nil || !strings.Contains(err.Error(), unreadable) {
			t.Errorf("unreadable file: %v", err)
		}
	}
}

// TestAssertionKeyFromPlaceholder: a key given through {env.*} as PEM is
// loaded; an error about it names the placeholder, not the key.
func TestAssertionKeyFromPlaceholder(t *testing.T) {
	dir := t.TempDir()
	raw, _ := os.ReadFile(writePKCS8(t, dir, "ed.pem", newEdKey(t)))
	t.Setenv("SESSIONGATE_TEST_ASSERTION_KEY", string(raw))
	t.Setenv("SESSIONGATE_TEST_ASSERTION_PATH", filepath.Join(dir, "ed.pem"))
	_, err := (&AssertionConfig{Keys: []string{"{env.SESSIONGATE_TEST_ASSERTION_KEY}", "{env.SESSIONGATE_TEST_ASSERTION_PATH}"}}).provision()
	if err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Fatalf("the same key through the PEM and the path: %v", err)
	}
	s, err := (&AssertionConfig{Keys: []string{"{env.SESSIONGATE_TEST_ASSERTION_KEY}"}}).provision()
	if err != nil {
		t.Fatal(err)
	}
	if s.keys[0].alg != jose.EdDSA {
		t.Errorf("alg %s", s.keys[0].alg)
	}
	t.Setenv("SESSIONGATE_TEST_ASSERTION_KEY", "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n")
	_, err = (&AssertionConfig{Keys: []string{"{env.SESSIONGATE_TEST_ASSERTION_KEY}"}}).provision()
	if err == nil || !strings.Contains(err.Error(), "{env.SESSIONGATE_TEST_ASSERTION_KEY}") || strings.Contains(err.Error(), "MCow") {
		t.Errorf("public key through env: %v", err)
	}
	_, err = (&AssertionConfig{Keys: []string{"{env.SESSIONGATE_TEST_UNSET}"}}).provision()
	if err == nil || !strings.Contains(err.Error(), "SESSIONGATE_TEST_UNSET") {
		t.Errorf("unset variable: %v", err)
	}
	t.Setenv("SESSIONGATE_TEST_EMPTY", "")
	for _, a := range []*AssertionConfig{
		{Keys: []string{"x.pem"}, Issuer: "{env.SESSIONGATE_TEST_EMPTY}"},
		{Keys: []string{"x.pem"}, Audience: []string{"app", "{env.SESSIONGATE_TEST_EMPTY}"}},
	} {
		if _, err := a.provision(); err == nil || !strings.Contains(err.Error(), "empty once expanded") {
			t.Errorf("%+v: %v", a, err)
		}
	}
}

// assertionAuth is a provisioned session_auth with an assertion block
// signing with a fresh EC key (and publishing an Ed25519 one second),
// on a clock the test moves.
func assertionAuth(t *testing.T, a *AssertionConfig, url string) (*SessionAuth, *time.Time) {
	t.Helper()
	dir := t.TempDir()
	a.Keys = []string{writePKCS8(t, dir, "ec.pem", newECKey(t)), writePKCS8(t, dir, "ed.pem", newEdKey(t))}
	h := provisionAuth(t, &SessionAuth{Assertion: a}, url)
	now := time.Now().Truncate(time.Second).Add(1100 * time.Millisecond) // ahead of the cache's clock
	h.assertion.now = func() time.Time { return now }
	return h, &now
}

// jwksOf fetches the handler's JWKS the way a client does.
func jwksOf(t *testing.T, h *SessionAuth, path string) jose.JSONWebKeySet {
	t.Helper()
	r, _ := requestWithReplacer("GET", path, nil)
	w := httptest.NewRecorder()
	next := &nextRecorder{}
	if err := h.ServeHTTP(w, r, next); err != nil {
		t.Fatal(err)
	}
	if next.got != nil || w.Code != 200 {
		t.Fatalf("JWKS request: status %d, passed on %v", w.Code, next.got != nil)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/jwk-set+json" {
		t.Errorf("Content-Type %q", ct)
	}
	if cc := w.Header().Get("Cache-Control"); !strings.Contains(cc, "max-age=") {
		t.Errorf("Cache-Control %q", cc)
	}
	if strings.Contains(w.Body.String(), `"d"`) {
		t.Fatalf("the JWKS holds a private key: %s", w.Body)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(w.Body.Bytes(), &set); err != nil {
		t.Fatal(err)
	}
	return set
}

// assertionOf runs one request with the token and returns the assertion
// the upstream got.
func assertionOf(t *testing.T, h *SessionAuth, target string, hdr http.Header) string {
	t.Helper()
	r, _ := requestWithReplacer("GET", target, hdr)
	next := &nextRecorder{}
	if err := h.ServeHTTP(httptest.NewRecorder(), r, next); err != nil {
		t.Fatal(err)
	}
	if next.got == nil {
		t.Fatal("not passed on")
	}
	vals := next.got.Header.Values(DefaultAssertionHeader)
	if len(vals) != 1 {
		t.Fatalf("assertion header values %q", vals)
	}
	return vals[0]
}

type testClaims struct {
	jwt.Claims
	User  string   `json:"user"`
	Roles []string `json:"roles"`
	Admin *bool    `json:"admin"`
	Kind  string   `json:"kind"`
	SID   string   `json:"sid"`
}

func verifyWith(t *testing.T, tok string, set jose.JSONWebKeySet) (testClaims, jose.Header) {
	t.Helper()
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA})
	if err != nil {
		t.Fatal(err)
	}
	hdr := parsed.Headers[0]
	keys := set.Key(hdr.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q: %d keys in the JWKS", hdr.KeyID, len(keys))
	}
	var c testClaims
	if err := parsed.Claims(keys[0].Key, &c); err != nil {
		t.Fatal(err)
	}
	return c, hdr
}

// TestAssertionSignedAndReused: the upstream gets an assertion the JWKS
// verifies, with the claims of the session; the same one until half its
// lifetime has passed, then a new one.
func TestAssertionSignedAndReused(t *testing.T) {
	srv, calls := whoami(t)
	h, now := assertionAuth(t, &AssertionConfig{}, srv.URL)
	set := jwksOf(t, h, DefaultAssertionJWKSPath)
	if len(set.Keys) != 2 || set.Keys[0].Algorithm != "ES256" || set.Keys[1].Algorithm != "EdDSA" {
		t.Fatalf("JWKS keys %+v", set.Keys)
	}
	for _, k := range set.Keys {
		thumb, _ := k.Thumbprint(crypto.SHA256)
		if k.KeyID != base64.RawURLEncoding.EncodeToString(thumb) || !k.IsPublic() {
			t.Errorf("key %s: want its RFC 7638 thumbprint as kid, public", k.KeyID)
		}
	}
	if calls.Load() != 0 {
		t.Errorf("the JWKS asked the session service")
	}

	auth := http.Header{"Authorization": {"Bearer tok-a"}, "X-Session-Assertion": {"forged"}}
	tok := assertionOf(t, h, "http://app.example/x", auth)
	c, hdr := verifyWith(t, tok, set)
	if hdr.KeyID != set.Keys[0].KeyID || hdr.Algorithm != "ES256" {
		t.Errorf("signed by %s %s, want the first key", hdr.KeyID, hdr.Algorithm)
	}
	if c.Issuer != "http://app.example" || len(c.Audience) != 1 || c.Audience[0] != "http://app.example" {
		t.Errorf("iss %q aud %q, want the request's origin", c.Issuer, c.Audience)
	}
	if c.Subject != "u1" || c.User != "ann" || len(c.Roles) != 1 || c.Roles[0] != "dev" || c.Kind != "user" ||
		c.Admin == nil || *c.Admin || c.ID == "" || c.SID == "" {
		t.Errorf("claims %+v", c)
	}
	if got := c.Expiry.Time().Sub(c.IssuedAt.Time()); got != time.Minute || *c.NotBefore != *c.IssuedAt {
		t.Errorf("lifetime %s, nbf %v iat %v", got, c.NotBefore, c.IssuedAt)
	}

	*now = now.Add(20 * time.Second)
	if again := assertionOf(t, h, "http://app.example/x", auth); again != tok {
		t.Error("signed again before half its lifetime")
	}
	other := assertionOf(t, h, "http://other.example/x", auth)
	if oc, _ := verifyWith(t, other, set); oc.Audience[0] != "http://other.example" || oc.SID != c.SID {
		t.Errorf("another origin: aud %q sid %q (want the same sid %q)", oc.Audience, oc.SID, c.SID)
	}
	*now = now.Add(11 * time.Second)
	renewed := assertionOf(t, h, "http://app.example/x", auth)
	if renewed == tok {
		t.Error("not renewed past half its lifetime")
	}
	if rc, _ := verifyWith(t, renewed, set); rc.ID == c.ID {
		t.Error("a renewed assertion kept its jti")
	}
	if n := h.assertion.signed.Load(); n != 3 {
		t.Errorf("signed %d times, want 3", n)
	}
	if calls.Load() != 1 {
		t.Errorf("session-service calls %d, want 1", calls.Load())
	}
}

// TestAssertionNeverOutlivesSession: exp is the session's expiry when that
// comes first; a session in its last second gets no assertion (and the
// forged one is gone).
func TestAssertionNeverOutlivesSession(t *testing.T) {
	var expires time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"user_id": "u1", "user": "ann", "expires_at": expires.Format(time.RFC3339Nano)})
	}))
	t.Cleanup(srv.Close)
	h, now := assertionAuth(t, &AssertionConfig{TTL: caddy.Duration(10 * time.Minute), Issuer: "https://sso.example", Audience: []string{"app", "api"}}, srv.URL)
	expires = now.Add(90*time.Second + 500*time.Millisecond)
	set := jwksOf(t, h, DefaultAssertionJWKSPath)
	c, _ := verifyWith(t, assertionOf(t, h, "/", http.Header{"Authorization": {"Bearer a"}}), set)
	if c.Expiry.Time().After(expires) || expires.Sub(c.Expiry.Time()) >= time.Second {
		t.Errorf("exp %v, session expires %v", c.Expiry.Time(), expires)
	}
	if c.Issuer != "https://sso.example" || len(c.Audience) != 2 || c.Audience[1] != "api" {
		t.Errorf("iss %q aud %q", c.Issuer, c.Audience)
	}

	expires = now.Add(300 * time.Millisecond)
	r, _ := requestWithReplacer("GET", "/", http.Header{"Authorization": {"Bearer b"}, "X-Session-Assertion": {"forged"}})
	next := &nextRecorder{}
	if err := h.ServeHTTP(httptest.NewRecorder(), r, next); err != nil {
		t.Fatal(err)
	}
	if v, ok := next.got.Header["X-Session-Assertion"]; ok {
		t.Errorf("a session in its last second got an assertion %q", v)
	}
}

// TestAssertionHeaderStripped: a client-sent assertion header never
// reaches the upstream, in any spelling, authenticated or not, with the
// default name (under the prefix) and with a name of its own.
func TestAssertionHeaderStripped(t *testing.T) {
	srv, _ := whoami(t)
	h, _ := assertionAuth(t, &AssertionConfig{Header: "X-Identity-Jwt"}, srv.URL)
	h.Optional = true
	for _, name := range []string{"X-Identity-Jwt", "x-identity-jwt", "X_Identity_Jwt", "X.IDENTITY.JWT", "X-Session-Assertion"} {
		for _, auth := range []string{"", "Bearer tok-a", "Bearer nope"} {
			r, _ := requestWithReplacer("GET", "/", http.Header{name: {"forged"}})
			if auth != "" {
				r.Header.Set("Authorization", auth)
			}
			next := &nextRecorder{}
			if err := h.ServeHTTP(httptest.NewRecorder(), r, next); err != nil {
				t.Fatal(err)
			}
			for k, v := range next.got.Header {
				if strings.Contains(strings.Join(v, ""), "forged") {
					t.Errorf("%s (%q): %s: %q reached the upstream", name, auth, k, v)
				}
			}
			if got := next.got.Header.Get("X-Identity-Jwt"); (auth == "Bearer tok-a") != (got != "") {
				t.Errorf("%s (%q): assertion %q", name, auth, got)
			}
		}
	}
	if _, names := h.stripNames(); len(names) != 1 || names[0] != "X-Identity-Jwt" {
		t.Errorf("stripNames %q", names)
	}
}

// TestAssertionValidate: settings refused with a message naming them.
func TestAssertionValidate(t *testing.T) {
	be := BackendConfig{Dialect: "http", URL: "http://127.0.0.1:1/whoami"}
	for _, tc := range []struct {
		name string
		h    SessionAuth
		want string
	}{
		{"no key", SessionAuth{Assertion: &AssertionConfig{}}, "assertion needs a key"},
		{"bad header", SessionAuth{Assertion: &AssertionConfig{Keys: []string{"k"}, Header: "X A"}}, `assertion header "X A"`},
		{"cookie header", SessionAuth{Assertion: &AssertionConfig{Keys: []string{"k"}, Header: "cookie"}}, "taken"},
		{"injected header", SessionAuth{Assertion: &AssertionConfig{Keys: []string{"k"}, Header: "x_session_user"}}, "taken"},
		{"custom header", SessionAuth{Headers: map[string]string{"X-Jwt": "{session.user}"}, Assertion: &AssertionConfig{Keys: []string{"k"}, Header: "X-JWT"}}, "taken"},
		{"token header", SessionAuth{Tokens: []sessionctx.TokenSource{{From: "header", Name: "X-Token"}}, Assertion: &AssertionConfig{Keys: []string{"k"}, Header: "X-Token"}}, "taken"},
		{"negative ttl", SessionAuth{Assertion: &AssertionConfig{Keys: []string{"k"}, TTL: -1}}, "ttl must not be negative"},
		{"relative jwks_path", SessionAuth{Assertion: &AssertionConfig{Keys: []string{"k"}, JWKSPath: "jwks.json"}}, "jwks_path"},
		{"empty audience", SessionAuth{Assertion: &AssertionConfig{Keys: []string{"k"}, Audience: []string{" "}}}, "audience"},
		{"inline PEM", SessionAuth{Assertion: &AssertionConfig{Keys: []string{"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----"}}}, "a PEM written into the config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.h.Backend = be
			err := tc.h.validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "MC4C") {
				t.Errorf("validate: %v, want %q", err, tc.want)
			}
		})
	}
}

// TestAssertionJWKSMethods: the JWKS path answers GET and HEAD, refuses
// other methods, and is answered under a custom path only.
func TestAssertionJWKSMethods(t *testing.T) {
	srv, _ := whoami(t)
	h, _ := assertionAuth(t, &AssertionConfig{JWKSPath: "/keys"}, srv.URL)
	jwksOf(t, h, "/keys")
	r, _ := requestWithReplacer("POST", "/keys", nil)
	err := h.ServeHTTP(httptest.NewRecorder(), r, &nextRecorder{})
	if statusOf(err) != http.StatusMethodNotAllowed {
		t.Errorf("POST: %v", err)
	}
	r, _ = requestWithReplacer("GET", DefaultAssertionJWKSPath, nil)
	err = h.ServeHTTP(httptest.NewRecorder(), r, &nextRecorder{})
	if statusOf(err) != http.StatusUnauthorized {
		t.Errorf("the default path under a custom one: %v", err)
	}
}

// TestSessionInfoAssertion: session_info's normalized answer carries the
// request's own assertion when asked, and only then.
func TestSessionInfoAssertion(t *testing.T) {
	srv, _ := whoami(t)
	h, _ := assertionAuth(t, &AssertionConfig{}, srv.URL)
	info := &SessionInfo{}
	for _, tc := range []struct {
		target string
		want   bool
	}{{"/session?assertion=1", true}, {"/session", false}, {"/session?assertion=0", false}} {
		r, _ := requestWithReplacer("GET", tc.target, http.Header{"Authorization": {"Bearer tok-a"}})
		w := httptest.NewRecorder()
		var upstream string
		err := h.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			upstream = r.Header.Get(DefaultAssertionHeader)
			return info.ServeHTTP(w, r, &nextRecorder{})
		}))
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatalf("%s: %v: %s", tc.target, err, w.Body)
		}
		got, has := body["assertion"]
		if has != tc.want || (has && got != upstream) || body["user"] != "ann" {
			t.Errorf("%s: %s", tc.target, w.Body)
		}
	}
}

// TestAssertionCaddyfile: the block parses into the JSON fields, and each
// bad line is refused naming what is wrong.
func TestAssertionCaddyfile(t *testing.T) {
	var h SessionAuth
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`session_auth http http://127.0.0.1:1 {
		assertion {
			key a.pem b.pem
			key c.pem
			audience x y
			ttl 30s
		}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	if a := h.Assertion; a == nil || strings.Join(a.Keys, " ") != "a.pem b.pem c.pem" || strings.Join(a.Audience, " ") != "x y" || a.TTL != caddy.Duration(30*time.Second) {
		t.Errorf("parsed %+v", h.Assertion)
	}
	for _, tc := range []struct{ block, want string }{
		{"assertion", "assertion needs a key"},
		{"assertion {\n}", "assertion needs a key"},
		{"assertion x {\n key a.pem\n}", "wrong argument count"},
		{"assertion {\n key\n}", "want key <pem-file...>"},
		{"assertion {\n key a.pem\n bogus 1\n}", `unrecognized assertion subdirective "bogus"`},
		{"assertion {\n key a.pem\n header A B\n}", "want header <name>"},
		{"assertion {\n key a.pem\n header Cookie\n}", "taken"},
		{"assertion {\n key a.pem\n ttl 0s\n}", "ttl must be positive"},
		{"assertion {\n key a.pem\n ttl soon\n}", "ttl"},
		{"assertion {\n key a.pem\n issuer a\n issuer b\n}", "assertion issuer given twice"},
		{"assertion {\n key a.pem\n jwks_path keys\n}", "jwks_path"},
		{"assertion {\n key a.pem\n}\nassertion {\n key b.pem\n}", "assertion given twice"},
	} {
		var h SessionAuth
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("session_auth http http://127.0.0.1:1 {\n" + tc.block + "\n}"))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "Testfile:") {
			t.Errorf("%q: %v, want %q with its line", tc.block, err, tc.want)
		}
	}
}

// TestAssertionConcurrent: requests of one session at once share the
// assertion kept with it; at worst a few sign it at the same moment,
// never one each.
func TestAssertionConcurrent(t *testing.T) {
	srv, _ := whoami(t)
	h, _ := assertionAuth(t, &AssertionConfig{Issuer: "https://sso.example", Audience: []string{"app"}}, srv.URL)
	assertionOf(t, h, "/", http.Header{"Authorization": {"Bearer tok-a"}}) // the session cached
	h.assertion.signed.Store(0)
	first := h.assertion.now()
	h.assertion.now = func() time.Time { return first.Add(time.Minute) } // every kept one due
	var wg sync.WaitGroup
	tokens := make([][]string, 8)
	for g := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				r, _ := requestWithReplacer("GET", "http://host"+strconv.Itoa(g%2)+".example/", http.Header{"Authorization": {"Bearer tok-a"}})
				next := &nextRecorder{}
				if err := h.ServeHTTP(httptest.NewRecorder(), r, next); err != nil {
					t.Error(err)
					return
				}
				tokens[g] = append(tokens[g], next.got.Header.Get(DefaultAssertionHeader))
			}
		}()
	}
	wg.Wait()
	distinct := map[string]bool{}
	for _, ts := range tokens {
		for _, tok := range ts {
			distinct[tok] = true
		}
	}
	if n := h.assertion.signed.Load(); n == 0 || n > uint64(len(tokens)) || uint64(len(distinct)) != n {
		t.Errorf("%d requests signed %d times, %d distinct assertions; want one, or a few signed at once", 8*50, n, len(distinct))
	}
}

// TestAssertionAppSession: an application's session is named as an
// application, never where a user is, as in the headers.
func TestAssertionAppSession(t *testing.T) {
	srv, _ := whoami(t)
	h, now := assertionAuth(t, &AssertionConfig{Issuer: "https://sso.example", Audience: []string{"app"}}, srv.URL)
	set := jwksOf(t, h, DefaultAssertionJWKSPath)
	a, err := h.assertion.sign(*now, false, "x", &sessionctx.Session{Kind: "app", User: "alice", UserID: "u1"}, sessionctx.Key{})
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jwt.ParseSigned(a.token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := parsed.Claims(set.Keys[0].Key, &c); err != nil {
		t.Fatal(err)
	}
	if c["sub"] != "app:u1" || c["app"] != "alice" || c["app_id"] != "u1" || c["kind"] != "app" || c["user"] != nil {
		t.Errorf("claims of an app session: %v", c)
	}
}
