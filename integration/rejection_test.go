package integration

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiongate/caddy-sessiongate/internal/emulator"
)

// wafPage is what a web application firewall in front of a session
// service answers a caller it blocked.
const wafPage = `<html><head><title>Request blocked</title></head><body>Request blocked.</body></html>`

// TestRejectionNeedsServiceAnswerHTTP: a WAF's HTML 403 in front of an
// http-dialect service is a service failure: the cached session is served
// stale, an uncached token gets 503, and nothing is cached as rejected.
func TestRejectionNeedsServiceAnswerHTTP(t *testing.T) {
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	up := newUpstream(t)
	tester := startCaddy(t, fmt.Sprintf(`
:%d {
	session_auth http %s {
		cache_ttl 1s
		stale_if_error 1h
		negative_ttl 1h
	}
	reverse_proxy %s
}`, httpPort, svc.URL, up.Listener.Addr()))

	if resp, body := do(t, tester, "GET", "/x", bearer("tok-alice")); resp.StatusCode != 200 {
		t.Fatalf("live session: %d %.200s", resp.StatusCode, body)
	}
	var blocked atomic.Bool
	blocked.Store(true)
	svc.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		if !blocked.Load() {
			return false
		}
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte(wafPage))
		return true
	})
	time.Sleep(1200 * time.Millisecond) // past cache_ttl: the next lookup asks the service

	if resp, body := do(t, tester, "GET", "/x", bearer("tok-alice")); resp.StatusCode != 200 {
		t.Errorf("WAF page with a cached session: %d %.200s, want the stale session", resp.StatusCode, body)
	}
	if resp, _ := do(t, tester, "GET", "/x", bearer("tok-bob")); resp.StatusCode != 503 {
		t.Errorf("WAF page, uncached token: %d, want 503", resp.StatusCode)
	}

	blocked.Store(false)
	svc.addSession("tok-bob", map[string]any{"user_id": "u-2", "user": "bob"})
	if resp, body := do(t, tester, "GET", "/x", bearer("tok-bob")); resp.StatusCode != 200 {
		t.Errorf("after the WAF lets us through: %d %.200s (was the WAF page cached as a rejection?)", resp.StatusCode, body)
	}
	if resp, body := do(t, tester, "GET", "/x", bearer("tok-alice")); resp.StatusCode != 200 {
		t.Errorf("alice after the WAF: %d %.200s", resp.StatusCode, body)
	}
	// The service's own JSON 401 still rejects.
	if resp, _ := do(t, tester, "GET", "/x", bearer("tok-nobody")); resp.StatusCode != 401 {
		t.Errorf("service's own rejection: %d, want 401", resp.StatusCode)
	}
}

// TestRejectionNeedsServiceAnswerAmplify: a 403 from a proxy that blocked
// sessiongate's IP (random-token floods) does not log anyone out.
func TestRejectionNeedsServiceAnswerAmplify(t *testing.T) {
	amp := emulator.NewAmplify()
	amp.AddSession("acc-ada", emulator.AmplifyResult("g-1", "ada", "ada@example.com", "administrator"))
	var blocked atomic.Bool
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if blocked.Load() {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(wafPage))
			return
		}
		amp.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	up := newUpstream(t)
	tester := startCaddy(t, fmt.Sprintf(`
:%d {
	session_auth amplify %s {
		cache_ttl 1s
		stale_if_error 1h
		negative_ttl 1h
	}
	reverse_proxy %s
}`, httpPort, front.URL, up.Listener.Addr()))

	if resp, body := do(t, tester, "GET", "/x", bearer("acc-ada")); resp.StatusCode != 200 {
		t.Fatalf("live session: %d %.200s", resp.StatusCode, body)
	}
	blocked.Store(true)
	time.Sleep(1200 * time.Millisecond)
	if resp, body := do(t, tester, "GET", "/x", bearer("acc-ada")); resp.StatusCode != 200 {
		t.Errorf("blocked, cached session: %d %.200s, want the stale session", resp.StatusCode, body)
	}
	if resp, _ := do(t, tester, "GET", "/x", bearer("acc-new")); resp.StatusCode != 503 {
		t.Errorf("blocked, uncached token: %d, want 503", resp.StatusCode)
	}
	blocked.Store(false)
	amp.AddSession("acc-new", emulator.AmplifyResult("g-2", "bo", "bo@example.com", "developer"))
	if resp, body := do(t, tester, "GET", "/x", bearer("acc-new")); resp.StatusCode != 200 {
		t.Errorf("unblocked: %d %.200s (was the block cached as a rejection?)", resp.StatusCode, body)
	}
	if resp, _ := do(t, tester, "GET", "/x", bearer("acc-nobody")); resp.StatusCode != 401 {
		t.Errorf("the platform's own dead-session answer: %d, want 401", resp.StatusCode)
	}
}

