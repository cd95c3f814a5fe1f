"""Drives Matomo's web installer (plugins/Installation/Controller.php) on localhost.

Seeded install, as verified on Matomo 5.1.2 (shared/research/matomo-installer.md):
the hook writes the sidecar's config (database, managed salt,
``installation_in_progress = 1``, trusted host; NO ``[PluginsInstalled]``),
then walks tablesCreation, setupSuperUser, firstWebsiteSetup and finished,
skipping the steps the database state shows as done.

Never called: systemCheck (deletes the config), databaseSetup (new salt),
tablesCreation with deleteTables (drops every prefixed table). An interrupted
tablesCreation is finished by the sidecar's files/matomo-tables.php instead.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from . import console, logs, matomo_config
from .config import Settings, Site, Superuser
from .database import INSTALLED, Connection, State
from .errors import RefusedError, UnreachableError

if TYPE_CHECKING:
    import httpx

ALREADY_INSTALLED = 'id="piwik-is-already-installed"'


class AlreadyInstalledError(RefusedError):
    """The installer answered Matomo's "already installed" page."""


RETRY_STATUS = {502, 503, 504}
MIN_TABLES_TO_REUSE = 12  # Controller::hasEnoughTablesToReuseDb


def _text(fragment: str) -> str:
    fragment = re.sub(r"<br\s*/?>", " ", fragment, flags=re.I)
    fragment = re.sub(r"<[^>]+>", " ", fragment)
    return re.sub(r"\s+", " ", html.unescape(fragment)).strip()


def matomo_errors(body: str, warnings: bool = True) -> list[str]:
    """Matomo's own error markers (plugins/Installation/templates, genericForm.twig):
    ``alert-danger`` / ``alert-error`` / ``error`` blocks, ``alert-warning`` with
    ``<li>`` items (form validation), and "Could not add the superuser/website"."""
    found: list[str] = []
    pattern = (
        r'<div[^>]*class="(?:[^"]*\s)?(alert-danger|alert-error|error)(?:\s[^"]*)?"[^>]*>'
        r"(.*?)</div>"
    )
    for m in re.finditer(pattern, body, re.S | re.I):
        text = _text(m.group(2))
        if text:
            found.append(text)
    if warnings:
        for m in re.finditer(
            r'<div[^>]*class="[^"]*alert-warning[^"]*"[^>]*>(.*?)</div>', body, re.S | re.I
        ):
            items = [_text(i) for i in re.findall(r"<li[^>]*>(.*?)</li>", m.group(1), re.S | re.I)]
            items = [i for i in items if i]
            if items:
                found.append("; ".join(items))
    for marker in ("Could not add the superuser", "Could not add the website"):
        if marker in body and not any(marker in f for f in found):
            idx = body.index(marker)
            end = body.find("</div>", idx)
            found.append(_text(body[idx : end if end > 0 else idx + 400]))
    return found


