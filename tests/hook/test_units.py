"""Unit tests: redaction, constant query count, lock names, versions, roll logic."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import shutil
import subprocess
from types import SimpleNamespace
from typing import Any

import pytest

from harness.mariadb import MariaDB
from matomo_hook import config as hook_config
from matomo_hook import database, logs, matomo_config, rollout, upgrade
from matomo_hook.errors import ConfigError, RolloutError
from matomo_hook.matomo_config import ini_value

from .conftest import run_hook


def test_redaction_covers_messages_fields_and_tracebacks() -> None:
    redactor = logs.Redactor()
    redactor.add("hunter2-secret", "s4lt-value")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    handler.addFilter(logs.RedactingFilter(redactor))
    logger = logging.getLogger("test-redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        raise ValueError("connect failed with password hunter2-secret")
    except ValueError:
        logger.exception("boom %s", "s4lt-value", extra={"detail": ["hunter2-secret"]})
    out = stream.getvalue()
    assert "hunter2-secret" not in out and "s4lt-value" not in out
    assert out.count("[REDACTED]") >= 3 and "Traceback" in out


def test_state_uses_a_constant_number_of_queries(
    hook_env: dict[str, str], mariadb: MariaDB, mariadb_database: str
) -> None:
    assert run_hook(hook_env, "install").returncode == 0
    settings = hook_config.load(hook_env, frozenset({"db"}))
    conn = database.connect(settings.db)
    try:
        conn.state()
        small = conn.queries
        with mariadb.root(mariadb_database) as root, root.cursor() as cur:
            cur.executemany(
                "INSERT INTO matomo_log_visit (idsite, idvisitor, visit_last_action_time, "
                "config_id, location_ip) VALUES (1, 'abcdefgh', NOW(), 'abcdefgh', 'ip')",
                [()] * 2000,
            )
            for month in ("2024_01", "2024_02", "2024_03"):
                cur.execute(f"CREATE TABLE matomo_archive_numeric_{month} (id INT)")
        before = conn.queries
        st = conn.state()
        assert conn.queries - before == small == 4
        assert st.state == "installed" and st.archive_tables == 3
    finally:
        conn.close()


def test_lock_name_and_like_escape() -> None:
    assert database.lock_name("db", "matomo_") == "matomo-hook:db:matomo_"
    long = database.lock_name("d" * 64, "p" * 40)
    assert len(long) <= 64 and long.startswith("matomo-hook:")
    assert database.lock_name("d" * 64, "p" * 40) != database.lock_name("d" * 64, "q" * 40)
    assert database.like_escape("a_b%!") == "a!_b!%!!"


@pytest.mark.parametrize(
    ("code", "db", "expected"),
    [("5.2.0", "5.1.2", True), ("5.1.2", "5.1.2", False), ("5.1.2", "5.2.0", False),
     ("5.1.2", "5.1.2-rc1", True), ("5.10.0", "5.9.1", True), ("5.2.0-b5", "5.1.2", True)],
)  # fmt: skip
def test_version_compare(code: str, db: str, expected: bool) -> None:
    st = database.State("installed", db, 1, 1, 31, 1, (), 0)
    assert upgrade.needs_update(st, code) is expected


class FakeApps:
    """AppsV1Api with a Deployment controller that needs a few polls."""

    def __init__(self, polls_until_ready: int, replicas: int = 2) -> None:
        self.polls = polls_until_ready
        self.replicas = replicas
        self.patches: list[Any] = []
        self.generation = 1

    def patch_namespaced_deployment(self, name: str, ns: str, body: Any) -> None:
        self.patches.append((name, ns, body))
        self.generation += 1

    def read_namespaced_deployment(self, name: str, ns: str) -> Any:
        self.polls -= 1
        ready = self.polls <= 0
        status = SimpleNamespace(
            observed_generation=self.generation if ready else self.generation - 1,
            updated_replicas=self.replicas if ready else 1,
            replicas=self.replicas if ready else self.replicas + 1,
            available_replicas=self.replicas if ready else 1,
            conditions=[],
        )
        return SimpleNamespace(
            metadata=SimpleNamespace(name=name, generation=self.generation),
            spec=SimpleNamespace(replicas=self.replicas),
            status=status,
        )


def _roll_settings(timeout: str) -> hook_config.Settings:
    return hook_config.load(
        {"MATOMO_HOOK_DEPLOYMENT": "matomo", "MATOMO_HOOK_NAMESPACE": "web",
         "MATOMO_HOOK_ROLLOUT_TIMEOUT": timeout},
        frozenset({"roll"}),
    )  # fmt: skip


def test_roll_patches_restarted_at_and_waits() -> None:
    apps = FakeApps(polls_until_ready=3)
    rollout.roll(_roll_settings("10"), api=apps, poll=0.01)
    (name, ns, body), = apps.patches
    assert (name, ns) == ("matomo", "web")
    stamp = body["spec"]["template"]["metadata"]["annotations"][rollout.RESTARTED_AT]
    assert stamp.endswith("Z") and "T" in stamp
    assert apps.polls <= 0


def test_roll_restarts_every_deployment_then_waits_for_all() -> None:
    """The chart with tracker.enabled: MATOMO_HOOK_DEPLOYMENT=F,F-tracker."""
    apps = FakeApps(polls_until_ready=4)
    settings = hook_config.load(
        {"MATOMO_HOOK_DEPLOYMENT": "matomo, matomo-tracker", "MATOMO_HOOK_NAMESPACE": "web"},
        frozenset({"roll"}),
    )  # fmt: skip
    rollout.roll(settings, api=apps, poll=0.01)
    assert [(n, ns) for n, ns, _ in apps.patches] == [("matomo", "web"), ("matomo-tracker", "web")]
    stamps = {b["spec"]["template"]["metadata"]["annotations"][rollout.RESTARTED_AT] for _, _, b in apps.patches}
    assert len(stamps) == 1


@pytest.mark.parametrize("value", ["", "matomo,", "matomo,matomo", "Matomo", "a b"])
def test_roll_refuses_a_bad_deployment_list(value: str) -> None:
    with pytest.raises(ConfigError, match="MATOMO_HOOK_DEPLOYMENT"):
        hook_config.load({"MATOMO_HOOK_DEPLOYMENT": value}, frozenset({"roll"}))


def test_roll_deadline_exit_5() -> None:
    apps = FakeApps(polls_until_ready=10**6)
    with pytest.raises(RolloutError, match="not complete after"):
        rollout.roll(_roll_settings("0.2"), api=apps, poll=0.05)
    assert RolloutError.exit_code == 5


def test_prefix_wildcards_are_escaped(
    hook_env: dict[str, str], mariadb: MariaDB, mariadb_database: str
) -> None:
    with mariadb.root(mariadb_database) as root, root.cursor() as cur:
        cur.execute("CREATE TABLE matomoXoption (id INT)")  # '_' must not match 'X'
        cur.execute("CREATE TABLE other_app (id INT)")
    res = run_hook(hook_env, "status")
    assert res.returncode == 0
    assert res.state()["state"] == "empty" and res.state()["tables"] == 0


def _state(**kw: Any) -> database.State:
    base: dict[str, Any] = dict(state="partial", version_core=None, superusers=0, sites=0, tables=7,
                                users=0, missing_core_tables=("option",), archive_tables=0)
    return database.State(**{**base, **kw})


@pytest.mark.parametrize("kw,expected", [
    ({}, ["seed", "createMissingTables", "setupSuperUser", "firstWebsiteSetup", "finished"]),
    ({"superusers": 1, "users": 1}, None),  # a person's account: refused
    ({"sites": 1}, None),  # a site: refused
    ({"users": 1}, None),  # a user other than anonymous: refused
    ({"archive_tables": 2, "tables": 9}, None),  # archives: not the installer's own work
    ({"version_core": "5.1.2"}, ["seed", "setupSuperUser", "firstWebsiteSetup", "finished"]),
])  # fmt: skip
def test_plan_finishes_only_the_installers_own_interrupted_table_creation(
    kw: dict[str, Any], expected: list[str] | None
) -> None:
    from matomo_hook.errors import RefusedError
    from matomo_hook.installer import plan

    if expected is None:
        with pytest.raises(RefusedError, match="never drops tables"):
            plan(_state(**kw))
    else:
        assert plan(_state(**kw)) == expected


INI_VALUES = ['dou"ble', '"quoted"', "back\\slash", 'slash-quote\\"', "trailing\\", "", "a$b", "semi;colon"]


def test_a_double_quote_in_the_database_password_is_accepted_and_read_back_by_php() -> None:
    env = {"MATOMO_DATABASE_USERNAME": "u", "MATOMO_DATABASE_PASSWORD": 'pa"ss\\"w', "MATOMO_DATABASE_DBNAME": "db"}
    settings = hook_config.load(env, frozenset({"db"}))
    assert settings.db is not None and settings.db.password == 'pa"ss\\"w'
    php = shutil.which("php")
    if php is None:
        pytest.skip("php is not installed (apt-get install php-cli to run this test)")
    ini = "[s]\n" + "".join(f"k{i} = {ini_value(v)}\n" for i, v in enumerate(INI_VALUES))
    code = "echo json_encode(parse_ini_string(stream_get_contents(STDIN), true));"
    out = subprocess.run([php, "-r", code], input=ini, capture_output=True, text=True, timeout=30, check=True)
    assert json.loads(out.stdout)["s"] == {f"k{i}": v for i, v in enumerate(INI_VALUES)}


def _plugin_settings(tmp_path: Any, activated: str | None) -> hook_config.Settings:
    env = {"MATOMO_DATABASE_USERNAME": "u", "MATOMO_DATABASE_PASSWORD": "pw", "MATOMO_DATABASE_DBNAME": "db"}
    code = tmp_path / "plugins.txt"
    code.write_text("CoreHome\nLogin\nQueuedTracking\n")
    extra: dict[str, Any] = {"salt": "s" * 64, "code_plugins_file": code}
    if activated is not None:
        (tmp_path / "plugins-activated.txt").write_text(activated)
        extra["activated_plugins_file"] = tmp_path / "plugins-activated.txt"
    return dataclasses.replace(hook_config.load(env, frozenset({"db"})), **extra)


def test_the_sidecars_config_activates_the_extra_plugins_the_sidecar_listed(tmp_path: Any) -> None:
    """plugins.extra: the installed config carries the sidecar's whole [Plugins] list (this user
    file replaces the chain's section), so Matomo loads the extra plugins and its
    installLoadedPlugins installs those [PluginsInstalled] lacks; without the file, no [Plugins]."""
    settings = _plugin_settings(tmp_path, "CoreHome\nLogin\nQueuedTracking\n")
    text = matomo_config.installed_config_text(
        settings, matomo_config.code_plugins(settings, ["CoreHome", "Login"]),
        matomo_config.activated_plugins(settings))  # fmt: skip
    assert '[Plugins]\nPlugins[] = "CoreHome"\nPlugins[] = "Login"\nPlugins[] = "QueuedTracking"\n' in text
    assert '[PluginsInstalled]\nPluginsInstalled[] = "CoreHome"\nPluginsInstalled[] = "Login"\n' in text
    plain = _plugin_settings(tmp_path, None)
    assert "[Plugins]" not in matomo_config.installed_config_text(
        plain, ["CoreHome"], matomo_config.activated_plugins(plain))


@pytest.mark.parametrize("content", ["", "CoreHome\n../x\n"])
def test_an_unusable_activated_plugins_file_is_a_config_error(tmp_path: Any, content: str) -> None:
    settings = _plugin_settings(tmp_path, content)
    with pytest.raises(ConfigError, match="MATOMO_CODE_ACTIVATED_PLUGINS_FILE.*matomo-installer"):
        matomo_config.activated_plugins(settings)
