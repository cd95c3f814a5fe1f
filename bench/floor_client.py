"""The least any Python client can do to install Matomo through its installer:
a yardstick for ``matomo-hook install``, not a second hook.

Same environment variables and same four requests as the hook, but nothing a
production hook needs: no advisory lock, no state queries beyond one table
count before and one version read after, no validation of settings, no
retries, no TLS offered to the database, no check of the answers beyond the
HTTP status, no logs, and the stdlib's http.client instead of httpx. What
overhead this still has (interpreter, imports, one connection, the HTTP round
trips) no Python hook goes below.

Prints one JSON line: the final ``version_core``.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
from urllib.parse import urlencode, urlsplit

import pymysql


def main() -> int:
    env = os.environ
    prefix = env["MATOMO_DATABASE_TABLES_PREFIX"]
    conn = pymysql.connect(
        host=env["MATOMO_DATABASE_HOST"], port=int(env["MATOMO_DATABASE_PORT"]),
        user=env["MATOMO_DATABASE_USERNAME"], password=env["MATOMO_DATABASE_PASSWORD"],
        database=env["MATOMO_DATABASE_DBNAME"], autocommit=True, ssl_disabled=True,
    )  # fmt: skip
    cur = conn.cursor()
    cur.execute(
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
        "AND TABLE_NAME LIKE %s",
        (prefix.replace("_", "\\_") + "%",),
    )
    if cur.fetchone()[0]:  # type: ignore[index]
        print("database not empty", file=sys.stderr)
        return 1
    url = urlsplit(env["MATOMO_INSTALLER_URL"])
    host = url.hostname or "127.0.0.1"
    port = url.port or 80
    seed = "\n".join([
        "; <?php exit; ?> DO NOT REMOVE THIS LINE",
        "[database]",
        f'host = "{env["MATOMO_DATABASE_HOST"]}"',
        f"port = {env['MATOMO_DATABASE_PORT']}",
        f'username = "{env["MATOMO_DATABASE_USERNAME"]}"',
        f'password = "{env["MATOMO_DATABASE_PASSWORD"]}"',
        f'dbname = "{env["MATOMO_DATABASE_DBNAME"]}"',
        f'tables_prefix = "{prefix}"',
        'adapter = "PDO\\MYSQL"',
        f'schema = "{env["MATOMO_DATABASE_SCHEMA"]}"',
        'charset = "utf8mb4"',
        'collation = "utf8mb4_general_ci"',
        "[General]",
        f'salt = "{env["MATOMO_SALT"]}"',
        "installation_in_progress = 1",
        f'trusted_hosts[] = "{host}:{port}"',
        "",
    ])  # fmt: skip
    with open(env["MATOMO_CONFIG_FILE"], "w", encoding="utf-8") as fh:
        fh.write(seed)
    password = env["MATOMO_SUPERUSER_PASSWORD"]
    steps: list[tuple[str, dict[str, str] | None]] = [
        ("tablesCreation", None),
        ("setupSuperUser", {
            "login": env["MATOMO_SUPERUSER_LOGIN"], "password": password,
            "password_bis": password, "email": env["MATOMO_SUPERUSER_EMAIL"],
            "subscribe_newsletter_piwikorg": "0",
            "subscribe_newsletter_professionalservices": "0",
        }),
        ("firstWebsiteSetup", {
            "siteName": env["MATOMO_SITE_NAME"], "url": env["MATOMO_SITE_URL"],
            "timezone": env["MATOMO_SITE_TIMEZONE"], "ecommerce": "0",
        }),
        ("finished", {"do_not_track": "1", "anonymise_ip": "1"}),
    ]  # fmt: skip
    http_conn = http.client.HTTPConnection(host, port, timeout=60)
    for action, form in steps:
        path = "/index.php?" + urlencode({"module": "Installation", "action": action})
        if form is None:
            http_conn.request("GET", path)
        else:
            http_conn.request(
                "POST", path, body=urlencode(form),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )  # fmt: skip
        resp = http_conn.getresponse()
        resp.read()
        if resp.status >= 400:
            print(f"{action}: HTTP {resp.status}", file=sys.stderr)
            return 1
    http_conn.close()
    cur.execute(f"SELECT option_value FROM `{prefix}option` WHERE option_name = 'version_core'")
    row = cur.fetchone()
    conn.close()
    print(json.dumps({"version_core": row[0] if row else None}))
    return 0 if row else 1


if __name__ == "__main__":
    sys.exit(main())
