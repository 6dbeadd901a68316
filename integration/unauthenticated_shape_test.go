package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/sessiongate/caddy-sessiongate/internal/dialecttest"
)

// TestUnauthenticatedInProductShape: behind a non-optional session_auth,
// a client of the product asking for its session without one gets the
// product's own answer (the status and the fields the emulated product
// gives), not an empty 401; other requests keep the plain 401. Every
// dialect with a product of its own, from the conformance table.
func TestUnauthenticatedInProductShape(t *testing.T) {
	var site strings.Builder
	products := map[string]string{}
	var cases []dialecttest.Case
	for _, c := range dialecttest.Cases() {
		if !c.ProductReads {
			continue
		}
		srv := httptest.NewServer(c.NewService().Handler)
		t.Cleanup(srv.Close)
		products[c.Dialect] = srv.URL
		cases = append(cases, c)
		fmt.Fprintf(&site, "\thandle /%[1]s/* {\n\t\turi strip_prefix /%[1]s\n\t\tsession_auth %[1]s %[2]s\n\t\tsession_info %[1]s\n\t}\n", c.Dialect, srv.URL)
	}
	startCaddy(t, fmt.Sprintf(":%d {\n%s}", httpPort, site.String()))

	call := func(base string, r dialecttest.Request) (int, string) {
		t.Helper()
		req, err := http.NewRequest(r.Method, base+r.Target, strings.NewReader(r.Body))
		if err != nil {
			t.Fatal(err)
		}
		if r.Body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := testClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	keys := func(body string) []string {
		var m map[string]any
		if json.Unmarshal([]byte(body), &m) != nil {
			return nil
		}
		var out []string
		for k := range m {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	for _, c := range cases {
		base := siteURL + "/" + c.Dialect
		for _, read := range c.InfoReads {
			status, body := call(base, read.Request)
			pStatus, pBody := call(products[c.Dialect], read.Request)
			if status != read.Status || status != pStatus || !slices.Contains(keys(body), read.Key) || !slices.Equal(keys(body), keys(pBody)) {
				t.Errorf("%s %s %s: %d %.200s; the product answers %d %.200s", c.Dialect, read.Method, read.Target, status, body, pStatus, pBody)
			}
		}
		for _, pass := range c.InfoPasses {
			if status, body := call(base, pass); status != http.StatusUnauthorized || body != "" {
				t.Errorf("%s %s %s (not a session read): %d %.200s, want the plain 401", c.Dialect, pass.Method, pass.Target, status, body)
			}
		}
	}
}
