"""Matomo installer stand-in: an HTTP server written from Matomo's source.

Followed (matomo-org/matomo, 5.x):
- plugins/Installation/Controller.php: steps, URLs (index.php?module=Installation&action=...),
  checkPiwikIsNotInstalled (200 page with id="piwik-is-already-installed"),
  checkInstallationIsNotExpired (writes installation_first_accessed), systemCheck
  (deleteConfigFileIfNeeded), databaseSetup (createConfigFile: new salt,
  installation_in_progress, trusted_hosts), tablesCreation (deleteTables drops,
  existing tables -> "same names" page, reuse offered by hasEnoughTablesToReuseDb
  + sites + users), reuseTables (updateComponents; nothing to do -> redirect to
  setupSuperUser), setupSuperUser (superuser exists -> redirect), firstWebsiteSetup
  (site exists -> redirect to finished), finished (markInstallationAsCompleted,
  redirect to index.php);
- plugins/Installation/FormDatabaseSetup.php, FormSuperUser.php (login/checkLogin,
  password length 6..200, password_bis 'eq', email/checkEmail; messages from
  General_Required etc. in lang/en.json), FormFirstWebsiteSetup.php (siteName,
  url, timezone required + Rule_isValidTimezone, ecommerce 0/1),
  FormDefaultSettings.php: field names and rules;
- plugins/Installation/templates/setupSuperUser.twig,
  firstWebsiteSetup.twig, finished.twig, reuseTables.twig and
  plugins/Morpheus/templates/genericForm.twig: alert-warning + <li> for form
  errors, <div class="error"> "Could not add the superuser/website: <br/>- ...",
  alert-danger for finished's errors;
- plugins/UsersManager/API.php (addUser, checkValidLoginString, password length,
  anonymous@example.org), plugins/SitesManager/API.php (addSite, timezones);
- core/Db/Schema/Mysql.php (tables, see schema.py), core/DbHelper.php
  (createAnonymousUser, recordInstallVersion), core/SettingsPiwik.php
  (isMatomoInstalled), core/Version.php (const VERSION).

Fault switches (constructor ``faults`` or env STANDIN_FAULTS as JSON, also
POST /__standin/faults): ``status`` {action: code} answers that code,
``form_error`` {action: text} answers 200 with an alert-danger, ``close``
{action: n} closes the connection without answer n times (-1: always),
``slow`` seconds added to every request, ``hang_after`` [actions] does the
work and then blocks until released (POST /__standin/release) before answering.
GET /__standin/stats: served seconds and the request log.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import html
import json
import os
import re
import secrets
import socket
import threading
import time
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pymysql

from . import matomo_config, schema

LOGIN_RE = re.compile(r"^[A-Za-z0-9_.@+-]*$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
VERSION_RE = re.compile(r"""const\s+VERSION\s*=\s*['"]([^'"]+)['"]\s*;""")
MIN_TABLES_TO_REUSE = 12


class Abort(Exception):
    """Close the connection without an answer."""


def matomo_timezones() -> set[str]:
    zones = {z for z in zoneinfo.available_timezones() if "/" in z}
    zones.add("UTC")
    for q in range(-48, 57):
        hours = q / 4
        text = f"{abs(hours):g}"
        zones.add(f"UTC{'-' if hours < 0 else '+'}{text}")
    return zones


TIMEZONES = matomo_timezones()


@dataclass
class Faults:
    status: dict[str, int] = field(default_factory=dict)
    form_error: dict[str, str] = field(default_factory=dict)
    close: dict[str, int] = field(default_factory=dict)
    slow: float = 0.0
    hang_after: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, text: str | None) -> Faults:
        if not text:
            return cls()
        data = json.loads(text)
        return cls(
            status={k: int(v) for k, v in data.get("status", {}).items()},
            form_error=dict(data.get("form_error", {})),
            close={k: int(v) for k, v in data.get("close", {}).items()},
            slow=float(data.get("slow", 0.0)),
            hang_after=list(data.get("hang_after", [])),
        )


def page(title: str, body: str, status_marker: str = "") -> str:
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>Matomo › Installation › {html.escape(title)}</title></head>\n"
        f'<body id="installation">{status_marker}\n<div id="installationPage">'
        f"<h2>{html.escape(title)}</h2>\n{body}\n</div></body></html>\n"
    )


def form_errors(errors: list[str]) -> str:
    items = "".join(f"<li>{html.escape(e)}</li>" for e in errors)
    return (
        '<div class="alert alert-warning"><strong>Please fix the following errors:</strong>'
        f"<ul>{items}</ul></div>"
    )


def required_missing(fields: dict[str, str]) -> list[str]:
    """QuickForm's 'required' rule: "<label> required" for each empty field, in form order."""
    return [f"{label} required" for label, value in fields.items() if not value]


