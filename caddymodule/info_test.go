package caddymodule

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/sessiongate/caddy-sessiongate/internal/dialecttest"
	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

func serveInfo(t *testing.T, dialect, method, target, body string, s *sessionctx.Session) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	h := provisionedInfo(t, dialect)
	r, _ := requestWithReplacer(method, target, nil)
	if body != "" {
		r.Body = httptestBody(body)
	}
	if s != nil {
		r = withSession(r, s)
	}
	w := httptest.NewRecorder()
	next := &nextRecorder{}
	if err := h.ServeHTTP(w, r, next); err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	if next.got != nil {
		t.Errorf("session_info passed a session read to the next handler")
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	var m map[string]any
	if method != http.MethodHead {
		if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
			t.Fatalf("answer is not a JSON object: %v: %q", err, w.Body.String())
		}
	}
	return w, m
}

func httptestBody(s string) io.ReadCloser { return io.NopCloser(strings.NewReader(s)) }

func infoTestSession() *sessionctx.Session {
	return &sessionctx.Session{
		ID: "1000001", UserID: "u-1", User: "ann", Email: "ann@example.com", Name: "Ann Example",
		Roles: []string{"dev"}, Kind: "user",
	}
}

func TestSessionInfoNormalized(t *testing.T) {
	w, m := serveInfo(t, "", "GET", "/session", "", infoTestSession())
	if w.Code != 200 || m["user"] != "ann" || m["name"] != "Ann Example" || m["user_id"] != "u-1" || m["email"] != "ann@example.com" {
		t.Fatalf("%d %v", w.Code, m)
	}
	w, m = serveInfo(t, "", "GET", "/session", "", nil)
	if w.Code != 401 || m["error"] != "unauthenticated" || w.Header().Get("WWW-Authenticate") == "" {
		t.Fatalf("anonymous: %d %v %v", w.Code, m, w.Header())
	}
}

// Every dialect answers an anonymous request in its own unauthenticated
// shape (the conformance table's session reads); TR50 keeps HTTP 200 and
// reports the failure in the envelope.
func TestSessionInfoAnonymousPerDialect(t *testing.T) {
	reads := map[string][]dialecttest.InfoRead{
		"normalized": {{Request: dialecttest.Request{Method: "GET", Target: "/session"}, Status: 401, Key: "error"}},
	}
	for _, c := range dialecttest.Cases() {
		reads[c.Dialect] = c.InfoReads
	}
	for dialect, rs := range reads {
		for _, tc := range rs {
			w, m := serveInfo(t, dialect, tc.Method, tc.Target, tc.Body, nil)
			if w.Code != tc.Status {
				t.Errorf("%s %s: status %d, want %d", dialect, tc.Target, w.Code, tc.Status)
			}
			if _, ok := m[tc.Key]; !ok {
				t.Errorf("%s %s: answer %v lacks %q", dialect, tc.Target, m, tc.Key)
			}
		}
	}
}

// TestUnauthenticatedInDialect: a session_auth without a session answers
// each product's own session reads in the product's shape, and nothing
// else: a dialect without a product of its own (http) never.
func TestUnauthenticatedInDialect(t *testing.T) {
	for _, c := range dialecttest.Cases() {
		for _, read := range c.InfoReads {
			r, _ := requestWithReplacer(read.Method, read.Target, nil)
			if read.Body != "" {
				r.Body = httptestBody(read.Body)
			}
			w := httptest.NewRecorder()
			answered, err := answerInDialect(w, r, c.Dialect, nil)
			if err != nil || answered != c.ProductReads {
				t.Errorf("%s %s %s: answered %v (%v), want %v", c.Dialect, read.Method, read.Target, answered, err, c.ProductReads)
				continue
			}
			if answered && (w.Code != read.Status || !strings.Contains(w.Body.String(), `"`+read.Key+`"`)) {
				t.Errorf("%s %s %s: %d %s, want %d with %q", c.Dialect, read.Method, read.Target, w.Code, w.Body, read.Status, read.Key)
			}
		}
		for _, pass := range c.InfoPasses {
			r, _ := requestWithReplacer(pass.Method, pass.Target, nil)
			if pass.Body != "" {
				r.Body = httptestBody(pass.Body)
			}
			if answered, err := answerInDialect(httptest.NewRecorder(), r, c.Dialect, nil); answered || err != nil {
				t.Errorf("%s %s %s: answered %v (%v), want the plain 401", c.Dialect, pass.Method, pass.Target, answered, err)
			}
		}
	}
}

