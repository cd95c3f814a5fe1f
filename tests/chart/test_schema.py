"""values.schema.json rejects broken values before anything reaches a cluster,
with a message that names the bad value.

Each case is a values file fed to `helm lint --strict` and `helm template`;
both must fail and the output must name the value. Helm up to 3.17 prints
JSON paths as `database.mode`, later versions as `/database/mode`: the
output is normalised to dots before matching.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from chartlib import CHART, KUBE_VERSION, VALUES_FILES, run_helm

CASES = {
    # name: (values, words that must appear in the error)
    "typo-top-level-key": ({"replicaCont": 2}, ["replicaCont"]),
    "typo-nested-key": ({"database": {"mode": "embedded", "tablePrefix": "x_"}}, ["tablePrefix"]),
    "wrong-type-integer": ({"replicaCount": "two"}, ["replicaCount"]),
    "wrong-type-nested": ({"service": {"port": "http"}}, ["service.port"]),
    "wrong-type-bool": ({"ingress": {"enabled": "yes"}}, ["ingress.enabled"]),
    "bad-database-mode": ({"database": {"mode": "sqlite"}}, ["database.mode"]),
    "bad-image-variant": ({"image": {"variant": "fpm-alpine"}}, ["image.variant"]),
    "bad-schema": ({"database": {"schema": "Postgres"}}, ["database.schema"]),
    "cloudsql-without-instance": (
        {"database": {"mode": "cloudsql", "password": "pw"}},
        ["database.cloudsql.instanceConnectionName"],
    ),
    "cloudsql-bad-instance-name": (
        {"database": {"mode": "cloudsql", "password": "pw",
                      "cloudsql": {"instanceConnectionName": "just-a-name"}}},
        ["database.cloudsql.instanceConnectionName"],
    ),
    "external-without-host": (
        {"database": {"mode": "external", "password": "pw"}},
        ["database.external.host"],
    ),
    "ingress-without-host": ({"ingress": {"enabled": True}}, ["ingress.hosts"]),
    "bad-superuser-login": ({"matomo": {"superuser": {"login": "a b"}}}, ["matomo.superuser.login"]),
    "bad-tables-prefix": ({"database": {"tablesPrefix": "matomo-"}}, ["database.tablesPrefix"]),
    "bad-api-server-cidr": ({"networkPolicy": {"apiServerCIDRs": ["10.0.0.1"]}}, ["networkPolicy.apiServerCIDRs"]),
    "empty-archiver-url-cidrs": ({"networkPolicy": {"archiverURLCIDRs": []}}, ["networkPolicy.archiverURLCIDRs"]),
    "typo-in-lifecycle": ({"lifecycle": {"preStopp": {"exec": {"command": ["sleep", "5"]}}}}, ["preStopp"]),
    "bad-gcp-service-account": (
        {"database": {"cloudsql": {"gcpServiceAccount": "matomo"}}},
        ["database.cloudsql.gcpServiceAccount"],
    ),
    "backup-typo": ({"backup": {"enable": False}}, ["enable"]),
    "backup-keep-zero": ({"backup": {"keep": 0}}, ["backup.keep"]),
    "backup-keep-string": ({"backup": {"keep": "3"}}, ["backup.keep"]),
    "backup-size-with-space": ({"backup": {"persistence": {"size": "8 GB"}}}, ["backup.persistence.size"]),
    "backup-access-mode": ({"backup": {"persistence": {"accessModes": ["ReadWriteAlways"]}}},
                           ["backup.persistence.accessModes"]),
    "backup-no-access-mode": ({"backup": {"persistence": {"accessModes": []}}}, ["backup.persistence.accessModes"]),
    "backup-existing-claim": ({"backup": {"persistence": {"existingClaim": "My_Claim"}}},
                              ["backup.persistence.existingClaim"]),
    "backup-restore-parent": ({"backup": {"restore": {"file": "../matomo.sql.gz"}}}, ["backup.restore.file"]),
    "backup-restore-path": ({"backup": {"restore": {"file": "dumps/matomo.sql.gz"}}}, ["backup.restore.file"]),
    "backup-restore-hidden": ({"backup": {"restore": {"file": ".matomo.sql.gz"}}}, ["backup.restore.file"]),
    "backup-restore-space": ({"backup": {"restore": {"file": "my dump.sql.gz"}}}, ["backup.restore.file"]),
}


def normalise(text: str) -> str:
    """`/database/mode` (helm >= 3.18) -> `database.mode`."""
    return re.sub(r"/(?=[A-Za-z_])", ".", text).replace("'.", "'")


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("command", ["lint", "template"])
def test_broken_values_are_rejected_naming_the_value(helm: str, tmp_path: Path, name: str, command: str) -> None:
    values, words = CASES[name]
    values_file = tmp_path / f"{name}.yaml"
    values_file.write_text(yaml.safe_dump(values))
    if command == "lint":
        result = run_helm(helm, "lint", "--strict", str(CHART), "-f", str(values_file))
    else:
        result = run_helm(helm, "template", "t", str(CHART), "--kube-version", KUBE_VERSION, "-f", str(values_file))
    output = normalise(result.stdout + result.stderr)
    assert result.returncode != 0, f"{name}: helm {command} accepted broken values:\n{output}"
    assert "schema" in output.lower(), f"{name}: rejected, but not by the schema:\n{output}"
    for word in words:
        assert word in output, f"{name}: the error does not name {word!r}:\n{output}"


def test_default_values_pass_lint(helm: str) -> None:
    result = run_helm(helm, "lint", "--strict", str(CHART))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=lambda p: str(p.relative_to(CHART.parents[1])))
def test_every_values_file_passes_lint_strict(helm: str, values_file: Path) -> None:
    result = run_helm(helm, "lint", "--strict", str(CHART), "-f", str(values_file))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=lambda p: str(p.relative_to(CHART.parents[1])))
def test_every_values_file_renders(helm: str, values_file: Path) -> None:
    result = run_helm(helm, "template", "matomo", str(CHART), "--kube-version", KUBE_VERSION, "-f", str(values_file))
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "Job", "Secret", "Role", "RoleBinding"} <= kinds


VALID_EDGE_CASES = {
    "hourly-macro-schedule": {"archiver": {"schedule": "@hourly"}},
    "domain-scoped-project": {"database": {"mode": "cloudsql", "password": "pw", "cloudsql": {
        "instanceConnectionName": "example.com:my-project:europe-west1:matomo"}}},
    "wildcard-ingress-host": {"ingress": {"enabled": True, "hosts": ["*.stats.example.org", "stats.example.org"]}},
    "free-form-config": {"matomo": {"config": {"General": {"force_ssl": 1, "login_allowlist_ip": ["10.0.0.0/8"]},
                                                "mail": {"transport": "smtp", "encryption": "tls"}}}},
    "pdb-percentage": {"podDisruptionBudget": {"maxUnavailable": "50%"}},
    "external-with-secret": {"database": {"mode": "external", "existingSecret": "db",
                                          "external": {"host": "10.1.2.3", "port": 3307}}},
    "iam-without-password": {"database": {"mode": "cloudsql", "cloudsql": {
        "instanceConnectionName": "p:r:i", "autoIAMAuthn": True}}},
}


@pytest.mark.parametrize("name", sorted(VALID_EDGE_CASES))
def test_valid_edge_cases_are_accepted(helm: str, tmp_path: Path, name: str) -> None:
    values_file = tmp_path / f"{name}.yaml"
    values_file.write_text(yaml.safe_dump(VALID_EDGE_CASES[name]))
    result = run_helm(helm, "lint", "--strict", str(CHART), "-f", str(values_file))
    assert result.returncode == 0, result.stdout + result.stderr
