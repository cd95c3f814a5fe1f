"""The chart's other shapes on a real node: two replicas sharing sessions,
the fpm variant (php-fpm + nginx), an external database, Cloud SQL through
the proxy as a native sidecar. Every namespace enforces PodSecurity
`restricted`: every pod of every test is admitted at that level.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
from pathlib import Path
from typing import Any

import yaml
from harness.helm import F
from nodelib import (
    NODE_VALUES,
    REPO,
    Context,
    Prestarted,
    Release,
    assert_code_is_the_image_read_only,
    assert_hook_pod_stopped_at_once,
    prestart,
    succeeded,
    wait_until,
)
from test_node_local import helm_test

from harness.node import image_builder

MARIADB = image_builder.MARIADB

PROD = REPO / "values" / "prod.yaml"


def assert_tracks_and_stores(rel: Release) -> None:
    m = rel.matomo()
    rel.track_stored(m, f"http://localhost/{rel.namespace}/{secrets.token_hex(4)}")


def database_workload(name: str, password: str) -> str:
    """A MariaDB Deployment + Service of the user's own (the local MariaDB image), restricted-compliant."""
    sc = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
          "runAsUser": 999, "runAsGroup": 999, "capabilities": {"drop": ["ALL"]},
          "seccompProfile": {"type": "RuntimeDefault"}}
    labels = {"app": name}
    docs = [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"{name}-root"},
         "stringData": {"root": secrets.token_hex(12), "password": password}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
         "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
             "terminationGracePeriodSeconds": 5,
             "securityContext": {"runAsNonRoot": True, "fsGroup": 999, "seccompProfile": {"type": "RuntimeDefault"}},
             "containers": [{
                 "name": "mariadb", "image": MARIADB, "imagePullPolicy": "Never", "securityContext": sc,
                 "args": ["--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci"],
                 "env": [{"name": "MARIADB_ROOT_PASSWORD",
                          "valueFrom": {"secretKeyRef": {"name": f"{name}-root", "key": "root"}}},
                         {"name": "MARIADB_DATABASE", "value": "matomo"},
                         {"name": "MARIADB_USER", "value": "matomo"},
                         {"name": "MARIADB_PASSWORD",
                          "valueFrom": {"secretKeyRef": {"name": f"{name}-root", "key": "password"}}}],
                 "ports": [{"containerPort": 3306}],
                 "readinessProbe": {"tcpSocket": {"port": 3306}, "periodSeconds": 2},
                 "volumeMounts": [{"name": d, "mountPath": p} for d, p in
                                  (("data", "/var/lib/mysql"), ("run", "/run/mysqld"), ("tmp", "/tmp"))]}],
             "volumes": [{"name": d, "emptyDir": {}} for d in ("data", "run", "tmp")]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
         "spec": {"selector": labels, "ports": [{"port": 3306, "targetPort": 3306}]}},
    ]
    return yaml.safe_dump_all(docs)


def start_database(rel: Release, name: str) -> str:
    password = secrets.token_hex(12)
    rel.node.cp.kubectl("-n", rel.namespace, "apply", "-f", "-", input=database_workload(name, password))
    wait_until(lambda: rel.kubectl("rollout", "status", f"deployment/{name}", "--timeout=5s", check=False)
               .returncode == 0, 180, f"database {name} ready")
    return password


# --------------------------------------------------------------- replicas
def login_session(rel: Release, pod_ip: str, password: str) -> dict[str, str]:
    """Log in through the login form of one pod; returns the session cookies."""
    from nodelib import Matomo

    m = Matomo(rel.node, pod_ip, 8080)
    page = m.request("GET", "/index.php?module=Login")
    cookies = cookie_jar(page.header("Set-Cookie"))
    nonce = re.search(r'name="form_nonce"[^>]*value="([^"]+)"', page.text) or \
        re.search(r'value="([^"]+)"[^>]*name="form_nonce"', page.text)
    assert nonce, f"no login form nonce in the login page: {page.text[:500]}"
    r = m.request("POST", "/index.php?module=Login", form={
        "form_login": "admin", "form_password": password, "form_nonce": nonce.group(1), "form_rememberme": "0"},
        headers={"Cookie": cookie_header(cookies)})
    assert r.status in (302, 303), f"login answered {r.status}: {r.text[:300]}"
    cookies.update(cookie_jar(r.header("Set-Cookie")))
    return cookies


