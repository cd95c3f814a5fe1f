"""Moving an existing Matomo onto the chart, on the real node, as README's
"Moving an existing Matomo to this chart" tells a user to.

The existing Matomo is a "VM install" made outside the chart
(tests/harness/vm_install.py): genuine Matomo 5.0.3 served by `php -S` on
this machine, installed through its own web installer (which made its own
salt) against a MariaDB of its own, then used: visits, a second user, an app
token. Its database is dumped with `mariadb-dump --single-transaction`, as
the README says, and moved in two ways:

- external: the dump loaded into a database server of the user's own in the
  cluster; `helm install` with the chart's own salt is refused by the hook
  before it writes anything; the README's way out (the old salt and a token
  in a Secret, `helm upgrade`) adopts it: the dump before `core:update` on
  the backup volume, 5.1.2 serving the old visits, logins and token;
- embedded: the dump copied into a PersistentVolumeClaim of the user's and
  loaded by `backup.restore.file` into the embedded MariaDB at install,
  before the hook, which checks the salt (by the anonymous user's token row
  Matomo's install stored) and upgrades.
"""

from __future__ import annotations

import gzip
import json
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from harness.helm import F
from nodelib import HOOK, TIMEOUT, Context, Prestarted, Release, prestart, succeeded, wait_until
from test_node_local import record_bench
from test_node_modes import start_database

from harness import vm_install
from harness.mariadb import start_mariadb
from harness.node import image_builder

OLD, NEW = "5.0.3", "5.1.2"
# the VM install is Matomo 5.0.3, whose schema class is Mysql (Mariadb is 5.1+)
COMMON = ("--set", f"image.tag={NEW}-apache", "--set", "database.schema=Mysql")
SALT_SECRET = "matomo-moved-salt"


