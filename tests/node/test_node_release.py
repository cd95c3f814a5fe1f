"""The release path on a real node: what the release workflow publishes, installed the way a user installs it.

A local OCI registry (the CNCF distribution registry, built by
tools/install-k8s.sh) runs inside the node's network namespace on
127.0.0.1:<port>, and a forwarder gives it the same address on this machine,
so one image reference names it on both sides. tools/release.sh, the script
the release workflow runs against ghcr.io, publishes to it: the hook image
built from hooks/Dockerfile (FROM the local Debian Python image, itself pushed
to the registry first, standing in for python:slim), with its OCI labels and
SBOM, and the chart as an OCI artifact. Then `helm install
oci://127.0.0.1:<port>/matomo-k8s/charts/matomo --version <chart version>`
with hook.image.repository pointing at the registry and the chart's default
pull policy: containerd (configured for plain HTTP to that host only, through
a hosts.toml) pulls the hook image, which the node never had under that
reference. The release must end installed and serving: helm test passes and
a tracking request is stored.
"""

from __future__ import annotations

import email.parser
import json
import os
import re
import secrets
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import images  # tools/images/images.py (pytest.ini pythonpath): its Python image is the base of hooks/Dockerfile
import pytest
import yaml
from harness.controlplane import Process, _die_with_parent, find_binary
from harness.helm import F, Helm, Recorder
from harness.node import Node
from nodelib import Release, succeeded, wait_until

REPO = Path(__file__).resolve().parents[2]

OWNER = "matomo-k8s"
SOURCE_URL = "https://example.org/matomo-k8s/release-test"
SBOM_PATH = "usr/share/doc/matomo-hook/sbom.cdx.json"
# the hook's runtime dependencies (hooks/pyproject.toml) an SBOM must name
HOOK_DEPENDENCIES = ("kubernetes", "pymysql", "httpx", "pyyaml")


def chart_version() -> str:
    return str(yaml.safe_load((REPO / "charts" / "matomo" / "Chart.yaml").read_text())["version"])


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class Registry:
    node: Node
    host: str  # 127.0.0.1:<port>, the same on the machine and in the node's namespace
    process: Process
    data: Path

    def access_log(self) -> str:
        return self.process.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def registry(node: Node, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    binary = find_binary("registry")
    if not binary:
        pytest.fail("the distribution registry is not built: run ./dev tools (tools/install-k8s.sh builds it)")
    work = tmp_path_factory.mktemp("registry")
    port = node.netns.forward("127.0.0.1", 0)
    host = f"127.0.0.1:{port}"
    config = work / "config.yml"
    config.write_text(json.dumps({
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": False}},
        "storage": {"filesystem": {"rootdirectory": str(work / "data")}},
        "http": {"addr": host},
    }))
    log = work / "registry.log"
    with open(log, "wb") as fh:
        popen = subprocess.Popen(
            node.netns.wrap([binary, "serve", str(config)]), stdout=fh, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,  # noqa: PLW1509 - as node.py's processes
            # no tracing exporter: nothing but the registry's own port
            env={"PATH": os.environ.get("PATH", ""), "OTEL_TRACES_EXPORTER": "none"})
    proc = Process("registry", popen, log)
    try:
        wait_until(lambda: proc.alive() and node.http("GET", "127.0.0.1", port, "/v2/").status == 200, 30,
                   f"the registry answering on {host} in the node's namespace (log: {proc.tail()})")
        node.plain_http_registry(host)
        yield Registry(node, host, proc, work / "data")
    finally:
        proc.stop()
        shutil.rmtree(work, ignore_errors=True)


@dataclass
class Published:
    registry: Registry
    image: str  # host/owner/matomo-hook:<version>
    chart: str  # oci://host/owner/charts/matomo
    version: str
    digest: str  # of the pushed image index
    revision: str  # the checkout's HEAD when the script ran
    out: Path  # the script's --out: SBOMs, the chart package
    seconds: float


def tool_env(helm: Helm) -> dict[str, str]:
    env = dict(os.environ)
    env.update({k: v for k, v in helm.env().items() if k.startswith("HELM_")})
    tools = [REPO / ".tools" / "bin", REPO / ".tools" / "venv" / "bin"]
    env["PATH"] = os.pathsep.join([*map(str, tools), env.get("PATH", "")])
    return env


@pytest.fixture(scope="module")
def published(registry: Registry, node_helm: Helm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Published]:
    """tools/release.sh all against the local registry, as the release workflow runs it against ghcr.io."""
    work = tmp_path_factory.mktemp("release")
    env = tool_env(node_helm)
    # buildah's own storage for this run (vfs: works on any filesystem, nothing shared with other builds)
    storage = work / "storage.conf"
    storage.write_text(f'[storage]\ndriver = "vfs"\ngraphroot = "{work / "root"}"\nrunroot = "{work / "run"}"\n')
    env.update(CONTAINERS_STORAGE_CONF=str(storage), BUILDAH_ISOLATION="chroot")
    # hooks/Dockerfile's base from a registry, as python:slim is on ghcr: the local Debian Python image
    base = f"{registry.host}/matomo-test/python:3.11-bookworm"
    archive = images.build(["python"])["python"]
    subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"docker-archive:{archive}",
                    f"docker://{base}"], check=True, env=env, timeout=300)
    out = work / "dist"
    env.update(RELEASE_REGISTRY=registry.host, RELEASE_OWNER=OWNER, RELEASE_PLAIN_HTTP="1",
               RELEASE_BASE_IMAGE=base, RELEASE_SOURCE_URL=SOURCE_URL, RELEASE_OUT=str(out))
    ca = Path("/etc/ssl/certs/ca-certificates.crt")
    if ca.exists():  # pip in the build's RUN steps, behind this machine's TLS-inspecting proxy if any
        env["RELEASE_CA_BUNDLE"] = str(ca)
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    t0 = time.monotonic()
    proc = subprocess.run(["bash", str(REPO / "tools" / "release.sh"), "all"], env=env, text=True,
                          capture_output=True, timeout=1800, check=False)
    seconds = time.monotonic() - t0
    try:
        assert proc.returncode == 0, f"tools/release.sh all failed ({proc.returncode}):\n{proc.stderr[-6000:]}"
        version = chart_version()
        yield Published(registry, f"{registry.host}/{OWNER}/matomo-hook:{version}",
                        f"oci://{registry.host}/{OWNER}/charts/matomo", version,
                        (out / "matomo-hook.digest").read_text().strip(), head, out, seconds)
    finally:
        for args in (["rm", "--all"], ["rmi", "--all", "--force"]):
            subprocess.run(["buildah", *args], env=env, capture_output=True, check=False, timeout=300)
        subprocess.run(["rm", "-rf", "--one-file-system", str(work)], check=False)


