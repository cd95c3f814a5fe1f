"""Plugins on genuine Matomo: every pod lists, from its start, the plugins
Matomo loads (files/matomo-plugins.php) -- the same list Matomo's installer
records -- and a plugin activated later through matomo.config.Plugins is
installed in the database by the next hook run, before it is used."""

from __future__ import annotations

import json
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


def _section(config: str, key: str) -> list[str]:
    return re.findall(rf'^{key}\[\] = "(\w+)"$', config, re.M)


def test_a_plugin_not_in_the_image_is_installed_once_and_loaded_by_every_pod(
        release: Release, queuedtracking: str) -> None:
    """plugins.extra with the genuine QueuedTracking in a plugin image: the hook's pod copies it
    (init container plugin-0), its Matomo sidecar finds it through MATOMO_PLUGIN_DIRS and the hook
    installs it in the database once; a serving pod activates and lists it from its start, Matomo
    there loads it from the read-only folder, and a hit is still stored (the queue is off by
    default); the archiver's pod does the same and archives; a second hook run installs nothing
    and changes no row."""
    image = queuedtracking.rsplit(":", 1)
    extra = [{"name": "QueuedTracking", "image": {"repository": image[0], "tag": image[1], "pullPolicy": "Never"}}]
    release.helm_apply("5.1.2", "--set-json", f"plugins.extra={json.dumps(extra)}")

    hook = release.run_hook()
    assert hook.exit_code == 0, hook.explain()
    assert "plugin-copy: copied /plugins/QueuedTracking" in hook.pod.logs("plugin-0")
    installed = [e["plugins"] for e in hook.events() if e.get("event") == "plugins_installed"]
    assert installed == [["QueuedTracking"]], hook.log[-3000:]
    assert "QueuedTracking" in release.sql_plugins()
    assert release.option("version_QueuedTracking") == "5.1.1"
    assert f"{release.prefix}queuedtracking_queue" in release.tables()
    assert not [e for e in hook.events() if e.get("event") == "plugins_missing"], hook.log[-3000:]

    pod = release.serving_pod()
    assert "plugin-copy: copied /plugins/QueuedTracking" in pod.logs("plugin-0")
    config = (pod.volumes["matomo-data"][0] / "config" / "config.ini.php").read_text()
    activated = _section(config, "Plugins")
    assert activated[-1] == "QueuedTracking" and "CoreHome" in activated and len(activated) == 65, activated
    assert "QueuedTracking" in _section(config, "PluginsInstalled")
    # the plugin's folder is read-only in the serving container
    done = pod.exec("matomo", ["sh", "-c", "touch /var/lib/matomo-plugins/QueuedTracking/x 2>/dev/null; "
                               "echo $?; echo $MATOMO_PLUGIN_DIRS"])
    status, dirs = done.stdout.split()
    assert status != "0" and dirs == "/var/lib/matomo-plugins;../../../var/lib/matomo-plugins", done
    # Matomo in the serving pod loads it: its system settings are there
    token = login_token(pod, release)
    status_code, settings = api(pod, "CorePluginsAdmin.getSystemSettings", token)
    assert status_code == 200 and "QueuedTracking" in [s["pluginName"] for s in settings], settings
    assert track(pod, 1) == [204]
    assert release.count("log_visit") == 1

    # the archiver's pod copies, activates and lists it too, and archives with it loaded
    archiver = release.pod("archiver", release.cronjob()["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    codes = archiver.run_to_completion(600)
    assert codes["archiver"] == 0, archiver.logs("archiver")[-3000:]
    archiver_config = (archiver.volumes["matomo-data"][0] / "config" / "config.ini.php").read_text()
    assert _section(archiver_config, "Plugins") == activated
    assert "QueuedTracking" in _section(archiver_config, "PluginsInstalled")

    before = release.checksums()
    again = release.run_hook()
    assert again.exit_code == 0, again.explain()
    assert [e["plugins"] for e in again.events() if e.get("event", "").startswith("plugins_")] == [[]]
    assert release.checksums() == before


def test_a_plugin_added_with_an_upgrade_of_matomo_is_installed_after_core_update(
        release: Release, queuedtracking: str) -> None:
    """One `helm upgrade` from 5.0.3 to 5.1.2 that also adds the plugin to plugins.extra: the
    sidecar's config activates it during core:update (which upgrades only what the database has),
    then the plugin step installs it; the new pods load it and store a hit."""
    release.helm_apply("5.0.3", "--set", "database.schema=Mysql")
    assert release.run_hook().exit_code == 0
    image = queuedtracking.rsplit(":", 1)
    extra = [{"name": "QueuedTracking", "image": {"repository": image[0], "tag": image[1], "pullPolicy": "Never"}}]
    release.helm_apply("5.1.2", "--set", "database.schema=Mysql", "--set-json", f"plugins.extra={json.dumps(extra)}")
    hook = release.run_hook()
    assert hook.exit_code == 0, hook.explain()
    events = [e["event"] for e in hook.events()]
    assert events.index("upgraded") < events.index("plugins_installed"), events
    assert [e["plugins"] for e in hook.events() if e["event"] == "plugins_installed"] == [["QueuedTracking"]]
    assert release.option("version_core") == "5.1.2"
    assert release.option("version_QueuedTracking") == "5.1.1"
    assert f"{release.prefix}queuedtracking_queue" in release.tables()
    pod = release.serving_pod()
    assert "QueuedTracking" in _pod_plugins(pod.volumes["matomo-data"][0])
    assert track(pod, 1) == [204]
    assert release.count("log_visit") == 1
