"""charts/matomo/files/matomo-init.sh: the init container of the Matomo pods.

Run with /bin/sh: it runs the code where it is (MATOMO_CODE_DIR, never
copied nor written), writes Matomo's writable files into the user path
(MATOMO_USER_PATH: config/ and tmp/, the local config.ini.php with its header,
[database] password, [General] salt, [PluginsInstalled] as Matomo's own code
lists the plugins: that part runs genuine Matomo, from
tests/harness/matomo_release.py), copies only the static files into
MATOMO_STATIC_DIR when set (the fpm variant's nginx), and refuses values that
config.ini.php cannot hold, naming the variable and never printing the secret
(those cases stop before any code is read, so a fake tree serves them). With
the queue on, the Redis password lands in [QueuedTracking], where genuine
Matomo's config chain merges it with the managed section.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml
from chartlib import CHART, KUBE_VERSION, php_parse_ini, run_helm
from harness.passwords import ACCEPTED

SCRIPT = CHART / "files" / "matomo-init.sh"


@pytest.fixture()
def tree(tmp_path: Path) -> tuple[Path, Path]:
    src = tmp_path / "src"
    (src / "core").mkdir(parents=True)
    (src / "core" / "Version.php").write_text("<?php const VERSION = '5.1.2';\n")
    (src / "config").mkdir()
    (src / "config" / "global.ini.php").write_text("[General]\n")
    (src / "index.php").write_text("<?php\n")
    dst = tmp_path / "data"
    dst.mkdir()
    return src, dst


@pytest.fixture()
def genuine(genuine_src: Path, tmp_path: Path) -> tuple[Path, Path]:
    dst = tmp_path / "data"
    dst.mkdir()
    return genuine_src, dst


def run(src: Path, dst: Path, **env: str) -> subprocess.CompletedProcess:
    full = {"PATH": os.environ["PATH"], "MATOMO_CODE_DIR": str(src), "MATOMO_USER_PATH": str(dst), **env}
    return subprocess.run(["/bin/sh", str(SCRIPT)], env=full, capture_output=True, text=True, timeout=60, check=False)


def snapshot(tree: Path) -> dict[str, tuple[int, int, int]]:
    """Every entry of `tree` with its mode, size and mtime: any write into it shows."""
    out = {}
    for dirpath, dirs, files in os.walk(tree):
        for name in dirs + files:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            out[os.path.relpath(path, tree)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def listing(tree: Path) -> list[str]:
    return sorted(str(p.relative_to(tree)) for p in tree.rglob("*"))


# the files nginx serves as files (files/nginx/default.conf), so the ones matomo-init.sh copies for it
STATIC_SUFFIXES = {".gif", ".ico", ".jpg", ".png", ".svg", ".js", ".css", ".htm", ".html", ".mp3", ".mp4",
                   ".wav", ".ogg", ".avi", ".ttf", ".eot", ".woff", ".woff2"}


def test_writes_the_local_config_into_the_user_path_and_copies_no_code(genuine) -> None:
    src, dst = genuine
    common = dst.parent / "common.config.ini.php"
    common.write_text("; <?php exit; ?>\n[General]\n")
    before = snapshot(src)
    result = run(src, dst, MATOMO_DATABASE_PASSWORD="p@ss w0rd$x\\y", MATOMO_SALT="s" * 64,
                 MATOMO_COMMON_CONFIG=str(common))
    assert result.returncode == 0, result.stderr
    # Matomo's writable files only: no index.php, core/, plugins/ or global.ini.php in the user path
    assert listing(dst) == ["config", "config/common.config.ini.php", "config/config.ini.php", "tmp"]
    assert (dst / "config" / "common.config.ini.php").read_text() == common.read_text()
    # the code is read where it is, never written (the image's tree, read-only in the pods)
    assert snapshot(src) == before
    config = (dst / "config" / "config.ini.php").read_text()
    assert config.startswith("; <?php exit; ?> DO NOT REMOVE THIS LINE\n")
    assert '[database]\npassword = "p@ss w0rd$x\\\\y"\n' in config, "a backslash is written doubled"
    assert f'[General]\nsalt = "{"s" * 64}"\n' in config
    # the plugins Matomo 5.1.2 loads by default (its installer records the same list)
    plugins = [line.split('"')[1] for line in config.splitlines() if line.startswith("PluginsInstalled[]")]
    assert len(plugins) == 64 and {"CoreHome", "Actions", "Referrers", "UserCountry", "Goals"} <= set(plugins)
    assert oct((dst / "config" / "config.ini.php").stat().st_mode & 0o777) == "0o600"
    assert "p@ss" not in result.stderr + result.stdout
    assert not list((dst / "config").glob(".config.ini.php.*"))
    assert "static" not in result.stderr, "no static copy without MATOMO_STATIC_DIR"


def test_the_plugins_follow_the_config_in_the_user_path(genuine) -> None:
    """Matomo's code reads the config from the user path (the second argument of
    matomo-plugins.php): a plugin the managed config activates is listed."""
    src, dst = genuine
    common = dst.parent / "common.config.ini.php"
    common.write_text('; <?php exit; ?>\n[Plugins]\nPlugins[] = "DBStats"\n')
    result = run(src, dst, MATOMO_DATABASE_PASSWORD="pw", MATOMO_SALT="s" * 64, MATOMO_COMMON_CONFIG=str(common))
    assert result.returncode == 0, result.stderr
    config = (dst / "config" / "config.ini.php").read_text()
    plugins = [line.split('"')[1] for line in config.splitlines() if line.startswith("PluginsInstalled[]")]
    assert "DBStats" in plugins and len(plugins) == 65, plugins


def test_copies_only_the_static_files_for_nginx(genuine) -> None:
    """The fpm variant: nginx (another image, no Matomo code) serves the static files
    matomo-init.sh copies into MATOMO_STATIC_DIR, keeping their paths; no PHP file, no
    config, readable by nginx's user (another uid than Matomo's)."""
    src, dst = genuine
    static = dst.parent / "static"
    static.mkdir()
    before = snapshot(src)
    result = run(src, dst, MATOMO_DATABASE_PASSWORD="pw", MATOMO_SALT="s" * 64, MATOMO_STATIC_DIR=str(static))
    assert result.returncode == 0, result.stderr
    files = [p for p in static.rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix == ".php" or ".php" in p.name], "no PHP file for nginx"
    assert not [p for p in files if p.suffix not in STATIC_SUFFIXES and p != static / "robots.txt"], \
        "only what nginx serves as a file"
    assert not (static / "config").exists() and not (static / "tmp").exists()
    # the readiness file, the trackers and the UI's assets, with the code's paths and contents
    for name in ("matomo.js", "piwik.js", "js/piwik.js", "plugins/Morpheus/images/logo.svg", "robots.txt"):
        assert (static / name).read_bytes() == (src / name).read_bytes(), name
    expected = sorted([str(p.relative_to(src)) for p in src.rglob("*")
                       if p.is_file() and p.suffix in STATIC_SUFFIXES] + ["robots.txt"])
    assert sorted(str(p.relative_to(static)) for p in files) == expected
    assert all(p.stat().st_mode & 0o444 == 0o444 for p in files), "nginx reads them as another user"
    assert all(p.stat().st_mode & 0o555 == 0o555 for p in static.rglob("*") if p.is_dir())
    # the user path still holds Matomo's writable files only, and the code is untouched
    assert listing(dst) == ["config", "config/config.ini.php", "tmp"]
    assert snapshot(src) == before


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_every_accepted_password_reads_back_in_php(genuine, php: str, name: str) -> None:
    """What PHP's INI parser (Matomo's IniReader) reads from the written config is the Secret's value."""
    src, dst = genuine
    password = ACCEPTED[name]
    result = run(src, dst, MATOMO_DATABASE_PASSWORD=password, MATOMO_SALT=password)
    assert result.returncode == 0, result.stderr
    config = php_parse_ini(php, dst / "config" / "config.ini.php")
    assert config["database"]["password"] == password
    assert config["General"]["salt"] == password


