"""Rendered manifests of every values file validate strictly against the
Kubernetes OpenAPI schema (swagger.json of Kubernetes 1.29+): no unknown
field, no wrong type, no missing required field.

The schema comes from $K8S_OPENAPI_SPEC, or from the Kubernetes source in the
Go module cache (k8s.io/kubernetes@v1.3x, fetched when ./dev tools builds the
control plane). Without it the test is skipped with the reason.
A real API server (tests/cluster) checks the same again.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
from functools import cache, lru_cache
from pathlib import Path

import pytest
import yaml

from chartlib import CHART, KUBE_VERSION, VALUES_FILES, run_helm


def _find_spec() -> Path | None:
    env = os.environ.get("K8S_OPENAPI_SPEC")
    if env:
        return Path(env) if Path(env).is_file() else None
    roots = []
    go = shutil.which("go")
    if go:
        try:
            roots.append(subprocess.run([go, "env", "GOMODCACHE"], capture_output=True, text=True,
                                        timeout=30, check=False).stdout.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    roots.append(str(Path.home() / "go" / "pkg" / "mod"))
    # tools/install-k8s.sh keeps a copy of the Kubernetes source under .tools/
    tools = sorted(glob.glob(str(CHART.parents[1] / ".tools" / "k8s" / "build" / "kubernetes-v1.*" / "api" / "openapi-spec" / "swagger.json")))
    tools = [f for f in tools if _minor(f.replace("kubernetes-v1.", "kubernetes@v1.")) >= 29]
    if tools:
        return Path(tools[-1])
    for root in roots:
        if not root:
            continue
        found = sorted(glob.glob(os.path.join(root, "k8s.io", "kubernetes@v1.*", "api", "openapi-spec", "swagger.json")))
        found = [f for f in found if _minor(f) >= 29]
        if found:
            return Path(found[-1])
    return None


def _minor(path: str) -> int:
    try:
        return int(path.split("kubernetes@v1.")[1].split(".")[0])
    except (IndexError, ValueError):
        return 0


@lru_cache(maxsize=1)
def _spec() -> dict:
    path = _find_spec()
    if path is None:
        pytest.skip("no Kubernetes OpenAPI spec: set K8S_OPENAPI_SPEC or run ./dev tools (k8s.io/kubernetes in the Go module cache)")
    return json.loads(path.read_text())


@lru_cache(maxsize=1)
def _gvk_index() -> dict:
    index = {}
    for name, definition in _spec()["definitions"].items():
        for gvk in definition.get("x-kubernetes-group-version-kind", []):
            group = gvk["group"]
            api_version = f"{group}/{gvk['version']}" if group else gvk["version"]
            index[(api_version, gvk["kind"])] = name
    return index


def _validate(value, schema: dict, path: str, errors: list[str]) -> None:
    definitions = _spec()["definitions"]
    if schema.get("$ref", "").endswith(".resource.Quantity"):
        if not isinstance(value, (int, float, str)) or isinstance(value, bool):
            errors.append(f"{path}: expected a quantity, got {value!r}")
        return
    if "$ref" in schema:
        schema = definitions[schema["$ref"].split("/")[-1]]
    if "allOf" in schema and len(schema) == 1:
        schema = schema["allOf"][0]
        if "$ref" in schema:
            schema = definitions[schema["$ref"].split("/")[-1]]
    fmt = schema.get("format")
    typ = schema.get("type")
    if fmt == "int-or-string":
        if not isinstance(value, (int, str)) or isinstance(value, bool):
            errors.append(f"{path}: expected int or string, got {value!r}")
        return
    if typ is None and "properties" not in schema:
        return  # free-form (RawExtension, JSON)
    if value is None:
        return  # null is accepted as "unset" by the API server
    if typ == "object" or "properties" in schema:
        if not isinstance(value, dict):
            errors.append(f"{path}: expected an object, got {type(value).__name__}")
            return
        props = schema.get("properties")
        if props is None:
            extra = schema.get("additionalProperties")
            if isinstance(extra, dict):
                for k, v in value.items():
                    _validate(v, extra, f"{path}.{k}", errors)
            return
        for k in schema.get("required", []):
            if k not in value:
                errors.append(f"{path}: missing required field {k!r}")
        for k, v in value.items():
            if k not in props:
                errors.append(f"{path}: unknown field {k!r}")
            else:
                _validate(v, props[k], f"{path}.{k}", errors)
    elif typ == "array":
        if not isinstance(value, list):
            errors.append(f"{path}: expected an array, got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            _validate(item, schema.get("items", {}), f"{path}[{i}]", errors)
    elif typ == "string":
        if not isinstance(value, str):
            errors.append(f"{path}: expected a string, got {value!r}")
        elif "enum" in schema and value not in schema["enum"]:
            errors.append(f"{path}: {value!r} is not one of {schema['enum']}")
    elif typ == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            errors.append(f"{path}: expected an integer, got {value!r}")
    elif typ == "number":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            errors.append(f"{path}: expected a number, got {value!r}")
    elif typ == "boolean":
        if not isinstance(value, bool):
            errors.append(f"{path}: expected a boolean, got {value!r}")


def validate_object(obj: dict) -> list[str]:
    key = (obj.get("apiVersion"), obj.get("kind"))
    name = _gvk_index().get(key)
    if name is None:
        return [f"{key}: no such kind in the Kubernetes API"]
    errors: list[str] = []
    _validate(obj, _spec()["definitions"][name], f"{obj['kind']}/{obj.get('metadata', {}).get('name')}", errors)
    return errors


@cache
def _render_text(helm: str, values_file: Path | None) -> str:
    """`helm template` once per values file for the whole module (the chart does not change meanwhile)."""
    args = ["template", "matomo", str(CHART), "--kube-version", KUBE_VERSION, "--namespace", "analytics"]
    if values_file is not None:
        args += ["-f", str(values_file)]
    result = run_helm(helm, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def render(helm: str, values_file: Path | None) -> list[dict]:
    return [d for d in yaml.safe_load_all(_render_text(helm, values_file)) if d]


# the chart defaults, then every values file
EVERY_VALUES_FILE = pytest.mark.parametrize(
    "values_file", [None, *VALUES_FILES],
    ids=lambda p: "defaults" if p is None else str(p.relative_to(CHART.parents[1])),
)


@EVERY_VALUES_FILE
def test_rendered_manifests_validate_strictly(helm: str, values_file: Path | None) -> None:
    _spec()
    docs = render(helm, values_file)
    errors = [e for d in docs for e in validate_object(d)]
    assert not errors, "\n".join(errors)


def test_the_validator_catches_unknown_fields_and_wrong_types(helm: str) -> None:
    _spec()
    bad = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
        "spec": {"replicas": "2", "selector": {"matchLabels": {"a": "b"}},
                 "template": {"metadata": {"labels": {"a": "b"}},
                              "spec": {"containers": [{"name": "c", "image": "i", "restartPolicy": "Always",
                                                       "bogus": 1}]}}},
    }
    errors = validate_object(bad)
    assert any("replicas" in e and "integer" in e for e in errors), errors
    assert any("unknown field 'bogus'" in e for e in errors), errors


def _pod_specs(doc: dict):
    kind = doc.get("kind")
    if kind == "Pod":
        yield doc["spec"]
    elif kind in ("Deployment", "StatefulSet", "Job"):
        yield doc["spec"]["template"]["spec"]
    elif kind == "CronJob":
        yield doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]


@EVERY_VALUES_FILE
def test_every_container_is_restricted_non_root_and_read_only(helm: str, values_file: Path | None) -> None:
    """Pod Security Standard "restricted", plus a read-only root filesystem
    for every container (init containers and native sidecars included)."""
    problems = _restricted_problems(render(helm, values_file))
    assert not problems, "\n".join(problems)


def _restricted_problems(docs: list[dict]) -> list[str]:
    problems = []
    for doc in docs:
        for spec in _pod_specs(doc):
            pod_sc = spec.get("securityContext") or {}
            for vol in spec.get("volumes", []):
                if "hostPath" in vol:
                    problems.append(f"{doc['kind']}/{doc['metadata']['name']}: hostPath volume {vol['name']}")
            for c in spec.get("initContainers", []) + spec.get("containers", []):
                where = f"{doc['kind']}/{doc['metadata']['name']}/{c['name']}"
                sc = c.get("securityContext") or {}
                if sc.get("allowPrivilegeEscalation") is not False:
                    problems.append(f"{where}: allowPrivilegeEscalation is not false")
                if "ALL" not in (sc.get("capabilities") or {}).get("drop", []):
                    problems.append(f"{where}: does not drop ALL capabilities")
                if (sc.get("capabilities") or {}).get("add"):
                    problems.append(f"{where}: adds capabilities")
                if sc.get("privileged"):
                    problems.append(f"{where}: privileged")
                if not sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")):
                    problems.append(f"{where}: runAsNonRoot is not true")
                if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
                    problems.append(f"{where}: runs as uid 0")
                seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
                if seccomp not in ("RuntimeDefault", "Localhost"):
                    problems.append(f"{where}: seccomp profile {seccomp!r}")
                if sc.get("readOnlyRootFilesystem") is not True:
                    problems.append(f"{where}: root filesystem is writable")
    return problems


@EVERY_VALUES_FILE
def test_mounts_name_existing_volumes_and_native_sidecars_are_well_formed(helm: str, values_file: Path | None) -> None:
    """What the OpenAPI schema cannot see: every volumeMount names a volume of
    the pod, port names are unique, only native sidecars (restartPolicy
    Always) carry probes or lifecycle hooks among init containers."""
    problems = []
    for doc in render(helm, values_file):
        for spec in _pod_specs(doc):
            where = f"{doc['kind']}/{doc['metadata']['name']}"
            volumes = {v["name"] for v in spec.get("volumes", [])}
            claims = {t["metadata"]["name"] for t in doc.get("spec", {}).get("volumeClaimTemplates", [])}
            ports = []
            for c in spec.get("initContainers", []) + spec.get("containers", []):
                for m in c.get("volumeMounts", []):
                    if m["name"] not in volumes | claims:
                        problems.append(f"{where}/{c['name']}: mount of unknown volume {m['name']}")
                ports += [p["name"] for p in c.get("ports", []) if "name" in p]
            for c in spec.get("initContainers", []):
                if c.get("restartPolicy") != "Always":
                    for field in ("startupProbe", "livenessProbe", "readinessProbe", "lifecycle"):
                        if field in c:
                            problems.append(f"{where}/{c['name']}: {field} on a plain init container")
            if len(ports) != len(set(ports)):
                problems.append(f"{where}: duplicate port names {ports}")
            if any(len(p) > 15 for p in ports):
                problems.append(f"{where}: port name longer than 15 characters {ports}")
    assert not problems, "\n".join(problems)


CODE_DIR, USER_PATH = "/usr/src/matomo", "/var/lib/matomo"  # matomo.codeDir, matomo.userPath
# the containers that run Matomo's code (the serving pods' matomo, the archiver, the hook pod's installer, the queue workers)
MATOMO_CONTAINERS = {"matomo", "archiver", "matomo-installer", "queue-worker"}


@EVERY_VALUES_FILE
def test_every_matomo_container_runs_the_images_code_in_place(helm: str, values_file: Path | None) -> None:
    """No copy of the code: every container running Matomo keeps the image's tree at
    /usr/src/matomo (nothing mounted over it), gets files/bootstrap.php at its root and
    its writable files in the emptyDir matomo-data at /var/lib/matomo. The only volume
    at the code's path is nginx's: the static files, read-only."""
    problems, seen = [], set()
    for doc in render(helm, values_file):
        for spec in _pod_specs(doc):
            where = f"{doc['kind']}/{doc['metadata']['name']}"
            volumes = {v["name"]: v for v in spec.get("volumes", [])}
            for c in spec.get("initContainers", []) + spec.get("containers", []):
                if c["name"] == "copy-code":
                    problems.append(f"{where}: a copy-code init container")
                mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
                at_code = mounts.get(CODE_DIR)
                if at_code and (c["name"], at_code["name"], at_code.get("readOnly")) != ("nginx", "matomo-static", True):
                    problems.append(f"{where}/{c['name']}: {at_code['name']} mounted at {CODE_DIR}")
                if c["name"] not in MATOMO_CONTAINERS:
                    continue
                seen.add(c["name"])
                boot = mounts.get(f"{CODE_DIR}/bootstrap.php", {})
                if (boot.get("name"), boot.get("subPath"), boot.get("readOnly")) != ("matomo-bootstrap", "bootstrap.php", True):
                    problems.append(f"{where}/{c['name']}: no read-only bootstrap.php at {CODE_DIR}: {boot}")
                if mounts.get(USER_PATH, {}).get("name") != "matomo-data":
                    problems.append(f"{where}/{c['name']}: matomo-data is not at {USER_PATH}")
            if "matomo-data" in volumes and volumes["matomo-data"].get("emptyDir") is None:
                problems.append(f"{where}: matomo-data is not an emptyDir")
            if "matomo-bootstrap" in volumes:
                items = volumes["matomo-bootstrap"].get("configMap", {}).get("items")
                if items != [{"key": "bootstrap.php", "path": "bootstrap.php"}]:
                    problems.append(f"{where}: matomo-bootstrap holds {items}")
    assert not problems, "\n".join(problems)
    assert seen >= {"matomo", "matomo-installer"}, f"rendered only {sorted(seen)}"  # the archiver may be off


PLUGINS = {"plugins": {"extra": [
    {"name": "QueuedTracking", "image": {"repository": "registry.example.com/matomo-queuedtracking", "tag": "5.1.1"}},
    {"name": "MyPlugin", "volume": {"persistentVolumeClaim": {"claimName": "matomo-plugins"}}},
]}}
PLUGIN_DIRS = ("/var/lib/matomo-plugins;../../../var/lib/matomo-plugins:"
               "/var/lib/matomo-plugin-volumes;../../../var/lib/matomo-plugin-volumes")
PLUGIN_NAMES = ("MATOMO_PLUGIN_DIRS", "MATOMO_EXTRA_PLUGINS", "MATOMO_CODE_ACTIVATED_PLUGINS_FILE")


@EVERY_VALUES_FILE
def test_without_extra_plugins_nothing_of_them_is_rendered(helm: str, values_file: Path | None) -> None:
    """plugins.extra empty (every values file): no copy, no plugin volume or mount, no env of them,
    the hook's sidecar mounts its two scripts only; the pods are as before the feature."""
    problems = []
    for doc in render(helm, values_file):
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"].endswith("-scripts"):
            assert sorted(doc["data"]) == ["bootstrap.php", "hook-matomo.sh", "matomo-init.sh", "matomo-plugins.php",
                                           "matomo-tables.php", "matomo-version-check.php"]
        for spec in _pod_specs(doc):
            for v in spec.get("volumes", []):
                if v["name"] == "matomo-plugins" or v["name"].startswith("plugin-"):
                    problems.append(f"{where}: volume {v['name']}")
                if v["name"] == "hook-script":
                    if [i["key"] for i in v["configMap"]["items"]] != ["hook-matomo.sh", "matomo-tables.php"]:
                        problems.append(f"{where}: hook-script holds {v['configMap']['items']}")
            for c in spec.get("initContainers", []) + spec.get("containers", []):
                if c["name"].startswith("plugin-"):
                    problems.append(f"{where}: container {c['name']}")
                problems += [f"{where}/{c['name']}: env {e['name']}" for e in c.get("env", []) if e["name"] in PLUGIN_NAMES]
                problems += [f"{where}/{c['name']}: mount {m['name']}" for m in c.get("volumeMounts", [])
                             if "plugin" in m["name"]]
    assert not problems, "\n".join(problems)


