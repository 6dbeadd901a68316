package docs

import (
	"net/http"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// loadCaddy loads cfg, a JSON config whose one server is "docs", into
// this process's Caddy until the test ends, and returns the server's
// address.
func loadCaddy(t *testing.T, cfg string) string {
	t.Helper()
	if err := caddy.Load([]byte(cfg), false); err != nil {
		t.Fatalf("loading the config: %v", err)
	}
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Errorf("stopping Caddy: %v", err)
		}
	})
	app, err := caddy.ActiveContext().App("http")
	if err != nil {
		t.Fatal(err)
	}
	return app.(*caddyhttp.App).Servers["docs"].Listeners()[0].Addr().String()
}

// getWithToken asks addr for / with a bearer token; the caller closes
// the body.
func getWithToken(t *testing.T, addr string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer docs-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}
