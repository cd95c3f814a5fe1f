#!/bin/sh
# Matomo sidecar of the hook pod (native sidecar `matomo-installer`, same image
# as the serving Deployment). It runs the code where the image has it
# ($MATOMO_CODE_DIR, read-only, never copied; files/bootstrap.php at its root
# points Matomo to the writable $MATOMO_USER_PATH, whose config/ the hook
# writes) and
#   1. tells the hook container (another image, without this code) what the
#      code is: $MATOMO_COMMAND_DIR/code/Version.php (a copy of core/Version.php)
#      and code/plugins.txt (the folders of plugins/ holding <Name>/<Name>.php,
#      and those of the folders MATOMO_PLUGIN_DIRS names: the chart's
#      plugins.extra); when MATOMO_EXTRA_PLUGINS names such plugins, also
#      code/plugins-activated.txt, the [Plugins] list the hook writes into the
#      config (matomo-plugins.php --activated: the config chain's list plus
#      them), so that Matomo loads them and installs them in the database,
#   2. serves the installer with PHP's built-in server on 127.0.0.1:8080 only,
#   3. serves the console channel (docs/architecture.md): when
#      $MATOMO_COMMAND_DIR/<name>.request appears, for one of the two commands
#        core-update    `php console core:update --yes --no-interaction`
#        create-tables  `php matomo-tables.php` (finishes an interrupted
#                       table creation, see that file)
#      it is renamed to <name>.running, the command runs in $MATOMO_CODE_DIR,
#      its output goes to <name>.log and then its exit code to <name>.exit
#      (both via temp file + rename).
# Overridable for tests (the same script runs there with the stand-in):
#   PHP_BIN                 php binary (default: php)
#   MATOMO_LISTEN           address of the built-in server (default: 127.0.0.1:8080)
#   MATOMO_SERVER_CMD       command replacing "$PHP_BIN -S $MATOMO_LISTEN -t $MATOMO_CODE_DIR"
#   MATOMO_CONSOLE_CMD      command replacing "$PHP_BIN console"
#   MATOMO_TABLES_CMD       command replacing "$PHP_BIN <this folder>/matomo-tables.php"
#   MATOMO_CODE_DIR         the code (default: /usr/src/matomo)
#   MATOMO_USER_PATH        Matomo's writable files, config/ and tmp/ (default: /var/lib/matomo)
#   MATOMO_COMMAND_DIR      the channel directory (default: /run/matomo-hook)
#   MATOMO_POLL_SECONDS     how often the channel is checked (default: 0.5)
#   MATOMO_PLUGIN_DIRS      Matomo's own: "/dir;webpath" entries separated by ":" (default: none)
#   MATOMO_EXTRA_PLUGINS    plugins in those folders to activate, separated by spaces (default: none)
set -u

PHP_BIN="${PHP_BIN:-php}"
MATOMO_LISTEN="${MATOMO_LISTEN:-127.0.0.1:8080}"
MATOMO_CODE_DIR="${MATOMO_CODE_DIR:-/usr/src/matomo}"
MATOMO_USER_PATH="${MATOMO_USER_PATH:-/var/lib/matomo}"
MATOMO_COMMAND_DIR="${MATOMO_COMMAND_DIR:-/run/matomo-hook}"
MATOMO_POLL_SECONDS="${MATOMO_POLL_SECONDS:-0.5}"
MATOMO_SERVER_CMD="${MATOMO_SERVER_CMD:-$PHP_BIN -S $MATOMO_LISTEN -t $MATOMO_CODE_DIR}"
MATOMO_CONSOLE_CMD="${MATOMO_CONSOLE_CMD:-$PHP_BIN console}"
MATOMO_TABLES_CMD="${MATOMO_TABLES_CMD:-$PHP_BIN $(dirname "$0")/matomo-tables.php}"

