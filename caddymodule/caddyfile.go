package caddymodule

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

func init() {
	httpcaddyfile.RegisterDirective("session_auth", parseSessionAuthRoutes)
	httpcaddyfile.RegisterDirectiveOrder("session_auth", httpcaddyfile.After, "basic_auth")
}

func parseSessionAuth(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	sa := new(SessionAuth)
	err := sa.UnmarshalCaddyfile(h.Dispenser)
	return sa, err
}

// parseSessionAuthRoutes is parseSessionAuth plus, when the directive has a
// matcher, an unconditional session_strip right before it: the requests
// the matcher skips must lose forged identity headers too. Both go in one
// subroute, because Caddy sorts a directive's matched routes before its
// unmatched ones. The strip is bare: it removes what every session_auth
// of the config injects. Every `session_auth <matcher>` emits its own, so
// a strip runs before every session_auth of a site; one after another
// session_auth costs a context lookup, as a strip leaves alone a request a
// session_auth has handled (so two `session_auth <matcher>` of one site
// keep each other's identity). A bare session_auth strips every request
// itself and needs none. A session_auth nested in a block needs
// `session_strip` at the top of its site, which the layout check asks
// for when the config starts (checkLayout).
func parseSessionAuthRoutes(h httpcaddyfile.Helper) ([]httpcaddyfile.ConfigValue, error) {
	if !h.Next() {
		return nil, h.ArgErr()
	}
	matcherSet, err := h.ExtractMatcherSet()
	if err != nil {
		return nil, h.Errf("%v", err) // Caddy's error names no line
	}
	sa, err := parseSessionAuth(h)
	if err != nil {
		return nil, err
	}
	if matcherSet == nil {
		return h.NewRoute(nil, sa), nil
	}
	// In a subroute without a matcher: Caddy sorts a directive's matched
	// routes before its unmatched ones, which would put this session_auth
	// before an earlier one's strip.
	var routes caddyhttp.RouteList
	for _, cv := range append(h.NewRoute(nil, new(SessionStrip)), h.NewRoute(matcherSet, sa)...) {
		routes = append(routes, cv.Value.(caddyhttp.Route))
	}
	if jwks := sa.(*SessionAuth).Assertion.jwksMatcherSet(); jwks != nil {
		// session_auth answers its JWKS path whatever the matcher says.
		last := &routes[len(routes)-1]
		last.MatcherSetsRaw = append(last.MatcherSetsRaw, jwks)
	}
	return h.NewRoute(nil, &caddyhttp.Subroute{Routes: routes}), nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. It only
// parses: the values are checked by validate, the check Provision runs
// too, called after each line so that an error names its line. Syntax:
//
//	session_auth [<matcher>] [<dialect> <url>] {
//	    backend <dialect> <url> [{
//	        <dialect option> <args...>
//	        <reverse_proxy transport http subdirective> <args...>
//	    }]
//	    timeout <duration>
//	    tls_insecure_skip_verify
//	    tls_trusted_ca_certs <pem-file...>    (deprecated: tls_trust_pool in backend)
//	    backend_header <name> <value>
//
//	    token cookie <name>
//	    token header <name> [<prefix>]
//	    token bearer
//	    token query <name>
//
//	    cache_ttl <duration>
//	    negative_ttl <duration>
//	    stale_if_error <duration>
//	    cache_max <n>
//	    retry_after <duration>
//	    lookup_limit <n> | off
//	    client_miss_limit <n> [<window>] | off
//	    refresh_ahead <fraction> | off
//	    cluster <redis-url> {
//	        secret <at least 32 bytes>
//	        key_prefix <prefix>
//	        timeout <duration>
//	    }
//
//	    header_prefix <prefix>
//	    header <name> <template>
//	    header_fields <field...> | none
//	    headers <preset...>
//	    header_encoding raw|percent|rfc2047
//	    strip_token
//	    app_session <cookie-name...>
//	    app_session_secret <at least 32 bytes>
//
//	    optional
//	    on_unauthenticated status <code> | redirect <url-template>
//	    logout <method> <path>
//	    log_hash_key <secret>
//	    disable_metrics
//	    assertion {
//	        key <pem-file...>
//	        header <name>
//	        issuer <url>
//	        audience <value...>
//	        ttl <duration>
//	        jwks_path <path>
//	    }
//	}
//
// The backend block takes the subdirectives of reverse_proxy's
// `transport http` block (tls_trust_pool, tls_client_auth,
// tls_server_name, dial_timeout, response_header_timeout, ...), parsed by
// reverse_proxy itself; every other line is a dialect option.
func (h *SessionAuth) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if args := d.RemainingArgs(); len(args) > 0 {
		if len(args) != 2 {
			return d.Errf("want session_auth [<dialect> <url>], got %d arguments", len(args))
		}
		if err := h.parseBackend(d, args[0], args[1], false); err != nil {
			return err
		}
	}

	// Lines that add to a list may repeat; any other setting given
	// twice would silently win over the first.
	repeatable := []string{"tls_trusted_ca_certs", "backend_header", "token", "header", "headers", "logout", "app_session"}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		sub := d.Val()
		if seen[sub] && !slices.Contains(repeatable, sub) {
			return d.Errf("%s given twice", sub)
		}
		seen[sub] = true
		var err error
		switch sub {
		case "backend":
			if h.Backend.Dialect != "" {
				return d.Err("backend given twice (also on the session_auth line)")
			}
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Err("want backend <dialect> <url> [{ ... }]")
			}
			err = h.parseBackend(d, args[0], args[1], true)
		case "timeout":
			err = parseDuration(d, &h.Timeout)
		case "cache_ttl":
			err = parseDuration(d, &h.CacheTTL)
		case "negative_ttl":
			err = parseDuration(d, &h.NegativeTTL)
		case "stale_if_error":
			err = parseDuration(d, &h.StaleIfError)
		case "retry_after":
			err = parseDuration(d, &h.RetryAfter)
		case "lookup_limit":
			err = parseLookupLimit(d, &h.LookupLimit)
		case "client_miss_limit":
			h.ClientMissLimit, err = parseClientMissLimit(d)
		case "refresh_ahead":
			h.RefreshAhead, err = parseRefreshAhead(d)
		case "tls_insecure_skip_verify":
			err = parseFlag(d, &h.TLSInsecureSkipVerify)
		case "strip_token":
			err = parseFlag(d, &h.StripToken)
		case "optional":
			err = parseFlag(d, &h.Optional)
		case "disable_metrics":
			err = parseFlag(d, &h.DisableMetrics)
		case "tls_trusted_ca_certs":
			files := d.RemainingArgs()
			if len(files) == 0 {
				return d.Err("want tls_trusted_ca_certs <pem-file...> (deprecated: use tls_trust_pool file <pem-file...> in the backend block)")
			}
			h.TLSTrustedCACerts = append(h.TLSTrustedCACerts, files...)
		case "backend_header":
			var name, value string
			if !d.AllArgs(&name, &value) {
				return d.Err("want backend_header <name> <value>")
			}
			if h.BackendHeaders == nil {
				h.BackendHeaders = http.Header{}
			}
			h.BackendHeaders.Add(name, value)
		case "cluster":
			h.Cluster, err = parseCluster(d)
		case "assertion":
			h.Assertion, err = parseAssertion(d)
		case "token":
			var src sessionctx.TokenSource
			src, err = parseTokenSource(d)
			h.Tokens = append(h.Tokens, src)
		case "cache_max":
			var val string
			if !d.AllArgs(&val) {
				return d.Err("want cache_max <entries>")
			}
			// Zero would mean the default in JSON: the Caddyfile
			// leaves the line out for that.
			n, perr := strconv.Atoi(val)
			if perr != nil || n == 0 {
				return d.Errf("cache_max %q: want a positive number of entries", val)
			}
			h.CacheMax = n
		case "log_hash_key":
			if !d.AllArgs(&h.LogHashKey) || h.LogHashKey == "" {
				return d.Err("want log_hash_key <secret>")
			}
		case "header_prefix":
			if !d.AllArgs(&h.HeaderPrefix) {
				return d.Err("want header_prefix <prefix>")
			}
			if h.HeaderPrefix == "" {
				return d.Err("header_prefix must not be empty: it names the headers stripped from clients")
			}
		case "header":
			var name, tmpl string
			if !d.AllArgs(&name, &tmpl) {
				return d.Err("want header <name> <template>")
			}
			if _, dup := h.Headers[name]; dup {
				return d.Errf("header %s given twice", name)
			}
			if h.Headers == nil {
				h.Headers = map[string]string{}
			}
			h.Headers[name] = tmpl
		case "header_fields":
			if h.HeaderFields = d.RemainingArgs(); len(h.HeaderFields) == 0 {
				return d.Errf("want header_fields <field...> (%s) or header_fields none", strings.Join(fieldNames[:], " "))
			}
		case "headers":
			names := d.RemainingArgs()
			if len(names) == 0 {
				return d.Errf("want headers <preset...> (%s)", strings.Join(presetList(), ", "))
			}
			h.HeaderPresets = append(h.HeaderPresets, names...)
		case "header_encoding":
			if !d.AllArgs(&h.HeaderEncoding) {
				return d.Errf("want header_encoding %s", strings.Join(encodingNames[:], "|"))
			}
		case "app_session":
			names := d.RemainingArgs()
			if len(names) == 0 {
				return d.Err("want app_session <cookie-name...>: the app's own session cookies")
			}
			h.AppSession = append(h.AppSession, names...)
		case "app_session_secret":
			if !d.AllArgs(&h.AppSessionSecret) || h.AppSessionSecret == "" {
				return d.Err("want app_session_secret <secret>")
			}
		case "on_unauthenticated":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Err("want on_unauthenticated status <code> | redirect <url-template>")
			}
			if args[0] == "redirect" {
				h.OnUnauthenticated = &Unauthenticated{Redirect: args[1]}
				break
			}
			if args[0] != "status" {
				return d.Errf("on_unauthenticated %q: want status or redirect", args[0])
			}
			code, perr := strconv.Atoi(args[1])
			if perr != nil {
				return d.Errf("on_unauthenticated status %q: want a 4xx status", args[1])
			}
			h.OnUnauthenticated = &Unauthenticated{Status: code}
		case "logout":
			var method, path string
			if !d.AllArgs(&method, &path) {
				return d.Err("want logout <method> <path>")
			}
			h.Logout = append(h.Logout, LogoutRoute{Method: strings.ToUpper(method), Path: path})
		default:
			return d.Errf("unrecognized subdirective %q", sub)
		}
		if err != nil {
			return err
		}
		if err := h.validate(); err != nil && !isMissing(err) {
			return d.Err(err.Error())
		}
	}
	if err := h.validate(); err != nil {
		return d.Err(err.Error())
	}
	return nil
}

