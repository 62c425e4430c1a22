#!/bin/sh
# The image's HEALTHCHECK: GET /health of the daemon in this container (no
# credentials needed). Follows FRAMEWORK_PORT and FRAMEWORK_BIND, and speaks
# HTTPS (without checking the certificate, which names the public host) when
# SSL_CRT_BASE64 is set. Exit 0 healthy, 1 not.
host=${FRAMEWORK_BIND:-127.0.0.1}
[ "$host" = 0.0.0.0 ] && host=127.0.0.1
scheme=http
[ -n "${SSL_CRT_BASE64:-}" ] && scheme=https
curl --fail --silent --show-error --insecure --max-time 4 --output /dev/null \
  "$scheme://$host:${FRAMEWORK_PORT:-10000}/health" || exit 1