# ------------------------------------------------------------ the image as a user gets it
def skopeo_inspect(ref: str, *args: str) -> dict[str, Any]:
    proc = subprocess.run(["skopeo", "inspect", "--tls-verify=false", *args, f"docker://{ref}"],
                          capture_output=True, text=True, check=True, timeout=120)
    return dict(json.loads(proc.stdout))


def image_files(ref: str, dest: Path, wanted: Callable[[str], bool]) -> dict[str, bytes]:
    """The files of the pulled image (this machine's platform) whose path `wanted` accepts, later layers winning."""
    layout = dest / "layout"
    subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{ref}", f"oci:{layout}:img"],
                   check=True, timeout=300)
    index = json.loads((layout / "index.json").read_text())

    def blob(digest: str) -> Path:
        return layout / "blobs" / digest.replace(":", "/")

    manifest = json.loads(blob(index["manifests"][0]["digest"]).read_text())
    files: dict[str, bytes] = {}
    for layer in manifest["layers"]:
        with tarfile.open(blob(layer["digest"]), "r:*") as tf:
            for m in tf:
                name = m.name.lstrip("./")
                if m.isfile() and wanted(name):
                    f = tf.extractfile(m)
                    assert f is not None
                    files[name] = f.read()
    return files


def test_hook_image_labels(published: Published) -> None:
    """What `skopeo inspect` (or the registry's UI) shows of the pushed image: the OCI provenance labels."""
    raw = skopeo_inspect(published.image, "--raw")
    assert raw["mediaType"].endswith(("manifest.list.v2+json", "image.index.v1+json")), raw["mediaType"]
    assert [m["platform"]["architecture"] for m in raw["manifests"]] == ["amd64"]
    labels = skopeo_inspect(published.image)["Labels"]
    assert labels["org.opencontainers.image.version"] == published.version
    assert labels["org.opencontainers.image.revision"] == published.revision
    assert labels["org.opencontainers.image.source"] == SOURCE_URL
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.title"] == "matomo-hook"
    assert "hook" in labels["org.opencontainers.image.description"]
    created = datetime.strptime(labels["org.opencontainers.image.created"], "%Y-%m-%dT%H:%M:%SZ")
    age = datetime.now(UTC).replace(tzinfo=None) - created
    assert 0 <= age.total_seconds() < published.seconds + 120, f"created {created}, {age} ago"


