package integration

import (
	"fmt"
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

// wafFront stands in front of a session service as a web application
// firewall would: while blocked, it answers every caller its HTML 403
// page instead of letting the request through, and counts those answers.
type wafFront struct {
	*httptest.Server
	blocked  atomic.Bool
	refusals atomic.Int64
}

func newWAFFront(t *testing.T, service http.Handler) *wafFront {
	t.Helper()
	f := &wafFront{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.blocked.Load() {
			f.refusals.Add(1)
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(wafPage))
			return
		}
		service.ServeHTTP(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

// TestRejectionNeedsServiceAnswer: a WAF's HTML 403 in front of a session
// service (one that blocked sessiongate's IP during a random-token flood,
// say) is a service failure, not the service's word that a session is
// dead: the cached session is served stale, an uncached token gets 503,
// nothing is cached as rejected, and nobody is logged out. The service's
// own rejection still answers 401. One route per dialect whose rejection
// is a status code (http's 401, amplify's findSession behind a proxy).
func TestRejectionNeedsServiceAnswer(t *testing.T) {
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	amp := emulator.NewAmplify()
	amp.AddSession("acc-ada", emulator.AmplifyResult("g-1", "ada", "ada@example.com", "administrator"))
	cases := []struct {
		dialect, route string
		front          *wafFront
		cached, fresh  string
		addFresh       func()
		nobody         string
	}{
		{"http", "/http", newWAFFront(t, http.HandlerFunc(svc.serve)), "tok-alice", "tok-bob",
			func() { svc.addSession("tok-bob", map[string]any{"user_id": "u-2", "user": "bob"}) }, "tok-nobody"},
		{"amplify", "/amplify", newWAFFront(t, amp), "acc-ada", "acc-new",
			func() { amp.AddSession("acc-new", emulator.AmplifyResult("g-2", "bo", "bo@example.com", "developer")) }, "acc-nobody"},
	}
	up := newUpstream(t)
	var site strings.Builder
	fmt.Fprintf(&site, ":%d {\n", httpPort)
	for _, c := range cases {
		fmt.Fprintf(&site, "\thandle %s/* {\n\t\tsession_auth %s %s {\n\t\t\tcache_ttl 1s\n\t\t\tstale_if_error 1h\n\t\t\tnegative_ttl 1h\n\t\t}\n\t\treverse_proxy %s\n\t}\n",
			c.route, c.dialect, c.front.URL, up.Listener.Addr())
	}
	site.WriteString("}\n")
	tester := startCaddy(t, site.String())

	for _, c := range cases {
		if resp, body := do(t, tester, "GET", c.route+"/x", bearer(c.cached)); resp.StatusCode != 200 {
			t.Fatalf("%s, live session: %d %.200s", c.dialect, resp.StatusCode, body)
		}
		c.front.blocked.Store(true)
	}
	// Past cache_ttl the next lookup asks the service and meets the WAF:
	// until it does, the cached session is simply fresh.
	eventually(t, 15*time.Second, "every cached session expired (cache_ttl 1s) and met the WAF", func() error {
		for _, c := range cases {
			if resp, body := do(t, tester, "GET", c.route+"/x", bearer(c.cached)); resp.StatusCode != 200 {
				t.Fatalf("%s, WAF page with a cached session: %d %.200s, want the stale session", c.dialect, resp.StatusCode, body)
			}
		}
		for _, c := range cases {
			if c.front.refusals.Load() == 0 {
				return fmt.Errorf("%s: the WAF refused no lookup yet", c.dialect)
			}
		}
		return nil
	})
	for _, c := range cases {
		if resp, _ := do(t, tester, "GET", c.route+"/x", bearer(c.fresh)); resp.StatusCode != 503 {
			t.Errorf("%s, WAF page, uncached token: %d, want 503", c.dialect, resp.StatusCode)
		}
	}

	for _, c := range cases {
		c.front.blocked.Store(false)
		c.addFresh()
		if resp, body := do(t, tester, "GET", c.route+"/x", bearer(c.fresh)); resp.StatusCode != 200 {
			t.Errorf("%s, after the WAF lets us through: %d %.200s (was the WAF page cached as a rejection?)", c.dialect, resp.StatusCode, body)
		}
		if resp, body := do(t, tester, "GET", c.route+"/x", bearer(c.cached)); resp.StatusCode != 200 {
			t.Errorf("%s, the cached session after the WAF: %d %.200s", c.dialect, resp.StatusCode, body)
		}
		// The service's own rejection still rejects.
		if resp, _ := do(t, tester, "GET", c.route+"/x", bearer(c.nobody)); resp.StatusCode != 401 {
			t.Errorf("%s, the service's own rejection: %d, want 401", c.dialect, resp.StatusCode)
		}
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