log() { printf '%s hook-matomo: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }

server_pid=""
stop() {
  log "stopping (signal $1)"
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null; fi
  exit 0
}
# The kubelet stops this native sidecar with the image's own stop signal once
# the hook container has exited: SIGWINCH for the -apache images (apache's
# graceful stop, as in php:apache), SIGQUIT for -fpm, SIGTERM otherwise. As
# PID 1 this shell ignores any signal it does not trap, and the kubelet would
# kill the pod only after terminationGracePeriodSeconds: trap them all.
for sig in TERM INT QUIT WINCH HUP; do
  # shellcheck disable=SC2064  # the signal's name is meant to be expanded now
  trap "stop $sig" "$sig"
done

mkdir -p "$MATOMO_COMMAND_DIR/code" || { log "cannot create $MATOMO_COMMAND_DIR/code"; exit 1; }
# What the hook reads of the code (temp file + rename: complete when it appears).
cp "$MATOMO_CODE_DIR/core/Version.php" "$MATOMO_COMMAND_DIR/code/.Version.php.tmp" \
  && mv -f "$MATOMO_COMMAND_DIR/code/.Version.php.tmp" "$MATOMO_COMMAND_DIR/code/Version.php" \
  || { log "no Matomo code in $MATOMO_CODE_DIR"; exit 1; }
# the plugin folders: the code's, then those of MATOMO_PLUGIN_DIRS ("/dir;webpath:...")
plugin_dirs="$MATOMO_CODE_DIR/plugins"
old_ifs="$IFS"; IFS=':'
for entry in ${MATOMO_PLUGIN_DIRS:-}; do
  plugin_dirs="$plugin_dirs:${entry%%;*}"
done
for base in $plugin_dirs; do
  IFS="$old_ifs"
  for dir in "${base%/}"/*/; do
    name="${dir%/}"; name="${name##*/}"
    if [ -f "$dir$name.php" ]; then printf '%s\n' "$name"; fi
  done
done >"$MATOMO_COMMAND_DIR/code/.plugins.txt.tmp"
IFS="$old_ifs"
mv -f "$MATOMO_COMMAND_DIR/code/.plugins.txt.tmp" "$MATOMO_COMMAND_DIR/code/plugins.txt"
if [ -n "${MATOMO_EXTRA_PLUGINS:-}" ]; then
  # shellcheck disable=SC2086  # a list of plugin names (the chart's schema: letters, digits, _)
  "$PHP_BIN" "$(dirname "$0")/matomo-plugins.php" "$MATOMO_CODE_DIR" "$MATOMO_USER_PATH" --activated $MATOMO_EXTRA_PLUGINS \
    >"$MATOMO_COMMAND_DIR/code/.plugins-activated.txt.tmp" \
    && mv -f "$MATOMO_COMMAND_DIR/code/.plugins-activated.txt.tmp" "$MATOMO_COMMAND_DIR/code/plugins-activated.txt" \
    || { log "cannot list the plugins to activate (matomo-plugins.php --activated failed, see above)"; exit 1; }
  for name in $MATOMO_EXTRA_PLUGINS; do
    grep -qx "$name" "$MATOMO_COMMAND_DIR/code/plugins.txt" \
      || { log "plugin $name (plugins.extra) is in no folder of MATOMO_PLUGIN_DIRS (${MATOMO_PLUGIN_DIRS:-unset}): check its image (path) or volume (subPath)"; exit 1; }
  done
fi
mkdir -p "$MATOMO_USER_PATH/tmp" || { log "cannot create $MATOMO_USER_PATH/tmp"; exit 1; }

log "serving the installer: $MATOMO_SERVER_CMD"
# shellcheck disable=SC2086  # the command is a word list on purpose
$MATOMO_SERVER_CMD &
server_pid=$!

run_command() {
  name="$1"
  dir="$MATOMO_COMMAND_DIR"
  case "$name" in
    core-update) cmd="$MATOMO_CONSOLE_CMD core:update --yes --no-interaction"; what="core:update" ;;
    create-tables) cmd="$MATOMO_TABLES_CMD $MATOMO_CODE_DIR $MATOMO_USER_PATH"; what="matomo-tables.php" ;;
    *) return 0 ;;
  esac
  mv "$dir/$name.request" "$dir/$name.running" 2>/dev/null || return 0
  rm -f "$dir/$name.exit" "$dir/$name.log"
  log "running $what"
  # shellcheck disable=SC2086  # the command is a word list on purpose
  ( cd "$MATOMO_CODE_DIR" && exec $cmd ) >"$dir/.$name.log.tmp" 2>&1 </dev/null
  rc=$?
  mv -f "$dir/.$name.log.tmp" "$dir/$name.log"
  printf '%s\n' "$rc" >"$dir/.$name.exit.tmp"
  mv -f "$dir/.$name.exit.tmp" "$dir/$name.exit"
  rm -f "$dir/$name.running"
  log "$what exited $rc"
}

while :; do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    wait "$server_pid"
    rc=$?
    log "the installer server exited ($rc)"
    exit "$rc"
  fi
  for name in core-update create-tables; do
    if [ -e "$MATOMO_COMMAND_DIR/$name.request" ]; then
      run_command "$name"
    fi
  done
  sleep "$MATOMO_POLL_SECONDS" &
  wait $!
done