@EVERY_VALUES_FILE
def test_extra_plugins_reach_every_matomo_container_read_only(helm: str, tmp_path: Path,
                                                               values_file: Path | None) -> None:
    """plugins.extra (an image and a volume) over every values file: the manifests validate
    strictly, every container stays restricted and read-only, and every container running
    Matomo's code (matomo-init, matomo, archiver, the hook's matomo-installer) mounts both
    read-only and gets MATOMO_PLUGIN_DIRS; only plugin-0 writes the emptyDir, nginx gets none."""
    overlay = tmp_path / "plugins.yaml"
    overlay.write_text(yaml.safe_dump(PLUGINS))
    args = ["template", "matomo", str(CHART), "--kube-version", KUBE_VERSION, "--namespace", "analytics"]
    args += ["-f", str(values_file)] if values_file else []
    result = run_helm(helm, *args, "-f", str(overlay))
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    _spec()
    problems = [e for d in docs for e in validate_object(d)] + _restricted_problems(docs)
    seen = set()
    for doc in docs:
        for spec in _pod_specs(doc):
            where = f"{doc['kind']}/{doc['metadata']['name']}"
            for c in spec.get("initContainers", []) + spec.get("containers", []):
                env = {e["name"]: e.get("value") for e in c.get("env", [])}
                mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
                if c["name"] in MATOMO_CONTAINERS | {"matomo-init"}:
                    seen.add(c["name"])
                    if env.get("MATOMO_PLUGIN_DIRS") != PLUGIN_DIRS:
                        problems.append(f"{where}/{c['name']}: MATOMO_PLUGIN_DIRS={env.get('MATOMO_PLUGIN_DIRS')}")
                    for name, path in (("matomo-plugins", "/var/lib/matomo-plugins"),
                                       ("plugin-1", "/var/lib/matomo-plugin-volumes/MyPlugin")):
                        m = mounts.get(name, {})
                        if (m.get("mountPath"), m.get("readOnly")) != (path, True):
                            problems.append(f"{where}/{c['name']}: {name} not read-only at {path}: {m}")
                elif c["name"] == "plugin-0":
                    if list(mounts) != ["matomo-plugins"] or mounts["matomo-plugins"].get("readOnly"):
                        problems.append(f"{where}/plugin-0: mounts {list(mounts.values())}")
                elif set(mounts) & {"matomo-plugins", "plugin-1"} or "MATOMO_PLUGIN_DIRS" in env:
                    problems.append(f"{where}/{c['name']}: gets the plugins but runs no Matomo code")
    assert not problems, "\n".join(problems)
    assert seen >= {"matomo", "matomo-init", "matomo-installer"}, seen


