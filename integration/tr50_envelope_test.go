package integration

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiongate/caddy-sessiongate/internal/emulator"
)

// TestTR50AmbiguousEnvelopeRefused: a TR50 envelope that JSON parsers
// read differently is refused with 400 before anything behind sees it:
// two sessionId keys (GJSON and many parsers take the first, Go's
// encoding/json the last, and matches any case or Unicode fold), two
// auth objects, or an envelope that names another session than the
// sessionId header. Optional or not. A single key passes as before.
func TestTR50AmbiguousEnvelopeRefused(t *testing.T) {
	tr := emulator.NewTR50()
	now := time.Now()
	tr.AddSession("S-alice", emulator.TR50UserParams("u-alice", "alice", 3600, now))
	tr.AddSession("S-bob", emulator.TR50UserParams("u-bob", "bob", 3600, now))
	var reached atomic.Int64
	var lastUser atomic.Value
	product := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		_, _ = io.Copy(io.Discard, r.Body) // the body is not what this upstream checks
		lastUser.Store(r.Header.Get("X-Session-User"))
		w.Write([]byte(`{"from":"product"}`))
	}))
	t.Cleanup(product.Close)
	svcURL := serve(t, tr)
	startCaddyWith(t, "", fmt.Sprintf(`
:%d {
	handle /opt/* {
		session_auth tr50 %s {
			optional
		}
		reverse_proxy %s
	}
	handle {
		session_auth tr50 %s
		reverse_proxy %s
	}
}`, httpPort, svcURL, product.Listener.Addr(), svcURL, product.Listener.Addr()))

	ct := http.Header{"Content-Type": {"application/json"}}
	for _, path := range []string{"/api", "/opt/api"} {
		for name, c := range map[string]struct {
			header http.Header
			body   string
		}{
			"two sessionId keys":               {ct, `{"auth":{"sessionId":"S-alice","sessionId":"S-bob"},"1":{"command":"thing.list"}}`},
			"two keys, another case":           {ct, `{"auth":{"sessionId":"S-alice","SessionId":"S-bob"},"1":{"command":"thing.list"}}`},
			"two keys, one escaped":            {ct, `{"auth":{"sessionId":"S-alice","session\u0049d":"S-bob"},"1":{"command":"thing.list"}}`},
			"two keys, one folded (long s)":    {ct, `{"auth":{"sessionId":"S-alice","ſessionId":"S-bob"},"1":{"command":"thing.list"}}`},
			"two auth objects":                 {ct, `{"auth":{"sessionId":"S-alice"},"auth":{"sessionId":"S-bob"},"1":{"command":"thing.list"}}`},
			"two auth objects, another case":   {ct, `{"auth":{"sessionId":"S-alice"},"Auth":{"sessionId":"S-bob"},"1":{"command":"thing.list"}}`},
			"header and another session":       {http.Header{"Content-Type": {"application/json"}, "Sessionid": {"S-alice"}}, `{"auth":{"sessionId":"S-bob"},"1":{"command":"thing.list"}}`},
			"cookie and another session":       {http.Header{"Content-Type": {"application/json"}, "Cookie": {"sessionId=S-alice"}}, `{"auth":{"sessionId":"S-bob"},"1":{"command":"thing.list"}}`},
			"two keys, the same session twice": {ct, `{"auth":{"sessionId":"S-alice","sessionId":"S-alice"},"1":{"command":"thing.list"}}`},
		} {
			before := reached.Load()
			if got, body := sendBody(t, "POST", path, c.header, c.body); got != http.StatusBadRequest {
				t.Errorf("%s %s: %d, want 400 (%q)", path, name, got, body)
			}
			if reached.Load() != before {
				t.Errorf("%s %s: the product got the request", path, name)
			}
		}
		for name, c := range map[string]struct {
			header http.Header
			body   string
			user   string
		}{
			"one key":                  {ct, `{"auth":{"sessionId":"S-bob"},"1":{"command":"thing.list"}}`, "bob"},
			"header and the same":      {http.Header{"Content-Type": {"application/json"}, "Sessionid": {"S-alice"}}, `{"auth":{"sessionId":"S-alice"},"1":{"command":"thing.list"}}`, "alice"},
			"header, no auth in body":  {http.Header{"Content-Type": {"application/json"}, "Sessionid": {"S-alice"}}, `{"1":{"command":"thing.list"}}`, "alice"},
			"header, body not JSON":    {http.Header{"Sessionid": {"S-alice"}}, `a=1&b=2`, "alice"},
			"header, sessionId nested": {http.Header{"Content-Type": {"application/json"}, "Sessionid": {"S-alice"}}, `{"1":{"params":{"auth":{"sessionId":"S-bob"}}}}`, "alice"},
		} {
			if got, body := sendBody(t, "POST", path, c.header, c.body); got != http.StatusOK || lastUser.Load() != c.user {
				t.Errorf("%s %s: %d as %v, want 200 as %s (%q)", path, name, got, lastUser.Load(), c.user, body)
			}
		}
	}
}