// parseDuration reads the one argument of the current line as a duration.
func parseDuration(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	sub := d.Val()
	args := d.RemainingArgs()
	if len(args) != 1 {
		return d.Errf("%s takes one duration written as one word, such as 90s, 5m or 1h30m; got %d words: %s",
			sub, len(args), strings.Join(args, " "))
	}
	dur, err := caddy.ParseDuration(args[0])
	if err != nil {
		return d.Errf("%s %q is not a duration: write it as one word, such as 90s, 5m or 1h30m", sub, args[0])
	}
	if dur == 0 && slices.Contains(zeroIsDefault, sub) {
		return d.Errf("%s 0 would mean its default, not none: give a positive duration, or leave the line out for the default", sub)
	}
	*dst = caddy.Duration(dur)
	return nil
}

// zeroIsDefault are the durations whose 0 (the JSON's unset) means their
// default, not none: written out in a Caddyfile, a 0 (say `cache_ttl 0`
// for "no caching") would silently be the default.
var zeroIsDefault = []string{"timeout", "cache_ttl", "negative_ttl", "retry_after"}

// parseFlag reads a line that is its own argument-less subdirective.
func parseFlag(d *caddyfile.Dispenser, dst *bool) error {
	if sub := d.Val(); d.NextArg() {
		return d.Errf("%s takes no arguments", sub)
	}
	*dst = true
	return nil
}

