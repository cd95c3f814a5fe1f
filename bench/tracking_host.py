"""Genuine Matomo's tracker served straight from this machine: the "limit of this machine" row of
the tracking-throughput benchmark.

:func:`host_matomo` brings up, in a work directory of the caller's:

1. a MariaDB on 127.0.0.1 (the test harness's, ``tests/harness/mariadb.py``);
2. genuine Matomo 5.1.2 installed into it through its own web installer over ``php -S``
   (``tests/harness/vm_install.py``: ``install``), ``php -S`` stopped after;
3. that tree served by this machine's apache2 + mod_php (Debian bookworm's php8.2, the PHP the
   Matomo pods run) under mpm_prefork, as a foreground process group of its own with its own
   config file, on a free port of 127.0.0.1; no Kubernetes, no container in between.

It yields a :class:`HostMatomo` (where to send hits, how many got stored, the CPU apache and
mariadbd have used) and stops apache and MariaDB on exit.

Mirrored from the Matomo pods (the image: tools/images/images.py PHP_PACKAGES and
tools/images/rootfs-php.sh; the chart: charts/matomo/files/apache/, the managed config in
templates/_helpers-config.tpl, values.yaml), so that the comparison is fair:

- PHP: mod_php 8.2 (libapache2-mod-php8.2) under mpm_prefork, as rootfs-php.sh enables them
  (a2dismod mpm_event; a2enmod mpm_prefork php8.2); Debian's php.ini of the apache2 SAPI (it is
  php.ini-production, unchanged in the image and on this host) and the extension ini files of its
  conf.d, so opcache is on as in the pods (php8.2-opcache's ini: zend_extension, ``opcache.jit=off``,
  opcache.enable's default 1); the image's ``memory_limit = 512M`` (its 99-matomo.ini), added here
  as an ini file of our own through ``PHP_INI_SCAN_DIR``. Read back from mod_php at bring-up
  (:attr:`HostMatomo.php`), not assumed.
- apache: Debian's apache2.conf settings that bear on serving (Timeout 300, KeepAlive On,
  MaxKeepAliveRequests 100, KeepAliveTimeout 5, HostnameLookups Off, AccessFileName .htaccess and
  its deny rule), mpm_prefork.conf (StartServers 5, MinSpareServers 5, MaxSpareServers 10,
  MaxRequestWorkers 150, MaxConnectionsPerChild 0: the chart changes none of them), php8.2.conf's
  handler, dir.conf's DirectoryIndex, and the chart's vhost ``files/apache/000-default.conf`` (the
  Matomo pods': AllowOverride All, its deny rules) with only its paths changed; it runs as www-data
  (uid 33, the pods' runAsUser) when started as root.
- Matomo: the chart's managed ``[General]`` settings that bear on tracking, in a
  ``config/common.config.ini.php`` as the pods have them (``enable_browser_archiving_triggering =
  0`` with the default ``archiver.enabled``, so no tracking request runs Matomo's scheduled tasks;
  ``archiving_range_force_on_browser_request = 0``, ``multi_server_environment = 1``,
  ``session_save_handler = dbtable``); tmp/ and config/ writable by www-data only (the pods'
  /var/lib/matomo), the code not; the .htaccess files Matomo's installer wrote into the code
  removed (the image's code has none).

Not mirrored: php-apcu, php-redis and php8.2-ldap are in the image but not on this host (Matomo's
tracker uses none of them without QueuedTracking's Redis backend, which the chart leaves off by
default); Debian's other default apache modules (alias, autoindex, deflate, negotiation, reqtimeout,
setenvif, status, ...) are not loaded; the pods log to the container's stdout/stderr, apache logs to
files in the work directory here; the MariaDB is the harness's (``--no-defaults``, a 64M InnoDB
buffer pool), not the chart's MariaDB image.

Run alone (``python bench/tracking_host.py``) it brings everything up, runs ``bench/loadgen.py``
against it (single hits, then bulk requests), checks that every hit loadgen counts as accepted got
stored, and prints loadgen's JSON, the rows stored and the CPU seconds apache and mariadbd used.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import ROOT  # also puts tests/ on sys.path, for the harness
from harness.basics import free_port, wait_until
from harness.mariadb import MariaDB, start_mariadb
from harness.vm_install import Database, install
from loadgen import spawn

MATOMO_VERSION = "5.1.2"
HOST = "127.0.0.1"
HOST_HEADER = "localhost"  # the vhost's ServerName, as in the pods
APACHE_MODULE_DIR = Path("/usr/lib/apache2/modules")
MOD_PHP = APACHE_MODULE_DIR / "libphp8.2.so"
# Only what serving the chart's vhost with PHP needs (log_config and unixd are built into
# Debian's apache2 binary and cannot be loaded again).
APACHE_MODULES = ("mpm_prefork", "authz_core", "dir", "mime")
VHOST = ROOT / "charts" / "matomo" / "files" / "apache" / "000-default.conf"
CODE_DIR = "/usr/src/matomo"  # where the image has the code, in the chart's vhost
RUN_AS = "www-data"  # uid 33: the pods' runAsUser
# Debian bookworm's mods-available/mpm_prefork.conf, as the image has it (the chart changes none)
PREFORK = {"StartServers": 5, "MinSpareServers": 5, "MaxSpareServers": 10, "MaxRequestWorkers": 150,
           "MaxConnectionsPerChild": 0}
# The image's 99-matomo.ini (tools/images/rootfs-php.sh)
MATOMO_INI = "; as in the upstream matomo image (tools/images/rootfs-php.sh: 99-matomo.ini)\nmemory_limit = 512M\n"
# The chart's managed [General] settings that bear on tracking (templates/_helpers-config.tpl,
# with values.yaml's defaults: archiver.enabled). Browser-triggered archiving off also keeps
# Matomo's scheduled tasks out of tracking requests.
COMMON_CONFIG = """; <?php exit; ?> DO NOT REMOVE THIS LINE
; As the chart's managed common.config.ini.php (bench/tracking_host.py)

