"""Plugins on genuine Matomo: every pod lists, from its start, the plugins
Matomo loads (files/matomo-plugins.php) -- the same list Matomo's installer
records -- and a plugin activated later through matomo.config.Plugins is
installed in the database by the next hook run, before it is used."""

from __future__ import annotations

import re

from genuinelib import Release, api, login_token, track


def _pod_plugins(user_path) -> list[str]:  # type: ignore[no-untyped-def]
    text = (user_path / "config" / "config.ini.php").read_text()
    return re.findall(r'^PluginsInstalled\[\] = "(\w+)"$', text, re.M)


def test_pods_list_what_matomo_installed(release: Release) -> None:
    release.helm_apply("5.1.2")
    hook = release.run_hook()
    assert hook.exit_code == 0, hook.explain()
    installer_config = (hook.pod.volumes["matomo-config"][0] / "config.ini.php").read_text()
    recorded = re.findall(r'^PluginsInstalled\[\] = "(\w+)"$', installer_config, re.M)
    pod = release.serving_pod()
    assert sorted(_pod_plugins(pod.volumes["matomo-data"][0])) == sorted(recorded)
    assert sorted(recorded) == sorted(release.sql_plugins())


def test_a_plugin_activated_later_is_installed_by_the_next_hook_run(release: Release, trees) -> None:  # type: ignore[no-untyped-def]
    release.helm_apply("5.1.2")
    assert release.run_hook().exit_code == 0
    assert "TagManager" not in release.sql_plugins()

    global_ini = (trees["5.1.2"] / "config" / "global.ini.php").read_text()
    section = global_ini[global_ini.index("\n[Plugins]"):global_ini.index("\n[PluginsInstalled]")]
    defaults = re.findall(r"^Plugins\[\] = (\w+)", section, re.M)
    plugins = ",".join([*defaults, "TagManager"])
    release.helm_apply("5.1.2", "--set", f"matomo.config.Plugins.Plugins={{{plugins}}}")
    hook = release.run_hook()
    assert hook.exit_code == 0, hook.explain()
    installed = [e for e in hook.events() if e.get("event") == "plugins_installed"]
    assert installed and installed[0]["plugins"] == ["TagManager"], hook.log[-3000:]
    assert "TagManager" in release.sql_plugins()
    assert any(t.endswith("tagmanager_container") for t in release.tables())

    pod = release.serving_pod()
    assert "TagManager" in _pod_plugins(pod.volumes["matomo-data"][0])
    token = login_token(pod, release)
    status, body = api(pod, "TagManager.getContainers", token, idSite=1)  # reads its own table
    assert status == 200 and body == [], body
    assert track(pod, 1) == [204]
    assert release.count("log_visit") == 1
    # and a further run installs nothing
    again = release.run_hook()
    assert [e["plugins"] for e in again.events() if e.get("event", "").startswith("plugins_")] == [[]]
