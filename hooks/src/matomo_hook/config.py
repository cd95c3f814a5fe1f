"""Settings from the environment, validated before any connection is made.

Every problem raises :class:`ConfigError` with one line naming the variable
and saying what would fix it.
"""

from __future__ import annotations

import json
import os
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .errors import ConfigError

SA_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

# (variable, default, meaning): printed by ``--help``, and the one place a default
# is stated. A default is the value used when the variable is unset or empty; one
# in parentheses is no value, it says what happens instead.
ENV_VARS: list[tuple[str, str, str]] = [
    ("MATOMO_DATABASE_HOST", "127.0.0.1", "database host"),
    ("MATOMO_DATABASE_PORT", "3306", "database port"),
    ("MATOMO_DATABASE_USERNAME", "(required)", "database user"),
    ("MATOMO_DATABASE_PASSWORD", "", "database password (or MATOMO_DATABASE_PASSWORD_FILE)"),
    ("MATOMO_DATABASE_PASSWORD_FILE", "", "file holding the database password"),
    ("MATOMO_DATABASE_DBNAME", "(required)", "database name"),
    ("MATOMO_DATABASE_TABLES_PREFIX", "matomo_", "table prefix, [A-Za-z0-9_]*"),
    ("MATOMO_DATABASE_SCHEMA", "Mysql", "Mysql or Mariadb"),
    ("MATOMO_SALT", "", "Matomo salt (or MATOMO_SALT_FILE); required for install/upgrade"),
    ("MATOMO_SALT_FILE", "", "file holding the salt"),
    (
        "MATOMO_SALT_CHECK_TOKEN",
        "",
        "one API token of the installation the database came from (or _FILE): checks the salt",
    ),
    (
        "MATOMO_SALT_CHECK_TOKEN_FILE",
        "",
        "file holding that token; a file that does not exist means no token",
    ),
    (
        "MATOMO_SALT_ACCEPT_UNCHECKED",
        "0",
        "1: accept a salt no record or token can check on a database with API tokens",
    ),
    ("MATOMO_INSTALLER_URL", "http://127.0.0.1:8080/", "the Matomo sidecar (localhost only)"),
    ("MATOMO_CONFIG_FILE", "/var/lib/matomo/config/config.ini.php", "sidecar config to seed"),
    ("MATOMO_COMMAND_DIR", "/run/matomo-hook", "console channel directory"),
    ("MATOMO_CODE_VERSION", "", "Matomo code version (else read from MATOMO_VERSION_FILE)"),
    ("MATOMO_VERSION_FILE", "/usr/src/matomo/core/Version.php", "Matomo's core/Version.php"),
    (
        "MATOMO_CODE_PLUGINS_FILE",
        "",
        "the code's plugins, a name a line (else: plugins/ next to MATOMO_VERSION_FILE's core/)",
    ),
    (
        "MATOMO_CODE_ACTIVATED_PLUGINS_FILE",
        "",
        "[Plugins] of the sidecar's config, a name a line (unset: the config chain's)",
    ),
    ("MATOMO_SUPERUSER_LOGIN", "(required for install)", "2-100 of [A-Za-z0-9_.@+-]"),
    ("MATOMO_SUPERUSER_PASSWORD", "", "superuser password, >= 6 chars (or _FILE)"),
    ("MATOMO_SUPERUSER_PASSWORD_FILE", "", "file holding the superuser password"),
    ("MATOMO_SUPERUSER_EMAIL", "(required for install)", "superuser e-mail"),
    ("MATOMO_SITE_NAME", "(required for install)", "first website name"),
    ("MATOMO_SITE_URL", "(required for install)", "first website URL (http/https)"),
    ("MATOMO_SITE_TIMEZONE", "UTC", "IANA name, UTC or UTC+N"),
    ("MATOMO_SITE_ECOMMERCE", "0", "0 or 1"),
    ("MATOMO_HOOK_NAMESPACE", "(pod namespace)", "namespace of the Deployment"),
    (
        "MATOMO_HOOK_DEPLOYMENT",
        "(required for roll)",
        "Deployment(s) to restart, comma-separated (the chart: F, and F-tracker)",
    ),
    ("MATOMO_HOOK_DB_TIMEOUT", "300", "seconds to wait for the database"),
    ("MATOMO_HOOK_INSTALLER_TIMEOUT", "300", "seconds to wait for the installer"),
    ("MATOMO_HOOK_UPGRADE_TIMEOUT", "1800", "seconds to wait for core:update"),
    ("MATOMO_HOOK_ROLLOUT_TIMEOUT", "600", "seconds to wait for the rollout"),
    (
        "MATOMO_HOOK_ROLL",
        "changed",
        "run: restart the Deployment when the database changed (changed) or every time (always)",
    ),
    ("MATOMO_HOOK_LOCK_TIMEOUT", "600", "seconds to wait for the advisory lock"),
    (
        "MATOMO_HOOK_SECRETS",
        "(required for secrets)",
        'JSON {"secrets": [{"name": N, "keys": {KEY: LENGTH}}], "labels": {}, "annotations": {}}',
    ),
    ("MATOMO_HOOK_SECRETS_TIMEOUT", "60", "seconds secrets retries a refused or failed API call"),
    (
        "MATOMO_HOOK_BACKUP_DIR",
        "(no dump)",
        "folder of the dumps taken before core:update (required for restore)",
    ),
    ("MATOMO_HOOK_BACKUP_KEEP", "3", "dumps kept in MATOMO_HOOK_BACKUP_DIR, the newest"),
    (
        "MATOMO_HOOK_RESTORE_FILE",
        "(required for restore)",
        "file name of the dump restore loads, in MATOMO_HOOK_BACKUP_DIR",
    ),
    ("KUBECONFIG", "", "used by roll and secrets when KUBERNETES_SERVICE_HOST is unset"),
]
DEFAULTS = {name: default for name, default, _ in ENV_VARS if default and default[0] != "("}

