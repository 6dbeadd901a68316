package sessionctx

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// Each dialect takes a rejection status as a verdict only with its own
// body; the same status with a WAF's HTML page is a service failure.
func TestRejectionNeedsDialectBody(t *testing.T) {
	const waf = `<html><body>Request blocked</body></html>`
	for _, tt := range []struct {
		dialect string
		status  int
		body    string
		want    error
	}{
		{"vsphere", 401, `{"error_type":"UNAUTHENTICATED","messages":[]}`, ErrUnauthenticated},
		{"vsphere", 401, `{"type":"com.vmware.vapi.std.errors.unauthenticated","value":{"messages":[]}}`, ErrUnauthenticated},
		{"vsphere", 401, ``, ErrUnauthenticated}, // vcsim
		{"vsphere", 401, waf, ErrUnavailable},
		{"vsphere", 401, `{"message":"nope"}`, ErrUnavailable},
		{"eternus", 401, `{"error_code":1001,"message":"Unauthorized"}`, ErrUnauthenticated},
		{"eternus", 404, `{"error_code":1004,"message":"Not Found"}`, ErrUnauthenticated},
		{"eternus", 403, waf, ErrUnavailable},
		{"eternus", 404, `404 page not found`, ErrUnavailable},
		{"trifacta", 401, `{"exception":{"name":"AuthenticationException","message":"Not authenticated"}}`, ErrUnauthenticated},
		{"trifacta", 403, waf, ErrUnavailable},
		{"tr50", 401, `{"error":"unauthorized"}`, ErrUnauthenticated},
		{"tr50", 403, waf, ErrUnavailable},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(tt.status)
			_, _ = io.WriteString(w, tt.body)
		}))
		opts := ""
		if tt.dialect == "vsphere" {
			opts = `{"api":"current"}`
		}
		cred := credential{Value: "tok", Source: TokenSource{From: FromBearer}}
		if tt.dialect == "eternus" {
			cred.Value = "1000001:tok"
		}
		_, err := dialectBackend(t, tt.dialect, srv.URL, opts).Resolve(context.Background(), cred)
		srv.Close()
		if !errors.Is(err, tt.want) {
			t.Errorf("%s %d %q: err %v, want %v", tt.dialect, tt.status, tt.body, err, tt.want)
		}
	}
}
