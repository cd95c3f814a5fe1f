"""Genuine Matomo in the pods the chart renders (tests/genuine).

A release of the chart is installed with Helm into the suite's control plane
(tests/harness/controlplane.py; its kwok node stands in for the nodes in the
API server's eyes) with ``--no-hooks``; then the pods Helm would have had a
node run are run here for real by tests/harness/podrun.py, from the objects
in the API server: the hook Job's pod (from ``helm get hooks``: the very
manifest Helm creates), serving pods (the Deployment's pod template), the
archiver (the CronJob's job template) and the ``helm test`` pod. The image
``matomo:<version>-apache`` is Debian's PHP 8.2 and Apache with the genuine
release tree at /usr/src/matomo (../shared/matomo); the hook image is this
repository's ``matomo-hook``. The database is the suite's MariaDB, reached
from each pod's loopback (``database.external.host: 127.0.0.1``).
"""

from __future__ import annotations

import itertools
import re
import json
import secrets
import string
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.helm import CHART, REPO, Helm
from harness.controlplane import ApiError, ControlPlane
from harness.mariadb import MariaDB
from harness.podrun import Image, KubeAccess, Pod, PodError, http_request

GENUINE = Path(__file__).resolve().parent
VALUES = GENUINE / "values.yaml"
RELEASE = "matomo"
F = RELEASE
HOST = "matomo.genuine.test"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
_n = itertools.count()


def hook_image_ref() -> str:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    return f"{values['hook']['image']['repository']}:{values['hook']['image']['tag'] or chart['version']}"


# The plugin image of tools/images/images.py (plugins.extra): the genuine plugin at /plugins/<Name>;
# here the image's files are that folder and the host's /bin/sh and cp (as its static busybox gives them).
QUEUEDTRACKING_IMAGE = "localhost/matomo-test/queuedtracking:5.1.1"


def images(trees: dict[str, Path], hook_bin: Path,
           plugins: dict[str, Path] | None = None) -> dict[str, Image]:
    """The images the chart's pods name, as this machine provides them (see the module docstring);
    `plugins`: plugin image reference -> the unpacked plugin folder, at /plugins/<its name>."""
    layer = GENUINE / "image"
    out = {}
    for version, tree in trees.items():
        out[f"matomo:{version}-apache"] = Image(
            binds={"/usr/src/matomo": tree, "/var/log/apache2": layer / "apache-logs", "/image/bin": layer / "bin"},
            path=["/image/bin"], user=0)
    # The hook image is this checkout's matomo-hook (its venv and, installed editable, its
    # source): bound at the same path, since the checkout may live in /tmp, which is never
    # the image's (every container gets its own /tmp). PYTHONPATH: this checkout's source
    # even when the venv is another clone's (a git worktree links the main clone's .tools).
    out[hook_image_ref()] = Image(entrypoint=[str(hook_bin)], cmd=["run"], user=10001,
                                  binds={str(REPO): REPO},
                                  env={"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1",
                                       "PYTHONPATH": str(REPO / "hooks" / "src")})
    for ref, folder in (plugins or {}).items():
        out[ref] = Image(binds={f"/plugins/{folder.name}": folder}, cmd=["/bin/sh"])
    return out


def random_text(n: int) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(n))


@dataclass
class ClusterObjects:
    """Secrets and ConfigMaps as the kubelet reads them: from the API server."""

    cp: ControlPlane
    namespace: str

    def data(self, kind: str, name: str) -> dict[str, bytes]:
        import base64

        plural = {"Secret": "secrets", "ConfigMap": "configmaps"}[kind]
        try:
            obj = self.cp.get(f"/api/v1/namespaces/{self.namespace}/{plural}/{name}")
        except ApiError as exc:
            raise PodError(f"{kind} {self.namespace}/{name}: {exc.message}") from None
        if kind == "Secret":
            return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
        return {k: v.encode() for k, v in (obj.get("data") or {}).items()}


@dataclass
class Suite:
    cp: ControlPlane
    helm: Helm
    db: MariaDB
    images: dict[str, Image]
    kube: KubeAccess
    workdir: Path