def cookie_jar(set_cookies: list[str]) -> dict[str, str]:
    jar = {}
    for c in set_cookies:
        k, _, v = c.split(";", 1)[0].partition("=")
        if v and v != "deleted":
            jar[k.strip()] = v
    return jar


def cookie_header(jar: dict[str, str]) -> str:
    return "; ".join(f"{k}={v}" for k, v in jar.items())


def logged_in(rel: Release, pod_ip: str, cookies: dict[str, str]) -> bool:
    from nodelib import Matomo

    m = Matomo(rel.node, pod_ip, 8080)
    r = m.request("GET", "/index.php?module=UsersManager&action=userSettings",
                  headers={"Cookie": cookie_header(cookies)})
    return r.status == 200 and 'name="form_login"' not in r.text and "admin@example.org" in r.text


@prestart("test_two_replicas_share_login_sessions", "replicas")
def start_replicas(ctx: Context, rel: Release) -> None:
    rel.install("--set", "replicaCount=2")


def test_two_replicas_share_login_sessions(prestarted: Prestarted) -> None:
    rel = prestarted.release("test_two_replicas_share_login_sessions").started()
    pods = rel.serving_pods()
    assert len(pods) == 2
    a, b = (p["status"]["podIP"] for p in pods)
    password = rel.secret(f"{F}-superuser", "password")
    cookies = login_session(rel, a, password)
    assert logged_in(rel, a, cookies), "the session works on the pod that made it"
    assert logged_in(rel, b, cookies), "a session made through one pod is valid on the other (sessions in the database)"
    assert not logged_in(rel, b, {}), "without the cookie the other pod asks to log in"
    rel.end_step()


# ------------------------------------------------------------- fpm variant
@prestart("test_fpm_variant", "fpm")
def start_fpm(ctx: Context, rel: Release) -> None:
    rel.install("--set", "image.variant=fpm")


def test_fpm_variant(prestarted: Prestarted) -> None:
    rel = prestarted.release("test_fpm_variant").started()
    # the -fpm image's stop signal is SIGQUIT: the hook pod's Matomo sidecar stops on it at once
    assert_hook_pod_stopped_at_once(rel)
    pods = rel.serving_pods()
    assert {c["name"] for c in pods[0]["spec"]["containers"]} == {"matomo", "nginx"}
    assert_tracks_and_stores(rel)
    # php-fpm runs the image's code in place; nginx has only the static files, read-only
    assert assert_code_is_the_image_read_only(rel, pods[0]) < 5 * 1024
    nginx = rel.kubectl("exec", pods[0]["metadata"]["name"], "-c", "nginx", "--", "sh", "-c",
                        "find /usr/src/matomo -name '*.php' | head -3; echo ===; "
                        "touch /usr/src/matomo/matomo.js 2>/dev/null && echo WRITABLE || echo read-only").stdout
    php_files, writable = nginx.split("===")
    assert not php_files.strip(), f"nginx has Matomo's PHP code: {php_files}"
    assert writable.strip() == "read-only"
    helm_test(rel)
    rel.end_step()


# ------------------------------------------------------------ external mode
@prestart("test_external_database", "external")
def start_external(ctx: Context, rel: Release) -> None:
    password = start_database(rel, "extdb")
    rel.install("--set", "database.mode=external", "--set", "database.external.host=extdb",
                "--set", f"database.password={password}", "--set", "database.schema=Mariadb")


def test_external_database(prestarted: Prestarted) -> None:
    rel = prestarted.release("test_external_database").started()
    assert not rel.pods("database"), "no embedded MariaDB in external mode"
    assert_tracks_and_stores(rel)
    rel.end_step()


# ------------------------------------------------------------ cloudsql mode
CONNECTION_NAME = "matomo-test:europe-west1:matomo"
INSTANCE = "cloudsql-instance"
RESTRICTED = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
              "runAsUser": 65532, "runAsGroup": 65532, "capabilities": {"drop": ["ALL"]},
              "seccompProfile": {"type": "RuntimeDefault"}}


