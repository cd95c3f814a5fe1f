"""The config file of the Matomo sidecar in the hook pod (MATOMO_CONFIG_FILE).

Matomo's console and installer read the local ``config/config.ini.php`` on top
of the chart's read-only ``common.config.ini.php``. The hook pod starts with an
empty config folder, so the hook writes this file itself before it asks the
sidecar for anything: for an install, the seed the installer needs
(shared/research/matomo-installer.md: database, the managed salt,
``installation_in_progress = 1``, NO ``[PluginsInstalled]``); for an installed
database, the same database block and salt, and ``[PluginsInstalled]`` as the
database records it (one ``version_<plugin>`` option per plugin Matomo
installed), so that ``core:update`` upgrades exactly the plugins this database
has. Nothing is copied from a serving pod. When the chart names plugins that
are not in the image (plugins.extra), the sidecar lists the whole [Plugins]
list (the config chain's plus those) in MATOMO_CODE_ACTIVATED_PLUGINS_FILE and
the installed config carries it: this file's sections replace the chain's, so
Matomo loads them, and its installLoadedPlugins installs them in the database.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from . import logs
from .config import Settings
from .database import PLUGIN_RE
from .errors import ConfigError
from .files import write_atomic


def ini_value(value: str) -> str:
    r"""``value`` double-quoted for PHP's INI parser, which Matomo reads its config
    with: inside the quotes ``\\`` is one backslash and ``\"`` one double quote.
    (A newline or ``${`` cannot be held at all: config.py refuses those.)"""
    if not value:
        return '""'
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def trusted_host(url: str) -> str:
    """Host as Matomo's setTrustedHost stores it: host[:port], port only when not 80/443."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port and parts.port not in (80, 443):
        return f"{host}:{parts.port}"
    return host


def _text(
    settings: Settings, installing: bool, plugins: list[str], activated: list[str] | None = None
) -> str:
    db = settings.db
    assert settings.salt is not None
    lines = [
        "; <?php exit; ?> DO NOT REMOVE THIS LINE",
        "; file automatically generated or modified by Matomo; written by matomo-hook",
        "[database]",
        f"host = {ini_value(db.host)}",
        f"port = {db.port}",
        f"username = {ini_value(db.username)}",
        f"password = {ini_value(db.password)}",
        f"dbname = {ini_value(db.dbname)}",
        f"tables_prefix = {ini_value(db.prefix)}",
        'adapter = "PDO\\MYSQL"',
        'type = "InnoDB"',
        f"schema = {ini_value(db.schema)}",
        'charset = "utf8mb4"',
        'collation = "utf8mb4_general_ci"',
        "",
        "[General]",
        f"salt = {ini_value(settings.salt)}",
    ]
    if installing:
        lines.append("installation_in_progress = 1")
    lines += [f"trusted_hosts[] = {ini_value(trusted_host(settings.installer_url))}", ""]
    if activated:
        lines.append("[Plugins]")
        lines += [f"Plugins[] = {ini_value(p)}" for p in activated]
        lines.append("")
    if plugins:
        lines.append("[PluginsInstalled]")
        lines += [f"PluginsInstalled[] = {ini_value(p)}" for p in plugins]
        lines.append("")
    return "\n".join(lines)


def seed_config_text(settings: Settings) -> str:
    """The installer's seed: Matomo then creates the tables and installs every plugin."""
    return _text(settings, installing=True, plugins=[])


def installed_config_text(
    settings: Settings, plugins: list[str], activated: list[str] | None = None
) -> str:
    """The config of an installed database whose plugins are `plugins`; with
    `activated`, its [Plugins] list too."""
    return _text(settings, installing=False, plugins=plugins, activated=activated)


def write(settings: Settings, text: str, event: str) -> None:
    """Writes the sidecar's config atomically (temp file + rename), group-writable so
    the Matomo sidecar (another uid, same fsGroup) can rewrite it as it does."""
    target = settings.config_file
    if not target.parent.is_dir():
        raise ConfigError(
            f"MATOMO_CONFIG_FILE={str(target)!r}: directory does not exist; mount the "
            "sidecar's writable config directory there"
        )
    try:
        write_atomic(target, text, 0o660)
    except OSError as exc:
        raise ConfigError(
            f"MATOMO_CONFIG_FILE={str(target)!r} cannot be written ({exc.strerror}): "
            "mount the sidecar's config directory writable for the hook"
        ) from None
    logs.event(event, step="config", path=str(target))


def write_seed(settings: Settings) -> None:
    write(settings, seed_config_text(settings), "config_seeded")


def code_plugin_names(settings: Settings) -> set[str] | None:
    """The plugins the Matomo code has: the list in MATOMO_CODE_PLUGINS_FILE (in the
    chart, the sidecar writes it, since this container has no Matomo code), else the
    folders with a <Name>/<Name>.php in the plugins/ next to MATOMO_VERSION_FILE's
    core/. None when there is no such folder (a code folder without Matomo's plugins
    is not a release)."""
    if settings.code_plugins_file is not None:
        try:
            text = settings.code_plugins_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"MATOMO_CODE_PLUGINS_FILE={str(settings.code_plugins_file)!r} cannot be read "
                f"({exc.strerror}): the Matomo sidecar writes it at its start; see its log "
                "(container matomo-installer)"
            ) from None
        return {line.strip() for line in text.splitlines() if line.strip()}
    plugins = settings.version_file.parent.parent / "plugins"
    if not plugins.is_dir():
        return None
    return {p.parent.name for p in plugins.glob("*/*.php") if p.stem == p.parent.name}


def code_plugins(settings: Settings, names: list[str]) -> list[str]:
    """The names that are plugins of the code (code_plugin_names): a plugin listed as
    installed but absent from the code would fail every request."""
    present = code_plugin_names(settings) or set()
    return [n for n in names if n in present]


def activated_plugins(settings: Settings) -> list[str] | None:
    """The [Plugins] list in MATOMO_CODE_ACTIVATED_PLUGINS_FILE (in the chart, the
    sidecar writes it when plugins.extra names plugins); None when unset."""
    path = settings.activated_plugins_file
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"MATOMO_CODE_ACTIVATED_PLUGINS_FILE={str(path)!r} cannot be read ({exc.strerror}): "
            "the Matomo sidecar writes it at its start; see its log (container matomo-installer)"
        ) from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    bad = [n for n in names if not PLUGIN_RE.match(n)]
    if bad or not names:
        raise ConfigError(
            f"MATOMO_CODE_ACTIVATED_PLUGINS_FILE={str(path)!r} holds "
            f"{'no plugin name' if not names else 'a line that is not a plugin name'}: "
            "see the log of the Matomo sidecar (container matomo-installer)"
        )
    return names


def write_installed(settings: Settings, installed: list[str]) -> None:
    """The config of an installed database whose plugins (``version_<plugin>``
    options) are `installed`, keeping those the code has; with the sidecar's
    [Plugins] list (activated_plugins), that list too."""
    text = installed_config_text(
        settings, code_plugins(settings, installed), activated_plugins(settings)
    )
    write(settings, text, "config_written")