def setup_error(title: str, message: str) -> str:
    """setupSuperUser.twig / firstWebsiteSetup.twig: <div class="error"> ... : <br/>- msg"""
    return (
        '<div class="error"><img src="plugins/Morpheus/images/error_medium.png"/>'
        f"{html.escape(title)}:<br/>- {html.escape(message)}</div>"
    )


def danger(title: str, message: str) -> str:
    return f'<div class="alert alert-danger">{html.escape(title)}: <br/> {html.escape(message)}</div>'


class StandIn:
    def __init__(
        self,
        root: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Faults | None = None,
        stats_file: Path | None = None,
    ) -> None:
        self.root = Path(root)
        self.faults = faults or Faults.from_json(os.environ.get("STANDIN_FAULTS"))
        self.stats_file = stats_file
        self.served_seconds = 0.0
        self.requests: list[dict[str, Any]] = []
        self.release = threading.Event()
        self.lock = threading.Lock()
        standin = self

        class Handler(StandInHandler):
            owner = standin

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.thread: threading.Thread | None = None

    @property
    def config_path(self) -> Path:
        return self.root / "config" / "config.ini.php"

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/"

    def code_version(self) -> str:
        text = (self.root / "core" / "Version.php").read_text(encoding="utf-8")
        m = VERSION_RE.search(text)
        assert m, "core/Version.php without const VERSION"
        return m.group(1)

    def start(self) -> StandIn:
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def record(self, entry: dict[str, Any], seconds: float) -> None:
        with self.lock:
            self.served_seconds += seconds
            self.requests.append(entry)
            if self.stats_file is not None:
                self.stats_file.write_text(json.dumps(self.stats()), encoding="utf-8")

    def stats(self) -> dict[str, Any]:
        return {"served_seconds": self.served_seconds, "requests": list(self.requests)}

    def actions(self) -> list[str]:
        return [r["action"] for r in self.requests if r.get("action")]


