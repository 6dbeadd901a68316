#!/bin/sh
# The one build command for a Caddy with sessiongate in it, used by both
# xcaddy.Dockerfile and .ci/run, so the image and CI cannot drift apart.
#
#   build/xcaddy-build.sh [output]        default output: ./caddy
#
# The Caddy version is the one go.mod requires, so the binary runs the
# Caddy the tests ran against. xcaddy is the module's own Go tool
# (`go tool xcaddy`, pinned in go.mod), so nothing needs installing first;
# set XCADDY to use another xcaddy command. POSIX sh, because the
# caddy:builder image is Alpine and has no bash.
set -eu

# The output is relative to where the script was called from; the build
# runs from the module root.
output=${1:-}
case $output in
"") ;;
/*) ;;
*) output="$PWD/$output" ;;
esac
cd "$(dirname "$0")/.."
output=${output:-$PWD/caddy}
caddy_version=$(go list -m -f '{{.Version}}' github.com/caddyserver/caddy/v2)

# The zero pseudo-version is what Go itself gives a replaced module that
# has no published version. Naming it keeps `go get` from asking the module
# proxy for a version list first, which fails outright behind a proxy that
# answers 403 rather than 404 for an unknown module.
# shellcheck disable=SC2086 # XCADDY is a command line, split on purpose
exec ${XCADDY:-go tool xcaddy} build "$caddy_version" \
	--with github.com/sessiongate/caddy-sessiongate@v0.0.0-00010101000000-000000000000=. \
	--output "$output"