def test_a_restarted_init_container_writes_the_config_again(genuine) -> None:
    """The kubelet restarts a failed init container in the same pod, on the same emptyDir: the
    copy of the managed config it made (read-only, the Secret's mode) must not stop the rerun."""
    src, _ = genuine
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv to run the script as www-data (root ignores file modes)")
    work = Path(tempfile.mkdtemp(prefix="matomo-init-"))  # a folder www-data can reach
    try:
        work.chmod(0o755)
        dst = work / "data"
        static = work / "static"
        for d in (dst, static):  # emptyDirs, Matomo's user's; the code is root's, not writable for it
            d.mkdir()
            os.chown(d, 33, 33)
        common = work / "common.config.ini.php"
        common.write_text("[General]\n")
        common.chmod(0o444)  # the Secret's file as the pod sees it; copied with its mode, read-only
        env = {"PATH": os.environ["PATH"], "MATOMO_CODE_DIR": str(src), "MATOMO_USER_PATH": str(dst),
               "MATOMO_STATIC_DIR": str(static),
               "MATOMO_DATABASE_PASSWORD": "pw", "MATOMO_SALT": "s" * 64, "MATOMO_COMMON_CONFIG": str(common)}
        for attempt in range(2):
            result = subprocess.run([setpriv, "--reuid=33", "--regid=33", "--clear-groups", "/bin/sh", str(SCRIPT)],
                                    env=env, capture_output=True, text=True, timeout=120, check=False)
            assert result.returncode == 0, f"run {attempt + 1}: {result.stderr}"
            assert (dst / "config" / "config.ini.php").stat().st_uid == 33
            assert (static / "matomo.js").is_file()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_empty_password_is_allowed_for_iam_authentication(genuine) -> None:
    src, dst = genuine
    result = run(src, dst, MATOMO_DATABASE_PASSWORD="", MATOMO_SALT="abc")
    assert result.returncode == 0, result.stderr
    assert 'password = ""' in (dst / "config" / "config.ini.php").read_text()


