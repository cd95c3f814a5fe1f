"""A Matomo installed OUTSIDE the chart, the way people install it on a VM:
a writable copy of a genuine release tree served by PHP's built-in server on
this machine (``php -S 127.0.0.1:<port>``, ``PHP_CLI_SERVER_WORKERS=4``),
against a database the caller names, walked through Matomo's own web
installer over HTTP as a person clicks through it (welcome, systemCheck,
databaseSetup, which writes ``config/config.ini.php`` with a NEW random
salt, tablesCreation, setupSuperUser, firstWebsiteSetup, finished). Then some
use: visits through ``matomo.php``, a second user (``UsersManager.addUser``)
and an app token of the superuser (``UsersManager.createAppSpecificTokenAuth``).
What moving that Matomo to the chart needs comes back in :class:`VMInstall`:
the salt read back from its config, both users' credentials, the token, the
visit count; :func:`dump_database` dumps its database as the README tells
people to (``mariadb-dump --single-transaction``).

Written from Matomo's source (plugins/Installation/Controller.php, the
forms of plugins/Installation/Form*.php; ../shared/research/matomo-installer.md),
independently of the hook's installer client (hooks/src/matomo_hook/installer.py),
which seeds a config and skips systemCheck and databaseSetup: this walk is
the one the hook must never be mistaken for.

Used by tests/genuine/test_genuine_adopt.py (the database: the suite's
MariaDB) and meant for the real node's adoption test too: nothing here
depends on a pytest fixture.
"""

from __future__ import annotations

import contextlib
import html
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pymysql

from harness.basics import free_port, wait_until
from harness.matomo_release import release_tree

BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


class VMInstallError(Exception):
    """Matomo's installer or API did not answer as a successful step does."""


@dataclass(frozen=True)
class Database:
    """Where the VM's Matomo keeps its data (a MySQL/MariaDB reachable from this machine)."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    name: str
    prefix: str = "matomo_"

    @classmethod
    def on(cls, mariadb: Any, name: str, prefix: str = "matomo_") -> Database:
        """Database `name` of a harness MariaDB (tests/harness/mariadb.py)."""
        return cls(mariadb.host, mariadb.port, mariadb.user, mariadb.password, name, prefix)

    def connect(self) -> Any:
        return pymysql.connect(host=self.host, port=self.port, user=self.user,
                               password=self.password.encode(), database=self.name,
                               autocommit=True)  # fmt: skip

    def count(self, table: str) -> int:
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM `{self.prefix}{table}`")
            return int(cur.fetchone()[0])


@dataclass(frozen=True)
class User:
    login: str
    password: str = field(repr=False)
    email: str


@dataclass(frozen=True)
class VMInstall:
    """The VM's Matomo after :func:`install`: what moving it to the chart needs."""

    version: str
    root: Path  # its code and config/config.ini.php
    database: Database
    salt: str = field(repr=False)  # [General] salt of its config.ini.php
    superuser: User
    user: User  # a second user, view access to the site
    token: str = field(repr=False)  # an app token of the superuser (token_auth)
    site_id: int
    site_url: str
    visits: int  # log_visit rows
    actions: int  # log_link_visit_action rows
    plugins: tuple[str, ...]  # [PluginsInstalled] of its config


# ---------------------------------------------------------------- the VM's web server
class PhpServer:
    """``php -S 127.0.0.1:<port>`` serving a Matomo tree, as its own process group,
    stopped by its pid (SIGTERM, then SIGKILL)."""

    def __init__(self, root: Path, log: Path, port: int | None = None, workers: int = 4) -> None:
        self.root, self.log, self.port, self.workers = root, log, port or free_port(), workers
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self, timeout: float = 30) -> PhpServer:
        php = shutil.which("php")
        if not php:
            raise VMInstallError("php not found (apt-get install php-cli; ./dev tools does it)")
        # a clean environment: Matomo takes MATOMO_DATABASE_* as the installer's defaults
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PHP_CLI_SERVER_WORKERS": str(self.workers),
               "HOME": str(self.root), "TZ": "UTC"}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([php, "-S", f"127.0.0.1:{self.port}", "-t", str(self.root)],
                                         cwd=self.root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)  # fmt: skip

        def listening() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise VMInstallError(f"php -S exited {self.proc.returncode}: {self.log_tail()}")
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True

        wait_until(listening, timeout, f"php -S on port {self.port}", interval=0.1, retry=(OSError,))
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        # the workers are its children, in its process group (start_new_session)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def log_tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""

    def __enter__(self) -> PhpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def writable_tree(version: str, dest: Path) -> Path:
    """A writable copy of genuine Matomo `version` at `dest` (the cached tree is read-only)."""
    shutil.copytree(release_tree(version), dest, symlinks=True)
    for dirpath, _dirs, files in os.walk(dest):
        os.chmod(dirpath, 0o755)
        for name in files:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, 0o644)
    return dest


