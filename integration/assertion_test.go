package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// jwksPath is session_auth's default JWKS path.
const jwksPath = "/.well-known/sessiongate/jwks.json"

// testKey is a key file the test wrote, with the kid a verifier expects
// for it: its RFC 7638 thumbprint, computed here from the public key
// rather than taken from sessiongate.
type testKey struct {
	file, kid, alg string
}

// newTestKey writes a fresh EC P-256 ("ec") or Ed25519 ("ed") private key
// to dir as PKCS#8 PEM.
func newTestKey(t *testing.T, dir, name, kind string) testKey {
	t.Helper()
	b64 := base64.RawURLEncoding.EncodeToString
	var priv any
	var thumbInput, alg string
	switch kind {
	case "ec":
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := k.PublicKey.Bytes() // 0x04 || X || Y
		if err != nil {
			t.Fatal(err)
		}
		priv, alg = k, "ES256"
		thumbInput = fmt.Sprintf(`{"crv":"P-256","kty":"EC","x":"%s","y":"%s"}`, b64(pub[1:33]), b64(pub[33:]))
	case "ed":
		pub, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		priv, alg = k, "EdDSA"
		thumbInput = fmt.Sprintf(`{"crv":"Ed25519","kty":"OKP","x":"%s"}`, b64(pub))
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, name)
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(thumbInput))
	return testKey{file: file, kid: b64(sum[:]), alg: alg}
}

// assertionSite protects /app/* (session_auth with a matcher, so the JWKS
// path outside it is answered all the same) with an assertion signed by
// keys, session_info on /app/info, and proxies everything to up.
func assertionSite(svcURL, up string, extra string, keys ...testKey) string {
	var files []string
	for _, k := range keys {
		files = append(files, k.file)
	}
	return fmt.Sprintf(`
:%d {
	session_auth /app/* http %s {
		assertion {
			key %s
			%s
		}
	}
	handle /app/info {
		session_info
	}
	handle {
		reverse_proxy %s
	}
}`, httpPort, svcURL, strings.Join(files, " "), extra, up)
}

// assertionFor gets the assertion the upstream receives for tok.
func assertionFor(t *testing.T, tok string, forged ...string) string {
	t.Helper()
	h := bearer(tok)
	for _, f := range forged {
		h[f] = []string{"forged-by-the-client"}
	}
	resp, body := do(t, nil, "GET", "/app/page", h)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /app/page: %d %s", resp.StatusCode, body)
	}
	vals := upstreamSaw(t, body).Headers.Values("X-Session-Assertion")
	if len(vals) != 1 || strings.Count(vals[0], ".") != 2 {
		t.Fatalf("the upstream got X-Session-Assertion %q, want one JWT", vals)
	}
	return vals[0]
}

// oidcVerify verifies tok with go-oidc against the test Caddy's JWKS, as
// an app written in Go does. now moves the verifier's clock.
func oidcVerify(tok, issuer, audience string, now time.Time) (*oidc.IDToken, error) {
	ctx := context.Background()
	keys := oidc.NewRemoteKeySet(ctx, siteURL+jwksPath)
	v := oidc.NewVerifier(issuer, keys, &oidc.Config{
		ClientID:             audience,
		SupportedSigningAlgs: []string{oidc.ES256, oidc.EdDSA},
		Now:                  func() time.Time { return now },
	})
	return v.Verify(ctx, tok)
}