@dataclass
class Release:
    """One release of the chart in a namespace and a database of its own."""

    suite: Suite
    namespace: str
    database: str
    salt: str = field(default_factory=lambda: random_text(64))
    password: str = field(default_factory=lambda: "Su-" + random_text(20))
    pods: list[Pod] = field(default_factory=list)
    prefix: str = "matomo_"

    # ------------------------------------------------------------ cluster side
    def create_secrets(self) -> None:
        for name, key, value in (("genuine-db", "password", self.suite.db.password),
                                 ("genuine-salt", "salt", self.salt),
                                 ("genuine-superuser", "password", self.password)):
            body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
                    "stringData": {key: value}}
            try:
                self.suite.cp.request("POST", f"/api/v1/namespaces/{self.namespace}/secrets", body)
            except ApiError as exc:
                if exc.status != 409:
                    raise

    def helm_apply(self, version: str, *extra: str) -> None:
        """helm upgrade --install of the chart at Matomo `version` (image.tag), hooks left to the suite."""
        self.suite.helm.run("upgrade", "--install", RELEASE, str(CHART), "-n", self.namespace, "-f", str(VALUES),
                            "--set", f"database.name={self.database}", "--set", f"image.tag={version}-apache",
                            "--set", f"database.tablesPrefix={self.prefix}",
                            "--no-hooks", "--wait", "--timeout", "3m", *extra)

    def hooks(self) -> list[dict[str, Any]]:
        out = self.suite.helm.run("get", "hooks", RELEASE, "-n", self.namespace).stdout
        return [d for d in yaml.safe_load_all(out) if d]

    def hook_manifest(self, kind: str, hook: str) -> dict[str, Any]:
        for doc in self.hooks():
            if doc["kind"] == kind and hook in doc["metadata"]["annotations"]["helm.sh/hook"].split(","):
                return doc
        raise AssertionError(f"no {kind} with helm.sh/hook {hook} in the release")

    def deployment(self) -> dict[str, Any]:
        return dict(self.suite.cp.get(f"/apis/apps/v1/namespaces/{self.namespace}/deployments/{F}"))

    def cronjob(self) -> dict[str, Any]:
        return dict(self.suite.cp.get(f"/apis/batch/v1/namespaces/{self.namespace}/cronjobs/{F}-archiver"))

    # ------------------------------------------------------------ pods
    @property
    def claims(self) -> Path:
        """The release's PersistentVolumeClaims, a directory each: kept while the release lives."""
        return self.suite.workdir.parent / "claims" / self.namespace

    def pod(self, role: str, spec: dict[str, Any], routes: dict[int, Path] | None = None,
            hosts: list[str] | None = None) -> Pod:
        pod = Pod(f"{role}-{next(_n)}", spec, namespace=self.namespace, images=self.suite.images,
                  objects=ClusterObjects(self.suite.cp, self.namespace), workdir=self.suite.workdir,
                  routes={3306: self.suite.db.socket_path, **(routes or {})}, hosts=hosts,
                  kube=self.suite.kube, claims=self.claims)
        self.pods.append(pod)
        return pod

    def run_hook(self, timeout: float = 600, env: dict[str, str] | None = None) -> HookRun:
        """The post-install/post-upgrade Job's pod, as Helm created it, run to completion; `env` replaces the
        values of variables of the hook container (what the chart refuses to render, to reach Matomo's refusal)."""
        job = self.hook_manifest("Job", "post-upgrade")
        spec = job["spec"]["template"]["spec"]
        for name, value in (env or {}).items():
            (container,) = [c for c in spec["containers"] if c["name"] == "hook"]
            (var,) = [v for v in container["env"] if v["name"] == name]
            var["value"] = value
        pod = self.pod("hook", spec)
        codes = pod.run_to_completion(timeout)
        return HookRun(codes["hook"], pod)

    def serving_pod(self, timeout: float = 120, routes: dict[int, Path] | None = None) -> Pod:
        """A pod of the Deployment as the API server has it now, started and Ready."""
        pod = self.pod("matomo", self.deployment()["spec"]["template"]["spec"], routes=routes)
        pod.start(timeout)
        pod.wait_ready("matomo", timeout)
        return pod

    def archive(self, timeout: float = 600) -> tuple[int, str]:
        spec = self.cronjob()["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        pod = self.pod("archiver", spec)
        codes = pod.run_to_completion(timeout)
        return codes["archiver"], pod.logs("archiver")

    def helm_test(self, serving: Pod | None, timeout: float = 120) -> tuple[int, str]:
        """The release's `helm test` pod, with the Service F routed to `serving` (none: no endpoint)."""
        spec = self.hook_manifest("Pod", "test")["spec"]
        routes = {80: serving.socket(8080)} if serving else {}
        names = [F, f"{F}.{self.namespace}", f"{F}.{self.namespace}.svc", f"{F}.{self.namespace}.svc.cluster.local"]
        pod = self.pod("test", spec, routes=routes, hosts=names)
        codes = pod.run_to_completion(timeout)
        return codes["check"], pod.logs("check")

    def stop(self) -> None:
        """Stops every pod of the release and frees its volumes (logs stay).

        Each pod's volumes hold a few MB (Matomo's config and caches; the fpm
        variant's static files, ~17 MB): a session runs ~50 pods, and the real
        node's suite after this one needs the disk.
        """
        for pod in self.pods:
            pod.stop()
            pod.remove_volumes()

    # ------------------------------------------------------------ database side
    def sql(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        with self.suite.db.connect(self.database) as conn, conn.cursor() as cur:
            cur.execute(query.replace("{p}", self.prefix), args)
            return list(cur.fetchall())

    def count(self, table: str) -> int:
        return int(self.sql(f"SELECT COUNT(*) FROM {{p}}{table}")[0][0])

    def option(self, name: str) -> str | None:
        rows = self.sql("SELECT option_value FROM {p}option WHERE option_name = %s", name)
        return str(rows[0][0]) if rows else None

    def sql_plugins(self) -> list[str]:
        """The plugins the database has installed (Matomo's version_<plugin> options)."""
        rows = self.sql("SELECT option_name FROM {p}option WHERE option_name LIKE 'version!_%%' ESCAPE '!'")
        return [r[0][len("version_"):] for r in rows if re.fullmatch(r"version_[A-Za-z]\w*", r[0]) and r[0] != "version_core"]

    def tables(self) -> list[str]:
        return [r[0] for r in self.sql("SHOW TABLES")]

    def checksums(self) -> dict[str, int]:
        """CHECKSUM TABLE of every table: equal before and after means no row changed."""
        names = self.tables()
        rows = self.sql("CHECKSUM TABLE " + ", ".join(f"`{n}`" for n in names)) if names else []
        return {str(r[0]).split(".")[-1]: int(r[1]) for r in rows}


@dataclass
class HookRun:
    exit_code: int
    pod: Pod

    @property
    def log(self) -> str:
        return self.pod.logs("hook")

    def events(self) -> list[dict[str, Any]]:
        """The hook's log events (its last stdout line, the final state, has no "event")."""
        return [e for e in iter_events(self.log) if "event" in e]

    def steps(self) -> list[str]:
        return [e["step"] for e in self.events() if e.get("event") == "step_done"]

    def explain(self) -> str:
        return "\n".join(f"--- {c}\n{self.pod.logs(c)[-3000:]}" for c in self.pod.containers)


# ---------------------------------------------------------------- HTTP, as a user
def request(pod: Pod, method: str, path: str, data: dict[str, str] | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    hdrs = {"Host": HOST, "User-Agent": BROWSER, **(headers or {})}
    body = None
    if data is not None:
        body = urllib.parse.urlencode(data).encode()
        hdrs["Content-Type"] = "application/x-www-form-urlencoded"
    status, h, raw = http_request(pod.socket(8080), method, path, hdrs, body)
    return status, h, raw.decode("utf-8", "replace")


def track(pod: Pod, count: int, visitor: str | None = None, idsite: int = 1) -> list[int]:
    """`count` page views of one visitor through the tracker; the HTTP statuses."""
    visitor = visitor or secrets.token_hex(8)
    statuses = []
    for i in range(count):
        q = urllib.parse.urlencode({"idsite": idsite, "rec": 1, "_id": visitor, "send_image": 0,
                                    "url": f"http://site.example.org/page-{i}", "action_name": f"Page {i}",
                                    "rand": secrets.token_hex(4)})
        statuses.append(request(pod, "GET", f"/matomo.php?{q}")[0])
    return statuses


def api(pod: Pod, method: str, token: str | None = None, **params: Any) -> tuple[int, Any]:
    """A Reporting/management API call (token_auth in the POST body, as Matomo recommends)."""
    data = {"module": "API", "method": method, "format": "json", **{k: str(v) for k, v in params.items()}}
    if token:
        data["token_auth"] = token
    status, _, body = request(pod, "POST", "/index.php", data)
    try:
        return status, json.loads(body)
    except json.JSONDecodeError:
        return status, body


def login_token(pod: Pod, release: Release, login: str = "admin") -> str:
    """Logs in through the API with the superuser Secret's password: a new app token."""
    password = ClusterObjects(release.suite.cp, release.namespace).data("Secret", "genuine-superuser")["password"]
    status, body = api(pod, "UsersManager.createAppSpecificTokenAuth", userLogin=login,
                       passwordConfirmation=password.decode(), description=f"genuine-{secrets.token_hex(3)}")
    assert status == 200 and isinstance(body, dict) and "value" in body, f"login failed: {status} {body}"
    return str(body["value"])


def iter_events(log: str) -> Iterator[dict[str, Any]]:
    for line in log.splitlines():
        if line.startswith("{"):
            yield json.loads(line)


# ---------------------------------------------------------------- interrupted installs
class Interrupted(Exception):
    pass


def interrupted_install(release: Release, stop_after: str) -> None:
    """Leaves the release's database as an install cut off right after `stop_after`,
    walked by genuine Matomo: the rendered hook pod's installer sidecar (its main
    container left out, so that the test, not the hook, decides where the walk
    stops) driven by the hook's own installer client."""
    import copy
    import os

    import httpx

    from matomo_hook import config as hook_config
    from matomo_hook import database, installer

    job = release.hook_manifest("Job", "post-install")
    spec = copy.deepcopy(job["spec"]["template"]["spec"])
    spec["containers"] = []
    db = release.suite.db
    # the test's installer client reaches the database at its host port; so must Matomo
    pod = release.pod("installer", spec, routes={db.port: db.socket_path})
    pod.start()
    try:
        config_dir = pod.volumes["matomo-config"][0]
        env = {
            "MATOMO_DATABASE_HOST": db.host, "MATOMO_DATABASE_PORT": str(db.port),
            "MATOMO_DATABASE_USERNAME": db.user, "MATOMO_DATABASE_PASSWORD": db.password,
            "MATOMO_DATABASE_DBNAME": release.database, "MATOMO_DATABASE_TABLES_PREFIX": release.prefix,
            "MATOMO_DATABASE_SCHEMA": "Mariadb", "MATOMO_SALT": release.salt,
            "MATOMO_CONFIG_FILE": str(config_dir / "config.ini.php"),
            "MATOMO_SUPERUSER_LOGIN": "admin", "MATOMO_SUPERUSER_PASSWORD": release.password,
            "MATOMO_SUPERUSER_EMAIL": "admin@example.org", "MATOMO_SITE_NAME": "Genuine site",
            "MATOMO_SITE_URL": "http://site.example.org", "MATOMO_CODE_VERSION": "5.1.2",
        }
        settings = hook_config.load(env, frozenset({"db", "install"}))

        def after(step: str) -> None:
            if step == "seed":  # the hook runs as www-data; this process is root
                os.chown(settings.config_file, 33, 33)
            if step == stop_after:
                raise Interrupted(step)

        conn = database.connect(settings.db)
        try:
            with conn.lock(30):
                try:
                    installer.install(settings, conn, conn.state(),
                                      transport=httpx.HTTPTransport(uds=str(pod.socket(8080))), after_step=after)
                except Interrupted:
                    return
        finally:
            conn.close()
        raise AssertionError(f"the install finished without passing {stop_after}")
    finally:
        pod.stop()
