package caddymodule

import (
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
)

// envPlaceholder matches Caddy's {env.NAME} placeholder.
var envPlaceholder = regexp.MustCompile(`\{env\.([^{}]+)\}`)

// provisionPlaceholder matches the placeholders Provision expands: a
// value holding one can only be checked once expanded.
var provisionPlaceholder = regexp.MustCompile(`\{(env|file)\.[^{}]+\}`)

// checkEnvSet refuses a value whose {env.NAME} placeholders name a
// variable that is not set. Caddy replaces an unset one with nothing, so
// `http://{env.AUTH_HOST}/whoami` would otherwise fail later as a URL
// with no host, without saying which variable was missing.
func checkEnvSet(what, value string) error {
	for _, m := range envPlaceholder.FindAllStringSubmatch(value, -1) {
		if _, ok := os.LookupEnv(m[1]); !ok {
			return fmt.Errorf("%s %q: environment variable %s is not set", what, value, m[1])
		}
	}
	return nil
}

// envSet reports whether every {env.NAME} placeholder of value names a
// variable that is set.
func envSet(value string) bool {
	for _, m := range envPlaceholder.FindAllStringSubmatch(value, -1) {
		if _, ok := os.LookupEnv(m[1]); !ok {
			return false
		}
	}
	return true
}

// hasPlaceholder reports whether value waits for Provision to expand it.
func hasPlaceholder(value string) bool { return provisionPlaceholder.MatchString(value) }

// expandPlaceholders replaces {env.*} and {file.*} (and Caddy's other
// global placeholders) in value, refusing an unset variable by name.
func expandPlaceholders(what, value string) (string, error) {
	if !strings.Contains(value, "{") {
		return value, nil
	}
	if err := checkEnvSet(what, value); err != nil {
		return "", err
	}
	return caddy.NewReplacer().ReplaceKnown(value, ""), nil
}

// checkSecretLen refuses a secret shorter than min bytes, whether it is
// written in the config or comes from {env.*} variables that are set now.
// The Caddyfile parser runs it, so a short secret from the environment is
// refused naming the variable and the directive's file and line; an
// unset variable, or a {file.*}, is checked when the config loads.
func checkSecretLen(what, secret string, min int) error {
	if secret == "" {
		return nil
	}
	n, from := len(secret), ""
	if hasPlaceholder(secret) {
		if strings.Contains(secret, "{file.") || !envSet(secret) {
			return nil // checked once expanded, when the config loads
		}
		n, from = len(caddy.NewReplacer().ReplaceKnown(secret, "")), " (from "+secret+")"
	}
	if n < min {
		return fmt.Errorf("%s is %d bytes, need at least %d%s", what, n, min, from)
	}
	return nil
}

// checkURL refuses a URL that is not absolute with one of schemes. shown
// is how an error names it (redacted when it may carry a password). A
// URL still holding placeholders is checked only for unset variables.
func checkURL(what, raw, shown string, schemes ...string) error {
	if err := checkEnvSet(what, raw); err != nil {
		return err
	}
	if hasPlaceholder(raw) {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || !slices.Contains(schemes, u.Scheme) || u.Host == "" {
		return fmt.Errorf("%s %q: want an absolute %s:// URL", what, shown, strings.Join(schemes, ":// or "))
	}
	if u.Hostname() == "" {
		return fmt.Errorf("%s %q: no host name (a port alone is not an address)", what, shown)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%s %q: port %s is out of range (1-65535)", what, shown, p)
		}
	}
	return nil
}