// joseHeader decodes a JWT's protected header without verifying it.
func joseHeader(t *testing.T, tok string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

// tamper changes the user in the payload, keeping the signature.
func tamper(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	forged := strings.Replace(string(payload), `"user":"alice"`, `"user":"admin"`, 1)
	if forged == string(payload) {
		t.Fatalf("no user claim to tamper with in %s", payload)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(forged))
	return strings.Join(parts, ".")
}

// TestAssertionVerifiedByGoOIDC: an app verifying the assertion with
// go-oidc against the JWKS session_auth serves accepts it, with the
// session's claims, and refuses it expired, for another audience or
// issuer, or with its payload changed.
func TestAssertionVerifiedByGoOIDC(t *testing.T) {
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	up := newUpstream(t)
	dir := t.TempDir()
	ec, ed := newTestKey(t, dir, "ec.pem", "ec"), newTestKey(t, dir, "ed.pem", "ed")
	tester := startCaddy(t, assertionSite(svc.URL, up.URL, "", ec, ed))

	// The JWKS: public keys only, each with its thumbprint as kid, in
	// the order given; no session needed, no session-service call.
	resp, body := do(t, tester, "GET", jwksPath, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Type"), "json") ||
		!strings.Contains(resp.Header.Get("Cache-Control"), "max-age=") {
		t.Fatalf("JWKS: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal([]byte(body), &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 2 || set.Keys[0]["kid"] != ec.kid || set.Keys[1]["kid"] != ed.kid ||
		set.Keys[0]["alg"] != "ES256" || set.Keys[1]["alg"] != "EdDSA" {
		t.Errorf("JWKS keys %v, want kids %s %s", set.Keys, ec.kid, ed.kid)
	}
	for _, k := range set.Keys {
		if _, private := k["d"]; private {
			t.Fatalf("the JWKS publishes a private key")
		}
	}
	expectCalls(t, svc, 0, "the JWKS")

	tok := assertionFor(t, "tok-alice", "X-Session-Assertion")
	if h := joseHeader(t, tok); h["kid"] != ec.kid || h["alg"] != "ES256" {
		t.Errorf("JOSE header %v: want the first key's kid %s", h, ec.kid)
	}
	idt, err := oidcVerify(tok, siteURL, siteURL, time.Now())
	if err != nil {
		t.Fatalf("go-oidc refuses the assertion: %v", err)
	}
	var c struct {
		User  string   `json:"user"`
		Name  string   `json:"name"`
		Email string   `json:"email"`
		Roles []string `json:"roles"`
		Perms []string `json:"perms"`
		Org   string   `json:"org"`
		OrgID string   `json:"org_id"`
		Admin bool     `json:"admin"`
		Kind  string   `json:"kind"`
		SID   string   `json:"sid"`
		JTI   string   `json:"jti"`
		IAT   int64    `json:"iat"`
		NBF   int64    `json:"nbf"`
		EXP   int64    `json:"exp"`
	}
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	if idt.Subject != "u-1" || c.User != "alice" || c.Name != "Alice Ä" || c.Email != "alice@example.com" ||
		!slices.Equal(c.Roles, []string{"admin", "dev"}) || !slices.Equal(c.Perms, []string{"read", "write"}) ||
		c.Org != "acme" || c.OrgID != "o-1" || !c.Admin || c.Kind != "user" || c.JTI == "" {
		t.Errorf("claims %+v sub %q", c, idt.Subject)
	}
	if c.SID == "" || strings.Contains(c.SID, "tok-alice") {
		t.Errorf("sid %q: want a keyed hash", c.SID)
	}
	if c.EXP-c.IAT != 60 || c.NBF != c.IAT || time.Since(time.Unix(c.IAT, 0)) > 10*time.Second {
		t.Errorf("iat %d nbf %d exp %d: want a 1m lifetime from now", c.IAT, c.NBF, c.EXP)
	}

	var expired *oidc.TokenExpiredError
	if _, err := oidcVerify(tok, siteURL, siteURL, time.Now().Add(2*time.Minute)); !errors.As(err, &expired) {
		t.Errorf("expired: %v", err)
	}
	if _, err := oidcVerify(tok, siteURL, "https://other-app.example", time.Now()); err == nil || !strings.Contains(err.Error(), "audience") {
		t.Errorf("another audience: %v", err)
	}
	if _, err := oidcVerify(tok, "https://other-issuer.example", siteURL, time.Now()); err == nil || !strings.Contains(err.Error(), "issued by a different provider") {
		t.Errorf("another issuer: %v", err)
	}
	if _, err := oidcVerify(tamper(t, tok), siteURL, siteURL, time.Now()); err == nil || !strings.Contains(err.Error(), "signature") {
		t.Errorf("tampered payload: %v", err)
	}

	// Reused, not signed again, within half its lifetime; still one
	// session-service call.
	if again := assertionFor(t, "tok-alice"); again != tok {
		t.Error("the assertion was signed again within half its lifetime")
	}
	expectCalls(t, svc, 1, "two requests")

	// The admin stats name the keys by kid, and show nothing of them.
	status, stats := admin(t, "GET", "/sessiongate/stats", "", "")
	if status != http.StatusOK || !strings.Contains(stats, `"kids":["`+ec.kid+`","`+ed.kid+`"]`) ||
		!strings.Contains(stats, `"signing_kid":"`+ec.kid+`"`) {
		t.Errorf("stats: %d %s", status, stats)
	}
	for _, k := range []testKey{ec, ed} {
		pemText, _ := os.ReadFile(k.file)
		block, _ := pem.Decode(pemText)
		if strings.Contains(stats, base64.StdEncoding.EncodeToString(block.Bytes)[20:40]) || strings.Contains(stats, k.file) {
			t.Errorf("stats show key %s", k.file)
		}
	}
}

// TestAssertionInSessionInfo: session_info ?assertion=1 answers the
// caller's own assertion, which verifies and names the caller; without
// the parameter, or without a session, there is none.
func TestAssertionInSessionInfo(t *testing.T) {
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	svc.addSession("tok-bob", map[string]any{"user_id": "u-2", "user": "bob"})
	up := newUpstream(t)
	k := newTestKey(t, t.TempDir(), "ed.pem", "ed")
	tester := startCaddy(t, assertionSite(svc.URL, up.URL, "", k))

	for _, who := range []struct{ tok, sub string }{{"tok-alice", "u-1"}, {"tok-bob", "u-2"}} {
		resp, body := do(t, tester, "GET", "/app/info?assertion=1", bearer(who.tok))
		var info map[string]any
		if err := json.Unmarshal([]byte(body), &info); resp.StatusCode != 200 || err != nil {
			t.Fatalf("session_info: %d %s", resp.StatusCode, body)
		}
		tok, _ := info["assertion"].(string)
		idt, err := oidcVerify(tok, siteURL, siteURL, time.Now())
		if err != nil || idt.Subject != who.sub || info["user_id"] != who.sub {
			t.Errorf("%s: session_info assertion: %v, %s", who.tok, err, body)
		}
		if resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("Cache-Control %q", resp.Header.Get("Cache-Control"))
		}
	}
	_, body := do(t, tester, "GET", "/app/info", bearer("tok-alice"))
	if strings.Contains(body, "assertion") {
		t.Errorf("without ?assertion=1: %s", body)
	}
	resp, body := do(t, tester, "GET", "/app/info?assertion=1", nil)
	if resp.StatusCode != http.StatusUnauthorized || strings.Contains(body, "eyJ") {
		t.Errorf("without a session: %d %s", resp.StatusCode, body)
	}
}

// TestAssertionKeyRotation: keys A and B, A signing; a reload puts B
// first. The assertions signed before and after verify against the JWKS
// the reloaded Caddy serves; once A is dropped, A's no longer do.
func TestAssertionKeyRotation(t *testing.T) {
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	up := newUpstream(t)
	dir := t.TempDir()
	a, b := newTestKey(t, dir, "a.pem", "ec"), newTestKey(t, dir, "b.pem", "ed")
	tester := startCaddy(t, assertionSite(svc.URL, up.URL, "", a, b))
	byA := assertionFor(t, "tok-alice")

	if status, body := reload(t, assertionSite(svc.URL, up.URL, "", b, a)); status != http.StatusOK {
		t.Fatalf("reload: %d %s", status, body)
	}
	byB := assertionFor(t, "tok-alice")
	if joseHeader(t, byA)["kid"] != a.kid || joseHeader(t, byB)["kid"] != b.kid || joseHeader(t, byB)["alg"] != "EdDSA" {
		t.Fatalf("kids %v then %v, want %s then %s", joseHeader(t, byA)["kid"], joseHeader(t, byB)["kid"], a.kid, b.kid)
	}
	for name, tok := range map[string]string{"signed by A": byA, "signed by B": byB} {
		if _, err := oidcVerify(tok, siteURL, siteURL, time.Now()); err != nil {
			t.Errorf("%s, after the swap: %v", name, err)
		}
	}
	if joseAvailable(t) {
		res := runJose(t, []joseCheck{
			{Token: byA, Issuer: siteURL, Audience: siteURL},
			{Token: byB, Issuer: siteURL, Audience: siteURL},
		})
		for i, r := range res {
			if !r.OK {
				t.Errorf("jose, token %d after the swap: %s %s", i, r.Code, r.Message)
			}
		}
	}

	if status, body := reload(t, assertionSite(svc.URL, up.URL, "", b)); status != http.StatusOK {
		t.Fatalf("reload: %d %s", status, body)
	}
	_ = tester
	if _, err := oidcVerify(byA, siteURL, siteURL, time.Now()); err == nil {
		t.Error("A's assertion still verifies once A is no longer published")
	}
	if _, err := oidcVerify(byB, siteURL, siteURL, time.Now()); err != nil {
		t.Errorf("B's assertion with B alone: %v", err)
	}
}

// joseDir holds the pinned npm jose and verify.mjs.
const joseDir = "testdata/jose"

type joseCheck struct {
	Token    string `json:"token"`
	Issuer   string `json:"issuer"`
	Audience string `json:"audience"`
	Now      int64  `json:"now,omitempty"`
}

type joseResult struct {
	OK      bool           `json:"ok"`
	Header  map[string]any `json:"header"`
	Payload map[string]any `json:"payload"`
	Code    string         `json:"code"`
	Message string         `json:"message"`
}

// joseAvailable reports whether npm's jose can run here, installing it
// (needNodePackage) when node and npm are there: the rotation test checks
// it alongside go-oidc when it can, and skips only that part without node.
// In CI, where .ci/run installs node, it is always there.
func joseAvailable(t *testing.T) bool {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil && os.Getenv("CI") == "" {
			t.Logf("%s not installed: the jose check runs in CI", tool)
			return false
		}
	}
	needNodePackage(t, joseDir, "jose")
	return true
}

// runJose verifies with npm's jose, against the test Caddy's JWKS.
func runJose(t *testing.T, checks []joseCheck) []joseResult {
	t.Helper()
	in, err := json.Marshal(map[string]any{"jwks": siteURL + jwksPath, "checks": checks})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "verify.mjs", string(in))
	cmd.Dir = joseDir
	out, err := cmd.Output()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		t.Fatalf("verify.mjs: %v\n%s%s", err, out, exit.Stderr)
	} else if err != nil {
		t.Fatalf("verify.mjs: %v", err)
	}
	var res []joseResult
	if err := json.Unmarshal(out, &res); err != nil || len(res) != len(checks) {
		t.Fatalf("verify.mjs printed %q: %v", out, err)
	}
	return res
}