// TestHTTPCookieSinkRefusesSplicedToken: a query token that URL-decodes to
// "zz; impersonate=alice" must not add a cookie to the service request.
func TestHTTPCookieSinkRefusesSplicedToken(t *testing.T) {
	var calls atomic.Int64
	var cookies atomic.Value
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		cookies.Store(r.Header.Get("Cookie"))
		if c, err := r.Cookie("impersonate"); err == nil {
			fmt.Fprintf(w, `{"user":%q}`, c.Value)
			return
		}
		if c, err := r.Cookie("sid"); err == nil && c.Value == "good" {
			w.Write([]byte(`{"user":"ann"}`))
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"error":"unauthenticated"}`))
	}))
	t.Cleanup(svc.Close)
	up := newUpstream(t)
	tester := startCaddy(t, fmt.Sprintf(`
:%d {
	session_auth {
		backend http %s {
			token_to cookie sid
			user_from user
		}
		token query tok
	}
	reverse_proxy %s
}`, httpPort, svc.URL, up.Listener.Addr()))

	for _, q := range []string{"zz%3B%20impersonate%3Dalice", "zz%3Bimpersonate%3Dalice", "a%20b", "a%2Cb", "a%22b"} {
		resp, body := do(t, tester, "GET", "/x?tok="+q, nil)
		if resp.StatusCode != 401 || strings.Contains(body, "alice") {
			t.Errorf("tok=%s: %d %.200s, want 401", q, resp.StatusCode, body)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("%d service calls for tokens a cookie cannot carry (last Cookie %q)", n, cookies.Load())
	}
	if resp, body := do(t, tester, "GET", "/x?tok=good", nil); resp.StatusCode != 200 {
		t.Errorf("good token: %d %.200s", resp.StatusCode, body)
	}
}

// TestInfoTR50PassesOtherCommands: session_info tr50 on /api answers
// session.info only; a login or any other command reaches the service
// behind it with its body whole.
func TestInfoTR50PassesOtherCommands(t *testing.T) {
	tr := emulator.NewTR50()
	tr.AddSession("tr-sess", emulator.TR50UserParams("u-42", "ops@acme.io", 3600, time.Now()))
	var bodies atomic.Value
	product := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies.Store(string(b))
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"from":"product"}`))
	}))
	t.Cleanup(product.Close)
	svc := httptest.NewServer(tr)
	t.Cleanup(svc.Close)
	startCaddy(t, fmt.Sprintf(`
:%d {
	session_auth tr50 %s {
		optional
	}
	handle /api {
		session_info tr50
		reverse_proxy %s
	}
}`, httpPort, svc.URL, product.Listener.Addr()))

	hdr := http.Header{"Sessionid": {"tr-sess"}, "Content-Type": {"application/json"}}
	_, m := callJSON(t, "POST", siteURL+"/api", hdr, `{"1":{"command":"session.info"}}`)
	if c, _ := m["1"].(map[string]any); c == nil || c["success"] != true {
		t.Errorf("session.info: %v", m)
	}
	for _, body := range []string{
		`{"auth":{"command":"api.authenticate","params":{"username":"ops@acme.io","password":"pw"}}}`,
		`{"1":{"command":"thing.list"}}`,
		`{"1":{"command":"session.info"},"2":{"command":"thing.find","params":{"key":"k"}}}`,
	} {
		_, m := callJSON(t, "POST", siteURL+"/api", hdr, body)
		if m["from"] != "product" || bodies.Load() != body {
			t.Errorf("%s: answer %v, product got %q", body, m, bodies.Load())
		}
	}
}

// TestTR50SessionIDFromBody: TR50 clients send the session id in the
// envelope's auth.sessionId; session_auth reads it there and hands the
// body on whole.
func TestTR50SessionIDFromBody(t *testing.T) {
	tr := emulator.NewTR50()
	tr.AddSession("tr-sess", emulator.TR50UserParams("u-42", "ops@acme.io", 3600, time.Now()))
	var got atomic.Value
	product := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.Store(string(b) + "|" + r.Header.Get("X-Session-User-Id"))
		w.Write([]byte(`{"from":"product"}`))
	}))
	t.Cleanup(product.Close)
	svc := httptest.NewServer(tr)
	t.Cleanup(svc.Close)
	startCaddy(t, fmt.Sprintf(`
:%d {
	session_auth tr50 %s
	handle /api {
		session_info tr50
		reverse_proxy %s
	}
}`, httpPort, svc.URL, product.Listener.Addr()))

	ct := http.Header{"Content-Type": {"application/json"}}
	resp, m := callJSON(t, "POST", siteURL+"/api", ct, `{"auth":{"sessionId":"tr-sess"},"1":{"command":"session.info"}}`)
	if c, _ := m["1"].(map[string]any); resp.StatusCode != 200 || c == nil || c["success"] != true {
		t.Errorf("session.info with auth.sessionId: %d %v", resp.StatusCode, m)
	}
	body := `{"auth":{"sessionId":"tr-sess"},"1":{"command":"thing.list"}}`
	resp, m = callJSON(t, "POST", siteURL+"/api", ct, body)
	if resp.StatusCode != 200 || m["from"] != "product" || got.Load() != body+"|u-42" {
		t.Errorf("thing.list with auth.sessionId: %d %v, product got %q", resp.StatusCode, m, got.Load())
	}
	for _, b := range []string{`{"auth":{"sessionId":"nope"},"1":{"command":"thing.list"}}`, `{"1":{"command":"thing.list"}}`} {
		resp, err := testClient.Post(siteURL+"/api", "application/json", strings.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("%s: %d, want 401", b, resp.StatusCode)
		}
	}
}