class StandInHandler(BaseHTTPRequestHandler):
    owner: StandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    # --- plumbing -------------------------------------------------------------
    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        start = time.monotonic()
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        form = {k: v[-1] for k, v in parse_qs(raw.decode("utf-8"), keep_blank_values=True).items()}
        action = query.get("action", "welcome") if query.get("module", "Installation") else ""
        entry: dict[str, Any] = {"method": method, "path": parts.path, "action": action}
        if parts.path.startswith("/__standin/"):
            self._control(parts.path, raw)
            return
        try:
            if self.owner.faults.slow:
                time.sleep(self.owner.faults.slow)
            try:
                self._fault_before(action)
                status, headers, body = self._dispatch(method, action, query, form)
            except _Answer as ans:
                status, headers, body = ans.status, ans.headers, ans.body
            except Abort:
                raise
            except Exception as exc:  # noqa: BLE001 -- Matomo answers uncaught errors with 500
                status, headers = 500, {}
                body = page("Error", danger("Error", f"{type(exc).__name__}: {exc}"))
            entry["status"] = status
            if action in self.owner.faults.hang_after:
                self.owner.release.wait(600)
            # recorded before answering, so a client that got its answer sees it logged
            self.owner.record(entry, time.monotonic() - start)
            self._send(status, body, headers)
        except Abort:
            entry["status"] = "closed"
            self.owner.record(entry, time.monotonic() - start)
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _fault_before(self, action: str) -> None:
        f = self.owner.faults
        n = f.close.get(action, 0)
        if n:
            if n > 0:
                f.close[action] = n - 1
            raise Abort
        if action in f.status:
            raise _Answer(f.status[action], page("Error", danger("Error", "Internal Server Error")))
        if action in f.form_error:
            raise _Answer(200, page(action, danger("Error", f.form_error[action])))

    def _send(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(data)
        except OSError:  # the client went away (killed hook)
            self.close_connection = True

    def _control(self, path: str, raw: bytes) -> None:
        if path == "/__standin/stats":
            self._send(200, json.dumps(self.owner.stats()), {"X-Standin": "stats"})
        elif path == "/__standin/faults":
            self.owner.faults = Faults.from_json(raw.decode() or "{}")
            self._send(200, "ok")
        elif path == "/__standin/release":
            self.owner.release.set()
            self._send(200, "ok")
        else:
            self._send(404, "unknown control path")

    # --- Matomo ------------------------------------------------------------------
    def _dispatch(
        self, method: str, action: str, query: dict[str, str], form: dict[str, str]
    ) -> tuple[int, dict[str, str], str]:
        try:
            return Installation(self.owner, self.headers.get("Host", "")).handle(
                method, action, query, form
            )
        except _Answer as ans:
            return ans.status, ans.headers, ans.body


class _Answer(Exception):
    def __init__(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def redirect(action: str, params: dict[str, str] | None = None) -> _Answer:
    """Piwik::redirectToModule -> 302 Location index.php?module=Installation&action=..."""
    q = {"module": "Installation", "action": action, **(params or {})}
    return _Answer(302, "", {"Location": "index.php?" + urlencode(q)})


class Installation:
    """One request of plugins/Installation/Controller.php."""

    def __init__(self, owner: StandIn, host_header: str) -> None:
        self.owner = owner
        self.host_header = host_header
        self.config = matomo_config.read(owner.config_path)

    # -- helpers ---------------------------------------------------------------
    def save_config(self) -> None:
        assert self.config is not None
        matomo_config.write(self.owner.config_path, self.config)

    @contextlib.contextmanager
    def cursor(self) -> Iterator[Any]:
        """A cursor on a new connection to the configured database, closed after the block."""
        conn = self.db()
        try:
            yield conn.cursor()
        finally:
            conn.close()

    def db(self) -> Any:
        cfg = (self.config or {}).get("database", {})
        try:
            return pymysql.connect(
                host=str(cfg.get("host", "127.0.0.1")),
                port=int(str(cfg.get("port", "3306"))),
                user=str(cfg.get("username", "")),
                password=str(cfg.get("password", "")),
                database=str(cfg.get("dbname", "")),
                charset="utf8mb4",
                autocommit=True,
                connect_timeout=5,
            )
        except pymysql.err.OperationalError as exc:
            # Matomo: a database it cannot reach is an HTTP 500 error page
            raise _Answer(
                500,
                page("Error", danger("Error", f"SQLSTATE[HY000] [{exc.args[0]}] {exc.args[1]}")),
            ) from None

    @property
    def prefix(self) -> str:
        return str((self.config or {}).get("database", {}).get("tables_prefix", "matomo_"))

    def t(self, name: str) -> str:
        return f"`{self.prefix}{name}`"

    def tables_installed(self, cur: Any) -> list[str]:
        """DbHelper::getTablesInstalled: prefixed tables Matomo knows."""
        cur.execute("SHOW TABLES")
        names = [r[0] for r in cur.fetchall()]
        known = set(schema.CORE) | set(schema.PLUGIN)
        out = []
        for n in names:
            if not n.startswith(self.prefix):
                continue
            short = n[len(self.prefix):]
            if short in known or short.startswith(("archive_numeric_", "archive_blob_")):
                out.append(n)
        return out

    def count(self, cur: Any, sql: str) -> int:
        try:
            cur.execute(sql)
            return int(cur.fetchone()[0])
        except pymysql.err.ProgrammingError:
            return 0

    def get_option(self, cur: Any, name: str) -> str | None:
        try:
            cur.execute(f"SELECT option_value FROM {self.t('option')} WHERE option_name=%s", (name,))
        except pymysql.err.ProgrammingError:
            return None
        row = cur.fetchone()
        return None if row is None else str(row[0])

    def set_option(self, cur: Any, name: str, value: str) -> None:
        cur.execute(
            f"INSERT INTO {self.t('option')} (option_name, option_value, autoload) "
            "VALUES (%s, %s, 1) ON DUPLICATE KEY UPDATE option_value = VALUES(option_value)",
            (name, value),
        )

    def install_plugins(self, cur: Any) -> None:
        """Plugin::install on the first request without [PluginsInstalled]."""
        assert self.config is not None
        if "PluginsInstalled" in self.config:
            return
        for name, body in schema.PLUGIN.items():
            try:
                cur.execute(schema.create_sql(self.prefix, name, body))
            except pymysql.err.OperationalError as exc:
                if exc.args[0] != 1050:  # DbHelper::createTable ignores "already exists"
                    raise
        self.config["PluginsInstalled"] = {"PluginsInstalled": list(schema.PLUGINS_INSTALLED)}
        self.save_config()

    # -- checks every step runs ----------------------------------------------
    def check_not_installed(self) -> None:
        if matomo_config.is_installed(self.config):
            body = (
                '<div class="alert alert-danger">Matomo is already installed.<br />'
                '<strong></strong><a id="piwik-is-already-installed" href="/">'
                "Go back to Matomo</a></div>"
            )
            raise _Answer(200, page("Error", body))

    def check_not_expired(self) -> None:
        if self.config is None:
            return
        general = self.config.setdefault("General", {})
        if not str(general.get("installation_first_accessed", "")).isdigit():
            general["installation_first_accessed"] = str(int(time.time()))
            self.save_config()

    # -- dispatch ----------------------------------------------------------------
    def handle(
        self, method: str, action: str, query: dict[str, str], form: dict[str, str]
    ) -> tuple[int, dict[str, str], str]:
        steps = {
            "welcome": self.welcome,
            "systemCheck": self.system_check,
            "databaseSetup": self.database_setup,
            "tablesCreation": self.tables_creation,
            "reuseTables": self.reuse_tables,
            "setupSuperUser": self.setup_superuser,
            "firstWebsiteSetup": self.first_website_setup,
            "trackingCode": self.tracking_code,
            "finished": self.finished,
        }
        fn = steps.get(action)
        if fn is None:
            return 200, {}, page("Error", danger("Error", f"Action '{action}' not found"))
        self.check_not_installed()
        if action != "systemCheck":
            self.check_not_expired()
        submitted = method == "POST" and bool(form)
        return 200, {}, fn(submitted, query, form)

    def welcome(self, submitted: bool, query: dict[str, str], form: dict[str, str]) -> str:
        return page("Welcome!", '<a class="btn" href="index.php?action=systemCheck">Next</a>')

    def system_check(self, submitted: bool, query: dict[str, str], form: dict[str, str]) -> str:
        # deleteConfigFileIfNeeded: the local config is deleted
        if self.owner.config_path.exists():
            self.owner.config_path.unlink()
        self.config = None
        return page("System Check", "<p>All checks passed.</p>")

    def database_setup(self, submitted: bool, query: dict[str, str], form: dict[str, str]) -> str:
        if not submitted:
            return page("Database Setup", '<form id="databasesetupform" method="post"></form>')
        errors = [f"{f}: The field is required." for f in ("host", "username", "dbname")
                  if not form.get(f)]  # fmt: skip
        if form.get("adapter", "PDO\\MYSQL") not in ("PDO\\MYSQL", "MYSQLI"):
            errors.append("adapter: invalid value")
        if not re.match(r"^[A-Za-z0-9_]*$", form.get("tables_prefix", "matomo_")):
            errors.append("tables_prefix: invalid characters")
        if errors:
            return page("Database Setup", form_errors(errors))
        host, _, port = form["host"].partition(":")
        self.config = self.config or {}
        self.config["database"] = {
            "host": host, "port": port or "3306", "username": form["username"],
            "password": form.get("password", ""), "dbname": form["dbname"],
            "tables_prefix": form.get("tables_prefix", "matomo_"),
            "adapter": form.get("adapter", "PDO\\MYSQL"), "type": "InnoDB",
            "schema": form.get("schema", "Mysql"), "charset": "utf8mb4",
            "collation": "utf8mb4_general_ci",
        }  # fmt: skip
        conn = self.db()  # "Could not connect" would be a 500 here
        conn.close()
        general = self.config.setdefault("General", {})
        general["salt"] = secrets.token_hex(16)  # a NEW salt at every databaseSetup
        general["installation_in_progress"] = "1"
        general["trusted_hosts"] = [self.host_header]
        self.save_config()
        raise redirect("tablesCreation")

    def tables_creation(self, submitted: bool, query: dict[str, str], form: dict[str, str]) -> str:
        with self.cursor() as cur:
            body = ""
            if query.get("deleteTables"):
                # Db::dropAllTables -- the stand-in keeps Matomo's behaviour so tests can
                # prove the hook never asks for it
                for name in self.tables_installed(cur):
                    cur.execute(f"DROP TABLE `{name}`")
                body += "<p>Existing tables deleted.</p>"
            installed = self.tables_installed(cur)
            if installed:
                archives = [n for n in installed if "archive_" in n and n[-1].isdigit()]
                users = self.count(cur, f"SELECT COUNT(*) FROM {self.t('user')} "
                                        "WHERE login <> 'anonymous'")  # fmt: skip
                sites = self.count(cur, f"SELECT COUNT(*) FROM {self.t('site')}")
                body += (
                    '<div class="alert alert-warning">Some tables in your database have the same '
                    "names as the tables Matomo is trying to create: "
                    f"{html.escape(', '.join(installed))}</div>"
                    '<a href="index.php?module=Installation&action=tablesCreation&deleteTables=1">'
                    "Delete the detected tables</a>"
                )
                if len(installed) - len(archives) >= MIN_TABLES_TO_REUSE and sites > 0 and users > 0:
                    body += (
                        '<a id="reuse" href="index.php?module=Installation&action=reuseTables">'
                        "Reuse the existing tables</a>"
                    )
                return page("Creating the Tables", body)
            for name, ddl in schema.CORE.items():
                cur.execute(schema.create_sql(self.prefix, name, ddl))
            # DbHelper::createAnonymousUser, recordInstallVersion, core version
            cur.execute(
                f"INSERT INTO {self.t('user')} (login, password, email, superuser_access, "
                "date_registered) VALUES ('anonymous', '', 'anonymous@example.org', 0, NOW())"
            )
            # Model::addTokenAuth('anonymous', 'anonymous', ...): hashed with the salt
            salt = str((self.config or {}).get("General", {}).get("salt", ""))
            cur.execute(
                f"INSERT INTO {self.t('user_token_auth')} (login, description, password, "
                "hash_algo, date_created) VALUES ('anonymous', 'anonymous default token', "
                "%s, 'sha512', NOW())",
                (schema.anonymous_token_hash(salt),),
            )
            version = self.owner.code_version()
            self.set_option(cur, "install_version", version)
            self.set_option(cur, "version_core", version)
            return page("Creating the Tables", "<p>Tables created with success!</p>")

    def reuse_tables(self, submitted: bool, query: dict[str, str], form: dict[str, str]) -> str:
        with self.cursor() as cur:
            old = self.get_option(cur, "version_core")
            code = self.owner.code_version()
            if old == code:
                raise redirect("setupSuperUser")  # updateComponents() === false
            self.set_option(cur, "version_core", code)
            return page("Reusing the Tables", f"<p>Database updated from {old} to {code}.</p>")

    def setup_superuser(self, submitted: bool, query: dict[str, str], form: dict[str, str]) -> str:
        with self.cursor() as cur:
            self.install_plugins(cur)
            supers = self.count(
                cur, f"SELECT COUNT(*) FROM {self.t('user')} WHERE superuser_access = 1"
            )
            if supers > 0:
                raise redirect("firstWebsiteSetup")
            if not submitted:
                return page("Super User", '<form id="generalsetupform" method="post"></form>')
            login, pw = form.get("login", ""), form.get("password", "")
            pw2, email = form.get("password_bis", ""), form.get("email", "")
            errors = required_missing(
                {"Super user login": login, "Password": pw, "Password (repeat)": pw2, "Email": email}
            )
            if login and (not 2 <= len(login) <= 100 or not LOGIN_RE.match(login)):
                errors.append(
                    "The login must be between 2 and 100 characters long and contain only "
                    "letters, numbers, or the characters '_' or '-' or '.' or '@' or '+'"
                )
            if pw and not 6 <= len(pw) <= 200:  # UsersManager::PASSWORD_MIN/MAX_LENGTH
                errors.append("The password must be between 6 and 200 characters long.")
            if pw2 and pw != pw2:  # 'eq' rule on password_bis
                errors.append("password does not match")
            if email and not EMAIL_RE.match(email):
                errors.append("The email doesn't have a valid format.")
            if errors:
                return page("Super User", form_errors(errors))
            try:
                if email.lower() == "anonymous@example.org":
                    raise ValueError("The email 'anonymous@example.org' is reserved.")
                cur.execute(f"SELECT COUNT(*) FROM {self.t('user')} WHERE login=%s", (login,))
                if cur.fetchone()[0]:
                    raise ValueError(f"Username '{login}' already exists.")
                cur.execute(f"SELECT COUNT(*) FROM {self.t('user')} WHERE email=%s", (email,))
                if cur.fetchone()[0]:
                    raise ValueError(f"User with email '{email}' already exists.")
                salt = secrets.token_hex(8)
                digest = hashlib.pbkdf2_hmac(
                    "sha256", hashlib.md5(pw.encode()).hexdigest().encode(), salt.encode(), 1000
                ).hex()
                cur.execute(
                    f"INSERT INTO {self.t('user')} (login, password, email, superuser_access, "
                    "date_registered, ts_password_modified) VALUES (%s, %s, %s, 1, NOW(), NOW())",
                    (login, f"$standin${salt}${digest}", email),
                )
            except ValueError as exc:
                return page("Super User", setup_error("Could not add the superuser", str(exc)))
            raise redirect("firstWebsiteSetup")

    def first_website_setup(
        self, submitted: bool, query: dict[str, str], form: dict[str, str]
    ) -> str:
        with self.cursor() as cur:
            if self.count(cur, f"SELECT COUNT(*) FROM {self.t('site')}") > 0:
                raise redirect("finished")  # redirectToNextStep('trackingCode')
            if not submitted:
                return page("Setup a Website", '<form id="websitesetupform" method="post"></form>')
            name, url = form.get("siteName", ""), form.get("url", "")
            tz, ecommerce = form.get("timezone", ""), form.get("ecommerce", "0")
            errors = required_missing(
                {"Website name": name, "Website URL": url, "Website time zone": tz}
            )
            if tz and tz not in TIMEZONES:
                errors.append("Website time zone is not valid")
            if errors:
                return page("Setup a Website", form_errors(errors))
            try:
                if not re.match(r"^https?://[^\s/]+", url):
                    raise ValueError(f"The url '{url}' is not a valid URL.")
                cur.execute(
                    f"INSERT INTO {self.t('site')} (name, main_url, ts_created, ecommerce, "
                    "sitesearch, sitesearch_keyword_parameters, sitesearch_category_parameters, "
                    "timezone, currency, excluded_ips, excluded_parameters, excluded_user_agents,"
                    " excluded_referrers, `group`, `type`, creator_login) VALUES "
                    "(%s, %s, NOW(), %s, 1, '', '', %s, 'USD', '', '', '', '', '', 'website', "
                    "'anonymous')",
                    (html.escape(name), url, 1 if ecommerce == "1" else 0, tz),
                )
                idsite = cur.lastrowid
            except (ValueError, pymysql.err.Error) as exc:
                return page("Setup a Website", setup_error("Could not add the website", str(exc)))
            raise redirect("trackingCode", {"site_idSite": str(idsite), "site_name": name})

    def tracking_code(self, submitted: bool, query: dict[str, str], form: dict[str, str]) -> str:
        return page("JavaScript Tracking Code", "<pre>_paq.push(['trackPageView']);</pre>")

    def finished(self, submitted: bool, query: dict[str, str], form: dict[str, str]) -> str:
        if not submitted:
            return page("Congratulations", '<form id="defaultsettingsform" method="post"></form>')
        if self.config is None:
            return page("Congratulations", danger("Error", "config file not found"))
        general = self.config.setdefault("General", {})
        general.pop("installation_in_progress", None)
        general.pop("installation_first_accessed", None)
        try:
            self.save_config()
        except OSError as exc:
            return page("Congratulations", danger("Error", f"config file not writable: {exc}"))
        raise _Answer(302, "", {"Location": "index.php"})


def main() -> None:
    parser = argparse.ArgumentParser(description="Matomo installer stand-in")
    parser.add_argument("--listen", default="127.0.0.1:8080")
    parser.add_argument("--root", default=".", help="the Matomo code dir (config/, core/)")
    parser.add_argument("--stats-file", default=os.environ.get("STANDIN_STATS_FILE"))
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    srv = StandIn(
        Path(args.root),
        host or "127.0.0.1",
        int(port),
        stats_file=Path(args.stats_file) if args.stats_file else None,
    )
    try:
        srv.httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
