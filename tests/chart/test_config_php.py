"""The rendered common.config.ini.php (both keys of Secret F-config) parses
with PHP's INI parser, which Matomo's IniReader uses, into the values the
chart promises. Skipped when php is not installed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from chartlib import CHART, KUBE_VERSION, VALUES_FILES, php_parse_ini, run_helm


def _parse(php: str, text: str, tmp_path: Path, name: str) -> dict:
    f = tmp_path / name
    f.write_text(text)
    return php_parse_ini(php, f)


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=lambda p: str(p.relative_to(CHART.parents[1])))
def test_managed_config_parses_in_php(helm: str, php: str, tmp_path: Path, values_file: Path) -> None:
    result = run_helm(helm, "template", "matomo", str(CHART), "--kube-version", KUBE_VERSION, "-f", str(values_file),
                      "-s", "templates/matomo/config-secret.yaml")
    assert result.returncode == 0, result.stderr
    data = yaml.safe_load(result.stdout)["stringData"]
    values = yaml.safe_load(values_file.read_text())
    serving = _parse(php, data["common.config.ini.php"], tmp_path, "common.ini")
    hook = _parse(php, data["hook.common.config.ini.php"], tmp_path, "hook.ini")
    for cfg in (serving, hook):
        db = cfg["database"]
        assert db["adapter"] == "PDO\\MYSQL"
        assert db["charset"] == "utf8mb4" and db["collation"] == "utf8mb4_general_ci"
        assert db["tables_prefix"] == "matomo_"
        assert "password" not in db
        assert "salt" not in cfg["General"]
        assert cfg["General"]["multi_server_environment"] == "1"
        assert cfg["General"]["session_save_handler"] == "dbtable"
        assert cfg["General"]["trusted_hosts"]
    assert serving["General"]["enable_installer"] == "0"
    assert hook["General"]["enable_installer"] == "1"
    assert "127.0.0.1:8080" in hook["General"]["trusted_hosts"]
    mode = values.get("database", {}).get("mode", "embedded")
    assert serving["database"]["host"] == {"cloudsql": "127.0.0.1", "embedded": "matomo-mariadb"}.get(
        mode, values.get("database", {}).get("external", {}).get("host"))
    if values.get("ingress", {}).get("enabled"):
        assert serving["General"]["proxy_client_headers"] == ["HTTP_X_FORWARDED_FOR"]
        assert set(values["ingress"]["hosts"]) <= set(serving["General"]["trusted_hosts"])
    if values.get("ingress", {}).get("tls"):
        assert serving["General"]["assume_secure_protocol"] == "1"
    queue = values.get("queue", {})
    assert "QueuedTracking" not in hook, "the hook's installer sidecar processes no queue"
    if not queue.get("enabled"):
        assert "QueuedTracking" not in serving
        return
    qt = serving["QueuedTracking"]
    assert "redisPassword" not in qt, "the Redis password belongs in the pod's local config.ini.php only"
    assert qt["queueEnabled"] == "1"
    assert qt["numQueueWorkers"] == str(queue.get("numQueueWorkers", 1))
    assert qt["numRequestsToProcess"] == str(queue.get("numRequestsToProcess", 25))
    # workers on (the default): the trackers never process the queue
    assert qt["processDuringTrackingRequest"] == "0"
    redis = queue.get("redis", {})
    if redis.get("mode", "embedded") == "embedded":
        assert (qt["redisHost"], qt["redisPort"]) == ("matomo-redis", "6379")
    else:
        assert (qt["redisHost"], qt["redisPort"]) == (redis["host"], str(redis.get("port", 6379)))
    assert float(qt["redisTimeout"]) == float(redis.get("timeout", 2.0)) > 0
    assert qt["redisDatabase"] == str(redis.get("database", 0))
    assert qt["useWhatRedisBackendType"] == "1"
