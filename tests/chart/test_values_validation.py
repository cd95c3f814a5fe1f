"""Values that would fail later fail at render (issue 11, point 5).

Every value that becomes a Kubernetes object name, a cron schedule, a time
zone, a URL, or one of a pair of bounds is checked by values.schema.json or
by a template `fail` (templates/_helpers-validate.tpl). Each case is fed to
`helm lint --strict` and `helm template`: both must fail, and the output must
name the value. VALID shows the checks do not refuse what Kubernetes and
Matomo accept.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from chartlib import CHART, KUBE_VERSION, run_helm

_PLUGIN_IMAGE = {"repository": "registry.example.com/matomo-queuedtracking", "tag": "5.1.1"}

# family -> case -> (values, words the error must contain, release name)
REJECTED: dict[str, dict[str, tuple[dict, list[str]]]] = {
    "name": {
        "fullnameOverride-uppercase": ({"fullnameOverride": "Matomo"}, ["fullnameOverride"]),
        "fullnameOverride-starts-with-digit": ({"fullnameOverride": "1matomo"}, ["fullnameOverride"]),
        "nameOverride-underscore": ({"nameOverride": "my_matomo"}, ["nameOverride"]),
        "salt-existingSecret": ({"matomo": {"salt": {"existingSecret": "My Salt"}}}, ["matomo.salt.existingSecret"]),
        "superuser-existingSecret": ({"matomo": {"superuser": {"existingSecret": "admin_pw"}}},
                                     ["matomo.superuser.existingSecret"]),
        "database-existingSecret": ({"database": {"existingSecret": "-db"}}, ["database.existingSecret"]),
        "secret-key": ({"database": {"existingSecret": "db", "existingSecretKey": "pass word"}},
                       ["database.existingSecretKey"]),
        "credentials-secret": ({"database": {"cloudsql": {"credentials": {"existingSecret": "Key"}}}},
                               ["database.cloudsql.credentials.existingSecret"]),
        "serviceAccount-name": ({"serviceAccount": {"create": False, "name": "My SA"}}, ["serviceAccount.name"]),
        "imagePullSecret": ({"imagePullSecrets": [{"name": "Reg_Cred"}]}, ["imagePullSecrets"]),
        "storageClass": ({"database": {"embedded": {"persistence": {"storageClass": "fast SSD"}}}},
                         ["database.embedded.persistence.storageClass"]),
        "tls-secretName": ({"ingress": {"enabled": True, "hosts": ["a.example.org"],
                                        "tls": [{"secretName": "TLS", "hosts": ["a.example.org"]}]}},
                           ["ingress.tls"]),
        "ingress-className": ({"ingress": {"className": "NGINX"}}, ["ingress.className"]),
        "priorityClassName": ({"priorityClassName": "High"}, ["priorityClassName"]),
        "salt-token-key": ({"matomo": {"salt": {"existingSecretTokenKey": "api token"}}},
                           ["matomo.salt.existingSecretTokenKey"]),
        "salt-token-key-is-the-salt-key": ({"matomo": {"salt": {"existingSecret": "old", "existingSecretKey": "s",
                                                                 "existingSecretTokenKey": "s"}}},
                                           ["matomo.salt.existingSecretTokenKey", '"s"', "key of its own"]),
        "salt-token-key-is-the-generated-salt-key": ({"matomo": {"salt": {"existingSecretTokenKey": "salt"}}},
                                                     ["matomo.salt.existingSecretTokenKey", '"salt"']),
        "salt-accept-unchecked-string": ({"matomo": {"salt": {"acceptUnchecked": "yes"}}},
                                         ["matomo.salt.acceptUnchecked"]),
    },
    "cron": {
        "four-fields": ({"archiver": {"schedule": "5 * * *"}}, ["archiver.schedule"]),
        "minute-out-of-range": ({"archiver": {"schedule": "61 * * * *"}}, ["archiver.schedule", "minute 61"]),
        "hour-out-of-range": ({"archiver": {"schedule": "0 24 * * *"}}, ["archiver.schedule", "hour 24"]),
        "zero-step": ({"archiver": {"schedule": "*/0 * * * *"}}, ["archiver.schedule", "step"]),
        "bad-month-name": ({"archiver": {"schedule": "0 0 1 FOO *"}}, ["archiver.schedule", "FOO"]),
        "timezone-in-schedule": ({"archiver": {"schedule": "TZ=UTC 5 * * * *"}}, ["archiver.schedule"]),
        "unknown-macro": ({"archiver": {"schedule": "@fortnightly"}}, ["archiver.schedule"]),
    },
    "timezone": {
        "archiver-space": ({"archiver": {"timeZone": "Europe Berlin"}}, ["archiver.timeZone"]),
        "archiver-Local": ({"archiver": {"timeZone": "Local"}}, ["archiver.timeZone"]),
        "archiver-path": ({"archiver": {"timeZone": "../etc/passwd"}}, ["archiver.timeZone"]),
        "site-lowercase": ({"matomo": {"site": {"timezone": "berlin"}}}, ["matomo.site.timezone"]),
        "site-offset-too-large": ({"matomo": {"site": {"timezone": "UTC+15"}}}, ["matomo.site.timezone"]),
        # the pattern lets these through; the render refuses what Matomo does not offer (files/timezones.txt)
        "site-not-on-earth": ({"matomo": {"site": {"timezone": "Mars/Olympus"}}},
                              ["matomo.site.timezone", '"Mars/Olympus"', "zone.tab", '"Europe/Berlin"', '"UTC"']),
        "site-alias": ({"matomo": {"site": {"timezone": "US/Pacific"}}},
                       ["matomo.site.timezone", '"US/Pacific"', "not an alias", '"America/Los_Angeles"']),
        "site-offset-matomo-does-not-list": ({"matomo": {"site": {"timezone": "UTC+5.25"}}},
                                             ["matomo.site.timezone", '"UTC+5.25"', '"UTC+5.5"']),
        "site-etc-zone": ({"matomo": {"site": {"timezone": "Etc/GMT+5"}}}, ["matomo.site.timezone", '"Etc/GMT+5"']),
    },
    "password": {
        # written into config.ini.php between double quotes: a newline ends it, PHP expands "${"
        "database-dollar-brace": ({"database": {"password": "pa${HOME}ss"}}, ["database.password"]),
        "database-newline": ({"database": {"password": "pa\nss"}}, ["database.password"]),
        "database-carriage-return": ({"database": {"password": "pa\rss"}}, ["database.password"]),
        "superuser-newline": ({"matomo": {"superuser": {"password": "secret\npassword"}}},
                              ["matomo.superuser.password"]),
        "superuser-too-short": ({"matomo": {"superuser": {"password": "12345"}}}, ["matomo.superuser.password"]),
        "superuser-too-long": ({"matomo": {"superuser": {"password": "x" * 201}}}, ["matomo.superuser.password"]),
    },
    "url": {
        "url-without-scheme": ({"matomo": {"url": "matomo.example.org"}}, ["matomo.url"]),
        "url-ftp": ({"matomo": {"url": "ftp://matomo.example.org"}}, ["matomo.url"]),
        "url-no-host": ({"matomo": {"url": "https:///matomo"}}, ["matomo.url"]),
        "url-space": ({"matomo": {"url": "https://matomo example.org"}}, ["matomo.url"]),
        "site-url-no-host": ({"matomo": {"site": {"url": "http://"}}}, ["matomo.site.url"]),
        "site-url-quote": ({"matomo": {"site": {"url": 'https://example.org/"x'}}}, ["matomo.site.url"]),
    },
    "bounds": {
        "autoscaling-min-above-max": ({"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}},
                                      ["autoscaling.minReplicas (5)", "autoscaling.maxReplicas (2)"]),
        "pdb-min-available-all-replicas": ({"replicaCount": 2, "podDisruptionBudget": {"minAvailable": 2}},
                                           ["podDisruptionBudget.minAvailable (2)", "replicaCount (2)"]),
        "pdb-min-available-hpa": ({"autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 4},
                                   "podDisruptionBudget": {"minAvailable": 3}},
                                  ["podDisruptionBudget.minAvailable (3)", "autoscaling.minReplicas (2)"]),
        "pdb-bad-percentage": ({"podDisruptionBudget": {"maxUnavailable": "half"}}, ["podDisruptionBudget.maxUnavailable"]),
        "hook-deadline-below-timeouts": ({"hook": {"activeDeadlineSeconds": 600}},
                                         ["hook.activeDeadlineSeconds (600)", "hook.timeouts (1620 s)"]),
        "secrets-deadline-below-api-timeout": ({"hook": {"secrets": {"activeDeadlineSeconds": 30, "apiTimeout": 60}}},
                                               ["hook.secrets.activeDeadlineSeconds (30)", "hook.secrets.apiTimeout (60)"]),
    },
    "backup": {
        "restore-without-backup": ({"backup": {"enabled": False, "restore": {"file": "x.sql.gz"}}},
                                   ['backup.restore.file is "x.sql.gz"', "backup.enabled is false"]),
        "restore-without-backup-existing-claim": ({"backup": {"enabled": False, "restore": {"file": "x.sql.gz"},
                                                              "persistence": {"existingClaim": "dumps"}}},
                                                  ["backup.restore.file", "backup.enabled=true"]),
    },
    "plugins": {
        "name-starts-with-digit": ({"plugins": {"extra": [{"name": "9Lives", "image": _PLUGIN_IMAGE}]}},
                                   ["plugins.extra.0.name", "^[A-Za-z][A-Za-z0-9_]*$"]),
        "name-with-slash": ({"plugins": {"extra": [{"name": "../Login", "volume": {"emptyDir": {}}}]}},
                            ["plugins.extra.0.name"]),
        "two-sources": ({"plugins": {"extra": [{"name": "QueuedTracking", "image": _PLUGIN_IMAGE,
                                                "volume": {"persistentVolumeClaim": {"claimName": "p"}}}]}},
                        ["plugins.extra.0", "one and only one"]),
        "no-source": ({"plugins": {"extra": [{"name": "QueuedTracking"}]}}, ["plugins.extra.0", "one and only one"]),
        "path-with-a-volume": ({"plugins": {"extra": [{"name": "QueuedTracking", "path": "/plugins/QueuedTracking",
                                                       "volume": {"emptyDir": {}}}]}},
                               ["plugins.extra.0", "image"]),
        "image-without-tag": ({"plugins": {"extra": [{"name": "QueuedTracking", "image": {"repository": "r"}}]}},
                              ["plugins.extra.0.image", "tag"]),
        "duplicate": ({"plugins": {"extra": [{"name": "QueuedTracking", "image": _PLUGIN_IMAGE},
                                             {"name": "QueuedTracking", "volume": {"emptyDir": {}}}]}},
                      ['plugins.extra[1] names the plugin "QueuedTracking" again', "one entry per plugin"]),
    },
    "compat": {
        "mariadb-schema-on-5.0": ({"image": {"tag": "5.0.3-apache"}, "database": {"schema": "Mariadb"}},
                                  ["database.schema is Mariadb", '"5.0.3-apache"', "set database.schema=Mysql"]),
        "mariadb-schema-on-4.x": ({"image": {"tag": "4.16.1-fpm"}, "database": {"schema": "Mariadb"}},
                                  ["database.schema is Mariadb", "Matomo 4.16.1"]),
    },
    "queue": {
        "bad-backend": ({"queue": {"enabled": True, "pluginInImage": True, "backend": "memcached"}}, ["queue.backend"]),
        "external-redis-without-host": ({"queue": {"enabled": True, "pluginInImage": True,
                                                   "redis": {"mode": "external"}}}, ["queue.redis.host is required"]),
        "no-plugin": ({"queue": {"enabled": True}}, ["queue.enabled needs the QueuedTracking plugin", "plugins.extra",
                                                     "queue.pluginInImage"]),
        "more-workers-than-queues": ({"queue": {"enabled": True, "pluginInImage": True, "numQueueWorkers": 2,
                                                "workers": {"replicas": 3}}},
                                     ["queue.workers.replicas (3)", "queue.numQueueWorkers (2)"]),
        "queues-out-of-range": ({"queue": {"numQueueWorkers": 4097}}, ["queue.numQueueWorkers"]),
        "batch-zero": ({"queue": {"numRequestsToProcess": 0}}, ["queue.numRequestsToProcess"]),
        "bad-worker-mode": ({"queue": {"workers": {"mode": "daemonset"}}}, ["queue.workers.mode"]),
        "nothing-processes": ({"queue": {"enabled": True, "pluginInImage": True, "workers": {"enabled": False}}},
                              ["queue.workers.enabled", "queue.processDuringTrackingRequest"]),
        "process-during-request-with-workers": ({"queue": {"enabled": True, "pluginInImage": True,
                                                           "processDuringTrackingRequest": True}},
                                                ["queue.processDuringTrackingRequest is true"]),
        "sentinel-with-embedded": ({"queue": {"enabled": True, "pluginInImage": True,
                                              "redis": {"sentinel": {"enabled": True}}}},
                                   ["queue.redis.sentinel.enabled needs queue.redis.mode=external"]),
        "several-hosts-without-sentinel": ({"queue": {"enabled": True, "pluginInImage": True,
                                                      "redis": {"mode": "external", "host": "a,b"}}},
                                           ["queue.redis.host", "Sentinel"]),
        "ports-not-matching-hosts": ({"queue": {"enabled": True, "pluginInImage": True,
                                                "redis": {"mode": "external", "host": "a,b,c", "port": "26379,26380",
                                                          "sentinel": {"enabled": True}}}},
                                     ["queue.redis.port", "2 ports for 3 hosts"]),
        "port-out-of-range": ({"queue": {"redis": {"port": 70000}}}, ["queue.redis.port"]),
        "zero-timeout": ({"queue": {"redis": {"timeout": 0}}}, ["queue.redis.timeout"]),
        "password-with-dollar-brace": ({"queue": {"enabled": True, "pluginInImage": True,
                                                  "redis": {"password": "a${HOME}b"}}}, ["queue.redis.password"]),
        "cron-worker-bad-schedule": ({"queue": {"enabled": True, "pluginInImage": True,
                                                "workers": {"mode": "cronjob", "schedule": "61 * * * *"}}},
                                     ["queue.workers.schedule", "out of range"]),
    },
}

CASES = {f"{family}/{name}": case for family, cases in REJECTED.items() for name, case in cases.items()}

VALID = {
    "dotted-secret-names": {"matomo": {"salt": {"existingSecret": "matomo.salt-1", "existingSecretKey": "SALT_value"}},
                            "database": {"existingSecret": "db.credentials"}},
    "cron-ranges-steps-names": {"archiver": {"schedule": "*/15 1-3,5 1 JAN,feb MON-FRI"}},
    "cron-question-mark": {"archiver": {"schedule": "0 0 ? * 7"}},
    "cron-macro": {"archiver": {"schedule": "@daily"}},
    "archiver-timezones": {"archiver": {"timeZone": "America/Argentina/Buenos_Aires"}},
    "archiver-timezone-abbrev": {"archiver": {"timeZone": "CET"}},
    "archiver-timezone-etc": {"archiver": {"timeZone": "Etc/GMT+5"}},
    "site-timezone-offset": {"matomo": {"site": {"timezone": "UTC+5.5"}}},
    "site-timezone-iana": {"matomo": {"site": {"timezone": "America/Port-au-Prince"}}},
    "site-timezone-three-parts": {"matomo": {"site": {"timezone": "America/Argentina/Buenos_Aires"}}},
    "site-timezone-offsets": {"matomo": {"site": {"timezone": "UTC-9.5"}}},
    "passwords-with-quotes": {"database": {"password": 'p"a$s\\w{o}rd$'},
                              "matomo": {"superuser": {"password": '"quoted" pa$${x}'}}},
    "url-port-path": {"matomo": {"url": "https://stats.example.org:8443/matomo",
                                 "site": {"url": "http://[2001:db8::1]:8080/shop"}}},
    "pdb-percentage": {"replicaCount": 3, "podDisruptionBudget": {"minAvailable": "50%"}},
    "pdb-min-below-replicas": {"replicaCount": 3, "podDisruptionBudget": {"minAvailable": 2}},
    "autoscaling-equal-bounds": {"autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 3}},
    "fullname-override": {"fullnameOverride": "stats-prod"},
    "moved-salt-with-token": {"matomo": {"salt": {"existingSecret": "moved-salt", "existingSecretKey": "salt",
                                                  "existingSecretTokenKey": "token.v1", "acceptUnchecked": True}}},
    "salt-key-named-token-with-other-token-key": {"matomo": {"salt": {"existingSecret": "s", "existingSecretKey": "token",
                                                                      "existingSecretTokenKey": "api"}}},
    "mariadb-schema-on-5.1": {"image": {"tag": "5.1.2-fpm"}, "database": {"schema": "Mariadb"}},
    "mysql-schema-on-5.0": {"image": {"tag": "5.0.3-apache"}, "database": {"schema": "Mysql"}},
    "mariadb-schema-unparsed-tag": {"image": {"tag": "fpm-alpine"}, "database": {"schema": "Mariadb"}},
    "plugins-image-and-volume": {"plugins": {"extra": [
        {"name": "QueuedTracking", "image": {**_PLUGIN_IMAGE, "pullPolicy": "Always"}, "path": "/opt/QueuedTracking"},
        {"name": "My_Plugin2", "volume": {"persistentVolumeClaim": {"claimName": "plugins"}}, "subPath": "a/My_Plugin2"},
    ]}},
    "restore-file-with-existing-claim": {"backup": {"persistence": {"existingClaim": "dumps.old-release"},
                                                    "restore": {"file": "matomo-5.0.3-to-5.1.2-20261206T041500Z.sql.gz"}}},
    "queue-mysql-processed-by-trackers": {"queue": {"enabled": True, "pluginInImage": True, "backend": "mysql",
                                                    "processDuringTrackingRequest": True, "workers": {"enabled": False}}},
    "queue-external-sentinels": {"queue": {"enabled": True, "pluginInImage": True, "numQueueWorkers": 16,
                                           "workers": {"replicas": 16},
                                           "redis": {"mode": "external", "host": "s1,s2,s3", "port": "26379,26379,26379",
                                                     "sentinel": {"enabled": True, "masterName": "queue"},
                                                     "existingSecret": "redis-auth", "existingSecretKey": "pw"}}},
}


def normalise(text: str) -> str:
    """`/database/mode` (helm >= 3.18) -> `database.mode`."""
    return re.sub(r"/(?=[A-Za-z_])", ".", text).replace("'.", "'")


def _helm(helm: str, command: str, values_file: Path, release: str = "matomo"):
    if command == "lint":
        return run_helm(helm, "lint", "--strict", str(CHART), "-f", str(values_file))
    return run_helm(helm, "template", release, str(CHART), "--kube-version", KUBE_VERSION, "-f", str(values_file))


def test_every_family_has_cases() -> None:
    assert set(REJECTED) == {"name", "cron", "timezone", "url", "bounds", "compat", "password", "backup",
                            "plugins", "queue"}
    assert all(len(cases) >= 2 for cases in REJECTED.values())


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("command", ["lint", "template"])
def test_value_rejected_naming_it(helm: str, tmp_path: Path, case: str, command: str) -> None:
    values, words = CASES[case]
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    result = _helm(helm, command, values_file)
    output = normalise(result.stdout + result.stderr)
    if command == "lint" and result.returncode == 0:
        # helm lint renders in lint mode, where a template `fail` is only reported (as INFO):
        # the schema's refusals fail it, the template's must at least be reported
        assert "Fail:" in output, f"{case}: helm lint accepted it without a word:\n{output[-2000:]}"
    else:
        assert result.returncode != 0, f"{case}: helm {command} accepted it:\n{output[-2000:]}"
    for word in words:
        assert normalise(word) in output, f"{case}: the error does not name {word!r}:\n{output[-2000:]}"


def test_release_name_that_cannot_name_a_service_is_rejected(helm: str, tmp_path: Path) -> None:
    values_file = tmp_path / "values.yaml"
    values_file.write_text("{}\n")
    result = _helm(helm, "template", values_file, release="1stats")
    assert result.returncode != 0
    assert "fullnameOverride" in result.stderr and '"1stats-matomo"' in result.stderr, result.stderr


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_values_accepted(helm: str, tmp_path: Path, name: str) -> None:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(VALID[name]))
    for command in ("lint", "template"):
        result = _helm(helm, command, values_file)
        assert result.returncode == 0, f"{name}: helm {command}: {result.stdout[-1500:]}{result.stderr}"


def test_queue_accepts_the_plugin_from_plugins_extra(helm: str, tmp_path: Path) -> None:
    """queue.enabled without queue.pluginInImage renders once plugins.extra names QueuedTracking."""
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump({"queue": {"enabled": True}, "plugins": {"extra": [
        {"name": "QueuedTracking", "image": {"repository": "registry.example.com/queuedtracking", "tag": "5.1.1"}}]}}))
    result = _helm(helm, "template", values_file)
    assert result.returncode == 0, result.stderr
