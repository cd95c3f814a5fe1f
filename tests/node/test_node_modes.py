"""The chart's other shapes on a real node: two replicas sharing sessions,
the fpm variant (php-fpm + nginx), an external database, Cloud SQL through
the proxy as a native sidecar. Every namespace enforces PodSecurity
`restricted`: every pod of every test is admitted at that level.
"""

from __future__ import annotations

import re
import secrets

import yaml
from clusterlib import F
from nodelib import NODE_VALUES, REPO, Context, Prestarted, Release, prestart, succeeded, wait_until
from test_node_local import helm_test

from fixtures.node import image_builder

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
    pods = rel.serving_pods()
    assert {c["name"] for c in pods[0]["spec"]["containers"]} == {"matomo", "nginx"}
    assert_tracks_and_stores(rel)
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
@prestart("test_cloudsql_proxy_native_sidecar", "cloudsql")
def start_cloudsql(ctx: Context, rel: Release) -> None:
    # values/prod.yaml as the README says (its existingSecret created first), the
    # instance played by a MariaDB Service the proxy stand-in relays to; no Ingress here
    rel.values = [PROD, NODE_VALUES]
    password = start_database(rel, "cloudsql-db")
    rel.node.cp.request("POST", f"/api/v1/namespaces/{rel.namespace}/secrets", {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "matomo-db-credentials"},
        "stringData": {"password": password}})
    rel.install("--set", "database.cloudsql.instanceConnectionName=test:local:cloudsql-db",
                "--set", "ingress.enabled=false", "--set", "matomo.url=http://127.0.0.1:8080",
                "--set", "replicaCount=1", "--set", "resources=null", "--set", "database.schema=Mariadb")


def test_cloudsql_proxy_native_sidecar(prestarted: Prestarted) -> None:
    rel = prestarted.release("test_cloudsql_proxy_native_sidecar").started()
    hooks = rel.hook_jobs()
    assert len(hooks) == 1 and succeeded(hooks[0]), "the hook Job completed although the proxy sidecar never exits by itself"
    pods = rel.serving_pods()
    init = {c["name"]: c for c in pods[0]["spec"]["initContainers"]}
    assert init["cloud-sql-proxy"].get("restartPolicy") == "Always"
    assert_tracks_and_stores(rel)
    rel.end_step()
