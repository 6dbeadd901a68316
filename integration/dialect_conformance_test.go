package integration

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sessiongate/caddy-sessiongate/internal/dialecttest"
)

// TestPurgeReachesEveryDeclaredSource: for every dialect, behind one real
// Caddy, a token sent in each source the dialect reads by default (TR50's
// auth.sessionId of a POSTed envelope included) is one cache entry, and
// the admin purge of the token alone ends it in all of them. The service
// has already forgotten the session, so only the cache could still let
// it in.
func TestPurgeReachesEveryDeclaredSource(t *testing.T) {
	cases := dialecttest.Cases()
	svcs := map[string]*dialecttest.Service{}
	var site strings.Builder
	for _, c := range cases {
		svc := c.NewService()
		srv := httptest.NewServer(svc.Handler)
		t.Cleanup(srv.Close)
		svcs[c.Dialect] = svc
		fmt.Fprintf(&site, "\thandle /%s/* {\n\t\tsession_auth %s %s {\n\t\t\tcache_ttl 1h\n\t\t}\n\t\trespond \"in\" 200\n\t}\n", c.Dialect, c.Dialect, srv.URL)
	}
	startCaddy(t, fmt.Sprintf(":%d {\n%s\trespond 404\n}", httpPort, site.String()))

	expect := func(c dialecttest.Case, want int, when string) {
		t.Helper()
		svc := svcs[c.Dialect]
		for _, src := range c.Sources {
			r, err := dialecttest.Carry(siteURL+"/"+c.Dialect+"/app", src, svc.Token, svc.Parts)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := testClient.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("%s, %s: the token in %s: %d %q, want %d", c.Dialect, when, src, resp.StatusCode, body, want)
			}
		}
	}
	for _, c := range cases {
		expect(c, http.StatusOK, "live")
		if calls := svcs[c.Dialect].Calls(); calls != 1 {
			t.Errorf("%s: one token in %d sources, %d service calls, want 1 (one cache entry)", c.Dialect, len(c.Sources), calls)
		}
		svcs[c.Dialect].Revoke()
		expect(c, http.StatusOK, "revoked at the service, cached")
	}
	for _, c := range cases {
		status, body := admin(t, "POST", "/sessiongate/purge", "application/json", fmt.Sprintf(`{"token":%q}`, svcs[c.Dialect].Token))
		if status != 200 || strings.Contains(body, `"purged":0`) {
			t.Fatalf("%s: purge of the token: %d %s, want its entry purged", c.Dialect, status, body)
		}
		expect(c, http.StatusUnauthorized, "after the purge of the token")
	}
}
