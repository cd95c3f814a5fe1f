"""What the chart renders for the dump before core:update and the restore (values
`backup.*`, README "Backups and restoring"): the volume F-backup, its mount and
settings in the hook container only, the Job F-restore only while
backup.restore.file is set, with the database settings of the hook and no token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from chartlib import CHART, KUBE_VERSION, VALUES_FILES, run_helm
from test_examples import VALUES as EXAMPLES

DUMP = "matomo-5.0.3-to-5.1.2-20261206T041500Z.sql.gz"


def render(helm: str, tmp_path: Path, values: dict[str, Any] | None = None, *files: Path) -> list[dict[str, Any]]:
    args = ["template", "matomo", str(CHART), "--kube-version", KUBE_VERSION, "--namespace", "analytics"]
    for f in files:
        args += ["-f", str(f)]
    if values is not None:
        extra = tmp_path / "extra.yaml"
        extra.write_text(yaml.safe_dump(values))
        args += ["-f", str(extra)]
    result = run_helm(helm, *args)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} rendered"
    return found[0]


def container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    (c,) = [c for c in pod.get("initContainers", []) + pod["containers"] if c["name"] == name]
    return c


def env(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


def test_default_the_hook_writes_its_dumps_to_a_kept_volume(helm: str, tmp_path: Path) -> None:
    docs = render(helm, tmp_path)
    pvc = one(docs, "PersistentVolumeClaim", "matomo-backup")
    assert pvc["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert pvc["metadata"]["labels"]["app.kubernetes.io/component"] == "hook"
    assert pvc["spec"] == {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "8Gi"}}}
    assert "helm.sh/hook" not in pvc["metadata"]["annotations"], "a hook would not exist before the hook Job"

    pod = one(docs, "Job", "matomo-hook")["spec"]["template"]["spec"]
    assert {"name": "backups", "persistentVolumeClaim": {"claimName": "matomo-backup"}} in pod["volumes"]
    hook = container(pod, "hook")
    assert {"name": "backups", "mountPath": "/backups"} in hook["volumeMounts"]
    assert env(hook)["MATOMO_HOOK_BACKUP_DIR"] == "/backups" and env(hook)["MATOMO_HOOK_BACKUP_KEEP"] == "3"
    for other in pod["initContainers"]:
        assert "backups" not in [m["name"] for m in other.get("volumeMounts", [])], other["name"]
    # the kubelet makes the volume writable to the pod's fsGroup, the hook's group
    assert pod["securityContext"]["fsGroup"] == 33
    assert hook["securityContext"]["runAsUser"] == 33
    assert not [d for d in docs if d["metadata"]["name"] == "matomo-restore"], "F-restore without restore.file"


def test_values_set_the_volume_and_the_number_kept(helm: str, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, {"backup": {"keep": 7, "persistence": {
        "storageClass": "standard-rwo", "size": "50Gi", "accessModes": ["ReadWriteOncePod"]}}})
    pvc = one(docs, "PersistentVolumeClaim", "matomo-backup")
    assert pvc["spec"] == {"accessModes": ["ReadWriteOncePod"], "storageClassName": "standard-rwo",
                           "resources": {"requests": {"storage": "50Gi"}}}
    hook = container(one(docs, "Job", "matomo-hook")["spec"]["template"]["spec"], "hook")
    assert env(hook)["MATOMO_HOOK_BACKUP_KEEP"] == "7"

    docs = render(helm, tmp_path, {"backup": {"persistence": {"existingClaim": "my-dumps"}}})
    assert not [d for d in docs if d["kind"] == "PersistentVolumeClaim"]
    pod = one(docs, "Job", "matomo-hook")["spec"]["template"]["spec"]
    assert {"name": "backups", "persistentVolumeClaim": {"claimName": "my-dumps"}} in pod["volumes"]


def test_backup_disabled_renders_no_volume_mount_or_setting(helm: str, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, {"backup": {"enabled": False}})
    assert not [d for d in docs if d["kind"] == "PersistentVolumeClaim"]
    pod = one(docs, "Job", "matomo-hook")["spec"]["template"]["spec"]
    assert "backups" not in [v["name"] for v in pod["volumes"]]
    hook = container(pod, "hook")
    assert "backups" not in [m["name"] for m in hook["volumeMounts"]]
    assert not [n for n in env(hook) if n.startswith("MATOMO_HOOK_BACKUP")]


@pytest.mark.parametrize("mode", ["embedded", "external", "cloudsql"])
def test_the_restore_job_renders_only_with_a_file_and_runs_before_the_hook(helm: str, tmp_path: Path, mode: str) -> None:
    values: dict[str, Any] = {"backup": {"restore": {"file": DUMP}}, "hook": {"weight": -3}}
    if mode == "external":
        values["database"] = {"mode": "external", "password": "pw", "external": {"host": "db.example.org", "port": 3310}}
    if mode == "cloudsql":
        values["database"] = {"mode": "cloudsql", "password": "pw", "cloudsql": {
            "instanceConnectionName": "p:r:i", "gcpServiceAccount": "matomo@p.iam.gserviceaccount.com"}}
    docs = render(helm, tmp_path, values)
    job = one(docs, "Job", "matomo-restore")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-upgrade,post-install"
    assert annotations["helm.sh/hook-weight"] == "-4", "before F-hook (hook.weight -3) at post-install"
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation"
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "hook"
    pod = job["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False and pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == "matomo-hook", "Workload Identity's annotated ServiceAccount"
    restore = container(pod, "restore")
    assert restore["args"] == ["restore"] and restore["image"] == container(
        one(docs, "Job", "matomo-hook")["spec"]["template"]["spec"], "hook")["image"]
    assert {"name": "backups", "mountPath": "/backups", "readOnly": True} in restore["volumeMounts"]
    assert {"name": "backups", "persistentVolumeClaim": {"claimName": "matomo-backup"}} in pod["volumes"]
    settings = env(restore)
    assert settings["MATOMO_HOOK_RESTORE_FILE"] == DUMP and settings["MATOMO_HOOK_BACKUP_DIR"] == "/backups"
    # the same database, as the hook sees it (the proxy sidecar on 127.0.0.1 in cloudsql mode)
    hook = env(container(one(docs, "Job", "matomo-hook")["spec"]["template"]["spec"], "hook"))
    database = {k: v for k, v in hook.items() if k.startswith("MATOMO_DATABASE_")}
    assert {k: v for k, v in settings.items() if k.startswith("MATOMO_DATABASE_")} == database
    host = {"embedded": "matomo-mariadb", "external": "db.example.org", "cloudsql": "127.0.0.1"}[mode]
    assert settings["MATOMO_DATABASE_HOST"] == host
    (secrets,) = [v for v in pod["volumes"] if v["name"] == "hook-secrets"]
    assert [s["secret"]["items"][0]["path"] for s in secrets["projected"]["sources"]] == ["database-password"], \
        "the restore needs the database password only"
    init = [c["name"] for c in pod.get("initContainers", [])]
    assert init == (["cloud-sql-proxy"] if mode == "cloudsql" else [])
    if mode == "cloudsql":
        assert container(pod, "cloud-sql-proxy")["restartPolicy"] == "Always"


def test_every_values_file_and_example_renders_with_backups_and_a_restore(helm: str, tmp_path: Path) -> None:
    examples = []
    for name, values in sorted(EXAMPLES.items()):
        path = tmp_path / f"example-{name}.yaml"
        path.write_text(yaml.safe_dump(values()))
        examples.append(path)
    assert len(examples) == 4
    for values_file in [*VALUES_FILES, *examples]:
        docs = render(helm, tmp_path, {"backup": {"restore": {"file": DUMP}}}, values_file)
        names = {(d["kind"], d["metadata"]["name"]) for d in docs}
        assert ("Job", "matomo-restore") in names, values_file
        assert ("PersistentVolumeClaim", "matomo-backup") in names, values_file


def test_backups_need_the_pods_fs_group(helm: str, tmp_path: Path) -> None:
    """The kubelet makes a volume writable to the pod's fsGroup: without one the hook (uid 33)
    could not write its dumps, so the render refuses it, naming the value. (Only `helm
    template`: `helm lint` keeps a default that values set to null, so it cannot see this.)"""
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"podSecurityContext": {"fsGroup": None}}))
    result = run_helm(helm, "template", "matomo", str(CHART), "--kube-version", KUBE_VERSION, "-f", str(values))
    assert result.returncode != 0
    for words in ("backup.enabled needs podSecurityContext.fsGroup", "uid 33", "matomo-backup", "backup.enabled=false"):
        assert words in result.stderr, result.stderr
    values.write_text(yaml.safe_dump({"podSecurityContext": {"fsGroup": None}, "backup": {"enabled": False}}))
    result = run_helm(helm, "template", "matomo", str(CHART), "--kube-version", KUBE_VERSION, "-f", str(values))
    assert result.returncode == 0, result.stderr
