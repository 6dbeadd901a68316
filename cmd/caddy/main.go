// Command caddy is Caddy with the sessiongate plugin built in, so that
// `go run ./cmd/caddy` works from a checkout without xcaddy.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// plug in Caddy modules here
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/sessiongate/caddy-sessiongate/caddymodule"
)

func main() {
	caddycmd.Main()
}