// parseBackend reads the dialect and URL and, when the line opens a
// block, its lines: reverse_proxy's transport subdirectives go to the
// backend's HTTPTransport, the others are the dialect's options.
func (h *SessionAuth) parseBackend(d *caddyfile.Dispenser, dialect, url string, block bool) error {
	defaults, err := sessionctx.DialectOptions(dialect)
	if err != nil {
		return d.Errf("backend: %v", err)
	}
	h.Backend = BackendConfig{Dialect: dialect, URL: url}
	if err := h.validate(); err != nil && !isMissing(err) {
		return d.Err(err.Error())
	}
	if !block {
		return nil
	}
	var opts sessionctx.Options
	written := map[string]json.RawMessage{}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		if slices.Contains(transportSubdirectives, name) {
			if h.Backend.Transport == nil {
				h.Backend.Transport = new(reverseproxy.HTTPTransport)
			}
			if err := unmarshalTransportLine(d, h.Backend.Transport); err != nil {
				return err
			}
			if err := h.validate(); err != nil && !isMissing(err) {
				return d.Err(err.Error())
			}
			continue
		}
		if defaults == nil {
			return d.Errf("dialect %s takes no options", dialect)
		}
		if opts == nil {
			opts = defaults
		}
		if seen[name] {
			// Every option holds one value: a second line would
			// silently win over the first.
			return d.Errf("backend %s: option %s given twice", dialect, name)
		}
		seen[name] = true
		before, err := optionFields(opts)
		if err != nil {
			return d.Errf("backend %s options: %v", dialect, err)
		}
		if err := opts.SetOption(name, d.RemainingArgs()); err != nil {
			return d.Errf("backend %s: %v", dialect, err)
		}
		after, err := optionFields(opts)
		if err != nil {
			return d.Errf("backend %s options: %v", dialect, err)
		}
		for k, v := range after {
			// A line names its field, or at least changes it; one that
			// restates the default changes nothing but is kept too.
			if k == name || !bytes.Equal(before[k], v) {
				written[k] = v
			}
		}
	}
	if r, ok := opts.(interface{ Resolved() sessionctx.Options }); ok {
		// The paths read that no line names (a mapping's defaults) are
		// written out too, so that the adapted JSON shows all of them.
		resolved, err := optionFields(r.Resolved())
		if err != nil {
			return d.Errf("backend %s options: %v", dialect, err)
		}
		fresh, err := sessionctx.DialectOptions(dialect)
		if err != nil {
			return d.Errf("backend: %v", err)
		}
		base, err := optionFields(fresh)
		if err != nil {
			return d.Errf("backend %s options: %v", dialect, err)
		}
		for k, v := range resolved {
			if _, named := written[k]; !named && !bytes.Equal(base[k], v) {
				written[k] = v
			}
		}
	}
	if len(written) > 0 {
		raw, err := json.Marshal(written)
		if err != nil {
			return d.Errf("backend %s options: %v", dialect, err)
		}
		h.Backend.Options = raw
	}
	return nil
}

