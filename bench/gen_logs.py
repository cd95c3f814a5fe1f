"""Fills the log tables of an installed Matomo database with N rows, fast.

``log_visit``, ``log_link_visit_action`` and ``log_action`` get rows whose
every column holds a value of its type (no NULLs left where a value fits),
produced inside the server from MariaDB's Sequence engine
(``seq_<a>_to_<b>``) in batches of one INSERT ... SELECT each: no data crosses
the wire, so 10 million rows per table take minutes, not hours. The column
list is read from information_schema, so it works on whatever tables the
installer (or the stand-in) created.

    python bench/gen_logs.py --host 127.0.0.1 --port 3306 --user root \
        --password '' --database matomo --prefix matomo_ --rows 1000000

``--rows`` is the total wanted per table: existing rows count, so going from
1M to 10M inserts 9M.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

TABLES = ("log_visit", "log_link_visit_action", "log_action")
BATCH = 1_000_000


def _expr(col: dict[str, Any], table: str) -> str:
    """A SQL expression over ``seq`` giving a valid, varied value for the column."""
    name = col["COLUMN_NAME"]
    dtype = col["DATA_TYPE"].lower()
    ctype = col["COLUMN_TYPE"].lower()
    maxlen = col["CHARACTER_MAXIMUM_LENGTH"]
    if name == "idsite":
        return "1"
    if name == "idvisit" and table != "log_visit":
        return "seq"
    if dtype in ("tinyint", "smallint", "mediumint", "int", "integer", "bigint"):
        limit = {"tinyint": 100, "smallint": 30000, "mediumint": 8_000_000}.get(dtype, 2_000_000_000)
        return f"(seq % {limit})"
    if dtype in ("decimal", "float", "double"):
        return "(seq % 100)"
    if dtype in ("datetime", "timestamp"):
        return "TIMESTAMP('2026-01-01') + INTERVAL (seq % 31536000) SECOND"
    if dtype == "date":
        return "DATE('2026-01-01') + INTERVAL (seq % 365) DAY"
    if dtype == "time":
        return "SEC_TO_TIME(seq % 86400)"
    if dtype in ("binary", "varbinary"):
        n = maxlen or 8
        return f"UNHEX(RIGHT(LPAD(HEX(seq), {2 * n}, '0'), {2 * n}))"
    if dtype in ("char", "varchar"):
        n = maxlen or 1
        if n < 2:
            return "'a'"
        return f"LEFT(CONCAT('v', seq), {n})"
    if dtype in ("text", "mediumtext", "longtext", "tinytext"):
        if name == "name":
            return "CONCAT('https://example.org/page/', seq)"
        return "CONCAT('t', seq % 1000)"
    if dtype in ("blob", "mediumblob", "longblob", "tinyblob"):
        return "UNHEX(HEX(seq))"
    if dtype == "enum":
        first = ctype[ctype.index("(") + 1 :].split(",")[0]
        return first.rstrip(")")
    if dtype == "json":
        return "'{}'"
    return "NULL" if col["IS_NULLABLE"] == "YES" else "0"


def columns(cur: Any, schema: str, table: str) -> list[dict[str, Any]]:
    cur.execute(
        "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, CHARACTER_MAXIMUM_LENGTH, IS_NULLABLE, EXTRA"
        " FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s"
        " ORDER BY ORDINAL_POSITION",
        (schema, table),
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def tune(conn: Any) -> None:
    """Makes bulk inserts cheap on a throw-away test server (all dynamic in 10.9+):
    a 2 GiB buffer pool, a 1 GiB redo log so checkpoints do not stall every batch, no fsync per commit."""
    with conn.cursor() as cur:
        for stmt in (
            "SET GLOBAL innodb_buffer_pool_size = 2147483648",
            "SET GLOBAL innodb_log_file_size = 1073741824",
            "SET GLOBAL innodb_flush_log_at_trx_commit = 2",
        ):
            try:
                cur.execute(stmt)
            except Exception:  # noqa: BLE001 -- older server or no privilege: just slower
                pass


def fill_table(conn: Any, database: str, table: str, short: str, rows: int) -> tuple[int, float]:
    """Brings one table to ``rows`` rows; returns (rows before, seconds)."""
    with conn.cursor() as cur:
        cur.execute("SET SESSION unique_checks=0, foreign_key_checks=0")
        cols = [c for c in columns(cur, database, table) if "auto_increment" not in c["EXTRA"]]
        if not cols:
            raise SystemExit(f"table {database}.{table} not found (is the database installed?)")
        cur.execute(f"SELECT COUNT(*) FROM `{table}`")  # noqa: S608
        have = int(cur.fetchone()[0])
        names = ", ".join(f"`{c['COLUMN_NAME']}`" for c in cols)
        exprs = ", ".join(_expr(c, short) for c in cols)
        t0 = time.perf_counter()
        start = have + 1
        while start <= rows:
            end = min(rows, start + BATCH - 1)
            cur.execute(
                f"INSERT INTO `{table}` ({names}) SELECT {exprs} FROM seq_{start}_to_{end}"  # noqa: S608
            )
            conn.commit()
            start = end + 1
    return have, time.perf_counter() - t0


def fill(
    connect: Any, database: str, prefix: str, rows: int, log: Any = print
) -> dict[str, float]:
    """Brings each log table to ``rows`` rows, two tables at a time (one connection
    each, from ``connect()``); returns seconds spent per table."""
    import threading

    first = connect()
    try:
        tune(first)
    finally:
        first.close()
    spent: dict[str, float] = {}
    errors: list[BaseException] = []
    # log_visit is the widest: it gets a thread of its own, the others share one
    groups = [TABLES[:1], TABLES[1:]]

    def work(group: tuple[str, ...]) -> None:
        conn = connect()
        try:
            for short in group:
                have, secs = fill_table(conn, database, prefix + short, short, rows)
                spent[short] = secs
                log(f"{prefix}{short}: {have} -> {max(have, rows)} rows in {secs:.1f} s")
        except BaseException as exc:  # noqa: BLE001 -- re-raised in the caller
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=work, args=(g,)) for g in groups]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return spent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=3306)
    ap.add_argument("--user", default="root")
    ap.add_argument("--password", default="")
    ap.add_argument("--unix-socket", default=None)
    ap.add_argument("--database", required=True)
    ap.add_argument("--prefix", default="matomo_")
    ap.add_argument("--rows", type=int, required=True)
    args = ap.parse_args()
    import pymysql

    def connect() -> Any:
        return pymysql.connect(
            host=args.host, port=args.port, user=args.user, password=args.password,
            database=args.database, unix_socket=args.unix_socket, autocommit=False,
        )

    t0 = time.perf_counter()
    fill(connect, args.database, args.prefix, args.rows)
    print(f"total {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
