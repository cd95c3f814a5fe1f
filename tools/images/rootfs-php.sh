#!/bin/sh
# mmdebstrap customize hook of the PHP layer of the local `matomo` images
# ($1 = the root filesystem). Reproduces the parts of the upstream image's
# contract the chart relies on (tools/images/README.md).
set -eu
root="$1"

# apache (the -apache variant): mod_php under prefork, logs to the container's
# stdout/stderr, `apache2-foreground` as in the upstream php:apache image.
chroot "$root" a2dismod -q mpm_event >/dev/null 2>&1 || true
chroot "$root" a2enmod -q mpm_prefork php8.2 >/dev/null
# as php:apache: the run, lock and log dirs usable by any uid (apache runs as 33)
# (/var/run and /var/lock are absolute symlinks to /run and /run/lock: never
# follow them from outside the chroot)
for d in /var/log/apache2 /run/apache2 /run/lock/apache2; do
    mkdir -p "$root$d"
    chown 33:33 "$root$d"
    chmod 1777 "$root$d"
done
ln -sfT /dev/stderr "$root/var/log/apache2/error.log"
for f in access.log other_vhosts_access.log; do ln -sfT /dev/stdout "$root/var/log/apache2/$f"; done
cat >"$root/usr/local/bin/apache2-foreground" <<'EOF'
#!/bin/sh
# Like the upstream php:apache image's apache2-foreground.
set -e
. /etc/apache2/envvars
mkdir -p "$APACHE_RUN_DIR" "$APACHE_LOCK_DIR" 2>/dev/null || true
rm -f "$APACHE_PID_FILE"
exec apache2 -DFOREGROUND "$@"
EOF
chmod 755 "$root/usr/local/bin/apache2-foreground"

# php-fpm (the -fpm variant): `php-fpm` in the foreground, pool on port 9000,
# logs to stderr, no pid file (read-only root filesystem), as upstream's
# zz-docker.conf does.
ln -sf /usr/sbin/php-fpm8.2 "$root/usr/local/sbin/php-fpm"
sed -i -e 's|^pid = .*|;pid =|' -e 's|^error_log = .*|error_log = /proc/self/fd/2|' \
    "$root/etc/php/8.2/fpm/php-fpm.conf"
cat >"$root/etc/php/8.2/fpm/pool.d/zz-docker.conf" <<'EOF'
[global]
daemonize = no
error_log = /proc/self/fd/2
log_limit = 8192

[www]
listen = 9000
access.log = /proc/self/fd/2
clear_env = no
catch_workers_output = yes
decorate_workers_output = no
EOF

# PHP settings of the upstream matomo image.
cat >"$root/etc/php/8.2/mods-available/matomo.ini" <<'EOF'
; as in the upstream matomo image
memory_limit = 512M
EOF
for sapi in apache2 cli fpm; do
    ln -sf /etc/php/8.2/mods-available/matomo.ini "$root/etc/php/8.2/$sapi/conf.d/99-matomo.ini"
done

# The upstream entrypoint: copy the code into /var/www/html when it is not
# there, then run the command (the chart overrides it with its own init).
cat >"$root/entrypoint.sh" <<'EOF'
#!/bin/sh
set -e
if [ ! -e /var/www/html/matomo.php ]; then
    tar cf - --one-file-system -C /usr/src/matomo . | tar xf - -C /var/www/html
fi
exec "$@"
EOF
chmod 755 "$root/entrypoint.sh"
mkdir -p "$root/var/www/html"
chown 33:33 "$root/var/www/html"
rm -f "$root/var/www/html/index.html"