def test_hook_image_sbom_lists_its_real_dependencies(published: Published, tmp_path: Path) -> None:
    """The SBOM in the image (and next to it in the script's output) names every Python distribution the
    image holds, at the version the image holds, the hook's own dependencies among them."""
    files = image_files(published.image, tmp_path, lambda n: n == SBOM_PATH or (
        n.startswith("opt/venv/lib/") and re.search(r"/site-packages/[^/]+\.dist-info/METADATA$", n) is not None))
    assert SBOM_PATH in files, f"no /{SBOM_PATH} in {published.image}"
    sbom = json.loads(files[SBOM_PATH])
    (copy,) = published.out.glob(f"matomo-hook-{published.version}-linux-amd64.cdx.json")
    assert json.loads(copy.read_text()) == sbom, "the SBOM next to the image is the one inside it"

    installed = {}
    for name, content in files.items():
        if name.endswith("/METADATA"):
            meta = email.parser.Parser().parsestr(content.decode(errors="replace"), headersonly=True)
            installed[normalize(meta["Name"])] = meta["Version"]
    assert sbom["bomFormat"] == "CycloneDX"
    root = sbom["metadata"]["component"]
    assert (root["name"], root["version"]) == ("matomo-hook", installed["matomo-hook"])
    listed = {normalize(c["name"]): c["version"] for c in sbom.get("components", [])}
    listed.setdefault("matomo-hook", root["version"])
    assert listed == installed, (
        f"SBOM and image differ: only in the SBOM {sorted(set(listed.items()) - set(installed.items()))}, "
        f"only in the image {sorted(set(installed.items()) - set(listed.items()))}")
    for dep in HOOK_DEPENDENCIES:
        assert listed.get(dep), f"{dep} missing from the SBOM"
    purls = {c.get("purl", "") for c in sbom["components"]}
    assert f"pkg:pypi/kubernetes@{installed['kubernetes']}" in purls


# ------------------------------------------------------------ helm install from the registry
@pytest.fixture(scope="module")
def rel(node: Node, node_helm: Helm, node_namespaces: Callable[..., str], published: Published) -> Iterator[Release]:
    ns = node_namespaces("oci")
    r = Release(node, node_helm, ns, chart=published.chart,
                chart_args=["--version", published.version, "--plain-http"])
    r.jobs = Recorder(node.cp, f"/apis/batch/v1/namespaces/{ns}/jobs").start()
    yield r
    r.jobs.stop()


def test_install_from_oci_registry_pulls_hook_image(rel: Release, published: Published, node: Node) -> None:
    repository = published.image.rsplit(":", 1)[0]
    assert not [r for r in node.image_refs_present() if r.startswith(repository)], \
        "the hook image must come from the registry, not from an import"
    rel.install("--set", f"hook.image.repository={repository}", "--set", "hook.image.pullPolicy=IfNotPresent")
    assert rel.status()["info"]["status"] == "deployed"
    (listed,) = json.loads(rel.run_helm("list", "-n", rel.namespace, "-o", "json").stdout)
    assert listed["chart"] == f"matomo-{published.version}", listed
    hooks = rel.hook_jobs()
    assert len(hooks) == 1 and succeeded(hooks[0]), f"the hook Job did not succeed:\n{rel.diagnose()}"
    assert rel.available()

    # the Job pods ran the image containerd pulled from the registry: the pushed index, by digest
    job_pods = [p for p in rel.pods() if p["metadata"].get("labels", {}).get("job-name", "").startswith(F)]
    hook_containers = [c for p in job_pods for c in p["status"].get("containerStatuses", [])
                       if c["image"].startswith(repository)]
    assert hook_containers, f"no hook container ran {repository}:\n{rel.diagnose()}"
    for c in hook_containers:
        assert c["imageID"] == f"{repository}@{published.digest}", c
    pulled = rel.kubectl("get", "events", "--field-selector", "reason=Pulled", "-o", "json").stdout
    messages = [e["message"] for e in json.loads(pulled)["items"]]
    assert any("Successfully pulled image" in m and published.image in m for m in messages), messages
    assert f"/v2/{OWNER}/matomo-hook/manifests/{published.version}" in published.registry.access_log()


def test_installed_release_serves(rel: Release) -> None:
    if not rel.available():
        pytest.skip("the install from the registry failed")
    rel.run_helm("test", F, "-n", rel.namespace, "--timeout", "5m")
    m = rel.matomo()
    url = rel.track_stored(m, f"http://localhost/oci-install/{secrets.token_hex(4)}")
    assert len(m.visits_with(url)) == 1