@pytest.mark.parametrize("variable", ["MATOMO_DATABASE_PASSWORD", "MATOMO_SALT"])
@pytest.mark.parametrize("bad,word", [("se\ncret", "newline"), ("se\rcret", "newline"), ("se${HOME}cret", "${")])
def test_refuses_values_config_ini_cannot_hold(tree, variable: str, bad: str, word: str) -> None:
    src, dst = tree
    env = {"MATOMO_DATABASE_PASSWORD": "good", "MATOMO_SALT": "good", variable: bad}
    result = run(src, dst, **env)
    assert result.returncode == 1
    assert variable in result.stderr and word in result.stderr
    assert "cret" not in result.stderr + result.stdout
    assert list(dst.iterdir()) == [], "must fail before writing anything"


@pytest.mark.parametrize("variable", ["MATOMO_DATABASE_PASSWORD", "MATOMO_SALT"])
def test_refuses_a_missing_variable(tree, variable: str) -> None:
    src, dst = tree
    env = {"MATOMO_DATABASE_PASSWORD": "good", "MATOMO_SALT": "good"}
    del env[variable]
    result = run(src, dst, **env)
    assert result.returncode == 1
    assert variable in result.stderr


def test_refuses_an_empty_salt(tree) -> None:
    src, dst = tree
    result = run(src, dst, MATOMO_DATABASE_PASSWORD="x", MATOMO_SALT="")
    assert result.returncode == 1
    assert "MATOMO_SALT is empty" in result.stderr


def test_a_tree_matomo_cannot_boot_fails_the_pod_start(tree) -> None:
    """No plugin list means a tracker that stores nothing: the pod must not start."""
    src, dst = tree
    result = run(src, dst, MATOMO_DATABASE_PASSWORD="x", MATOMO_SALT="y")
    assert result.returncode == 1
    assert "could not list Matomo's plugins" in result.stderr


def test_fails_without_matomo_code(tmp_path: Path) -> None:
    result = run(tmp_path / "nothing", tmp_path, MATOMO_DATABASE_PASSWORD="x", MATOMO_SALT="y")
    assert result.returncode == 1
    assert "no Matomo code" in result.stderr


PHP_CASES = ["plain", "p@ss w0rd", "a$HOME", "trailing\\", "a\\nb", "two\\\\slashes", "semi;colon", "it's", "a=b&c|d~e!f^g(h){i}%j",
             'dou"ble', '"quoted"', 'slash-quote\\"', "$ {x}", "a$"]


@pytest.mark.parametrize("value", PHP_CASES)
def test_php_reads_back_exactly_what_was_given(php: str, genuine, value: str) -> None:
    """PHP's INI parser (what Matomo's IniReader uses) reads the written
    password and salt back unchanged."""
    src, dst = genuine
    result = run(src, dst, MATOMO_DATABASE_PASSWORD=value, MATOMO_SALT="salt-" + value)
    assert result.returncode == 0, result.stderr
    cfg = php_parse_ini(php, dst / "config" / "config.ini.php")
    assert [cfg["database"]["password"], cfg["General"]["salt"]] == [value, "salt-" + value]


def _section(config: str, key: str) -> list[str]:
    return [line.split('"')[1] for line in config.splitlines() if line.startswith(f"{key}[]")]


def _global_plugins(php: str, src: Path) -> list[str]:
    """Matomo 5.1.2's own [Plugins] list (config/global.ini.php), read with PHP's INI parser."""
    return php_parse_ini(php, src / "config" / "global.ini.php")["Plugins"]["Plugins"]


