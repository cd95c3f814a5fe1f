#!/bin/sh
# Init container of the Matomo pods (chart matomo, files/matomo-init.sh).
#
# The code stays where the image has it ($MATOMO_CODE_DIR, /usr/src/matomo),
# read-only, and is never copied: Matomo's writable files live in
# $MATOMO_USER_PATH (/var/lib/matomo, the pod's emptyDir), which
# files/bootstrap.php, mounted at the code's root, names to Matomo.
#
# 1. Creates config/ and tmp/ in $MATOMO_USER_PATH and copies the managed
#    common.config.ini.php there (MATOMO_COMMON_CONFIG names the Secret's file
#    as mounted in this container; the main container mounts the same file over
#    this copy, read-only, once config/ exists and belongs to Matomo's user).
# 2. Writes the local config/config.ini.php:
#    the header line, [database] password and [General] salt, from the env vars
#    MATOMO_DATABASE_PASSWORD and MATOMO_SALT (fed by secretKeyRefs), the
#    queue's [QueuedTracking] redisPassword from MATOMO_QUEUE_REDIS_PASSWORD
#    when it is set (queue.enabled with a Redis password), and
#    [PluginsInstalled]: the plugins Matomo loads for this code and config, as
#    matomo-plugins.php (next to this script) has Matomo's own code list them.
#    Without that list Matomo's tracker loads no plugin and stores no hit until
#    a UI or API request reaches the pod. When MATOMO_EXTRA_PLUGINS names
#    plugins that are not in the image (the chart's plugins.extra, found in the
#    folders of MATOMO_PLUGIN_DIRS), the file also gets [Plugins]: the list of
#    the config chain plus those names (matomo-plugins.php --activated), since
#    a Plugins[] list in a file other than this one is merged by index and
#    cannot add a plugin; each must then be one Matomo loads, or the pod does
#    not start. Every other setting comes from the
#    read-only common.config.ini.php; the local file wins key by key and stays
#    writable and per pod (Matomo rewrites it when a plugin is activated).
# 3. Then refuses to start Matomo code older than the
#    database's version_core (matomo-version-check.php says why and how out).
# 4. When MATOMO_STATIC_DIR is set (the fpm variant: nginx serves the static
#    files, and nginx's image has no Matomo code), copies the files nginx may
#    serve (files/nginx/default.conf: images, fonts, scripts, style sheets,
#    media, robots.txt; no PHP) there, keeping their paths.
#
# A value holding a newline or "${" cannot be written into config.ini.php:
# the script refuses it (exit 1) and names the variable. A double quote and a
# backslash are escaped. Secrets are never printed.
set -eu

src="${MATOMO_CODE_DIR:-/usr/src/matomo}"
dst="${MATOMO_USER_PATH:-/var/lib/matomo}"

log() { printf 'matomo-init: %s\n' "$*" >&2; }

nl='
'
cr="$(printf '\r')"

# check_value NAME [allow-empty]: refuse values config.ini.php cannot hold.
check_value() {
    name="$1"
    eval "isset=\${$name+x}"
    if [ -z "$isset" ]; then
        log "$name is not set"
        exit 1
    fi
    eval "value=\${$name}"
    if [ -z "$value" ] && [ "${2:-}" != "allow-empty" ]; then
        log "$name is empty"
        exit 1
    fi
    case "$value" in
        *"$nl"*|*"$cr"*)
            log "$name contains a newline, which config.ini.php cannot hold; choose a value without it"
            exit 1 ;;
        *'${'*)
            # PHP's INI parser would replace ${...} inside the quotes with an
            # environment variable, so Matomo would read another value.
            log "$name contains \"\${\", which PHP's INI parser expands; choose a value without it"
            exit 1 ;;
    esac
}

# Check before writing anything, so that a bad value fails fast.
# An empty password is allowed (Cloud SQL IAM authentication).
check_value MATOMO_DATABASE_PASSWORD allow-empty
check_value MATOMO_SALT
# The queue's Redis password (QueuedTracking), only when the chart sets it.
if [ -n "${MATOMO_QUEUE_REDIS_PASSWORD+x}" ]; then
    check_value MATOMO_QUEUE_REDIS_PASSWORD
fi

if [ ! -f "$src/core/Version.php" ]; then
    log "no Matomo code in $src (wrong image?)"
    exit 1
fi

mkdir -p "$dst/tmp" "$dst/config"
if [ -n "${MATOMO_COMMON_CONFIG:-}" ]; then
    # The managed settings, where Matomo reads them (the main container mounts
    # the same file over this copy, read-only: a mount made before config/
    # existed would have the runtime create config/ as root, unwritable).
    # rm first: a restarted init container finds its own read-only copy (the Secret's mode) there
    rm -f "$dst/config/common.config.ini.php"
    cp "$MATOMO_COMMON_CONFIG" "$dst/config/common.config.ini.php"
