package caddymodule

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// ClientMissLimit bounds the session-service lookups one client (Caddy's
// client_ip, so trusted_proxies counts) may start per window.
type ClientMissLimit struct {
	// N is how many lookups per window; -1 turns the limit off. Default 30.
	N int `json:"n,omitempty"`
	// Window is the window. Default 1s.
	Window caddy.Duration `json:"window,omitempty"`
}

// defaultLookupLimit is lookup_limit's default (sessionctx's).
const defaultLookupLimit = 64

// lookups is the handler's settings as sessionctx takes them: in flight,
// per client and its window. A zero value is sessionctx's default; off is
// negative.
func (h *SessionAuth) lookups() (inFlight, perClient int, window time.Duration) {
	if c := h.ClientMissLimit; c != nil {
		perClient, window = c.N, time.Duration(c.Window)
	}
	return h.LookupLimit, perClient, window
}

// refreshAhead is refresh_ahead as sessionctx takes it: absent is the
// default (0 there), 0 is off (negative there).
func (h *SessionAuth) refreshAhead() float64 {
	switch {
	case h.RefreshAhead == nil:
		return 0
	case *h.RefreshAhead == 0:
		return -1
	}
	return *h.RefreshAhead
}

// validateProtect checks lookup_limit, client_miss_limit and
// refresh_ahead.
func (h *SessionAuth) validateProtect() error {
	if h.LookupLimit < -1 {
		return fmt.Errorf("lookup_limit \"%d\": want a positive number of lookups, or -1 (off)", h.LookupLimit)
	}
	if c := h.ClientMissLimit; c != nil {
		if c.N < -1 {
			return fmt.Errorf("client_miss_limit n \"%d\": want a positive number of lookups, or -1 (off)", c.N)
		}
		if c.Window < 0 {
			return fmt.Errorf("client_miss_limit window must not be negative (got %s)", time.Duration(c.Window))
		}
	}
	if f := h.RefreshAhead; f != nil && (math.IsNaN(*f) || *f < 0 || *f >= 1) {
		return fmt.Errorf("refresh_ahead %v: want a fraction of the cache life from 0 (off) to below 1", *f)
	}
	return nil
}

// defaultMaxConns is the session-service transport's bound on
// connections when the backend block sets none: as many as lookups may be
// in flight, so a flood cannot open more.
func (h *SessionAuth) defaultMaxConns() int {
	switch {
	case h.LookupLimit < 0:
		return 0
	case h.LookupLimit == 0:
		return defaultLookupLimit
	}
	return h.LookupLimit
}

// clientOf names the request's client for the per-client limit: Caddy's
// client_ip, which follows the server's trusted_proxies.
func clientOf(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	return r.RemoteAddr
}

// clientRetry is the Retry-After of a 429: how long the client's bucket
// takes to regain one lookup, in whole seconds rounded up (at least 1).
func (h *SessionAuth) clientRetry() string {
	n, window := 30, time.Second
	if c := h.ClientMissLimit; c != nil {
		if c.N > 0 {
			n = c.N
		}
		if c.Window > 0 {
			window = time.Duration(c.Window)
		}
	}
	per := window / time.Duration(n)
	return strconv.FormatInt(max(1, int64((per+time.Second-1)/time.Second)), 10)
}

// parseLookupLimit reads lookup_limit <n> | off.
func parseLookupLimit(d *caddyfile.Dispenser, dst *int) error {
	var val string
	if !d.AllArgs(&val) {
		return d.Err("want lookup_limit <lookups in flight> or lookup_limit off")
	}
	if val == "off" {
		*dst = -1
		return nil
	}
	n, err := strconv.Atoi(val)
	if err != nil || n <= 0 {
		return d.Errf("lookup_limit %q: want a positive number of lookups, or off", val)
	}
	*dst = n
	return nil
}

// parseClientMissLimit reads client_miss_limit <n> [<window>] | off.
func parseClientMissLimit(d *caddyfile.Dispenser) (*ClientMissLimit, error) {
	args := d.RemainingArgs()
	if len(args) == 1 && args[0] == "off" {
		return &ClientMissLimit{N: -1}, nil
	}
	if len(args) < 1 || len(args) > 2 {
		return nil, d.Err("want client_miss_limit <lookups> [<window>] or client_miss_limit off")
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n <= 0 {
		return nil, d.Errf("client_miss_limit %q: want a positive number of lookups, or off", args[0])
	}
	c := &ClientMissLimit{N: n}
	if len(args) == 2 {
		w, err := caddy.ParseDuration(args[1])
		if err != nil || w <= 0 {
			return nil, d.Errf("client_miss_limit window %q: want a positive duration, such as 1s or 1m", args[1])
		}
		c.Window = caddy.Duration(w)
	}
	return c, nil
}

// parseRefreshAhead reads refresh_ahead <fraction> | off.
func parseRefreshAhead(d *caddyfile.Dispenser) (*float64, error) {
	var val string
	if !d.AllArgs(&val) {
		return nil, d.Err("want refresh_ahead <fraction> (such as 0.8) or refresh_ahead off")
	}
	f := 0.0
	if val != "off" {
		var err error
		if f, err = strconv.ParseFloat(val, 64); err != nil || math.IsNaN(f) || f < 0 || f >= 1 {
			return nil, d.Errf("refresh_ahead %q: want a fraction of the cache life from 0 (off) to below 1, such as 0.8", val)
		}
	}
	return &f, nil
}

// lookupsMetrics describe the lookup limits' and refresh ahead's
// counters.
func lookupsMetrics() []statMetric[sessionctx.Stats] {
	refused := statDesc("lookups_refused_total",
		"Session-service lookups refused without a call, by dialect and limit (lookup_limit, client_miss_limit).", "limit")
	return []statMetric[sessionctx.Stats]{
		{refused, prometheus.CounterValue, string(sessionctx.FailureLookupLimit), func(s sessionctx.Stats) float64 { return float64(s.RefusedLookupLimit) }},
		{refused, prometheus.CounterValue, string(sessionctx.FailureClientLimit), func(s sessionctx.Stats) float64 { return float64(s.RefusedClientLimit) }},
		statGauge("lookups_waiting", "Session-service lookups waiting for a slot under lookup_limit now, by dialect.",
			func(s sessionctx.Stats) int64 { return s.LookupsWaiting }),
		statGauge("lookups_in_flight", "Session-service lookups under way now, by dialect.",
			func(s sessionctx.Stats) int64 { return s.LookupsInFlight }),
		statCounter("refreshes_total", "Refreshes ahead started, by dialect.",
			func(s sessionctx.Stats) uint64 { return s.RefreshesStarted }),
		statCounter("refreshes_skipped_total", "Refreshes ahead not started for want of a lookup slot, by dialect.",
			func(s sessionctx.Stats) uint64 { return s.RefreshesSkipped }),
		statCounter("lookups_waited_total", "Requests that waited on a session-service call, by dialect.",
			func(s sessionctx.Stats) uint64 { return s.Waited }),
	}
}