@pytest.fixture()
def plugin_dir(queuedtracking: Path, tmp_path: Path) -> Path:
    """A folder of MATOMO_PLUGIN_DIRS holding the genuine QueuedTracking (as the emptyDir
    matomo-plugins does in the pods, the init container plugin-<i> having copied it)."""
    folder = tmp_path / "matomo-plugins"
    shutil.copytree(queuedtracking, folder / "QueuedTracking")
    return folder


def test_an_extra_plugin_is_activated_and_listed_as_installed(php, genuine, plugin_dir) -> None:
    """plugins.extra: Matomo's own [Plugins] list with the plugin added (the local file replaces
    the section: a partial list elsewhere is merged by index), and [PluginsInstalled] as Matomo's
    code lists the plugins it then loads, found through MATOMO_PLUGIN_DIRS."""
    src, dst = genuine
    result = run(src, dst, MATOMO_DATABASE_PASSWORD="pw", MATOMO_SALT="s" * 64,
                 MATOMO_PLUGIN_DIRS=f"{plugin_dir};../../../matomo-plugins", MATOMO_EXTRA_PLUGINS="QueuedTracking")
    assert result.returncode == 0, result.stderr
    assert "extra: QueuedTracking" in result.stderr
    config = (dst / "config" / "config.ini.php").read_text()
    ini = php_parse_ini(php, dst / "config" / "config.ini.php")
    assert ini["Plugins"]["Plugins"] == _global_plugins(php, src) + ["QueuedTracking"]
    installed = _section(config, "PluginsInstalled")
    assert "QueuedTracking" in installed and len(installed) == 65, installed
    assert config.index("[Plugins]") < config.index("[PluginsInstalled]")


def test_an_extra_plugin_keeps_the_users_plugins_list(php, genuine, plugin_dir) -> None:
    """matomo.config.Plugins (the managed config's whole list, as README says) works as before:
    its plugins stay activated, the extra one is added once even when the user listed it too."""
    src, dst = genuine
    common = dst.parent / "common.config.ini.php"
    body = "".join(f'Plugins[] = "{p}"\n' for p in _global_plugins(php, src) + ["DBStats", "QueuedTracking"])
    common.write_text(f"; <?php exit; ?>\n[Plugins]\n{body}")
    result = run(src, dst, MATOMO_DATABASE_PASSWORD="pw", MATOMO_SALT="s" * 64, MATOMO_COMMON_CONFIG=str(common),
                 MATOMO_PLUGIN_DIRS=f"{plugin_dir};../../../matomo-plugins", MATOMO_EXTRA_PLUGINS="QueuedTracking")
    assert result.returncode == 0, result.stderr
    ini = php_parse_ini(php, dst / "config" / "config.ini.php")
    assert ini["Plugins"]["Plugins"] == _global_plugins(php, src) + ["DBStats", "QueuedTracking"]
    installed = _section((dst / "config" / "config.ini.php").read_text(), "PluginsInstalled")
    assert {"DBStats", "QueuedTracking"} <= set(installed) and len(installed) == 66, installed


def test_an_extra_plugin_matomo_cannot_find_stops_the_pod(genuine, tmp_path: Path) -> None:
    """A wrong path in the plugin's image (or subPath of its volume): the pod does not start, and
    the log names the plugin, plugins.extra and where Matomo looked."""
    src, dst = genuine
    empty = tmp_path / "matomo-plugins"
    empty.mkdir()
    result = run(src, dst, MATOMO_DATABASE_PASSWORD="pw", MATOMO_SALT="s" * 64,
                 MATOMO_PLUGIN_DIRS=f"{empty};../../../matomo-plugins", MATOMO_EXTRA_PLUGINS="QueuedTracking")
    assert result.returncode == 1
    assert "plugin QueuedTracking (plugins.extra)" in result.stderr and str(empty) in result.stderr, result.stderr
    assert "pw" not in result.stderr


def test_an_extra_plugin_the_image_has_too_is_named_in_the_log(genuine, plugin_dir) -> None:
    """A plugin of plugins.extra that the image also has under plugins/ (here DBStats, bundled and
    off by default): Matomo loads the image's (core plugins/ first); the pod starts, activates it
    and says which copy runs."""
    src, dst = genuine
    result = run(src, dst, MATOMO_DATABASE_PASSWORD="pw", MATOMO_SALT="s" * 64,
                 MATOMO_PLUGIN_DIRS=f"{plugin_dir};../../../matomo-plugins", MATOMO_EXTRA_PLUGINS="DBStats")
    assert result.returncode == 0, result.stderr
    assert f"plugin DBStats (plugins.extra) is also in the image ({src}/plugins/DBStats)" in result.stderr
    config = (dst / "config" / "config.ini.php").read_text()
    assert "DBStats" in _section(config, "Plugins") and "DBStats" in _section(config, "PluginsInstalled")


