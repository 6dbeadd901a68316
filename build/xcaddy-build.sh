#!/bin/sh
# The one build command for a Caddy with sessiongate in it, used by both
# xcaddy.Dockerfile and .ci/run, so the image and CI cannot drift apart.
#
#   build/xcaddy-build.sh [output]        default output: ./caddy
#
# The Caddy version is the one go.mod requires, so the binary runs the
# Caddy the tests ran against. sessiongate's version is the one in the
# VERSION file, so `caddy list-modules --versions` and `caddy build-info`
# say which sessiongate a deployed binary holds. xcaddy is a tool of the
# repository's tools module (tools/go.mod pins it), so nothing needs
# installing first; set XCADDY to use another xcaddy command. POSIX sh,
# because the caddy:builder image is Alpine and has no bash.
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
version=$(cat VERSION)

# The checkout replaces the module (`=.`), and the version named in the
# --with line is the one Go records for it. Naming one also keeps `go get`
# from asking the module proxy for a version list first, which fails
# outright behind a proxy that answers 403 rather than 404 for an unknown
# module.
# shellcheck disable=SC2086 # XCADDY is a command line, split on purpose
exec ${XCADDY:-go tool -modfile=tools/go.mod xcaddy} build "$caddy_version" \
	--with "github.com/sessiongate/caddy-sessiongate@$version=." \
	--output "$output"
