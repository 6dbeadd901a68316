package caddymodule

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// missingError names a required setting that is not given. The Caddyfile
// parser validates after every line, before the block is complete, so it
// sets these errors aside until the block's end.
type missingError string

func (e missingError) Error() string { return string(e) }

// isMissing reports whether err is only a missing required setting.
func isMissing(err error) bool {
	var m missingError
	return errors.As(err, &m)
}

// validate is the one check of session_auth's settings, for both the
// Caddyfile and JSON: the parser runs it after each line it reads, so an
// error names its line, and Provision runs it on the settings with their
// {env.*} and {file.*} placeholders expanded. A value that still holds
// such a placeholder (the parser's view) is checked once expanded. A
// zero value stands for the default and passes. Missing required
// settings are reported last, as a missingError.
func (h *SessionAuth) validate() error {
	if h.Backend.Dialect != "" {
		if _, err := sessionctx.DialectOptions(h.Backend.Dialect); err != nil {
			return fmt.Errorf("backend: %w", err)
		}
		if err := checkURL("backend url", h.Backend.URL, h.Backend.URL, "http", "https"); err != nil {
			return err
		}
	}
	for _, v := range []struct {
		name string
		d    caddy.Duration
	}{
		{"timeout", h.Timeout}, {"cache_ttl", h.CacheTTL}, {"negative_ttl", h.NegativeTTL},
		{"stale_if_error", h.StaleIfError}, {"retry_after", h.RetryAfter},
	} {
		if v.d < 0 {
			return fmt.Errorf("%s must not be negative (got %s)", v.name, time.Duration(v.d))
		}
	}
	if h.CacheMax < 0 {
		return fmt.Errorf("cache_max \"%d\" must not be negative", h.CacheMax)
	}
	if err := h.validateProtect(); err != nil {
		return err
	}
	if err := h.checkTransport(); err != nil {
		return err
	}
	for name := range h.BackendHeaders {
		if !isHeaderName(name) {
			return fmt.Errorf("backend_header %q: not a header name", name)
		}
	}
	for i, t := range h.Tokens {
		if err := t.Validate(); err != nil {
			return fmt.Errorf("tokens %d: %w", i, err)
		}
	}
	if err := checkHeaderNames(h.HeaderPrefix, maps.Keys(h.Headers)); err != nil {
		return err
	}
	if _, err := headerFields(h.HeaderFields); err != nil {
		return err
	}
	if _, err := parseHeaderEncoding(h.HeaderEncoding); err != nil {
		return err
	}
	for _, p := range h.HeaderPresets {
		if _, ok := presets[p]; !ok {
			return fmt.Errorf("unknown header preset %q (want %s)", p, strings.Join(presetList(), " or "))
		}
	}
	if u := h.OnUnauthenticated; u != nil && u.Status != 0 && (u.Status < 400 || u.Status > 499) {
		return fmt.Errorf("on_unauthenticated status \"%d\": want a 4xx status", u.Status)
	}
	for i, l := range h.Logout {
		if l.Method == "" {
			return fmt.Errorf("logout %d: no method", i)
		}
		if !strings.HasPrefix(l.Path, "/") {
			return fmt.Errorf("logout path %q must start with /", l.Path)
		}
	}
	if err := validateAppSession(h.AppSession, h.Tokens, h.AppSessionSecret); err != nil {
		return err
	}
	if err := checkSecretLen("log_hash_key", h.LogHashKey, minLogHashKey); err != nil {
		return err
	}
	if h.Cluster != nil {
		if err := h.Cluster.validate(); err != nil {
			return err
		}
	}
	if h.Assertion != nil {
		if err := h.Assertion.validate(h); err != nil {
			return err
		}
	}
	if h.Backend.Dialect == "" {
		_, known := sessionctx.DialectOptions("") // its error lists the dialects
		return missingError(fmt.Sprintf("session_auth needs a backend: a dialect and its url (%v)", known))
	}
	return nil
}