NETWORK_POLICY_MODES = {
    "embedded": {},
    "external": {"database": {"mode": "external", "password": "pw", "external": {"host": "db.example.org", "port": 3310}}},
    "cloudsql": {"database": {"mode": "cloudsql", "password": "pw", "cloudsql": {"instanceConnectionName": "p:r:i"}},
                 "ingress": {"enabled": True, "hosts": ["stats.example.org"]}},
    "queue-embedded-redis": {"queue": {"enabled": True, "pluginInImage": True}},
    "queue-external-redis-cronjob": {"queue": {"enabled": True, "pluginInImage": True, "workers": {"mode": "cronjob"},
                                               "redis": {"mode": "external", "host": "redis.example.org"}}},
}


def _selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


@pytest.mark.parametrize("mode", sorted(NETWORK_POLICY_MODES))
def test_with_network_policies_every_workload_pod_is_selected(helm: str, tmp_path: Path, mode: str) -> None:
    """networkPolicy.enabled: the policies validate strictly; every pod of a
    Deployment, StatefulSet, Job or CronJob is selected by exactly one policy;
    the hook and archiver pods accept no ingress but do restrict egress."""
    values = {"networkPolicy": {"enabled": True}, **NETWORK_POLICY_MODES[mode]}
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    docs = render(helm, values_file)
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    problems = [e for d in policies for e in validate_object(d)]
    for doc in docs:
        if doc["kind"] not in ("Deployment", "StatefulSet", "Job", "CronJob"):
            continue
        template = doc["spec"]["jobTemplate"]["spec"]["template"] if doc["kind"] == "CronJob" else doc["spec"]["template"]
        labels = template["metadata"]["labels"]
        matching = [p for p in policies if _selects(p["spec"]["podSelector"], labels)]
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        if len(matching) != 1:
            problems.append(f"{where}: selected by {[p['metadata']['name'] for p in matching]}")
            continue
        spec = matching[0]["spec"]
        if labels["app.kubernetes.io/component"] in ("hook", "archiver", "queue-worker"):
            if spec["policyTypes"] != ["Ingress", "Egress"] or spec.get("ingress"):
                problems.append(f"{where}: ingress is not denied ({spec.get('policyTypes')}, {spec.get('ingress')})")
            if not spec.get("egress"):
                problems.append(f"{where}: no egress rule")
    assert not problems, "\n".join(problems)