@contextmanager
def vm_dump(prefix: str) -> Iterator[tuple[vm_install.VMInstall, Path]]:
    """A 5.0.3 installed and used on this machine outside the chart, and its dump; its MariaDB stopped
    after the dump (the old installation's writes stopped, README step 2), its folder removed after."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        host_db = start_mariadb(work / "db")
        try:
            db = vm_install.Database.on(host_db, host_db.new_database("vm"))
            vm = vm_install.install(OLD, work / "vm", db, visits=3, actions_per_visit=2)
            dump = vm_install.dump_database(db, work / "matomo.sql")
        finally:
            host_db.stop()
        yield vm, dump
    finally:
        shutil.rmtree(work, ignore_errors=True)


def salt_secret(rel: Release, vm: vm_install.VMInstall) -> None:
    """README step 4: the old salt and one API token of the old installation."""
    doc = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": SALT_SECRET},
           "stringData": {"salt": vm.salt, "token": vm.token}}
    rel.node.cp.kubectl("-n", rel.namespace, "apply", "-f", "-", input=json.dumps(doc))


def every_hook_log(rel: Release) -> str:
    return rel.kubectl("logs", "-l", f"job-name={HOOK}", "--all-containers", "--prefix", "--tail=-1",
                       "--max-log-requests=12", check=False).stdout


def hook_events(rel: Release) -> list[dict[str, Any]]:
    lines = rel.kubectl("logs", f"job/{HOOK}", "-c", "hook", "--tail=-1").stdout.splitlines()
    parsed = (json.loads(line) for line in lines if line.startswith("{"))
    return [e for e in parsed if "event" in e]  # the last line is the result, not an event


def backup_files(rel: Release, claim: str) -> dict[str, bytes]:
    """The files on a claim's volume (the node's hostPath PersistentVolumes), as a user listing it would."""
    pvc = rel.get(f"/api/v1/namespaces/{rel.namespace}/persistentvolumeclaims/{claim}")
    pv = rel.get(f"/api/v1/persistentvolumes/{pvc['spec']['volumeName']}")
    folder = Path(pv["spec"]["hostPath"]["path"])
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def assert_moved(rel: Release, vm: vm_install.VMInstall) -> None:
    """What the move must keep: the old visits, the old token, the second user's password; and the new
    code serving and tracking."""
    m = rel.matomo()
    m.token = vm.token
    assert m.api("API.getMatomoVersion")["value"] == NEW, "the old installation's token works on the chart"
    visits = m.api("Live.getLastVisitsDetails", idSite=str(vm.site_id), period="year", date="today",
                   filter_limit="100")
    assert len(visits) == vm.visits, visits
    assert sum(len(v["actionDetails"]) for v in visits) == vm.actions
    second = m.login_token(vm.user.login, vm.user.password)
    assert second and second != vm.token
    assert m.api("SitesManager.getSitesIdWithAtLeastViewAccess") == [vm.site_id]
    m.token = vm.token
    url = f"http://localhost/moved/{secrets.token_hex(4)}"
    r = m.track(url)
    assert r.status in (200, 204), r.text[:300]
    wait_until(lambda: m.visits_with(url), 30, f"the visit of {url} stored")


# ------------------------------------------------------------ external database
@prestart("test_vm_matomo_moved_to_an_external_database", "adopt-ext")
def start_external(ctx: Context, rel: Release) -> None:
    with vm_dump("vm-ext-") as (vm, dump):
        rel.vm = vm  # type: ignore[attr-defined]
        password = start_database(rel, "legacydb")
        rel.db_args = ("--set", "database.mode=external", "--set", "database.external.host=legacydb",  # type: ignore[attr-defined]
                       "--set", f"database.password={password}")
        # README step 6, external: the dump restored into the user's own server
        rel.node.cp.kubectl("-n", rel.namespace, "exec", "-i", "deploy/legacydb", "--", "sh", "-c",
                            'exec mariadb -umatomo -p"$MARIADB_PASSWORD" matomo', input=dump.read_text())


def legacy_sql(rel: Release, sql: str) -> str:
    return rel.kubectl("exec", "deploy/legacydb", "--", "sh", "-c",
                       f'mariadb -umatomo -p"$MARIADB_PASSWORD" matomo -N -B -e "{sql}"').stdout.strip()


def legacy_checksums(rel: Release) -> str:
    tables = legacy_sql(rel, "SHOW TABLES").split()
    assert len(tables) > 30, tables
    # Matomo's table names need no quoting (and backquotes would be sh's command substitution)
    return legacy_sql(rel, "CHECKSUM TABLE " + ", ".join(tables) + " EXTENDED")


def test_vm_matomo_moved_to_an_external_database(prestarted: Prestarted) -> None:
    rel = prestarted.release("test_vm_matomo_moved_to_an_external_database").started()
    vm: vm_install.VMInstall = rel.vm  # type: ignore[attr-defined]
    db_args: tuple[str, ...] = rel.db_args  # type: ignore[attr-defined]
    assert legacy_sql(rel, "SELECT option_value FROM matomo_option WHERE option_name='version_core'") == OLD
    before = legacy_checksums(rel)

    # the chart's own salt (a user who forgot step 4): the hook refuses before it writes anything
    failed = rel.run_helm("install", F, rel.chart, *rel._args(*COMMON, *db_args), "--wait", "--timeout", TIMEOUT,
                          check=False)
    assert failed.returncode != 0, "helm install must fail when the hook refuses the salt"
    events = hook_events(rel)
    (error,) = {e["error"] for e in events if e["event"] == "error"}
    for words in ("does not match", "anonymous user", "matomo.salt.existingSecret", "[General] salt"):
        assert words in error, error
    assert not [e for e in events if e["event"] in ("backup_start", "upgrade_start")], events
    # the archiver's schedule can fall in this window (it did in CI, and 5.1.2's core:archive wrote to the
    # 5.0.3 schema): a run now skips, since the database is older than the code
    rel.kubectl("create", "job", "archive-refused", f"--from=cronjob/{F}-archiver")
    wait_until(lambda: succeeded([rel.get(f"/apis/batch/v1/namespaces/{rel.namespace}/jobs/archive-refused")]),
               300, "the archiver Job complete")
    archived = rel.kubectl("logs", "job/archive-refused", "-c", "archiver").stdout
    assert "this archiving run is skipped" in archived, archived
    assert legacy_checksums(rel) == before, "a refused hook or an archiver run wrote to the database"

    # the README's way out: the old salt and a token in a Secret, then helm upgrade
    salt_secret(rel, vm)
    rel.upgrade(*COMMON, *db_args, "--set", f"matomo.salt.existingSecret={SALT_SECRET}")
    events = hook_events(rel)
    names = [e["event"] for e in events]
    assert [e.get("by") for e in events if e["event"] == "salt_checked"] == ["token"], names
    assert names.index("salt_checked") < names.index("backup_done") < names.index("upgrade_start"), names
    assert names.count("upgraded") == 1 and names.count("salt_recorded") == 1, names
    (done,) = [e for e in events if e["event"] == "backup_done"]
    record_bench("backup_before_core_update_s", float(done["duration_s"]))
    assert legacy_sql(rel, "SELECT option_value FROM matomo_option WHERE option_name='version_core'") == NEW
    logs = every_hook_log(rel)
    for secret in (vm.salt, vm.token, vm.superuser.password, vm.user.password):
        assert secret not in logs

    # the dump taken before core:update is on the backup volume, named with both versions
    dumps = {n: b for n, b in backup_files(rel, f"{F}-backup").items() if n.endswith(".sql.gz")}
    assert len(dumps) == 1 and next(iter(dumps)).startswith(f"matomo-{OLD}-to-{NEW}-"), list(dumps)
    sql = gzip.decompress(next(iter(dumps.values())))
    assert b"CREATE TABLE `matomo_log_visit`" in sql and b"INSERT INTO `matomo_log_visit`" in sql

    assert_moved(rel, vm)


# ------------------------------------------------------------ embedded MariaDB from the dump
CLAIM = "matomo-backup"


@prestart("test_vm_matomo_moved_into_the_embedded_database", "adopt-emb")
def start_embedded(ctx: Context, rel: Release) -> None:
    with vm_dump("vm-emb-") as (vm, dump):
        rel.vm = vm  # type: ignore[attr-defined]
        salt_secret(rel, vm)
        # README step 6, embedded: a claim of the user's, the dump copied in through a pod that mounts it
        # (the README's pod uses busybox; the node has no registry, so the local MariaDB image: it has tar)
        sc = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
              "runAsUser": 999, "runAsGroup": 999, "capabilities": {"drop": ["ALL"]},
              "seccompProfile": {"type": "RuntimeDefault"}}
        docs = [
            {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": CLAIM},
             "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}}},
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "matomo-copy"},
             "spec": {"securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                      "terminationGracePeriodSeconds": 1,
                      "containers": [{"name": "matomo-copy", "image": image_builder.MARIADB, "imagePullPolicy": "Never",
                                      "command": ["sleep", "3600"], "securityContext": sc,
                                      "volumeMounts": [{"name": "backup", "mountPath": "/backup"}]}],
                      "volumes": [{"name": "backup", "persistentVolumeClaim": {"claimName": CLAIM}}]}},
        ]
        rel.node.cp.kubectl("-n", rel.namespace, "apply", "-f", "-", input=yaml.safe_dump_all(docs))
        rel.kubectl("wait", "--for=condition=Ready", "pod/matomo-copy", "--timeout=180s")
        rel.kubectl("cp", str(dump), "matomo-copy:/backup/matomo.sql")
        rel.kubectl("delete", "pod", "matomo-copy", "--wait=true")
        rel.install(*COMMON, "--set", f"matomo.salt.existingSecret={SALT_SECRET}",
                    "--set", f"backup.persistence.existingClaim={CLAIM}", "--set", "backup.restore.file=matomo.sql")


def test_vm_matomo_moved_into_the_embedded_database(prestarted: Prestarted) -> None:
    rel = prestarted.release("test_vm_matomo_moved_into_the_embedded_database").started()
    vm: vm_install.VMInstall = rel.vm  # type: ignore[attr-defined]
    # the restore Job loaded the dump before the hook ran, which found 5.0.3 installed and upgraded it
    assert rel.version_core() == NEW
    events = hook_events(rel)
    names = [e["event"] for e in events]
    status = next(e for e in events if e["event"] == "status" and "version_core" in e)
    assert status["version_core"] == OLD, status
    assert [e.get("by") for e in events if e["event"] == "salt_checked"] == ["token"], names
    assert names.count("upgraded") == 1, names
    files = backup_files(rel, CLAIM)
    assert "matomo.sql" in files, list(files)
    assert [n for n in files if n.startswith(f"matomo-{OLD}-to-{NEW}-")], list(files)
    assert_moved(rel, vm)