def cloudsql_instance_workload(name: str, backend: str) -> str:
    """Google's side of the instance CONNECTION_NAME (tools/images/cloudsql-instance.go): the SQL Admin API
    on port 80, the server-side proxy on 3307 (the pod IP is the instance's PRIMARY address) relaying to
    `backend`; the bearer token it expects from the Secret `name`."""
    labels = {"app": name}
    docs = [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
         "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
             "terminationGracePeriodSeconds": 5, "automountServiceAccountToken": False,
             "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
             "containers": [{
                 "name": "instance", "image": image_builder.INSTANCE, "imagePullPolicy": "Never",
                 "securityContext": RESTRICTED,
                 "args": [f"-instance={CONNECTION_NAME}", f"-backend={backend}"],
                 "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                         {"name": "CLOUDSQL_TOKEN", "valueFrom": {"secretKeyRef": {"name": name, "key": "token"}}}],
                 "ports": [{"containerPort": 8080, "name": "api"}, {"containerPort": 3307, "name": "tls"}],
                 "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
         "spec": {"selector": labels, "ports": [{"name": "api", "port": 80, "targetPort": 8080},
                                                {"name": "tls", "port": 3307, "targetPort": 3307}]}},
    ]
    return yaml.safe_dump_all(docs)


def start_cloudsql_instance(rel: Release, backend: str) -> str:
    """The instance's stand-in, ready; returns the token the proxy must present."""
    token = secrets.token_urlsafe(24)
    rel.node.cp.request("POST", f"/api/v1/namespaces/{rel.namespace}/secrets", {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": INSTANCE}, "stringData": {"token": token}})
    rel.node.cp.kubectl("-n", rel.namespace, "apply", "-f", "-", input=cloudsql_instance_workload(INSTANCE, backend))
    wait_until(lambda: rel.kubectl("rollout", "status", f"deployment/{INSTANCE}", "--timeout=5s", check=False)
               .returncode == 0, 180, f"{INSTANCE} ready")
    return token


def container_status(pod: dict[str, Any], name: str) -> dict[str, Any]:
    statuses = pod["status"].get("initContainerStatuses", []) + pod["status"].get("containerStatuses", [])
    found = [s for s in statuses if s["name"] == name]
    assert found, f"no status of container {name} in pod {pod['metadata']['name']}"
    return dict(found[0])


def proxy_messages(rel: Release, pod: str) -> list[str]:
    """The proxy's log lines (--structured-logs: one JSON object a line), as their messages."""
    out = rel.kubectl("logs", pod, "-c", "cloud-sql-proxy").stdout
    messages = []
    for line in out.splitlines():
        try:
            messages.append(str(json.loads(line).get("message", line)))
        except ValueError:
            messages.append(line)
    return messages


@prestart("test_cloudsql_proxy_native_sidecar", "cloudsql")
def start_cloudsql(ctx: Context, rel: Release) -> None:
    # values/prod.yaml as README.md ("Production on Google Cloud") says, its existingSecret created
    # first. The REAL Cloud SQL Auth Proxy (built from its Go module at the chart's default tag) runs as
    # the native sidecar; Google's side of the instance is cloudsql-instance (the node has no route out),
    # whose server-side proxy
    # relays the proxy's TLS to a MariaDB. Only this test points the proxy there, through
    # database.cloudsql.extraArgs. No Ingress here.
    rel.values = [PROD, NODE_VALUES]
    password = start_database(rel, "cloudsql-db")
    token = start_cloudsql_instance(rel, "cloudsql-db:3306")
    rel.node.cp.request("POST", f"/api/v1/namespaces/{rel.namespace}/secrets", {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "matomo-db-credentials"},
        "stringData": {"password": password}})
    # a values file: the token stays off every command line
    fd, name = tempfile.mkstemp(prefix="cloudsql-endpoint-", suffix=".yaml")
    endpoint = Path(name)
    try:
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump({"database": {"cloudsql": {"extraArgs": [
                f"--sqladmin-api-endpoint=http://{INSTANCE}.{rel.namespace}.svc.cluster.local/",
                f"--token={token}"]}}}, f)
        rel.values = [*rel.values, endpoint]
        rel.install("--set", f"database.cloudsql.instanceConnectionName={CONNECTION_NAME}",
                    "--set", "ingress.enabled=false", "--set", "matomo.url=http://127.0.0.1:8080",
                    "--set", "replicaCount=1", "--set", "resources=null", "--set", "database.schema=Mariadb")
    finally:
        endpoint.unlink(missing_ok=True)
        rel.values = [PROD, NODE_VALUES]


def test_cloudsql_proxy_native_sidecar(prestarted: Prestarted) -> None:
    rel = prestarted.release("test_cloudsql_proxy_native_sidecar").started()
    node = rel.node
    # the hook Job completed although the proxy sidecar never exits by itself: once the hook
    # container ended, the kubelet stopped the sidecar, through the chart's preStop
    # (`cloud-sql-proxy shutdown` -> /quitquitquit on the admin port), with exit code 0
    hooks = rel.hook_jobs()
    assert len(hooks) == 1 and succeeded(hooks[0]), "the hook Job completed although the proxy sidecar never exits by itself"
    hook_pods = [p for p in rel.pods("hook") if p["status"].get("phase") == "Succeeded"]
    assert len(hook_pods) == 1, [p["status"].get("phase") for p in rel.pods("hook")]
    stopped = container_status(hook_pods[0], "cloud-sql-proxy")["state"].get("terminated") or {}
    assert stopped.get("exitCode") == 0, f"the hook pod's proxy: {stopped}"
    hook_log = proxy_messages(rel, hook_pods[0]["metadata"]["name"])
    assert any("/quitquitquit received request" in m for m in hook_log), hook_log[-10:]

    # the serving pod: the sidecar's startup probe (/startup on the proxy's health port) passed
    # before Matomo started, and the real proxy answers its health endpoints
    pods = rel.serving_pods()
    pod = pods[0]
    name = pod["metadata"]["name"]
    init = {c["name"]: c for c in pod["spec"]["initContainers"]}
    assert init["cloud-sql-proxy"].get("restartPolicy") == "Always"
    assert init["cloud-sql-proxy"]["startupProbe"]["httpGet"]["path"] == "/startup"
    proxy = container_status(pod, "cloud-sql-proxy")
    assert proxy.get("started") is True and proxy.get("ready") is True and proxy["restartCount"] == 0, proxy
    started = proxy["state"]["running"]["startedAt"]
    assert started <= container_status(pod, "matomo")["state"]["running"]["startedAt"]
    for path in ("/startup", "/readiness", "/liveness"):
        r = node.http("GET", pod["status"]["podIP"], 9801, path)
        assert (r.status, r.body) == (200, b"ok"), f"{path}: {r.status} {r.body[:200]!r}"
    _, tag = image_builder.chart_proxy_image()
    version = rel.kubectl("exec", name, "-c", "cloud-sql-proxy", "--", "/cloud-sql-proxy", "--version").stdout
    assert f"version {tag}+" in version, f"the sidecar runs the real proxy at the chart's default tag: {version}"

    # Matomo installed and serves through the proxy: a tracking request is stored
    assert_tracks_and_stores(rel)
    log = proxy_messages(rel, name)
    assert any(f"[{CONNECTION_NAME}] Listening on 127.0.0.1:3306" in m for m in log), log[-10:]
    instance = rel.kubectl("logs", f"deployment/{INSTANCE}").stdout
    signed = re.findall(r"generateEphemeralCert \S+: client certificate \d+ signed", instance)
    relayed = re.findall(r"tls: connection \d+ from .*: relayed to cloudsql-db:3306", instance)
    # one certificate per proxy (the hook pod's, the serving pod's), each connection over TLS with it
    assert len(signed) >= 2 and relayed, instance[-3000:]
    assert "(401)" not in instance and "handshake refused" not in instance, instance[-3000:]

    # the preStop command itself on the serving pod: the proxy exits 0, the kubelet restarts the
    # sidecar (restartPolicy Always), and Matomo keeps storing through it
    rel.kubectl("exec", name, "-c", "cloud-sql-proxy", "--", "/cloud-sql-proxy", "shutdown", "--admin-port", "9092")

    def restarted() -> dict[str, Any] | None:
        p = rel.get(f"/api/v1/namespaces/{rel.namespace}/pods/{name}")
        s = container_status(p, "cloud-sql-proxy")
        return s if s["restartCount"] >= 1 and s.get("started") else None

    after = wait_until(restarted, 60, "the proxy sidecar restarted after `cloud-sql-proxy shutdown`")
    assert after["lastState"]["terminated"]["exitCode"] == 0, after["lastState"]
    assert_tracks_and_stores(rel)

    # the archiver CronJob's pods carry the same sidecar: a Job made from it completes (the proxy
    # stopped once core:archive ended) and the Reporting API shows what was tracked
    rel.kubectl("create", "job", "archive-now", f"--from=cronjob/{F}-archiver")
    wait_until(lambda: succeeded([rel.get(f"/apis/batch/v1/namespaces/{rel.namespace}/jobs/archive-now")]),
               300, "the archiver Job complete although its proxy sidecar never exits by itself")
    m = rel.matomo()
    m.login_token(rel.helm_login, rel.secret(f"{F}-superuser", "password"))
    summary = m.api("VisitsSummary.get", idSite="1", period="day", date="today")
    assert int(summary["nb_visits"]) >= 1, summary
    rel.end_step()