func TestSessionInfoDialectRequests(t *testing.T) {
	s := infoTestSession()

	_, m := serveInfo(t, "vsphere", "POST", "/rest/com/vmware/cis/session?~action=get", "", s)
	if v, _ := m["value"].(map[string]any); v == nil || v["user"] != "ann" {
		t.Errorf("vsphere legacy: %v", m)
	}
	_, m = serveInfo(t, "vsphere", "GET", "/api/session", "", s)
	if m["user"] != "ann" {
		t.Errorf("vsphere current: %v", m)
	}

	_, m = serveInfo(t, "tr50", "POST", "/api", `{"auth":{"sessionId":"x"},"cmd":{"command":"session.info"}}`, s)
	if c, _ := m["cmd"].(map[string]any); c == nil || c["success"] != true || len(m) != 1 {
		t.Errorf("tr50 should mirror the cmd key: %v", m)
	}

	w, m := serveInfo(t, "eternus", "GET", "/api/v1/session/1000001?fields=user_name", "", s)
	if w.Code != 200 || len(m) != 2 || m["user_name"] != "ann" || m["session_id"] != float64(1000001) {
		t.Errorf("eternus fields: %d %v", w.Code, m)
	}
	w, _ = serveInfo(t, "eternus", "GET", "/api/v1/session/999", "", s)
	if w.Code != 403 {
		t.Errorf("eternus, another session's id: %d", w.Code)
	}

	_, m = serveInfo(t, "amplify", "GET", "/api/v1/auth/findSession", "", s)
	if r, _ := m["result"].(map[string]any); m["success"] != true || r == nil || r["username"] != "ann" {
		t.Errorf("amplify: %v", m)
	}
	_, m = serveInfo(t, "trifacta", "GET", "/v2/session", "", s)
	if m["email"] != "ann@example.com" || m["name"] != "Ann Example" {
		t.Errorf("trifacta: %v", m)
	}

	w, _ = serveInfo(t, "", "HEAD", "/session", "", s)
	if w.Code != 200 || w.Body.Len() != 0 || w.Header().Get("Content-Length") == "0" {
		t.Errorf("HEAD: %d, %d body bytes, length %q", w.Code, w.Body.Len(), w.Header().Get("Content-Length"))
	}
}

// A TR50 body too large for a session.info envelope is a command of the
// service's: it goes on to next whole.
func TestSessionInfoTR50BodyTooLarge(t *testing.T) {
	h := provisionedInfo(t, "tr50")
	r, _ := requestWithReplacer("POST", "/api", nil)
	body := `{"cmd":{"command":"session.info","pad":"` + strings.Repeat("x", maxInfoBody) + `"}}`
	r.Body = httptestBody(body)
	r = withSession(r, infoTestSession())
	var got []byte
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		got, _ = io.ReadAll(r.Body)
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	w := httptest.NewRecorder()
	if err := h.ServeHTTP(w, r, next); err != nil {
		t.Fatal(err)
	}
	if w.Code != http.StatusNoContent || string(got) != body {
		t.Fatalf("next got %d of %d bytes, answer %d", len(got), len(body), w.Code)
	}
}

// TR50 commands other than session.info reach next with their body whole.
func TestSessionInfoTR50PassesOtherCommands(t *testing.T) {
	for _, body := range []string{
		`{"auth":{"command":"api.authenticate","params":{"username":"u","password":"p"}}}`,
		`{"1":{"command":"thing.list"}}`,
		`{"1":{"command":"session.info"},"2":{"command":"thing.list"}}`,
	} {
		h := provisionedInfo(t, "tr50")
		r, _ := requestWithReplacer("POST", "/api", nil)
		r.Body = httptestBody(body)
		r = withSession(r, infoTestSession())
		var got []byte
		next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			got, _ = io.ReadAll(r.Body)
			w.WriteHeader(http.StatusTeapot)
			return nil
		})
		w := httptest.NewRecorder()
		if err := h.ServeHTTP(w, r, next); err != nil {
			t.Fatal(err)
		}
		if w.Code != http.StatusTeapot || string(got) != body {
			t.Errorf("%s: next got %q, answer %d", body, got, w.Code)
		}
	}
}

func TestSessionInfoValidate(t *testing.T) {
	for _, d := range append([]string{"", "normalized"}, dialecttest.Names()...) {
		if err := (&SessionInfo{Dialect: d}).Validate(); err != nil {
			t.Errorf("%q: %v", d, err)
		}
	}
	if err := (&SessionInfo{Dialect: "ldap"}).Validate(); err == nil || !strings.Contains(err.Error(), "ldap") {
		t.Errorf("unknown dialect accepted: %v", err)
	}
}

// Requests of the product that are not session reads (vSphere login and
// logout, ETERNUS logout) go on to the next handler, untouched.
func TestSessionInfoPassesOtherRequests(t *testing.T) {
	for _, c := range dialecttest.Cases() {
		for _, tc := range c.InfoPasses {
			h := provisionedInfo(t, c.Dialect)
			r, _ := requestWithReplacer(tc.Method, tc.Target, nil)
			if tc.Body != "" {
				r.Body = httptestBody(tc.Body)
			}
			r = withSession(r, infoTestSession())
			w := httptest.NewRecorder()
			next := &nextRecorder{status: http.StatusNoContent}
			if err := h.ServeHTTP(w, r, next); err != nil {
				t.Fatal(err)
			}
			if next.got == nil || w.Code != http.StatusNoContent || w.Body.Len() != 0 {
				t.Errorf("%s %s %s: next called %v, answer %d %q", c.Dialect, tc.Method, tc.Target, next.got != nil, w.Code, w.Body.String())
				continue
			}
			if tc.Body != "" {
				if b, _ := io.ReadAll(next.got.Body); string(b) != tc.Body {
					t.Errorf("%s %s %s: next got body %q, want it whole", c.Dialect, tc.Method, tc.Target, b)
				}
			}
		}
	}
}

// provisionedInfo is a session_info for dialect, provisioned as Caddy
// would.
func provisionedInfo(t *testing.T, dialect string) *SessionInfo {
	t.Helper()
	h := &SessionInfo{Dialect: dialect}
	if err := h.Provision(caddy.Context{}); err != nil {
		t.Fatal(err)
	}
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	return h
}

// withSession carries s as session_auth would.
func withSession(r *http.Request, s *sessionctx.Session) *http.Request {
	return carrySession(r, prepareIdentity(s).(*identity))
}