// TestAssertionVerifiedByNodeJose: npm's jose, as a Node app uses it
// (createRemoteJWKSet on the JWKS path, jwtVerify), accepts the
// assertion signed by either kind of key and refuses it expired, for
// another audience or issuer, or tampered with.
func TestAssertionVerifiedByNodeJose(t *testing.T) {
	needNodePackage(t, joseDir, "jose")
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	up := newUpstream(t)
	dir := t.TempDir()
	for _, kind := range []string{"ec", "ed"} {
		k := newTestKey(t, dir, kind+".pem", kind)
		startCaddy(t, assertionSite(svc.URL, up.URL, "audience https://app.example api\n\t\t\tissuer https://sso.example", k))
		tok := assertionFor(t, "tok-alice")
		later := time.Now().Add(2 * time.Minute).Unix()
		res := runJose(t, []joseCheck{
			{Token: tok, Issuer: "https://sso.example", Audience: "api"},
			{Token: tok, Issuer: "https://sso.example", Audience: "https://app.example"},
			{Token: tok, Issuer: "https://sso.example", Audience: "https://other.example"},
			{Token: tok, Issuer: "https://evil.example", Audience: "api"},
			{Token: tok, Issuer: "https://sso.example", Audience: "api", Now: later},
			{Token: tamper(t, tok), Issuer: "https://sso.example", Audience: "api"},
		})
		if !res[0].OK || !res[1].OK {
			t.Fatalf("%s: jose refuses the assertion: %+v", kind, res[:2])
		}
		p := res[0].Payload
		if p["sub"] != "u-1" || p["user"] != "alice" || p["name"] != "Alice Ä" || p["admin"] != true || res[0].Header["kid"] != k.kid || res[0].Header["alg"] != k.alg {
			t.Errorf("%s: payload %v header %v", kind, p, res[0].Header)
		}
		for i, want := range map[int]string{
			2: "ERR_JWT_CLAIM_VALIDATION_FAILED", 3: "ERR_JWT_CLAIM_VALIDATION_FAILED",
			4: "ERR_JWT_EXPIRED", 5: "ERR_JWS_SIGNATURE_VERIFICATION_FAILED",
		} {
			if res[i].OK || res[i].Code != want {
				t.Errorf("%s: check %d: %+v, want %s", kind, i, res[i], want)
			}
		}
	}
}