# ---------------------------------------------------------------- HTTP, as a person's browser
def _text(fragment: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", fragment))).strip()


def _problems(body: str) -> list[str]:
    """Matomo's error boxes (alert-danger) and form errors (alert-warning with <li>s)."""
    found = [_text(m) for m in re.findall(r'<div[^>]*class="[^"]*alert-danger[^"]*"[^>]*>(.*?)</div>', body, re.S)]
    for box in re.findall(r'<div[^>]*class="[^"]*alert-warning[^"]*"[^>]*>(.*?)</div>', body, re.S):
        found += [_text(li) for li in re.findall(r"<li[^>]*>(.*?)</li>", box, re.S)]
    return [f for f in found if f]


class Browser:
    """One person's browser on the VM's Matomo: keeps cookies, sends a browser's User-Agent."""

    def __init__(self, base_url: str) -> None:
        self.client = httpx.Client(base_url=base_url, follow_redirects=False, timeout=120, trust_env=False,
                                   headers={"User-Agent": BROWSER})  # fmt: skip

    def close(self) -> None:
        self.client.close()

    def installer(self, action: str, form: dict[str, str] | None = None, *, expect: str | None = None,
                  redirect: str | None = None) -> str:  # fmt: skip
        """One installer page: GET, or POST of `form`. A step succeeds with 200 showing `expect`,
        or with a redirect to `redirect`; Matomo's error boxes are a failure."""
        params = {"module": "Installation", "action": action}
        resp = (self.client.post("index.php", params=params, data=form) if form is not None
                else self.client.get("index.php", params=params))  # fmt: skip
        body = resp.text
        if redirect is not None:
            location = resp.headers.get("location", "")
            if resp.status_code in (301, 302, 303) and redirect in location:
                return location
        elif resp.status_code == 200 and (expect is None or expect in body) and not _problems(body):
            return body
        raise VMInstallError(f"installer step {action}: HTTP {resp.status_code} "
                             f"(location {resp.headers.get('location')!r}): "
                             f"{'; '.join(_problems(body)) or _text(body)[:600]}")

    def api(self, method: str, token: str | None = None, **params: Any) -> Any:
        """A call of Matomo's HTTP API (token_auth in the POST body, as Matomo recommends)."""
        data = {"module": "API", "method": method, "format": "json", **{k: str(v) for k, v in params.items()}}
        if token is not None:
            data["token_auth"] = token
        resp = self.client.post("index.php", data=data)
        try:
            body = resp.json()
        except ValueError:
            body = resp.text[:600]
        if resp.status_code != 200 or (isinstance(body, dict) and body.get("result") == "error"):
            raise VMInstallError(f"API {method}: HTTP {resp.status_code}: {body}")
        return body

    def track(self, site_id: int, visits: int, actions_per_visit: int, site_url: str) -> None:
        """`visits` visits of `actions_per_visit` page views each through matomo.php."""
        for _ in range(visits):
            visitor = secrets.token_hex(8)
            for n in range(actions_per_visit):
                query = {"idsite": site_id, "rec": 1, "apiv": 1, "_id": visitor, "send_image": 0,
                         "url": f"{site_url.rstrip('/')}/page-{n}", "action_name": f"Page {n}",
                         "rand": secrets.token_hex(4)}  # fmt: skip
                if n == 0:
                    query["new_visit"] = 1
                resp = self.client.get("matomo.php?" + urllib.parse.urlencode(query))
                if resp.status_code not in (200, 204):
                    raise VMInstallError(f"tracking request: HTTP {resp.status_code}: {resp.text[:300]}")


def read_config(root: Path) -> dict[str, dict[str, Any]]:
    """The sections of Matomo's config/config.ini.php (lists as ``key[]``), as PHP reads it."""
    sections: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] = {}
    for line in (root / "config" / "config.ini.php").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(";"):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = (p.strip() for p in line.partition("="))
        if value.startswith('"') and value.endswith('"'):
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        if key.endswith("[]"):
            current.setdefault(key[:-2], []).append(value)
        else:
            current[key] = value
    return sections


