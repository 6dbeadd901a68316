# Caddy with the sessiongate plugin, as a container image:
#
#   docker build -f xcaddy.Dockerfile -t caddy-sessiongate .
#   docker run --rm -p 80:80 -v $PWD/Caddyfile:/etc/caddy/Caddyfile caddy-sessiongate
#
# The builder stage runs build/xcaddy-build.sh, the same command CI runs
# (.ci/run), so what CI checked is what the image holds. CADDY_VERSION must
# be the Caddy that go.mod requires, without the "v" (the script builds
# go.mod's version either way; this picks the base images to match it).
# build/dockerfile_test.go fails when the two drift apart.
ARG CADDY_VERSION=2.11.9

FROM caddy:${CADDY_VERSION}-builder AS builder

WORKDIR /src
COPY . .
RUN sh build/xcaddy-build.sh /usr/bin/caddy

FROM caddy:${CADDY_VERSION}

COPY --from=builder /usr/bin/caddy /usr/bin/caddy
