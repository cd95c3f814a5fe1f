"""Stand-in for Matomo's ``./console core:update`` (plugins/CoreUpdater/Commands/Update.php),
and, as ``create-tables``, for the chart's files/matomo-tables.php (creates the
core tables that are missing, leaves the others, adds the anonymous user if
missing, records install_version and version_core).

Run from the Matomo code dir (cwd), like ``php console``: reads
config/config.ini.php and core/Version.php; on an empty database it fails
("Database ... is empty", exit 1) like Matomo; with version_core behind the
code it records the code version; otherwise "Everything is already up to
date." Every invocation is appended to $STANDIN_CONSOLE_RECORD (if set).
Fault: a file ``tmp/standin-console-fails`` in the code dir makes it fail
(exit 1) with that file's text, as a migration that Matomo cannot apply.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql

from . import matomo_config, schema
from .server import VERSION_RE


@contextlib.contextmanager
def _opened(root: Path, missing: str) -> Iterator[tuple[dict[str, Any], str, str, Any] | None]:
    """The config's [database], the code's version, the table prefix and a cursor
    (its connection closed after the block); None, after printing ``missing``,
    without a config."""
    config = matomo_config.read(root / "config" / "config.ini.php")
    if config is None or "database" not in config:
        print(missing, file=sys.stderr)
        yield None
        return
    db = config["database"]
    m = VERSION_RE.search((root / "core" / "Version.php").read_text(encoding="utf-8"))
    assert m
    conn = pymysql.connect(
        host=str(db.get("host")), port=int(str(db.get("port", "3306"))),
        user=str(db.get("username")), password=str(db.get("password")),
        database=str(db.get("dbname")), autocommit=True,
    )  # fmt: skip
    try:
        yield db, m.group(1), str(db.get("tables_prefix", "matomo_")), conn.cursor()
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    record = os.environ.get("STANDIN_CONSOLE_RECORD")
    if record:
        with open(record, "a", encoding="utf-8") as fh:
            fh.write(" ".join(args) + "\n")
    if args and args[0] == "create-tables":
        return create_tables(Path(args[1]) if len(args) > 1 else Path.cwd())
    if not args or args[0] != "core:update":
        print(f"Command \"{args[0] if args else ''}\" is not defined.", file=sys.stderr)
        return 1
    delay = float(os.environ.get("STANDIN_CONSOLE_DELAY", "0"))
    root = Path.cwd()
    fault = root / "tmp" / "standin-console-fails"
    if fault.exists():
        print(fault.read_text(encoding="utf-8"), file=sys.stderr)
        return 1
    with _opened(root, "Matomo is not installed (config/config.ini.php missing)") as opened:
        if opened is None:
            return 1
        db, code, prefix, cur = opened
        cur.execute("SHOW TABLES LIKE %s", (prefix.replace("_", "\\_") + "option",))
        if not cur.fetchall():
            print(f"Database {db.get('dbname')} is empty", file=sys.stderr)
            return 1
        cur.execute(
            f"SELECT option_value FROM `{prefix}option` WHERE option_name='version_core'"
        )
        row = cur.fetchone()
        current = None if row is None else str(row[0])
        if current == code:
            print("Everything is already up to date.")
            return 0
        time.sleep(delay)
        print(f"*** Update ***\nDatabase Upgrade Required: {current} -> {code}")
        cur.execute(
            f"INSERT INTO `{prefix}option` (option_name, option_value, autoload) "
            "VALUES ('version_core', %s, 1) ON DUPLICATE KEY UPDATE option_value=VALUES(option_value)",
            (code,),
        )
        print("Matomo has been successfully updated!")
        return 0


def create_tables(root: Path) -> int:
    with _opened(root, "matomo-tables: no config") as opened:
        if opened is None:
            return 1
        _, code, prefix, cur = opened
        cur.execute("SHOW TABLES")
        existing = {str(r[0]) for r in cur.fetchall()}
        created = [n for n in schema.CORE if prefix + n not in existing]
        for name in created:
            cur.execute(schema.create_sql(prefix, name, schema.CORE[name]))
        cur.execute(
            f"INSERT IGNORE INTO `{prefix}user` (login, password, email, superuser_access, "
            "date_registered) VALUES ('anonymous', '', 'anonymous@example.org', 0, NOW())"
        )
        salt = str((matomo_config.read(root / "config" / "config.ini.php") or {})
                   .get("General", {}).get("salt", ""))  # fmt: skip
        cur.execute(  # its token, hashed as Model::addTokenAuth does, unless there
            f"INSERT IGNORE INTO `{prefix}user_token_auth` (login, description, password, "
            "hash_algo, date_created) VALUES ('anonymous', 'anonymous default token', %s, "
            "'sha512', NOW())", (schema.anonymous_token_hash(salt),),
        )  # fmt: skip
        for name, value in (("install_version", code), ("version_core", code)):
            cur.execute(
                f"INSERT IGNORE INTO `{prefix}option` (option_name, option_value, autoload) "
                "VALUES (%s, %s, 1)", (name, value),
            )  # fmt: skip
        print(f"matomo-tables: created {len(created)} missing tables, {len(existing)} kept")
        return 0


if __name__ == "__main__":
    sys.exit(main())