fi

# ini_escape VALUE: the value for inside double quotes in config.ini.php: PHP's
# INI parser reads "\\" there as one backslash and "\"" as one double quote.
ini_escape() { printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g'; }

password_ini="$(ini_escape "$MATOMO_DATABASE_PASSWORD")"
salt_ini="$(ini_escape "$MATOMO_SALT")"
config="$dst/config/config.ini.php"
tmp="$dst/config/.config.ini.php.$$"
umask 077
base() {
    printf '; <?php exit; ?> DO NOT REMOVE THIS LINE\n'
    printf '; Written at pod start by matomo-init.sh; managed settings are in common.config.ini.php.\n'
    printf '[database]\n'
    printf 'password = "%s"\n' "$password_ini"
    printf '\n[General]\n'
    printf 'salt = "%s"\n' "$salt_ini"
    if [ -n "${MATOMO_QUEUE_REDIS_PASSWORD+x}" ]; then
        printf '\n[QueuedTracking]\n'
        printf 'redisPassword = "%s"\n' "$(ini_escape "$MATOMO_QUEUE_REDIS_PASSWORD")"
    fi
}
# Matomo's code reads the config to list its plugins: first without the list.
base > "$tmp"
mv -f "$tmp" "$config"
plugins_php="$(dirname "$0")/matomo-plugins.php"
extra="${MATOMO_EXTRA_PLUGINS:-}"
activated=""
if [ -n "$extra" ]; then
    # shellcheck disable=SC2086  # a list of plugin names (the chart's schema: letters, digits, _)
    if ! activated="$("${PHP_BIN:-php}" "$plugins_php" "$src" "$dst" --activated $extra)"; then
        log "could not list Matomo's activated plugins (matomo-plugins.php --activated failed, see above)"
        exit 1
    fi
fi
# [Plugins] (only with extra plugins): the whole list, this file replaces the section
plugins_section() {
    if [ -n "$activated" ]; then
        printf '\n[Plugins]\n'
        printf '%s\n' "$activated" | sed 's/.*/Plugins[] = "&"/'
    fi
}
if [ -n "$activated" ]; then
    { base; plugins_section; } > "$tmp"
    mv -f "$tmp" "$config"
fi
if ! plugins="$("${PHP_BIN:-php}" "$plugins_php" "$src" "$dst")"; then
    log "could not list Matomo's plugins (matomo-plugins.php failed, see above)"
    exit 1
fi
for name in $extra; do
    if [ -f "$src/plugins/$name/$name.php" ]; then
        log "plugin $name (plugins.extra) is also in the image ($src/plugins/$name): Matomo loads the image's, not the one of plugins.extra"
    fi
    if ! printf '%s\n' "$plugins" | grep -qx "$name"; then
        log "plugin $name (plugins.extra) is activated but Matomo does not load it: no folder $name holding $name.php in MATOMO_PLUGIN_DIRS (${MATOMO_PLUGIN_DIRS:-unset}) nor in $src/plugins; check the plugin's image (path) or volume (subPath)"
        exit 1
    fi
done
{
    base
    plugins_section
    printf '\n[PluginsInstalled]\n'
    printf '%s\n' "$plugins" | sed 's/.*/PluginsInstalled[] = "&"/'
} > "$tmp"
mv -f "$tmp" "$config"
log "wrote $config (password and salt from the environment, $(printf '%s\n' "$plugins" | wc -l) plugins${extra:+, extra: $extra})"
# Older code on a newer schema fails: such a pod must not start, so that its
# rollout stops and the pods of the previous ReplicaSet keep serving.
if ! "${PHP_BIN:-php}" "$(dirname "$0")/matomo-version-check.php" "$src" "$dst"; then
    log "this Matomo is older than the database (see above): the pod does not start"
    exit 1
fi
if [ -n "${MATOMO_STATIC_DIR:-}" ]; then
    # Only what nginx serves as a file; Matomo's PHP runs in php-fpm, from the image.
    # umask 022: nginx runs as another user and reads them as "other".
    ( umask 022 && cd "$src" && find . -type f \( -name '*.gif' -o -name '*.ico' -o -name '*.jpg' -o -name '*.png' \
        -o -name '*.svg' -o -name '*.js' -o -name '*.css' -o -name '*.htm' -o -name '*.html' \
        -o -name '*.mp3' -o -name '*.mp4' -o -name '*.wav' -o -name '*.ogg' -o -name '*.avi' \
        -o -name '*.ttf' -o -name '*.eot' -o -name '*.woff' -o -name '*.woff2' -o -path ./robots.txt \) \
        -exec cp --parents -t "$MATOMO_STATIC_DIR" {} + )
    log "copied the static files nginx serves to $MATOMO_STATIC_DIR ($(du -sk "$MATOMO_STATIC_DIR" | cut -f1) KiB)"
fi
log "done"