// optionFields is the dialect options' JSON, field by field. The adapted
// JSON holds only the fields the block's lines name or change, not the
// other defaults, so that it shows what the user wrote.
func optionFields(opts sessionctx.Options) (map[string]json.RawMessage, error) {
	raw, err := json.Marshal(opts)
	if err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	err = json.Unmarshal(raw, &fields)
	return fields, err
}

func parseTokenSource(d *caddyfile.Dispenser) (sessionctx.TokenSource, error) {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return sessionctx.TokenSource{}, d.Err("want token cookie <name> | header <name> [<prefix>] | bearer | query <name>")
	}
	src := sessionctx.TokenSource{From: args[0]}
	switch {
	case src.From == sessionctx.FromBearer && len(args) == 1:
	case (src.From == sessionctx.FromCookie || src.From == sessionctx.FromQuery) && len(args) == 2:
		src.Name = args[1]
	case src.From == sessionctx.FromHeader && (len(args) == 2 || len(args) == 3):
		src.Name = args[1]
		if len(args) == 3 {
			src.Prefix = args[2]
		}
	default:
		return src, d.Errf("token %s: want token cookie <name> | header <name> [<prefix>] | bearer | query <name>", strings.Join(args, " "))
	}
	return src, nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*SessionAuth)(nil)
