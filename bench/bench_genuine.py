"""Against genuine Matomo (../shared/matomo, tests/harness/matomo_release.py):

1. Install: ``matomo-hook install`` on an empty database, driving genuine
   Matomo 5.1.2 served by the chart's own sidecar script (hook-matomo.sh: PHP's
   built-in server), as a whole process, divided by the sum of Matomo's answer
   times for the requests it sent (each ``installer_step`` event's duration:
   request sent to answer read, on the loopback). Next to it, a plain curl
   walk of the whole wizard (welcome, systemCheck, databaseSetup,
   tablesCreation, setupSuperUser, firstWebsiteSetup, finished; trackingCode
   is left out: it requests the site URL, outside this machine).
2. ``core:update`` 5.0.3 -> 5.1.2: ``matomo-hook upgrade`` through the console
   channel (hook-matomo.sh runs the console when the hook asks) against the
   same command run directly (``php console core:update --yes
   --no-interaction`` with the same config), each on a fresh copy of the same
   5.0.3 database.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any


from common import ROOT, Section, Stat, Target, main_for, run_proc
from harness.basics import free_port

INSTALL_LIMIT = 1.06
UPDATE_LIMIT = 1.10
POLL_SECONDS = 0.5  # hook-matomo.sh's default MATOMO_POLL_SECONDS
SIDECAR = ROOT / "charts" / "matomo" / "files" / "hook-matomo.sh"
PHP_ENV = {"PHP_CLI_SERVER_WORKERS": "4"}  # Matomo requests itself while installing



def code_copy(tree: Path, dest: Path) -> Path:
    shutil.copytree(tree, dest, symlinks=True)
    return dest


class Sidecar:
    """hook-matomo.sh serving a genuine code copy, as in the hook pod."""

    def __init__(self, root: Path, channel: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        env = {**os.environ, **PHP_ENV, "MATOMO_CODE_DIR": str(root), "MATOMO_SOURCE_DIR": str(root / "nonexistent"),
               "MATOMO_COMMAND_DIR": str(channel), "MATOMO_LISTEN": f"127.0.0.1:{self.port}"}
        self.proc = subprocess.Popen(["sh", str(SIDECAR)], env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    break
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("hook-matomo.sh did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(10)


def hook_events(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def hook_install(st: Any, tree: Path, name: str, database: str, schema: str = "Mariadb") -> tuple[float, Any]:
    """`matomo-hook install` of `database` through hook-matomo.sh serving a fresh copy of `tree`."""
    import benchenv
    from harness.hookrun import base_env  # noqa: PLC0415

    base = st.tmp / name
    root = code_copy(tree, base / "html")
    channel = base / "channel"
    channel.mkdir()
    side = Sidecar(root, channel)
    try:
        env = {**base_env(st.mariadb, database, root, side.url, channel), "MATOMO_DATABASE_SCHEMA": schema}
        env.pop("PYTHONPATH", None)
        wall, proc = run_proc([*benchenv.hook_exe(), "install"], env=env)
        assert json.loads(proc.stdout.strip().splitlines()[-1])["state"] == "installed", proc.stdout
        return wall, proc
    finally:
        side.stop()
        shutil.rmtree(base, ignore_errors=True)


def one_install(st: Any, tree: Path, n: int) -> dict[str, float]:
    database = st.mariadb.new_database("gi")
    try:
        wall, proc = hook_install(st, tree, f"genuine-install-{n}", database)
        answers = [float(e["duration_s"]) for e in hook_events(proc.stderr) if e.get("event") == "installer_step"]
        return {"wall": wall, "answers": sum(answers), "requests": float(len(answers))}
    finally:
        st.mariadb.drop_database(database)


def one_curl_walk(st: Any, tree: Path, n: int) -> dict[str, float]:
    base = st.tmp / f"genuine-curl-{n}"
    root = code_copy(tree, base / "html")
    database = st.mariadb.new_database("gc")
    port = free_port()
    server = subprocess.Popen(["php", "-S", f"127.0.0.1:{port}", "-t", str(root)], env={**os.environ, **PHP_ENV},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    db = st.mariadb
    u = f"http://127.0.0.1:{port}/index.php?module=Installation&action="
    steps: list[list[str]] = [
        [u + "welcome"],
        [u + "systemCheck"],
        [u + "databaseSetup", "--data-urlencode", f"host=127.0.0.1:{db.port}", "--data-urlencode", f"username={db.user}",
         "--data-urlencode", f"password={db.password}", "--data-urlencode", f"dbname={database}",
         "--data-urlencode", "tables_prefix=matomo_", "--data-urlencode", "adapter=PDO\\MYSQL",
         "--data-urlencode", "schema=Mariadb", "--data-urlencode", "type=InnoDB"],
        [u + "tablesCreation"],
        [u + "setupSuperUser", "--data-urlencode", "login=admin", "--data-urlencode", "password=Bench-pa55word",
         "--data-urlencode", "password_bis=Bench-pa55word", "--data-urlencode", "email=admin@example.org"],
        [u + "firstWebsiteSetup", "--data-urlencode", "siteName=Bench", "--data-urlencode",
         "url=http://site.example.org", "--data-urlencode", "timezone=UTC", "--data-urlencode", "ecommerce=0"],
        [u + "finished", "--data-urlencode", "anonymise_ip=1"],
    ]
    try:
        deadline = time.monotonic() + 30
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        t0 = time.perf_counter()
        for argv in steps:
            subprocess.run(["curl", "-sS", "-o", "/dev/null", "--max-time", "120", *argv], check=True)
        wall = time.perf_counter() - t0
        with db.connect(database) as conn, conn.cursor() as cur:
            cur.execute("SELECT option_value FROM matomo_option WHERE option_name = 'version_core'")
            assert cur.fetchone() is not None, "the curl walk did not install Matomo"
        return {"wall": wall}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(10)
        db.drop_database(database)
        shutil.rmtree(base, ignore_errors=True)


def copy_database(db: Any, source: str, prefix: str) -> str:
    target = db.new_database(prefix)
    with db.root() as conn, conn.cursor() as cur:
        cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (source,))
        for (name,) in cur.fetchall():
            cur.execute(f"CREATE TABLE `{target}`.`{name}` LIKE `{source}`.`{name}`")
            cur.execute(f"INSERT INTO `{target}`.`{name}` SELECT * FROM `{source}`.`{name}`")
    return target


def version_core(db: Any, database: str) -> str:
    with db.connect(database) as conn, conn.cursor() as cur:
        cur.execute("SELECT option_value FROM matomo_option WHERE option_name = 'version_core'")
        return str(cur.fetchone()[0])


def prepare_503(st: Any, tree: Path) -> str:
    """A database installed by the hook with genuine 5.0.3 (Mysql schema: Mariadb is 5.1+)."""
    database = st.mariadb.new_database("g503")
    hook_install(st, tree, "genuine-503", database, schema="Mysql")
    assert version_core(st.mariadb, database) == "5.0.3"
    return database


def one_update(st: Any, tree: Path, source: str, n: int) -> dict[str, float]:
    import benchenv
    from harness.hookrun import base_env  # noqa: PLC0415

    base = st.tmp / f"genuine-update-{n}"
    out: dict[str, float] = {}
    # through the console channel
    root = code_copy(tree, base / "channel-html")
    channel = base / "channel"
    channel.mkdir()
    database = copy_database(st.mariadb, source, "gu")
    side = Sidecar(root, channel)
    try:
        env = {**base_env(st.mariadb, database, root, side.url, channel), "MATOMO_DATABASE_SCHEMA": "Mysql"}
        env.pop("PYTHONPATH", None)
        out["process"], proc = run_proc([*benchenv.hook_exe(), "upgrade"], env=env)
        assert version_core(st.mariadb, database) == "5.1.2", proc.stderr[-2000:]
        ts = {e["event"]: float(e["ts"]) for e in hook_events(proc.stderr)}
        # the channel's round trip: request file written -> exit file read (and version_core checked)
        out["channel"] = ts["upgraded"] - ts["core_update_requested"]
        settings_config = (root / "config" / "config.ini.php").read_text()
    finally:
        side.stop()
        st.mariadb.drop_database(database)
    # directly, with the config the hook wrote for the console
    root = code_copy(tree, base / "direct-html")
    database = copy_database(st.mariadb, source, "gd")
    try:
        config = settings_config.replace(f'dbname = "{_dbname(settings_config)}"', f'dbname = "{database}"')
        (root / "config" / "config.ini.php").write_text(config)
        out["direct"], proc = _direct(root)
        assert version_core(st.mariadb, database) == "5.1.2", proc.stdout[-2000:]
    finally:
        st.mariadb.drop_database(database)
        shutil.rmtree(base, ignore_errors=True)
    return out


def _dbname(config: str) -> str:
    for line in config.splitlines():
        if line.startswith("dbname = "):
            return line.split('"')[1]
    raise AssertionError("no dbname in the config")


def _direct(root: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.perf_counter()
    proc = subprocess.run(["php", "console", "core:update", "--yes", "--no-interaction"], cwd=root,
                          capture_output=True, text=True, timeout=600, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"core:update exited {proc.returncode}: {proc.stdout[-2000:]} {proc.stderr[-2000:]}")
    return wall, proc


def run(repeat: int) -> Section:
    import benchenv
    from harness.matomo_release import release_tree  # noqa: PLC0415

    section = Section("Against genuine Matomo: install overhead and core:update through the channel",
                      ["measure", "median (min-max)"])
    t512, t503 = release_tree("5.1.2"), release_tree("5.0.3")
    # as in the hook image, which ships the bytecode of what it imports
    import compileall

    compileall.compile_dir(str(ROOT / "hooks" / "src"), quiet=1)
    installs: list[dict[str, float]] = []
    walks: list[dict[str, float]] = []
    updates: list[dict[str, float]] = []
    with benchenv.stack() as st:
        one_install(st, t512, 0)  # warm-up (opcache off in the CLI server: warms the page cache)
        for i in range(repeat):  # interleaved, so both see the same machine
            installs.append(one_install(st, t512, i + 1))
            walks.append(one_curl_walk(st, t512, i + 1))
        source = prepare_503(st, t503)
        for i in range(repeat):
            updates.append(one_update(st, t512, source, i + 1))

    ratio = Stat([r["wall"] / r["answers"] for r in installs])
    up_ratio = Stat([u["channel"] / u["direct"] for u in updates])
    up_excess = Stat([u["channel"] - UPDATE_LIMIT * u["direct"] for u in updates])
    section.rows = [[a, b] for a, b in [
        ("hook install: process wall time", Stat([r["wall"] for r in installs]).fmt()),
        ("Matomo's answer times, sum over the hook's requests", Stat([r["answers"] for r in installs]).fmt()),
        ("requests the hook sent", f"{installs[0]['requests']:.0f}"),
        ("**install ratio wall / answers**", f"**{ratio.fmt('', 3)}**"),
        ("overhead = wall - answers", Stat([r["wall"] - r["answers"] for r in installs]).fmt()),
        ("curl walk of the whole wizard (7 requests, with databaseSetup and systemCheck)",
         Stat([w["wall"] for w in walks]).fmt()),
        ("core:update 5.0.3 -> 5.1.2 through the channel (request written -> exit code read by the hook)",
         Stat([u["channel"] for u in updates]).fmt()),
        ("  the whole `matomo-hook upgrade` process (start, database checks, config, channel, exit)",
         Stat([u["process"] for u in updates]).fmt()),
        ("core:update 5.0.3 -> 5.1.2 run directly (`php console core:update`)",
         Stat([u["direct"] for u in updates]).fmt()),
        ("**core:update ratio channel / direct**", f"**{up_ratio.fmt('', 3)}**"),
        ("channel - 1.10 x direct (allowed: the polling interval)", up_excess.fmt()),
    ]]
    section.targets.append(Target("install ratio vs genuine Matomo", f"{ratio.median:.3f} (max {ratio.hi:.3f})",
                                  f"<= {INSTALL_LIMIT}", ratio.median <= INSTALL_LIMIT))
    section.targets.append(Target(
        "core:update through the channel", f"{Stat([u['channel'] for u in updates]).median:.2f} s vs direct "
        f"{Stat([u['direct'] for u in updates]).median:.2f} s",
        f"<= {UPDATE_LIMIT} x direct + {POLL_SECONDS} s", up_excess.median <= POLL_SECONDS))
    section.notes += [
        f"{repeat} runs of each, interleaved, each on a fresh database and a fresh copy of the code, after one "
        "warm-up install. Matomo is served by the chart's hook-matomo.sh (PHP's built-in server, "
        "PHP_CLI_SERVER_WORKERS=4) from the genuine release tree.",
        "The hook's answer times are its own `installer_step` durations (request sent to answer read, on the "
        "loopback): the rest of its wall time is its own overhead (interpreter, imports, database, lock, seeding).",
        "core:update through the channel: from the moment the hook has written the request file (its "
        "`core_update_requested` event) to the moment it has read the exit code and checked version_core "
        f"(`upgraded`): the sidecar's polling (every {POLL_SECONDS} s), the console run, the exit file. The whole "
        "hook process adds its start, its database checks and writing the console's config (row below it).",
    ]
    return section


if __name__ == "__main__":
    main_for(run)