[General]
multi_server_environment = 1
session_save_handler = "dbtable"
enable_browser_archiving_triggering = 0
archiving_range_force_on_browser_request = 0
"""
CLK_TCK = os.sysconf("SC_CLK_TCK")


class HostMatomoError(Exception):
    """The host's Matomo could not be brought up, or does not answer as it must."""


# ---------------------------------------------------------------- CPU time from /proc
@dataclass(frozen=True)
class _ProcStat:
    pid: int
    pgrp: int
    cpu: float  # utime + stime, seconds
    children_cpu: float  # cutime + cstime: its children it has reaped, seconds


def _proc_stat(pid: int) -> _ProcStat | None:
    """/proc/<pid>/stat of a process, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # the command name (field 2) may hold spaces and parentheses: the fields after it follow the last ")"
    rest = text[text.rindex(")") + 2:].split()
    # rest[0] is field 3 (state): pgrp is field 5, utime/stime/cutime/cstime fields 14-17
    utime, stime, cutime, cstime = (int(v) for v in rest[11:15])
    return _ProcStat(pid, int(rest[2]), (utime + stime) / CLK_TCK, (cutime + cstime) / CLK_TCK)


def _process_group_cpu(pgid: int) -> float:
    """CPU seconds of process group `pgid` so far: its live members' own times, plus the leader's
    reaped children's (apache's parent reaps the prefork children that exit).

    The leader is read first: a child that exits and is reaped while the others are read is then
    missed (a few ticks low) rather than counted twice."""
    leader = _proc_stat(pgid)
    if leader is None:
        raise HostMatomoError(f"process {pgid} (the apache parent) is gone")
    total = leader.cpu + leader.children_cpu
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != pgid:
            member = _proc_stat(int(entry.name))
            if member is not None and member.pgrp == pgid:
                total += member.cpu
    return total


def _process_cpu(pid: int) -> float:
    """CPU seconds of process `pid` so far (all its threads: /proc/<pid>/stat of the leader sums them)."""
    found = _proc_stat(pid)
    if found is None:
        raise HostMatomoError(f"process {pid} is gone")
    return found.cpu


# ---------------------------------------------------------------- what the caller gets
@dataclass
class HostMatomo:
    """Genuine Matomo's tracker served by apache2 + mod_php on this machine."""

    host: str
    port: int
    host_header: str
    site_id: int  # a site that exists and records hits
    php_workers: int  # apache prefork workers that may run at once (MaxRequestWorkers)
    database: Database = field(repr=False)
    root: Path  # the Matomo tree apache serves
    apache_pid: int  # the apache parent, leader of its process group
    mariadb_pid: int
    php: dict[str, Any] = field(default_factory=dict)  # settings read back from mod_php
    bringup_seconds: dict[str, float] = field(default_factory=dict)  # per phase

    def stored(self) -> int:
        """Rows of log_link_visit_action: one per page view Matomo stored."""
        return self.database.count("log_link_visit_action")

    def wait_stored(self, count: int, timeout: float = 60) -> int:
        """Waits until at least `count` rows are stored; returns how many there are."""
        stored: int = wait_until(lambda: (n := self.stored()) >= count and n, timeout,
                                 f"{count} rows in {self.database.prefix}log_link_visit_action",
                                 interval=0.2, error=HostMatomoError)  # fmt: skip
        return stored

    def cpu_seconds(self) -> dict[str, float]:
        """Cumulative CPU seconds (user + system) so far of apache (the parent and all its
        prefork children, those that exited included) and of mariadbd."""
        return {"apache": round(_process_group_cpu(self.apache_pid), 2),
                "mariadb": round(_process_cpu(self.mariadb_pid), 2)}  # fmt: skip