LOGIN_RE = re.compile(r"^[A-Za-z0-9_.@+-]{2,100}$")
PREFIX_RE = re.compile(r"^[A-Za-z0-9_]{0,40}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
UTC_OFFSET_RE = re.compile(r"^UTC[+-](\d{1,2})(\.(25|5|75))?$")
VERSION_RE = re.compile(r"^\d+\.\d+\.\d+(-[0-9A-Za-z.]+)?$")
HOSTNAME_RE = re.compile(r"^[A-Za-z0-9_.:\[\]-]+$")
SECRET_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
SECRET_KEY_RE = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")


@dataclass(frozen=True)
class Database:
    host: str
    port: int
    username: str
    password: str = field(repr=False)
    dbname: str
    prefix: str
    schema: str
    timeout: float
    lock_timeout: float


@dataclass(frozen=True)
class Superuser:
    login: str
    password: str = field(repr=False)
    email: str


@dataclass(frozen=True)
class Site:
    name: str
    url: str
    timezone: str
    ecommerce: int


@dataclass(frozen=True)
class Settings:
    database: Database | None
    salt: str | None = field(repr=False)
    # one API token of the database's installation (salt.py); None: not given
    salt_check_token: str | None = field(repr=False)
    salt_accept_unchecked: bool
    installer_url: str
    installer_timeout: float
    config_file: Path
    command_dir: Path
    code_version: str | None
    version_file: Path
    upgrade_timeout: float
    superuser: Superuser | None
    site: Site | None
    namespace: str
    deployment: str | None
    rollout_timeout: float
    roll_always: bool
    backup_dir: Path | None = None
    backup_keep: int = 3
    code_plugins_file: Path | None = None
    activated_plugins_file: Path | None = None
    restore_file: str | None = None
    deployments: tuple[str, ...] = ()

    @property
    def db(self) -> Database:
        if self.database is None:
            raise ConfigError("database settings were not loaded for this subcommand")
        return self.database

    def secrets(self) -> list[str]:
        values = [
            self.database.password if self.database else "",
            self.salt or "",
            self.salt_check_token or "",
        ]
        if self.superuser:
            values.append(self.superuser.password)
        return [v for v in values if v]


@dataclass(frozen=True)
class SecretSpec:
    """A Secret ``matomo-hook secrets`` creates when absent: key -> length of its value."""

    name: str
    keys: dict[str, int]


@dataclass(frozen=True)
class SecretsPlan:
    specs: list[SecretSpec]
    labels: dict[str, str]
    annotations: dict[str, str]
    timeout: float


def _string_map(raw: object, what: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        raise ConfigError(f"MATOMO_HOOK_SECRETS: {what} must map strings to strings")
    return dict(raw)


def secrets_plan(env: Mapping[str, str] | None = None) -> SecretsPlan:
    """Parses ``MATOMO_HOOK_SECRETS``: ``{"secrets": [{"name": "F-salt", "keys": {"salt": 64}}],
    "labels": {...}, "annotations": {...}}`` (what the chart's Job ``F-secrets`` sets)."""
    e = _Env(os.environ if env is None else env)
    raw = e.required(
        "MATOMO_HOOK_SECRETS", 'JSON like {"secrets": [{"name": "x", "keys": {"salt": 64}}]}'
    )
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"MATOMO_HOOK_SECRETS is not JSON ({exc.msg}): fix its value") from None
    items = doc.get("secrets") if isinstance(doc, dict) else None
    if not isinstance(items, list) or not items:
        raise ConfigError("MATOMO_HOOK_SECRETS has no list 'secrets': name at least one Secret")
    specs: list[SecretSpec] = []
    for item in items:
        name = item.get("name") if isinstance(item, dict) else None
        keys = item.get("keys") if isinstance(item, dict) else None
        if not isinstance(name, str) or len(name) > 253 or not SECRET_NAME_RE.match(name):
            raise ConfigError(
                f"MATOMO_HOOK_SECRETS: Secret name {name!r} is not a DNS-1123 subdomain"
            )
        if not isinstance(keys, dict) or not keys:
            raise ConfigError(f"MATOMO_HOOK_SECRETS: Secret {name} has no 'keys' {{key: length}}")
        for key, length in keys.items():
            if not SECRET_KEY_RE.match(key):
                raise ConfigError(f"MATOMO_HOOK_SECRETS: key {key!r} of {name} is not a Secret key")
            if not isinstance(length, int) or isinstance(length, bool) or not 16 <= length <= 256:
                raise ConfigError(
                    f"MATOMO_HOOK_SECRETS: length of {name}/{key} must be an integer 16-256"
                )
        specs.append(SecretSpec(name=name, keys=dict(keys)))
    return SecretsPlan(
        specs=specs,
        labels=_string_map(doc.get("labels"), "labels"),
        annotations=_string_map(doc.get("annotations"), "annotations"),
        timeout=e.number("MATOMO_HOOK_SECRETS_TIMEOUT"),
    )


def valid_timezone(tz: str) -> bool:
    """What Matomo's SitesManager accepts: an identifier PHP knows, ``UTC``
    or a manual ``UTC+N`` / ``UTC-N`` offset in quarter hours."""
    if tz == "UTC":
        return True
    m = UTC_OFFSET_RE.match(tz)
    if m:
        return int(m.group(1)) <= 14
    if "/" not in tz or tz.split("/", 1)[0] in ("posix", "right"):
        # zoneinfo.available_timezones() leaves these copies of the zones out
        return False
    # Loads this one zone (TZPATH, else the tzdata package) instead of listing
    # them all: available_timezones() opens every file under /usr/share/zoneinfo.
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False  # unknown, not a normalized key, a directory or not a TZif file
    return True


_DEPLOYMENT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _deployments(value: str) -> tuple[str, ...]:
    """MATOMO_HOOK_DEPLOYMENT: one name or several, comma-separated, each a DNS-1123 subdomain."""
    names = tuple(n.strip() for n in value.split(","))
    bad = [n for n in names if not _DEPLOYMENT_NAME.match(n) or len(n) > 253]
    if bad or len(set(names)) != len(names):
        raise ConfigError(
            f"MATOMO_HOOK_DEPLOYMENT={value!r} is not a comma-separated list of "
            "distinct Deployment names"
        )
    return names


def _roll_mode(value: str) -> str:
    if value not in ("changed", "always"):
        raise ConfigError(f"MATOMO_HOOK_ROLL={value!r} is not one of: changed, always")
    return value


def _optional_path(value: str | None) -> Path | None:
    return Path(value) if value else None


class _Env:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def get(self, name: str) -> str | None:
        """The variable's value; unset or empty, its default (None when it has none)."""
        return self.env.get(name) or DEFAULTS.get(name)

    def value(self, name: str) -> str:
        """The value of a variable that has a default."""
        return self.env.get(name) or DEFAULTS[name]

    def required(self, name: str, what: str) -> str:
        value = self.get(name)
        if value is None:
            raise ConfigError(f"{name} is not set: set it to {what}")
        return value

    def secret(
        self, name: str, required: bool, empty_file_ok: bool = False, missing_file_ok: bool = False
    ) -> str | None:
        """A secret from NAME or NAME_FILE (exactly one). ``empty_file_ok``: an empty
        file is a value (the database password with Cloud SQL IAM authentication).
        ``missing_file_ok``: a file that does not exist is no value (an optional key
        of a Secret, which Kubernetes leaves out of the volume when it is absent)."""
        file_var = f"{name}_FILE"
        direct = self.get(name)
        path = self.get(file_var)
        if direct is not None and path is not None:
            raise ConfigError(f"{name} and {file_var} are both set: keep only one of them")
        if path is not None:
            try:
                value = Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                if missing_file_ok and isinstance(exc, FileNotFoundError):
                    return None
                raise ConfigError(
                    f"{file_var} names {path!r}, which cannot be read ({exc.strerror}): "
                    "mount the Secret there or fix the path"
                ) from None
            except UnicodeDecodeError:
                # MariaDB, MySQL and Matomo take text as UTF-8: other bytes are no password.
                raise ConfigError(
                    f"{file_var} names {path!r}, which is not UTF-8 text: store the value "
                    "in the Secret as UTF-8"
                ) from None
            value = value.removesuffix("\n").removesuffix("\r")
            if not value and not empty_file_ok:
                raise ConfigError(f"{file_var} names an empty file {path!r}: put the value in it")
            return value
        if direct is None and required:
            raise ConfigError(f"{name} (or {file_var}) is not set: provide the value or a file")
        return direct

    def number(self, name: str, *, integer: bool = False) -> float:
        raw = self.value(name)
        try:
            value = int(raw) if integer else float(raw)
        except ValueError:
            kind = "an integer" if integer else "a number of seconds"
            raise ConfigError(
                f"{name}={raw!r} is not {kind}: set it to e.g. {DEFAULTS[name]}"
            ) from None
        if value <= 0:
            raise ConfigError(f"{name}={raw!r} must be greater than 0")
        return value


def _ini_safe(name: str, value: str) -> None:
    """Refuses what Matomo's config.ini.php cannot hold inside double quotes: a
    line break, and ``${``, which PHP's INI parser replaces with an environment
    variable (any other character, ``"`` and ``\\`` included, is escaped)."""
    if "\n" in value or "\r" in value:
        raise ConfigError(
            f"{name} contains a line break, which Matomo's config.ini.php cannot hold: "
            "choose a value without one"
        )
    if "${" in value:
        raise ConfigError(
            f"{name} contains '${{', which PHP's INI parser would replace with an environment "
            "variable in Matomo's config.ini.php: choose a value without it"
        )


def _http_url(name: str, value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name}={value!r} is not an http(s) URL: use e.g. https://example.org/")


def _database(e: _Env) -> Database:
    host = e.value("MATOMO_DATABASE_HOST")
    if not HOSTNAME_RE.match(host):
        raise ConfigError(f"MATOMO_DATABASE_HOST={host!r} is not a host name or address")
    port_raw = e.value("MATOMO_DATABASE_PORT")
    if not port_raw.isdigit() or not 0 < int(port_raw) < 65536:
        raise ConfigError(
            f"MATOMO_DATABASE_PORT={port_raw!r} is not a port: use 1-65535, e.g. "
            + DEFAULTS["MATOMO_DATABASE_PORT"]
        )
    username = e.required("MATOMO_DATABASE_USERNAME", "the database user name")
    # The chart renders an empty password for Cloud SQL IAM authentication
    # (database.cloudsql.autoIAMAuthn): the proxy logs in, the password is unused.
    password = e.secret("MATOMO_DATABASE_PASSWORD", required=True, empty_file_ok=True)
    assert password is not None
    _ini_safe("MATOMO_DATABASE_PASSWORD", password)
    dbname = e.required("MATOMO_DATABASE_DBNAME", "the database name")
    if len(dbname) > 64 or "`" in dbname or "\x00" in dbname:
        raise ConfigError(f"MATOMO_DATABASE_DBNAME={dbname!r}: use at most 64 chars, no backtick")
    # empty is a prefix too: only an unset variable takes the default
    prefix = e.env.get("MATOMO_DATABASE_TABLES_PREFIX", DEFAULTS["MATOMO_DATABASE_TABLES_PREFIX"])
    if not PREFIX_RE.match(prefix):
        raise ConfigError(
            f"MATOMO_DATABASE_TABLES_PREFIX={prefix!r} is invalid: use at most 40 of [A-Za-z0-9_]"
        )
    schema = e.value("MATOMO_DATABASE_SCHEMA")
    if schema not in ("Mysql", "Mariadb"):
        raise ConfigError(f"MATOMO_DATABASE_SCHEMA={schema!r} is invalid: use Mysql or Mariadb")
    return Database(
        host=host,
        port=int(port_raw),
        username=username,
        password=password,
        dbname=dbname,
        prefix=prefix,
        schema=schema,
        timeout=e.number("MATOMO_HOOK_DB_TIMEOUT"),
        lock_timeout=e.number("MATOMO_HOOK_LOCK_TIMEOUT"),
    )


def _salt_check_token(e: _Env) -> str | None:
    """The API token that checks the salt (salt.py), if given: surrounding
    whitespace (a pasted line break) is dropped; it is one word."""
    raw = e.secret("MATOMO_SALT_CHECK_TOKEN", required=False, missing_file_ok=True)
    if raw is None:
        return None
    token = raw.strip()
    if not token or len(token) > 255 or any(c.isspace() for c in token):
        raise ConfigError(
            "MATOMO_SALT_CHECK_TOKEN (or its _FILE) is not an API token: put exactly one "
            "token_auth of the old installation there (32 letters and digits, as Matomo "
            "shows it once when it creates one), or remove it"
        )
    return token


def load(env: Mapping[str, str] | None = None, need: frozenset[str] = frozenset()) -> Settings:
    """Parses the environment. ``need`` holds what the subcommand uses:
    ``db`` (database), ``install`` (salt, superuser, site), ``upgrade`` (salt),
    ``roll`` (Deployment), ``restore`` (backup folder and file).
    Malformed values are refused even when not needed; missing ones only when needed."""
    e = _Env(os.environ if env is None else env)

    database = _database(e) if "db" in need else None

    salt = e.secret("MATOMO_SALT", required="install" in need or "upgrade" in need)
    if salt is not None:
        _ini_safe("MATOMO_SALT", salt)
    token = _salt_check_token(e)
    accept_unchecked = e.value("MATOMO_SALT_ACCEPT_UNCHECKED")
    if accept_unchecked not in ("0", "1"):
        raise ConfigError(
            f"MATOMO_SALT_ACCEPT_UNCHECKED={accept_unchecked!r} is invalid: use 0 or 1"
        )

    installer_url = e.value("MATOMO_INSTALLER_URL")
    _http_url("MATOMO_INSTALLER_URL", installer_url)
    if not installer_url.endswith("/"):
        installer_url += "/"

    code_version = e.get("MATOMO_CODE_VERSION")
    if code_version is not None and not VERSION_RE.match(code_version):
        raise ConfigError(f"MATOMO_CODE_VERSION={code_version!r} is not a version like 5.1.2")

    superuser: Superuser | None = None
    site: Site | None = None
    login = e.get("MATOMO_SUPERUSER_LOGIN")
    su_password = e.secret("MATOMO_SUPERUSER_PASSWORD", required="install" in need)
    email = e.get("MATOMO_SUPERUSER_EMAIL")
    if login is not None and not LOGIN_RE.match(login):
        raise ConfigError(
            f"MATOMO_SUPERUSER_LOGIN={login!r} is invalid: use 2-100 of letters, digits, _ . @ + -"
        )
    if login == "anonymous":
        raise ConfigError("MATOMO_SUPERUSER_LOGIN must not be 'anonymous': choose another login")
    if su_password is not None and not 6 <= len(su_password) <= 200:
        raise ConfigError("MATOMO_SUPERUSER_PASSWORD is invalid: use 6 to 200 characters")
    if su_password is not None and su_password != su_password.strip():
        # Matomo's API trims every parameter: the password could never be confirmed there.
        raise ConfigError(
            "MATOMO_SUPERUSER_PASSWORD begins or ends with whitespace, which Matomo's API trims "
            "(its password confirmation would never match): remove it"
        )
    if email is not None:
        if not EMAIL_RE.match(email) or len(email) > 100:
            raise ConfigError(f"MATOMO_SUPERUSER_EMAIL={email!r} is not an e-mail address")
        if email.lower() == "anonymous@example.org":
            raise ConfigError("MATOMO_SUPERUSER_EMAIL must not be anonymous@example.org")
    site_name = e.get("MATOMO_SITE_NAME")
    site_url = e.get("MATOMO_SITE_URL")
    timezone = e.value("MATOMO_SITE_TIMEZONE")
    ecommerce = e.value("MATOMO_SITE_ECOMMERCE")
    if site_url is not None:
        _http_url("MATOMO_SITE_URL", site_url)
    if site_name is not None and len(site_name) > 90:
        raise ConfigError("MATOMO_SITE_NAME is longer than 90 characters: shorten it")
    if not valid_timezone(timezone):
        raise ConfigError(
            f"MATOMO_SITE_TIMEZONE={timezone!r} is not a timezone Matomo accepts: "
            "use e.g. UTC, UTC+2 or Europe/Berlin"
        )
    if ecommerce not in ("0", "1"):
        raise ConfigError(f"MATOMO_SITE_ECOMMERCE={ecommerce!r} is invalid: use 0 or 1")
    if "install" in need:
        login = e.required("MATOMO_SUPERUSER_LOGIN", "the superuser login")
        email = e.required("MATOMO_SUPERUSER_EMAIL", "the superuser e-mail address")
        site_name = e.required("MATOMO_SITE_NAME", "the first website's name")
        site_url = e.required("MATOMO_SITE_URL", "the first website's URL")
    if login is not None and su_password is not None and email is not None:
        superuser = Superuser(login=login, password=su_password, email=email)
    if site_name is not None and site_url is not None:
        site = Site(name=site_name, url=site_url, timezone=timezone, ecommerce=int(ecommerce))

    namespace = e.get("MATOMO_HOOK_NAMESPACE")
    if namespace is None:
        try:
            namespace = Path(SA_NAMESPACE_FILE).read_text(encoding="utf-8").strip() or "default"
        except OSError:
            namespace = "default"
    deployment = e.get("MATOMO_HOOK_DEPLOYMENT")
    if "roll" in need and deployment is None:
        raise ConfigError("MATOMO_HOOK_DEPLOYMENT is not set: set it to the Deployment to restart")
    deployments = _deployments(deployment) if deployment is not None else ()

    backup_dir, keep, restore_file = _backup(e, "restore" in need)

    return Settings(
        database=database,
        salt=salt,
        salt_check_token=token,
        salt_accept_unchecked=accept_unchecked == "1",
        installer_url=installer_url,
        installer_timeout=e.number("MATOMO_HOOK_INSTALLER_TIMEOUT"),
        config_file=Path(e.value("MATOMO_CONFIG_FILE")),
        command_dir=Path(e.value("MATOMO_COMMAND_DIR")),
        code_version=code_version,
        version_file=Path(e.value("MATOMO_VERSION_FILE")),
        code_plugins_file=_optional_path(e.get("MATOMO_CODE_PLUGINS_FILE")),
        activated_plugins_file=_optional_path(e.get("MATOMO_CODE_ACTIVATED_PLUGINS_FILE")),
        upgrade_timeout=e.number("MATOMO_HOOK_UPGRADE_TIMEOUT"),
        superuser=superuser,
        site=site,
        namespace=namespace,
        deployment=deployment,
        deployments=deployments,
        rollout_timeout=e.number("MATOMO_HOOK_ROLLOUT_TIMEOUT"),
        roll_always=_roll_mode(e.value("MATOMO_HOOK_ROLL")) == "always",
        backup_dir=backup_dir,
        backup_keep=keep,
        restore_file=restore_file,
    )


def _backup(e: _Env, restore: bool) -> tuple[Path | None, int, str | None]:
    """The dumps' folder (none: no dump before core:update), how many to keep, and the
    file ``restore`` loads (its name is checked against the folder by backup.py, which
    can list the dumps there)."""
    raw_dir = e.get("MATOMO_HOOK_BACKUP_DIR")
    if raw_dir is not None and not raw_dir.startswith("/"):
        raise ConfigError(
            f"MATOMO_HOOK_BACKUP_DIR={raw_dir!r} is not an absolute path: use e.g. /backups"
        )
    keep = int(e.number("MATOMO_HOOK_BACKUP_KEEP", integer=True))
    restore_file = e.get("MATOMO_HOOK_RESTORE_FILE")
    if restore:
        if raw_dir is None:
            raise ConfigError(
                "MATOMO_HOOK_BACKUP_DIR is not set: set it to the folder of the dumps"
            )
        if restore_file is None:
            raise ConfigError(
                "MATOMO_HOOK_RESTORE_FILE is not set: set it (backup.restore.file) to the "
                "name of the dump to restore"
            )
    return (Path(raw_dir) if raw_dir is not None else None), keep, restore_file
