package caddymodule

import (
	"context"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

// The session-service transport keeps an idle connection for each lookup
// that may run at once, not reverse_proxy's 32, unless the backend's
// transport says otherwise.
func TestServiceTransportIdlePool(t *testing.T) {
	for _, tc := range []struct {
		name string
		tr   *reverseproxy.HTTPTransport
		want int
	}{
		{"default", nil, serviceIdleConnsPerHost},
		{"transport without keepalive", &reverseproxy.HTTPTransport{}, serviceIdleConnsPerHost},
		{"max_idle_conns_per_host given", &reverseproxy.HTTPTransport{KeepAlive: &reverseproxy.KeepAlive{MaxIdleConnsPerHost: 8}}, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := SessionAuth{Backend: BackendConfig{Dialect: "http", URL: "http://127.0.0.1:1/whoami", Transport: tc.tr}}
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			rt, _, err := h.newServiceTransport(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if rt.MaxIdleConnsPerHost != tc.want {
				t.Fatalf("MaxIdleConnsPerHost = %d, want %d", rt.MaxIdleConnsPerHost, tc.want)
			}
			if tc.tr != nil && tc.tr.KeepAlive != nil && tc.tr.KeepAlive.MaxIdleConnsPerHost != tc.want {
				t.Fatal("the config as given was changed")
			}
		})
	}
}