# ---------------------------------------------------------------- apache2 + mod_php
def _apache_binary() -> str:
    apache = shutil.which("apache2") or shutil.which("apache2", path="/usr/sbin:/usr/bin")
    missing = [p for p in [APACHE_MODULE_DIR / f"mod_{m}.so" for m in APACHE_MODULES] + [MOD_PHP]
               if not p.exists()]  # fmt: skip
    if not apache or missing:
        raise HostMatomoError(f"apache2 or its modules are missing ({apache or 'apache2'}, {missing}): "
                              "apt-get install apache2 libapache2-mod-php8.2 php8.2-mysql php8.2-opcache")
    return apache


def _vhost(tree: Path, port: int, logs: Path) -> str:
    """The chart's vhost for the Matomo pods, its code path, port and logs moved here."""
    text = VHOST.read_text()
    if f"DocumentRoot {CODE_DIR}\n" not in text or "<VirtualHost *:8080>" not in text:
        raise HostMatomoError(f"{VHOST} no longer serves {CODE_DIR} on *:8080: update {__file__}")
    text = text.replace(f'"^{CODE_DIR}/', f'"^{re.escape(str(tree))}/')  # the DirectoryMatch regexes
    text = text.replace(CODE_DIR, str(tree)).replace("*:8080", f"{HOST}:{port}")
    return text.replace("/proc/self/fd/2", str(logs / "error.log")).replace("/proc/self/fd/1",
                                                                             str(logs / "access.log"))


def _apache_config(tree: Path, port: int, rundir: Path) -> str:
    modules = "\n".join(f"LoadModule {m}_module {APACHE_MODULE_DIR}/mod_{m}.so" for m in APACHE_MODULES)
    prefork = "\n".join(f"{k} {v}" for k, v in PREFORK.items())
    return f"""# bench/tracking_host.py: the Matomo pods' apache (tools/images/rootfs-php.sh, Debian's config)
{modules}
LoadModule php_module {MOD_PHP}
ServerRoot {rundir}
ServerName {HOST_HEADER}
DefaultRuntimeDir {rundir}
PidFile {rundir}/httpd.pid
Mutex file:{rundir} default
ErrorLog {rundir}/error.log
LogLevel warn
TypesConfig /etc/mime.types
Listen {HOST}:{port}

# Debian's apache2.conf
Timeout 300
KeepAlive On
MaxKeepAliveRequests 100
KeepAliveTimeout 5
HostnameLookups Off
AccessFileName .htaccess
<Directory />
  Options FollowSymLinks
  AllowOverride None
  Require all denied
</Directory>
<FilesMatch "^\\.ht">
  Require all denied
</FilesMatch>
LogFormat "%h %l %u %t \\"%r\\" %>s %O \\"%{{Referer}}i\\" \\"%{{User-Agent}}i\\"" combined

# Debian's mods-available/mpm_prefork.conf
{prefork}

# Debian's mods-available/php8.2.conf and dir.conf
<FilesMatch ".+\\.ph(?:ar|p|tml)$">
  SetHandler application/x-httpd-php
</FilesMatch>
<FilesMatch "^\\.ph(?:ar|p|ps|tml)$">
  Require all denied
</FilesMatch>
DirectoryIndex index.html index.cgi index.pl index.php index.xhtml index.htm

# The chart's files/apache/000-default.conf
{_vhost(tree, port, rundir)}
"""