// TestAssertionForgedNeverReachesApp: a client's assertion header, in
// every spelling an app could read as the real one, never reaches the
// app: on the protected path (replaced by the real one), anonymously, on
// a path session_auth's matcher skips, with the default name and with a
// name of the site's own, with a matcher and without.
func TestAssertionForgedNeverReachesApp(t *testing.T) {
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	up := newRawUpstream(t)
	k := newTestKey(t, t.TempDir(), "ec.pem", "ec")
	for _, cfg := range []struct{ name, matcher string }{
		{"X-Session-Assertion", "/app/*"}, {"X-Identity-Jwt", "/app/*"}, {"X-Identity-Jwt", ""},
	} {
		name := cfg.name
		startCaddy(t, fmt.Sprintf(`
:%d {
	session_auth %s http %s {
		optional
		assertion {
			key %s
			header %s
		}
	}
	reverse_proxy %s
}`, httpPort, cfg.matcher, svc.URL, k.file, name, up.addr()))
		for _, form := range spoofForms {
			forged := form.lines(name)
			for _, c := range []struct {
				path, auth string
				want       int
			}{
				{"/app/x", "Authorization: Bearer tok-alice", 1},
				{"/app/x", "", 0},
				{"/app/x", "Authorization: Bearer tok-unknown", 0},
				{"/public/x", "Authorization: Bearer tok-alice", 0},
			} {
				if c.path == "/public/x" && cfg.matcher == "" {
					c.want = 1 // session_auth covers the whole site
				}
				lines := forged
				if c.auth != "" {
					lines = append([]string{c.auth}, forged...)
				}
				what := fmt.Sprintf("%s (matcher %q), %s, %s %q", name, cfg.matcher, form.name, c.path, c.auth)
				resp, body := rawRequest(t, rawGet(c.path, lines...))
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("%s: %d %s", what, resp.StatusCode, body)
				}
				got := 0
				for _, l := range decodeRawSeen(t, body).Lines {
					if strings.Contains(strings.ToLower(l), "mallory") {
						t.Errorf("%s: a forged line reached the app: %q", what, l)
					}
					if n, v, _ := strings.Cut(l, ":"); fold(n) == fold(name) {
						got++
						if _, err := oidcVerify(strings.TrimSpace(v), siteURL, siteURL, time.Now()); err != nil {
							t.Errorf("%s: the assertion the app got does not verify: %v", what, err)
						}
					}
				}
				if got != c.want {
					t.Errorf("%s: %d assertion lines reached the app, want %d", what, got, c.want)
				}
			}
		}
	}
}

