"""Backup: the hook's dump before ``core:update`` and its restore, on a database
with N rows in each log table (``log_visit``, ``log_link_visit_action``,
``log_action``, filled by ``bench/gen_logs.py``).

The dump is the hook's own function (``matomo_hook.backup._dump``: mariadb-dump
``--single-transaction --quick --hex-blob`` gzipped by the hook), timed once per
gzip level asked (the hook uses ``backup.GZIP_LEVEL``); the restore is the
hook's ``backup.restore`` (the whole-file read check, then the mariadb client)
of the first level's file into the same database, under the hook's lock, as
``matomo-hook restore`` does it, followed by a row count of each log table
against the one before.

    python bench/bench_backup.py --rows 3000000            # ~3 GB of tables; prints the table
    python bench/bench_backup.py --rows 100000 --levels 1  # a quick check
    bench/run --only backup                                # BENCH_BACKUP_ROWS, default 1000000

Needs ``mariadb-dump`` and ``mariadb`` on PATH (Debian's mariadb-client) and
room in TMPDIR for the tables and the dumps.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from common import Section, version_of

TABLES = ("log_visit", "log_link_visit_action", "log_action")


def _table_bytes(target: Any) -> int:
    with target.root_conn() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = %s AND TABLE_NAME LIKE 'matomo!_%%' ESCAPE '!'",
            (target.database,),
        )
        return int(cur.fetchone()[0])


def _counts(target: Any) -> dict[str, int]:
    with target.root_conn() as conn, conn.cursor() as cur:
        out = {}
        for t in TABLES:
            cur.execute(f"SELECT COUNT(*) FROM `matomo_{t}`")  # noqa: S608
            out[t] = int(cur.fetchone()[0])
        return out


def measure(rows: int, levels: list[int], log: Any = print) -> Section:
    import benchenv
    import gen_logs
    from matomo_hook import backup, database
    from matomo_hook import config as hook_config

    section = Section(
        f"Backup: dump before core:update and restore, {rows:,} rows per log table",
        ["gzip level", "tables (data + indexes)", "dump time", "SQL", "dump file",
         "per million log rows", "restore time"],
    )  # fmt: skip
    if not (shutil.which("mariadb-dump") and shutil.which("mariadb")):
        section.skipped = "mariadb-dump or mariadb not on PATH (apt-get install mariadb-client)"
        return section
    with benchenv.stack() as st:
        target = st.new_target("backup")
        benchenv.install(target)
        t0 = time.perf_counter()
        if rows:
            gen_logs.fill(target.root_conn, target.database, "matomo_", rows, log=log)
        fill_s = time.perf_counter() - t0
        before = _counts(target)
        log_rows = sum(before.values())
        on_disk = _table_bytes(target)
        settings = hook_config.load(target.env(), frozenset({"db"}))
        folder = Path(tempfile.mkdtemp(prefix="bench-backup-", dir=st.tmp))
        conn = database.connect(settings.db)
        try:
            tables = backup._tables(conn)  # noqa: SLF001 -- the hook's own list
            files: list[Path] = []
            for level in levels:
                backup.GZIP_LEVEL = level
                dest = folder / f"matomo-5.1.2-to-5.2.0-2026010{len(files) + 1}T000000Z.sql.gz"
                part = dest.with_name(dest.name + backup.PARTIAL)
                t0 = time.perf_counter()
                sql = backup._dump(settings.db, tables, part)  # noqa: SLF001 -- what before_update times
                part.rename(dest)
                secs = time.perf_counter() - t0
                size = dest.stat().st_size
                files.append(dest)
                per_m = 1e6 / log_rows if log_rows else 0.0
                section.rows.append([
                    str(level), f"{on_disk / 1e6:,.0f} MB", f"{secs:.1f} s ({sql / 1e6 / secs:.0f} MB/s of SQL)",
                    f"{sql / 1e6:,.0f} MB", f"{size / 1e6:,.0f} MB ({size / on_disk:.0%} of the tables)",
                    f"{secs * per_m:.2f} s, {size * per_m / 1e6:.1f} MB" if log_rows else "-", "",
                ])  # fmt: skip
                log(f"gzip {level}: {secs:.1f} s, {sql / 1e6:.0f} MB of SQL, {size / 1e6:.0f} MB file")
            settings = hook_config.load(
                {**target.env(), "MATOMO_HOOK_BACKUP_DIR": str(folder),
                 "MATOMO_HOOK_RESTORE_FILE": files[0].name},
                frozenset({"db", "restore"}),
            )  # fmt: skip
            with conn.lock(60):
                t0 = time.perf_counter()
                outcome = backup.restore(settings, conn, files[0].name)
                restore_s = time.perf_counter() - t0
            assert outcome == "restored", outcome
            t0 = time.perf_counter()
            backup._scan(files[0])  # noqa: SLF001 -- its read check alone, for the split
            scan_s = time.perf_counter() - t0
        finally:
            conn.close()
        after = _counts(target)
        assert after == before, f"restored row counts {after} != {before}"
        per_m = 1e6 / log_rows if log_rows else 0.0
        section.rows[0][-1] = (
            f"{restore_s:.1f} s" + (f" ({restore_s * per_m:.2f} s per million log rows)" if log_rows else "")
        )
        shutil.rmtree(folder, ignore_errors=True)
    section.notes += [
        f"{rows:,} rows in each of {', '.join(TABLES)} ({log_rows:,} log rows), filled in {fill_s:.0f} s by "
        "gen_logs.py on top of the stand-in's install; the other tables are nearly empty.",
        "Dump: the hook's `backup._dump` (mariadb-dump --single-transaction --quick --hex-blob, gzip in the "
        "hook's process) into a local folder; per million log rows = the dump's time and file size divided by "
        "the log rows of the three tables.",
        f"Restore: the hook's `backup.restore` of the gzip-{levels[0]} file into the same database (every "
        f"table dropped and loaded again), its read check included ({scan_s:.1f} s of it: a whole-file gunzip "
        "before anything is touched); row counts checked equal after.",
        f"Client: {version_of(['mariadb-dump', '--version'])}. One run each (`repeat` is not used: a run "
        "takes minutes at GB sizes).",
    ]
    return section


def run(repeat: int) -> Section:  # noqa: ARG001 -- one run each, see the notes
    rows = int(os.environ.get("BENCH_BACKUP_ROWS", "1000000"))
    levels = [int(x) for x in os.environ.get("BENCH_BACKUP_LEVELS", "1,6").split(",") if x]
    return measure(rows, levels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows per log table (default 1000000)")
    ap.add_argument("--levels", default="1,6", help="gzip levels to dump with, comma-separated (the first "
                    "is restored; the hook uses 1)")
    args = ap.parse_args()
    measure(args.rows, [int(x) for x in args.levels.split(",")]).print()


if __name__ == "__main__":
    main()