class Installer:
    """HTTP client for the installer in the same pod: one keep-alive HTTP/1.1
    connection for every step.

    httpx is imported here, when a step is due, not with the module: ``run`` on an
    installed database never pays for it. ``trust_env=False``: the sidecar is on
    localhost, so no proxy or certificate settings from the environment apply (and
    reading them costs more than the requests). Certificates are loaded only for
    an https installer URL; plain http needs none."""

    def __init__(self, settings: Settings, transport: httpx.BaseTransport | None = None) -> None:
        import httpx  # noqa: PLC0415

        self.settings = settings
        self.deadline = time.monotonic() + settings.installer_timeout
        self.client = httpx.Client(
            base_url=settings.installer_url,
            follow_redirects=False,
            timeout=httpx.Timeout(min(120.0, settings.installer_timeout)),
            transport=transport,
            headers={"User-Agent": "matomo-hook"},
            trust_env=False,
            verify=urlsplit(settings.installer_url).scheme == "https",
        )

    def close(self) -> None:
        self.client.close()

    def request(
        self,
        step: str,
        method: str,
        data: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        import httpx  # noqa: PLC0415 -- loaded by __init__ already

        params = params or {"module": "Installation", "action": step}
        start = time.monotonic()
        delay = 0.5
        attempt = 0
        while True:
            attempt += 1
            problem: str
            try:
                resp = self.client.request(method, "index.php", params=params, data=data)
                if resp.status_code not in RETRY_STATUS:
                    logs.event(
                        "installer_step",
                        step=step,
                        status=resp.status_code,
                        location=resp.headers.get("location"),
                        duration_s=round(time.monotonic() - start, 3),
                    )
                    return resp
                problem = f"HTTP {resp.status_code}"
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise UnreachableError(
                    f"Matomo installer at {self.settings.installer_url} unreachable for "
                    f"{time.monotonic() - start:.0f}s during {step} "
                    f"(MATOMO_HOOK_INSTALLER_TIMEOUT={self.settings.installer_timeout:g}); "
                    f"last error: {problem}"
                )
            logs.event(
                "installer_retry", step=step, attempt=attempt, error=problem, retry_in_s=delay
            )
            time.sleep(min(delay, max(0.05, left)))
            delay = min(delay * 2, 5.0)

    def check(
        self,
        step: str,
        resp: httpx.Response,
        redirect_to: tuple[str, ...] = (),
        warnings_are_errors: bool = True,
    ) -> None:
        """Raises RefusedError quoting Matomo when the step did not succeed.
        Form errors are alert-warning lists; the updater (reuseTables) also lists
        plain warnings that way, which are logged instead."""
        body = resp.text
        if ALREADY_INSTALLED in body:
            raise AlreadyInstalledError(
                f"installer refused {step}: Matomo in the hook pod says it is already installed "
                f"({_text(body)[:300]}); the seeded config {self.settings.config_file} is not "
                "the one the installer reads -- check MATOMO_CONFIG_FILE and the mounts"
            )
        errors = matomo_errors(body, warnings=warnings_are_errors)
        if not warnings_are_errors:
            for warning in matomo_errors(body):
                if warning not in errors:
                    logs.event("matomo_warning", step=step, warning=warning)
        if resp.status_code >= 400:
            detail = "; ".join(errors) or _text(body)[:300]
            raise RefusedError(f"installer {step} answered HTTP {resp.status_code}: {detail}")
        if errors:
            raise RefusedError(f"Matomo refused {step}: {' | '.join(errors)}")
        if redirect_to:
            location = resp.headers.get("location", "")
            if resp.status_code not in (301, 302, 303) or not any(
                r in location for r in redirect_to
            ):
                raise RefusedError(
                    f"installer {step} answered HTTP {resp.status_code} "
                    f"(location {location!r}) instead of redirecting to "
                    f"{' or '.join(redirect_to)}: "
                    f"{_text(body)[:300]}"
                )

    # --- steps -------------------------------------------------------------
    def tables_creation(self) -> httpx.Response:
        resp = self.request("tablesCreation", "GET")
        self.check("tablesCreation", resp)
        return resp

    def reuse_tables(self) -> None:
        resp = self.request("reuseTables", "GET")
        self.check("reuseTables", resp, warnings_are_errors=False)
        if resp.status_code in (301, 302, 303) and "setupSuperUser" not in resp.headers.get(
            "location", ""
        ):
            raise RefusedError(f"reuseTables redirected to {resp.headers.get('location')!r}")

    def submit(self, step: str, form: dict[str, str], redirect_to: tuple[str, ...]) -> None:
        """POSTs one of the installer's forms; Matomo answers a valid form with a
        redirect to the next step (anything else is RefusedError)."""
        self.check(step, self.request(step, "POST", form), redirect_to)

    def setup_superuser(self, su: Superuser) -> None:
        form = {
            "login": su.login,
            "password": su.password,
            "password_bis": su.password,
            "email": su.email,
            "subscribe_newsletter_piwikorg": "0",
            "subscribe_newsletter_professionalservices": "0",
        }
        self.submit("setupSuperUser", form, ("action=firstWebsiteSetup",))

    def first_website(self, site: Site) -> None:
        form = {
            "siteName": site.name,
            "url": site.url,
            "timezone": site.timezone,
            "ecommerce": str(site.ecommerce),
        }
        self.submit("firstWebsiteSetup", form, ("action=trackingCode", "action=finished"))

    def finished(self) -> None:
        # The defaults the form shows checked (FormDefaultSettings + PrivacyManager).
        self.submit("finished", {"do_not_track": "1", "anonymise_ip": "1"}, ("index.php",))


def plan(st: State) -> list[str]:
    """Steps that bring ``st`` to installed, or RefusedError saying what a person must do.

    Decided from plugins/Installation/Controller.php:
    - tablesCreation creates tables only when NO prefixed table exists; some
      tables with no version_core, site or user are its own interrupted work,
      finished by createMissingTables (Matomo's code, no table dropped);
    - reuseTables (runs Matomo's updater) is offered only with >= 12 non-archive
      tables, >= 1 site and >= 1 user; the hook also wants every core table there,
      since the updater does not create core tables;
    - setupSuperUser redirects on when a superuser exists;
    - firstWebsiteSetup redirects to finished when a site exists.
    """
    if st.state == INSTALLED:
        return []
    if st.tables == 0:
        return ["seed", "tablesCreation", "setupSuperUser", "firstWebsiteSetup", "finished"]
    steps = ["seed"]
    if st.version_core is None:
        base = st.tables - st.archive_tables
        reusable = base >= MIN_TABLES_TO_REUSE and st.sites >= 1 and st.users >= 1
        if reusable and not st.missing_core_tables:
            steps.append("reuseTables")
        elif interrupted_table_creation(st):
            steps.append("createMissingTables")
        else:
            raise RefusedError(
                f"{st.tables} tables with the configured prefix exist but Matomo never "
                f"recorded version_core (missing core tables: "
                f"{', '.join(st.missing_core_tables) or 'none'}; sites={st.sites}, "
                f"users={st.users}, superusers={st.superusers}): an install was interrupted "
                "after people or sites were added, or these tables are not Matomo's. Matomo's "
                "installer only creates tables into an empty prefix and the hook never drops "
                "tables. A person must back up the database, check these tables hold nothing "
                "worth keeping, drop them (or restore a backup), then run the hook again"
            )
    if st.superusers == 0:
        steps.append("setupSuperUser")
    if st.sites == 0:
        steps.append("firstWebsiteSetup")
    steps.append("finished")
    return steps


def interrupted_table_creation(st: State) -> bool:
    """Some tables, no version_core, and nothing a person made: no site, no user
    but Matomo's anonymous one. What Matomo's tablesCreation leaves when the
    database goes away in its middle (it creates the tables one by one, then the
    anonymous user, then records version_core); the hook finishes it."""
    return (
        st.tables > 0
        and st.version_core is None
        and st.sites == 0
        and st.users == 0
        and st.superusers == 0
        and st.archive_tables == 0
    )


def create_missing_tables(settings: Settings, conn: Connection) -> None:
    """Finishes an interrupted table creation with Matomo's own code, run by the
    sidecar (files/matomo-tables.php through the console channel): the missing
    tables are created, the existing ones left as they are, then version_core is
    recorded as tablesCreation does. The installer cannot do it: its
    tablesCreation only creates into an empty prefix, or drops every table.
    Runs as a step of install(), which checks the advisory lock before each step."""
    rc, output = console.run(
        settings, "create-tables", settings.installer_timeout, "MATOMO_HOOK_INSTALLER_TIMEOUT"
    )
    if rc != 0:
        raise RefusedError(
            f"finishing the interrupted table creation failed (matomo-tables.php exited {rc}): "
            f"{console.tail(output) or '(no output)'}"
        )
    now = conn.state()
    if now.version_core is None or now.missing_core_tables:
        raise RefusedError(
            f"matomo-tables.php exited 0 but the database still lacks version_core or core "
            f"tables ({', '.join(now.missing_core_tables) or 'none missing'}): "
            f"{console.tail(output) or '(no output)'}"
        )
    logs.event(
        "tables_completed", step="createMissingTables", tables=now.tables,
        output=console.tail(output, 1),
    )  # fmt: skip


def _run_step(step: str, settings: Settings, inst: Installer, conn: Connection) -> None:
    if step == "seed":
        matomo_config.write_seed(settings)
    elif step == "tablesCreation":
        inst.tables_creation()
        now = conn.state()
        if now.version_core is None:
            raise RefusedError(
                "tablesCreation answered but version_core was not recorded "
                f"({now.tables} tables now): Matomo did not finish creating tables"
            )
    elif step == "createMissingTables":
        create_missing_tables(settings, conn)
    elif step == "reuseTables":
        inst.reuse_tables()
    elif step == "setupSuperUser":
        assert settings.superuser is not None  # config.load(need={"install"}) made sure
        inst.setup_superuser(settings.superuser)
    elif step == "firstWebsiteSetup":
        assert settings.site is not None
        inst.first_website(settings.site)
    elif step == "finished":
        inst.finished()


def install(
    settings: Settings,
    conn: Connection,
    st: State,
    transport: httpx.BaseTransport | None = None,
    after_step: Callable[[str], None] | None = None,
) -> State:
    """Runs the plan under the caller's lock; returns the final state."""
    steps = plan(st)
    if not steps:
        logs.event("install_skipped", state=st.state, step="install")
        return st
    logs.event("install_plan", state=st.state, step="plan", steps=steps)
    inst = Installer(settings, transport)
    try:
        for step in steps:
            start = time.monotonic()
            conn.assert_lock_held()
            try:
                _run_step(step, settings, inst, conn)
            except AlreadyInstalledError:
                # Not a config problem when the database says installed: an earlier
                # attempt (whose answer was lost) or a person finished the install.
                now = conn.state()
                if now.state != INSTALLED:
                    raise
                logs.event("installed_meanwhile", state=now.state, step=step)
                return now
            logs.event("step_done", step=step, duration_s=round(time.monotonic() - start, 3))
            if after_step is not None:
                after_step(step)
    finally:
        inst.close()
    final = conn.state()
    if final.state != INSTALLED:
        raise RefusedError(
            f"the installer walked {', '.join(steps)} but the database is still "
            f"{final.state} (version_core={final.version_core}, superusers={final.superusers}, "
            f"sites={final.sites})"
        )
    logs.event("installed", state=final.state, step="install", version_core=final.version_core)
    return final


def install_plugins(
    settings: Settings, conn: Connection, transport: httpx.BaseTransport | None = None
) -> list[str]:
    """Has Matomo install, in this database, the plugins it loads that the database
    has not installed yet (a plugin added to the image and to [Plugins], or new in
    a Matomo release); returns their names.

    Matomo installs a plugin (its install(): tables, columns; then its
    ``version_<plugin>`` option) on the first UI or API request whose config does
    not list it in [PluginsInstalled] (FrontController::init ->
    the plugin manager's installLoadedPlugins). The sidecar's config lists exactly the
    plugins the database has, so one anonymous API request installs the missing
    ones and nothing else; Matomo answers it 401 (no token), which is fine."""
    before = conn.installed_plugins()
    matomo_config.write_installed(settings, before)
    inst = Installer(settings, transport)
    try:
        params = {"module": "API", "method": "API.getMatomoVersion", "format": "json"}
        resp = inst.request("plugins", "GET", params=params)
    finally:
        inst.close()
    if resp.status_code >= 500:
        raise RefusedError(
            f"Matomo failed while installing its plugins (HTTP {resp.status_code}): "
            f"{'; '.join(matomo_errors(resp.text)) or _text(resp.text)[:300]}"
        )
    added = [p for p in conn.installed_plugins() if p not in before]
    logs.event("plugins_installed" if added else "plugins_checked", step="plugins", plugins=added)
    return added