// TestAssertionBadKeysRefused: a key sessiongate cannot sign with stops
// the config from loading (caddy validate; a reload through the admin
// API, which keeps the running config), the error naming the file.
func TestAssertionBadKeysRefused(t *testing.T) {
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	up := newUpstream(t)
	dir := t.TempDir()
	good := newTestKey(t, dir, "good.pem", "ec")
	write := func(name string, data []byte) testKey {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return testKey{file: f}
	}
	pemOf := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsaDER, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384DER, _ := x509.MarshalPKCS8PrivateKey(p384)
	sec1, _ := x509.MarshalECPrivateKey(p384)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pubDER, _ := x509.MarshalPKIXPublicKey(ec.Public())
	bad := []struct {
		key  testKey
		want string
	}{
		{write("rsa.pem", pemOf("PRIVATE KEY", rsaDER)), "RSA"},
		{write("p384.pem", pemOf("PRIVATE KEY", p384DER)), "P-384"},
		{write("sec1.pem", pemOf("EC PRIVATE KEY", sec1)), "PKCS#8"},
		{write("public.pem", pemOf("PUBLIC KEY", pubDER)), "public key"},
		{write("garbage.pem", []byte("hello")), "PEM"},
		{testKey{file: filepath.Join(dir, "missing.pem")}, "no such file"},
	}

	tester := startCaddy(t, assertionSite(svc.URL, up.URL, "", good))
	before := assertionFor(t, "tok-alice")
	adapter := caddyconfig.GetAdapter("caddyfile")
	for _, c := range bad {
		site := globalOptions + assertionSite(svc.URL, up.URL, "", good, c.key)
		raw, _, err := adapter.Adapt([]byte(site), nil)
		if err != nil {
			t.Fatalf("%s: the Caddyfile does not adapt (keys are read at load, not adapt): %v", c.key.file, err)
		}
		var cfg caddy.Config
		if err := json.Unmarshal(raw, &cfg); err != nil {
			t.Fatal(err)
		}
		checkNames(t, "caddy validate, "+filepath.Base(c.key.file), caddy.Validate(&cfg), []string{c.key.file, c.want})

		status, body := reload(t, assertionSite(svc.URL, up.URL, "", good, c.key))
		if status == http.StatusOK || !strings.Contains(body, c.key.file) {
			t.Errorf("reload with %s: %d %s", c.key.file, status, body)
		}
	}
	// The running config still signs with the good key.
	if tok := assertionFor(t, "tok-alice"); tok != before {
		t.Error("a refused reload changed the running config's assertion")
	}
	_ = tester
}

