package caddymodule

import (
	"fmt"
	"os"
	"regexp"
)

// envPlaceholder matches Caddy's {env.NAME} placeholder.
var envPlaceholder = regexp.MustCompile(`\{env\.([^{}]+)\}`)

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
