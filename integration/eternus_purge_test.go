package integration

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/caddy-sessiongate/internal/emulator"
)

// TestEternusPurgeByTokenAlone: the admin purge takes an ETERNUS token
// without its session id and evicts every session id cached with it, in
// both credential forms (a second header, and <session_id>:<token>).
func TestEternusPurgeByTokenAlone(t *testing.T) {
	et := emulator.NewEternus()
	id, tok := et.AddSession("monitor", []string{"Status_Display"}, time.Hour)
	svc := httptest.NewServer(et)
	t.Cleanup(svc.Close)
	up := newUpstream(t)
	tester := startCaddy(t, fmt.Sprintf(`
:%d {
	session_auth eternus %s {
		cache_ttl 1h
	}
	reverse_proxy %s
}`, httpPort, svc.URL, up.Listener.Addr()))

	expectStatus(t, tester, "GET", "/", eternusHeader(id, tok), 200, "warm-up")
	expectStatus(t, tester, "GET", "/", bearer(fmt.Sprintf("%d:%s", id, tok)), 200, "warm-up, one header")
	et.RemoveSession(id) // the array ended the session; the cache still has it
	expectStatus(t, tester, "GET", "/", eternusHeader(id, tok), 200, "cached")

	status, body := admin(t, "POST", "/sessiongate/purge", "application/json", fmt.Sprintf(`{"token": %q}`, tok))
	if status != 200 || strings.Contains(body, `"purged":0`) {
		t.Fatalf("purge by token: %d %s", status, body)
	}
	expectStatus(t, tester, "GET", "/", eternusHeader(id, tok), 401, "after purge")
	expectStatus(t, tester, "GET", "/", bearer(fmt.Sprintf("%d:%s", id, tok)), 401, "after purge, one header")
}