// TestAssertionSameKeysSameJWKS: two session_auth handlers given the same
// keys, as every node of a cluster is, serve the same JWKS, and an
// assertion one of them signed verifies against the other's keys, with
// the same sid for the same session.
func TestAssertionSameKeysSameJWKS(t *testing.T) {
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	up := newUpstream(t)
	dir := t.TempDir()
	a, b := newTestKey(t, dir, "a.pem", "ed"), newTestKey(t, dir, "b.pem", "ec")
	node := func(port int) string {
		return fmt.Sprintf(`
:%d {
	session_auth http %s {
		assertion {
			key %s %s
			issuer https://sso.example
			audience https://app.example
		}
	}
	reverse_proxy %s
}`, port, svc.URL, a.file, b.file, up.URL)
	}
	startCaddy(t, node(httpPort)+node(altPort))

	_, jwks1 := callRaw(t, siteURL+jwksPath, nil)
	_, jwks2 := callRaw(t, altURL+jwksPath, nil)
	if jwks1 != jwks2 || !strings.Contains(jwks1, a.kid) || !strings.Contains(jwks1, b.kid) {
		t.Fatalf("the two JWKS differ:\n%s\n%s", jwks1, jwks2)
	}
	var sids []string
	for _, base := range []string{siteURL, altURL} {
		status, body := callRaw(t, base+"/page", bearer("tok-alice"))
		if status != http.StatusOK {
			t.Fatalf("%s: %d %s", base, status, body)
		}
		tok := upstreamSaw(t, body).Headers.Get("X-Session-Assertion")
		// Verified against the JWKS of the site it did not come from.
		other := siteURL
		if base == siteURL {
			other = altURL
		}
		ctx := context.Background()
		v := oidc.NewVerifier("https://sso.example", oidc.NewRemoteKeySet(ctx, other+jwksPath), &oidc.Config{
			ClientID: "https://app.example", SupportedSigningAlgs: []string{oidc.ES256, oidc.EdDSA},
		})
		idt, err := v.Verify(ctx, tok)
		if err != nil {
			t.Fatalf("signed by %s, verified with %s's JWKS: %v", base, other, err)
		}
		var c struct {
			SID string `json:"sid"`
		}
		if err := idt.Claims(&c); err != nil {
			t.Fatal(err)
		}
		sids = append(sids, c.SID)
	}
	if sids[0] == "" || sids[0] != sids[1] {
		t.Errorf("sids %q: want one sid for the session on both", sids)
	}
}

// callRaw sends a GET to url and returns the status and body.
func callRaw(t *testing.T, url string, h http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}
