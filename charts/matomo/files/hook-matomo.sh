#!/bin/sh
# Matomo sidecar of the hook pod (native sidecar `matomo-installer`, same image
# as the serving Deployment). It
#   1. copies the Matomo code into $MATOMO_CODE_DIR when it is not there yet,
#   2. serves the installer with PHP's built-in server on 127.0.0.1:8080 only,
#   3. serves the console channel (docs/architecture.md): when
#      $MATOMO_COMMAND_DIR/core-update.request appears it is renamed to
#      core-update.running, `php console core:update --yes --no-interaction`
#      runs in $MATOMO_CODE_DIR, its output goes to core-update.log and then
#      its exit code to core-update.exit (both via temp file + rename).
# Overridable for tests (the same script runs there with the stand-in):
#   PHP_BIN                 php binary (default: php)
#   MATOMO_LISTEN           address of the built-in server (default: 127.0.0.1:8080)
#   MATOMO_SERVER_CMD       command replacing "$PHP_BIN -S $MATOMO_LISTEN -t $MATOMO_CODE_DIR"
#   MATOMO_CONSOLE_CMD      command replacing "$PHP_BIN console"
#   MATOMO_SOURCE_DIR       where the image keeps the code (default: /usr/src/matomo)
#   MATOMO_CODE_DIR         the writable code copy (default: /var/www/html)
#   MATOMO_COMMAND_DIR      the channel directory (default: /run/matomo-hook)
#   MATOMO_POLL_SECONDS     how often the channel is checked (default: 0.5)
set -u

PHP_BIN="${PHP_BIN:-php}"
MATOMO_LISTEN="${MATOMO_LISTEN:-127.0.0.1:8080}"
MATOMO_SOURCE_DIR="${MATOMO_SOURCE_DIR:-/usr/src/matomo}"
MATOMO_CODE_DIR="${MATOMO_CODE_DIR:-/var/www/html}"
MATOMO_COMMAND_DIR="${MATOMO_COMMAND_DIR:-/run/matomo-hook}"
MATOMO_POLL_SECONDS="${MATOMO_POLL_SECONDS:-0.5}"
MATOMO_SERVER_CMD="${MATOMO_SERVER_CMD:-$PHP_BIN -S $MATOMO_LISTEN -t $MATOMO_CODE_DIR}"
MATOMO_CONSOLE_CMD="${MATOMO_CONSOLE_CMD:-$PHP_BIN console}"

log() { printf '%s hook-matomo: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }

if [ ! -e "$MATOMO_CODE_DIR/console" ] && [ -d "$MATOMO_SOURCE_DIR" ]; then
  log "copying the Matomo code from $MATOMO_SOURCE_DIR to $MATOMO_CODE_DIR"
  cp -a "$MATOMO_SOURCE_DIR/." "$MATOMO_CODE_DIR/" || { log "copy failed"; exit 1; }
fi
mkdir -p "$MATOMO_COMMAND_DIR" || { log "cannot create $MATOMO_COMMAND_DIR"; exit 1; }

server_pid=""
stop() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null; fi
  exit 0
}
trap stop TERM INT

log "serving the installer: $MATOMO_SERVER_CMD"
# shellcheck disable=SC2086  # the command is a word list on purpose
$MATOMO_SERVER_CMD &
server_pid=$!

run_core_update() {
  dir="$MATOMO_COMMAND_DIR"
  mv "$dir/core-update.request" "$dir/core-update.running" 2>/dev/null || return 0
  rm -f "$dir/core-update.exit" "$dir/core-update.log"
  log "running core:update"
  # shellcheck disable=SC2086
  ( cd "$MATOMO_CODE_DIR" && exec $MATOMO_CONSOLE_CMD core:update --yes --no-interaction ) \
    >"$dir/.core-update.log.tmp" 2>&1 </dev/null
  rc=$?
  mv -f "$dir/.core-update.log.tmp" "$dir/core-update.log"
  printf '%s\n' "$rc" >"$dir/.core-update.exit.tmp"
  mv -f "$dir/.core-update.exit.tmp" "$dir/core-update.exit"
  rm -f "$dir/core-update.running"
  log "core:update exited $rc"
}

while :; do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    wait "$server_pid"
    rc=$?
    log "the installer server exited ($rc)"
    exit "$rc"
  fi
  if [ -e "$MATOMO_COMMAND_DIR/core-update.request" ]; then
    run_core_update
  fi
  sleep "$MATOMO_POLL_SECONDS" &
  wait $!
done