class Apache:
    """apache2 -D FOREGROUND with its own config, as a process group of its own (its prefork
    children are in it), as www-data when started as root; stopped by its pid."""

    def __init__(self, tree: Path, rundir: Path) -> None:
        self.tree, self.rundir, self.port = tree, rundir, free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> Apache:
        apache = _apache_binary()
        if re.search(r'[\s"\\]', f"{self.tree}{self.rundir}"):
            raise HostMatomoError(f"{self.tree} / {self.rundir}: apache's config cannot hold paths with "
                                  "spaces, quotes or backslashes: use another work directory")
        self.rundir.mkdir(parents=True, exist_ok=True)
        phpdir = self.rundir / "php-conf.d"
        phpdir.mkdir(exist_ok=True)
        (phpdir / "99-matomo.ini").write_text(MATOMO_INI)
        conf = self.rundir / "httpd.conf"
        conf.write_text(_apache_config(self.tree, self.port, self.rundir))
        user: dict[str, Any] = {}
        if os.geteuid() == 0:
            pw = pwd.getpwnam(RUN_AS)
            for path in (self.rundir, phpdir):
                os.chown(path, pw.pw_uid, pw.pw_gid)
            user = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        # A clean environment; PHP_INI_SCAN_DIR ":dir" scans the SAPI's own conf.d, then ours.
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C", "HOME": str(self.rundir),
               "PHP_INI_SCAN_DIR": f":{phpdir}"}  # fmt: skip
        with (self.rundir / "apache2.out").open("ab") as out:
            self.proc = subprocess.Popen([apache, "-f", str(conf), "-D", "FOREGROUND"], cwd=self.rundir,
                                         env=env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True, **user)  # fmt: skip

        def listening() -> bool:
            with socket.create_connection((HOST, self.port), timeout=1):
                return True

        wait_until(listening, timeout, f"apache2 on port {self.port}", interval=0.1, retry=(OSError,),
                   check=self._check_running, error=HostMatomoError)  # fmt: skip
        return self

    def _check_running(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise HostMatomoError(f"apache2 exited {self.proc.returncode}: {self.log_tail()}")

    def log_tail(self, n: int = 3000) -> str:
        texts = [p.read_text(errors="replace") for p in (self.rundir / "apache2.out", self.rundir / "error.log")
                 if p.exists()]  # fmt: skip
        return "\n".join(texts)[-n:]

    def group(self) -> list[int]:
        """Pids of the processes of apache's process group that are still there."""
        if self.proc is None:
            return []
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                member = _proc_stat(int(entry.name))
                if member is not None and member.pgrp == self.proc.pid:
                    found.append(member.pid)
        return found

    def stop(self) -> None:
        """SIGTERM to the parent (it stops its children), SIGKILL to the group if it does not;
        raises when a process of the group is left."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        left = wait_until(lambda: not self.group(), 10, "apache's children to exit", interval=0.1, error=None)
        if left is None or self.group():
            pids = self.group()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            raise HostMatomoError(f"apache's processes {pids} outlived its parent: killed")
        self.proc = None


# ---------------------------------------------------------------- the Matomo tree, as in the pods
def _make_traversable(workdir: Path) -> None:
    """apache's workers (www-data) must reach the tree: the work directory itself we may open
    up; a closed directory above it is the caller's to change."""
    # search permission only (o+x, g+x): enough to reach the tree, nothing listed
    workdir.chmod(workdir.stat().st_mode | stat.S_IXGRP | stat.S_IXOTH)
    for parent in workdir.resolve().parents:
        if not parent.stat().st_mode & stat.S_IXOTH:
            raise HostMatomoError(f"{parent} is closed to other users (mode {parent.stat().st_mode & 0o777:o}): "
                                  f"apache's workers run as {RUN_AS} and cannot reach {workdir}; "
                                  "use a work directory under /tmp or chmod o+x it")  # fmt: skip


def _as_in_the_pods(tree: Path) -> None:
    """The chart's managed [General] settings, no .htaccess in the code, Matomo's caches emptied (its
    tracker cache holds settings read before), tmp/ and config/ owned by www-data when we are root."""
    (tree / "config" / "common.config.ini.php").write_text(COMMON_CONFIG)
    for htaccess in tree.rglob(".htaccess"):
        htaccess.unlink()
    cache = tree / "tmp" / "cache"
    if cache.is_dir():
        shutil.rmtree(cache)
    cache.mkdir(parents=True)
    if os.geteuid() == 0:
        pw = pwd.getpwnam(RUN_AS)
        for top in (tree / "tmp", tree / "config"):
            for dirpath, _dirs, files in os.walk(top):
                os.chown(dirpath, pw.pw_uid, pw.pw_gid)
                for name in files:
                    os.chown(os.path.join(dirpath, name), pw.pw_uid, pw.pw_gid)


def _get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    try:
        conn.request("GET", path, headers={"Host": HOST_HEADER, "User-Agent": "tracking_host.py"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


PROBE = """<?php
header('Content-Type: application/json');
$status = function_exists('opcache_get_status') ? opcache_get_status(false) : false;
echo json_encode([
    'sapi' => PHP_SAPI, 'version' => PHP_VERSION, 'euid' => function_exists('posix_geteuid') ? posix_geteuid() : null,
    'opcache_enabled' => is_array($status) && !empty($status['opcache_enabled']),
    'opcache.jit' => ini_get('opcache.jit'), 'memory_limit' => ini_get('memory_limit'),
    'php_ini' => php_ini_loaded_file(), 'extensions' => get_loaded_extensions(),
]);
"""


def _php_settings(tree: Path, port: int) -> dict[str, Any]:
    """What mod_php runs with, from a script of our own served once and removed; raises when it is
    not what the pods run with (opcache on, 512M, pdo_mysql)."""
    name = f"bench-probe-{secrets.token_hex(8)}.php"
    probe = tree / name
    probe.write_text(PROBE)
    try:
        status, body = _get(port, "/" + name)
    finally:
        probe.unlink()
    if status != 200:
        raise HostMatomoError(f"the PHP probe answered {status}: {body[:500]!r}")
    php: dict[str, Any] = json.loads(body)
    wrong = [what for what, ok in (("sapi apache2handler", php["sapi"] == "apache2handler"),
                                   ("opcache on (apt-get install php8.2-opcache)", php["opcache_enabled"]),
                                   ("memory_limit 512M", php["memory_limit"] == "512M"),
                                   ("pdo_mysql (apt-get install php8.2-mysql)", "pdo_mysql" in php["extensions"]))
             if not ok]  # fmt: skip
    if wrong:
        raise HostMatomoError(f"mod_php is not set up as in the pods, expected {wrong}: {php}")
    return php


def _one_hit(matomo: HostMatomo) -> None:
    """One page view through matomo.php: answered 204 and stored, or the site does not record hits."""
    before = matomo.stored()
    query = urllib.parse.urlencode({"idsite": matomo.site_id, "rec": 1, "apiv": 1, "send_image": 0,
                                    "_id": secrets.token_hex(8), "url": "http://bench.example/bring-up",
                                    "action_name": "bring-up"})  # fmt: skip
    status, body = _get(matomo.port, "/matomo.php?" + query)
    if status != 204:
        raise HostMatomoError(f"a tracking request answered {status}: {body[:500]!r}")
    try:
        matomo.wait_stored(before + 1, timeout=10)
    except HostMatomoError as exc:
        raise HostMatomoError(f"a tracking request answered 204 but was not stored: {exc}") from None


# ---------------------------------------------------------------- all of it
@contextlib.contextmanager
def host_matomo(workdir: Path) -> Iterator[HostMatomo]:
    """MariaDB, genuine Matomo installed into it, apache2 + mod_php serving it, all in `workdir`
    (created if needed); stops apache and MariaDB on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    _make_traversable(workdir)
    timings: dict[str, float] = {}
    # LIFO: apache stops before MariaDB, also when the bring-up fails half-way
    with contextlib.ExitStack() as stack:
        t = time.monotonic()
        db: MariaDB = start_mariadb(workdir / "mariadb")
        stack.callback(db.stop)
        database = Database.on(db, db.new_database("matomo"))
        timings["mariadb"] = time.monotonic() - t

        t = time.monotonic()
        vm = install(MATOMO_VERSION, workdir / "install", database, visits=1, actions_per_visit=1)
        _as_in_the_pods(vm.root)
        timings["install"] = time.monotonic() - t

        t = time.monotonic()
        apache = Apache(vm.root, workdir / "apache")
        stack.callback(apache.stop)
        apache.start()
        assert apache.proc is not None and db.process is not None
        matomo = HostMatomo(host=HOST, port=apache.port, host_header=HOST_HEADER, site_id=vm.site_id,
                            php_workers=PREFORK["MaxRequestWorkers"], database=database, root=vm.root,
                            apache_pid=apache.proc.pid, mariadb_pid=db.process.pid)  # fmt: skip
        try:
            matomo.php = _php_settings(vm.root, apache.port)
            _one_hit(matomo)
        except HostMatomoError as exc:
            raise HostMatomoError(f"{exc}\n--- apache's logs\n{apache.log_tail()}") from None
        timings["apache"] = time.monotonic() - t
        matomo.bringup_seconds = {k: round(v, 2) for k, v in timings.items()}
        yield matomo


# ---------------------------------------------------------------- alone: bring up, load, check


def run_loadgen(matomo: HostMatomo, requests: int, concurrency: int, *, bulk: int = 0, tag: str = "load",
                check: bool = True) -> dict[str, Any]:
    """bench/loadgen.py against `matomo` as a process of its own, then waits until every hit it
    counts as accepted is stored. Returns loadgen's JSON with what was stored and the CPU seconds
    apache, mariadbd and loadgen used; with `check`, raises unless every answer was 200/204 and
    exactly the accepted hits were stored."""
    stored0, cpu0 = matomo.stored(), matomo.cpu_seconds()
    try:
        result: dict[str, Any] = spawn(matomo.host, matomo.port, requests, concurrency, bulk=bulk,
                                       host_header=matomo.host_header, site=matomo.site_id, tag=tag)
    except RuntimeError as e:
        raise HostMatomoError(str(e)) from e
    accepted = int(result["accepted_hits"])
    matomo.wait_stored(stored0 + accepted, timeout=60)
    time.sleep(1)  # anything stored late, beyond the accepted hits, would show now
    stored = matomo.stored() - stored0
    cpu1 = matomo.cpu_seconds()
    result["stored_hits"] = stored
    result["server_cpu_s"] = {k: round(cpu1[k] - cpu0[k], 2) for k in cpu1}
    if accepted:
        result["server_cpu_ms_per_hit"] = {k: round(v * 1000 / accepted, 2) for k, v in result["server_cpu_s"].items()}
    if check:
        refused = {s: n for s, n in result["statuses"].items() if s not in ("200", "204")}
        if refused or stored != accepted:
            raise HostMatomoError(f"loadgen {tag}: answers other than 200/204 {refused}, {accepted} hits "
                                  f"accepted, {stored} stored: {result}")  # fmt: skip
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, help="kept afterwards (default: a temporary directory, removed)")
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    with contextlib.ExitStack() as stack:
        workdir = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tracking-host-")))
        t0 = time.monotonic()
        matomo = stack.enter_context(host_matomo(workdir))
        print(json.dumps({"bring_up_s": round(time.monotonic() - t0, 1), "phases_s": matomo.bringup_seconds,
                          "port": matomo.port, "site_id": matomo.site_id, "php_workers": matomo.php_workers,
                          "php": {k: v for k, v in matomo.php.items() if k != "extensions"},
                          "stored": matomo.stored()}), flush=True)  # fmt: skip
        # opcache and Matomo's tracker cache filled by other requests than the measured ones
        warm = run_loadgen(matomo, 48, args.concurrency, tag="warmup")
        print(json.dumps({"warmup": warm}), flush=True)
        for name, requests, bulk in (("single", args.requests, 0), ("bulk10", 60, 10)):
            result = run_loadgen(matomo, requests, args.concurrency, bulk=bulk, tag=name)
            print(json.dumps({name: result, "stored_total": matomo.stored()}), flush=True)


if __name__ == "__main__":
    main()
