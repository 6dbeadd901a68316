package caddymodule

import "github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

// serviceIdleConnsPerHost is how many idle connections to the session
// service the transport keeps when its keepalive settings name none.
// reverse_proxy's default (32) suits an upstream that many proxies
// share; the session service is called by every cache miss of the node
// at once, and a connection not kept is a new dial (and TLS handshake)
// for the next miss: the cold path's most expensive part.
const serviceIdleConnsPerHost = 256

// sizeIdlePool keeps as many idle connections as lookups run at once,
// unless the backend's transport sets max_idle_conns_per_host itself.
func sizeIdlePool(t *reverseproxy.HTTPTransport) {
	if t.KeepAlive == nil {
		t.KeepAlive = new(reverseproxy.KeepAlive)
	}
	if t.KeepAlive.MaxIdleConnsPerHost == 0 {
		t.KeepAlive.MaxIdleConnsPerHost = serviceIdleConnsPerHost
	}
}