@pytest.mark.parametrize("value", PHP_CASES)
def test_the_queue_redis_password_reads_back_in_php(php: str, genuine, value: str) -> None:
    """queue.enabled with a Redis password: MATOMO_QUEUE_REDIS_PASSWORD (the init container's
    secretKeyRef) becomes [QueuedTracking] redisPassword of the local config, read back unchanged."""
    src, dst = genuine
    result = run(src, dst, MATOMO_DATABASE_PASSWORD="db", MATOMO_SALT="salt", MATOMO_QUEUE_REDIS_PASSWORD=value)
    assert result.returncode == 0, result.stderr
    cfg = php_parse_ini(php, dst / "config" / "config.ini.php")
    assert cfg["QueuedTracking"] == {"redisPassword": value}
    assert cfg["database"]["password"] == "db" and cfg["PluginsInstalled"]["PluginsInstalled"]
    assert value not in result.stderr + result.stdout or len(value) < 3


def test_no_queue_password_no_queue_section(genuine) -> None:
    src, dst = genuine
    result = run(src, dst, MATOMO_DATABASE_PASSWORD="db", MATOMO_SALT="salt")
    assert result.returncode == 0, result.stderr
    assert "QueuedTracking" not in (dst / "config" / "config.ini.php").read_text()


@pytest.mark.parametrize("bad,word", [("se\ncret", "newline"), ("se\rcret", "newline"), ("se${HOME}cret", "${"),
                                      ("", "empty")])
def test_refuses_a_queue_redis_password_config_ini_cannot_hold(tree, bad: str, word: str) -> None:
    src, dst = tree
    result = run(src, dst, MATOMO_DATABASE_PASSWORD="good", MATOMO_SALT="good", MATOMO_QUEUE_REDIS_PASSWORD=bad)
    assert result.returncode == 1
    assert "MATOMO_QUEUE_REDIS_PASSWORD" in result.stderr and word in result.stderr
    assert "cret" not in result.stderr + result.stdout
    assert list(dst.iterdir()) == [], "must fail before writing anything"


READ_QUEUE_SECTION = r"""<?php
define('PIWIK_INCLUDE_PATH', $argv[1]);
define('PIWIK_USER_PATH', $argv[2]);
define('PIWIK_DOCUMENT_ROOT', $argv[1]);
require $argv[1] . '/core/bootstrap.php';
$environment = new \Piwik\Application\Environment('cli');
$environment->init();
// what QueuedTracking's SystemSetting::getValue() reads: Config::getInstance()->QueuedTracking[<setting>]
echo json_encode(\Piwik\Config::getInstance()->QueuedTracking);
"""


def test_matomo_sees_the_managed_queue_settings_with_the_local_password(helm: str, php: str, genuine,
                                                                         tmp_path: Path) -> None:
    """Genuine Matomo's config chain merges the pod's local [QueuedTracking] redisPassword key by key
    with the rendered common.config.ini.php's [QueuedTracking]: the plugin gets both."""
    src, dst = genuine
    r = run_helm(helm, "template", "matomo", str(CHART), "--kube-version", KUBE_VERSION,
                 "--set", "queue.enabled=true", "--set", "queue.pluginInImage=true", "--set", "queue.numQueueWorkers=4",
                 "-s", "templates/matomo/config-secret.yaml")
    assert r.returncode == 0, r.stderr
    common = tmp_path / "common.config.ini.php"
    common.write_text(yaml.safe_load(r.stdout)["stringData"]["common.config.ini.php"])
    result = run(src, dst, MATOMO_DATABASE_PASSWORD="db", MATOMO_SALT="salt", MATOMO_COMMON_CONFIG=str(common),
                 MATOMO_QUEUE_REDIS_PASSWORD='q"ueue\\pw')
    assert result.returncode == 0, result.stderr
    script = tmp_path / "read.php"
    script.write_text(READ_QUEUE_SECTION)
    out = subprocess.run([php, str(script), str(src), str(dst)], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    section = json.loads(out.stdout)
    assert section["redisPassword"] == 'q"ueue\\pw'
    # Matomo's IniReader types the values; the plugin casts each to its setting's type (settype)
    assert (section["redisHost"], str(section["redisPort"]), str(section["numQueueWorkers"])) == ("matomo-redis", "6379", "4")
    assert str(section["queueEnabled"]) == "1" and str(section["processDuringTrackingRequest"]) == "0"