# ---------------------------------------------------------------- the install
def install(version: str, workdir: Path, database: Database, *, visits: int = 3, actions_per_visit: int = 2,
            site_url: str = "https://www.example.org", timezone: str = "UTC") -> VMInstall:  # fmt: skip
    """Installs Matomo `version` in `workdir` (a copy of the release, ``workdir/matomo``) against
    `database` (existing and empty, or absent: Matomo creates it) through its web installer, then
    uses it: `visits` visits, a second user, an app token. The PHP server is stopped at the end
    (as a person stops writes before the move); its log is ``workdir/php.log``."""
    workdir.mkdir(parents=True, exist_ok=True)
    root = writable_tree(version, workdir / "matomo")
    superuser = User("vmadmin", "Vm-" + secrets.token_urlsafe(12), "vmadmin@example.org")
    user = User("analyst", "An-" + secrets.token_urlsafe(12), "analyst@example.org")
    server = PhpServer(root, workdir / "php.log")
    with server:
        browser = Browser(server.url)
        try:
            try:
                token, site_id = _walk(browser, database, superuser, site_url, timezone)
                browser.track(site_id, visits, actions_per_visit, site_url)
                browser.api("UsersManager.addUser", token, userLogin=user.login, password=user.password,
                            email=user.email, initialIdSite=site_id)  # fmt: skip
            finally:
                browser.close()
        except VMInstallError as exc:
            raise VMInstallError(f"{exc}\n--- php -S log\n{server.log_tail()}") from None
    config = read_config(root)
    found = (database.count("log_visit"), database.count("log_link_visit_action"))
    if found != (visits, visits * actions_per_visit):
        raise VMInstallError(f"expected {visits} visits of {actions_per_visit} actions, the database "
                             f"has {found[0]} visits and {found[1]} actions")  # fmt: skip
    return VMInstall(version=version, root=root, database=database, salt=config["General"]["salt"],
                     superuser=superuser, user=user, token=token, site_id=site_id, site_url=site_url,
                     visits=found[0], actions=found[1],
                     plugins=tuple(config.get("PluginsInstalled", {}).get("PluginsInstalled", [])))  # fmt: skip


def _walk(browser: Browser, db: Database, su: User, site_url: str, timezone: str) -> tuple[str, int]:
    """Matomo's installer from its first page to its last, as a person clicks "Next"; then the
    superuser's first app token. Returns the token and the site id."""
    browser.installer("welcome", expect='id="installation"')
    browser.installer("systemCheck")
    browser.installer("databaseSetup", {
        "host": f"{db.host}:{db.port}", "username": db.user, "password": db.password, "dbname": db.name,
        "tables_prefix": db.prefix, "adapter": "PDO\\MYSQL", "type": "InnoDB",
    }, redirect="action=tablesCreation")  # fmt: skip
    browser.installer("tablesCreation", expect="Tables created")
    browser.installer("setupSuperUser", {
        "login": su.login, "password": su.password, "password_bis": su.password, "email": su.email,
    }, redirect="action=firstWebsiteSetup")  # fmt: skip
    location = browser.installer("firstWebsiteSetup", {
        "siteName": "VM site", "url": site_url, "timezone": timezone, "ecommerce": "0",
    }, redirect="action=trackingCode")  # fmt: skip
    site = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query).get("site_idSite", ["1"])[0]
    # trackingCode only shows the snippet (and fetches the site's URL): a person may skip it
    browser.installer("finished", {"do_not_track": "1", "anonymise_ip": "1"}, redirect="index.php")
    body = browser.api("UsersManager.createAppSpecificTokenAuth", userLogin=su.login,
                       passwordConfirmation=su.password, description="vm reporting")  # fmt: skip
    if not isinstance(body, dict) or not body.get("value"):
        raise VMInstallError(f"createAppSpecificTokenAuth answered {body!r}")
    return str(body["value"]), int(site)


# ---------------------------------------------------------------- the move
def dump_database(database: Database, path: Path, dump: str = "mariadb-dump") -> Path:
    """Dumps `database` to `path` as the README's move tells people to: ``mariadb-dump
    --single-transaction`` (a consistent snapshot without locking InnoDB tables), binary
    columns as hex, utf8mb4. The password goes through an option file, never the command line."""
    binary = shutil.which(dump) or shutil.which("mysqldump")
    if not binary:
        raise VMInstallError(f"{dump} not found (apt-get install mariadb-client)")
    quoted = database.password.replace("\\", "\\\\").replace('"', '\\"')
    with tempfile.NamedTemporaryFile("w", suffix=".cnf", delete=False) as cnf:
        cnf.write(f'[client]\npassword="{quoted}"\n')
    try:
        os.chmod(cnf.name, 0o600)
        with path.open("wb") as out:
            proc = subprocess.run(
                [binary, f"--defaults-extra-file={cnf.name}", "--single-transaction", "--hex-blob",
                 "--default-character-set=utf8mb4", "--protocol=tcp", f"--host={database.host}",
                 f"--port={database.port}", f"--user={database.user}", database.name],
                stdout=out, stderr=subprocess.PIPE, timeout=600, check=False,
            )  # fmt: skip
    finally:
        os.unlink(cnf.name)
    if proc.returncode != 0:
        raise VMInstallError(f"{binary} exited {proc.returncode}: {proc.stderr.decode(errors='replace')[-1000:]}")
    return path
