// Package sessiongate is what xcaddy imports: building Caddy
// `--with github.com/sessiongate/caddy-sessiongate` plugs in every
// sessiongate module (the session_auth, session_require and session_info
// handlers, their Caddyfile directives and the admin API). The code lives
// in caddymodule; plain Go users want sessionctx.
package sessiongate

import (
	// plug in the sessiongate Caddy modules
	_ "github.com/sessiongate/caddy-sessiongate/caddymodule"
)
