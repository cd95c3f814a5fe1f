"""``matomo-hook secrets``: create the generated Secrets once, never change them.

Run by the chart's pre-install/pre-upgrade Job ``F-secrets``. For each Secret
named in ``MATOMO_HOOK_SECRETS`` (see :func:`matomo_hook.config.secrets_plan`):
GET it; when it is absent, CREATE it with a random alphanumeric value of the
given length for each key (alphanumeric, so ``config.ini.php`` can hold it).
A Secret that exists is left exactly as it is; one that exists without a key
it should hold is refused (a person decides), never patched. A 409 on create
(another run created it meanwhile) is success once a re-GET finds the keys.

Only ``create`` and ``get`` are used, so the Job's Role needs nothing else.
The kubernetes client comes through kube.py, only when ``secrets`` runs.
Values are never logged, not even redacted: only names and key names are.
"""

from __future__ import annotations

import base64
import secrets as random
import string
import time
from dataclasses import dataclass
from typing import Any

from . import kube, logs
from .config import SecretSpec, secrets_plan
from .errors import RefusedError, UnreachableError

ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class Outcome:
    name: str
    created: bool

    def public(self) -> dict[str, str]:
        return {"secret": self.name, "result": "created" if self.created else "exists"}


def generate(length: int) -> str:
    return "".join(random.choice(ALPHABET) for _ in range(length))


def _fail(exc: BaseException, verb: str, namespace: str, name: str) -> UnreachableError:
    status = getattr(exc, "status", None)
    where = f"{verb} Secret {namespace}/{name}"
    if status in (401, 403):
        return UnreachableError(
            f"{where}: HTTP {status} {getattr(exc, 'reason', '')}: the Job's Role must allow "
            f"'create' on secrets and 'get' on this name (the chart's F-secrets Role does)"
        )
    if status:
        return UnreachableError(f"{where}: HTTP {status} {getattr(exc, 'reason', '')}")
    return UnreachableError(f"{where}: the API server did not answer: {type(exc).__name__}")


def _read(api: Any, namespace: str, name: str) -> Any | None:
    api_exc, http_exc = kube.api_errors()
    try:
        return api.read_namespaced_secret(name, namespace)
    except api_exc as exc:
        if getattr(exc, "status", None) == 404:
            return None
        raise _fail(exc, "get", namespace, name) from None
    except (http_exc, OSError) as exc:
        raise _fail(exc, "get", namespace, name) from None


def _check_keys(obj: Any, spec: SecretSpec, namespace: str) -> None:
    data = dict(obj.data or {})
    missing = [k for k in spec.keys if not data.get(k)]
    if missing:
        raise RefusedError(
            f"Secret {namespace}/{spec.name} exists without key(s) {', '.join(missing)}: "
            "the hook never changes an existing Secret; add the key(s) to it, or delete it "
            "to have a new one generated (never the salt while its database is in use)"
        )


def ensure_one(
    api: Any, namespace: str, spec: SecretSpec, labels: dict[str, str], annotations: dict[str, str]
) -> Outcome:
    existing = _read(api, namespace, spec.name)
    if existing is not None:
        _check_keys(existing, spec, namespace)
        return Outcome(spec.name, created=False)
    values = {key: generate(length) for key, length in spec.keys.items()}
    # never logged; registered anyway, so no error text could carry one
    logs.REDACTOR.add(*values.values())
    data = {key: base64.b64encode(v.encode()).decode() for key, v in values.items()}
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": spec.name, "labels": labels, "annotations": annotations},
        "data": data,
    }
    api_exc, http_exc = kube.api_errors()
    try:
        api.create_namespaced_secret(namespace, body)
    except api_exc as exc:
        if getattr(exc, "status", None) != 409:
            raise _fail(exc, "create", namespace, spec.name) from None
        # created by another run since our GET: theirs wins, ours is dropped
        again = _read(api, namespace, spec.name)
        if again is None:
            raise UnreachableError(
                f"create Secret {namespace}/{spec.name}: 409 AlreadyExists, yet it is gone: rerun"
            ) from None
        _check_keys(again, spec, namespace)
        return Outcome(spec.name, created=False)
    except (http_exc, OSError) as exc:
        raise _fail(exc, "create", namespace, spec.name) from None
    finally:
        del values, data, body
    return Outcome(spec.name, created=True)


def ensure(
    namespace: str,
    specs: list[SecretSpec],
    labels: dict[str, str],
    annotations: dict[str, str],
    *,
    timeout: float,
    api: Any = None,
    poll: float = 0.25,
) -> list[Outcome]:
    """Ensures each Secret in turn. An API call that fails or is refused (RBAC
    objects applied in the same batch may not be visible yet) is retried until
    ``timeout`` seconds have passed; a Secret missing a key is refused at once.
    Polled every 0.25 s: the install waits on this Job, and the RBAC objects
    Helm created just before are usually visible within a second."""
    core = api if api is not None else kube.api("CoreV1Api", UnreachableError)
    start = time.monotonic()
    outcomes = []
    for spec in specs:
        while True:
            try:
                outcome = ensure_one(core, namespace, spec, labels, annotations)
                break
            except UnreachableError as exc:
                waited = time.monotonic() - start
                if waited + poll > timeout:
                    raise UnreachableError(
                        f"{exc} (still failing after {waited:.0f}s, MATOMO_HOOK_SECRETS_TIMEOUT)"
                    ) from None
                logs.event("secret_retry", step="secrets", secret=spec.name, error=str(exc))
                time.sleep(poll)
        logs.event(
            "secret_created" if outcome.created else "secret_exists",
            step="secrets",
            secret=spec.name,
            keys=sorted(spec.keys),
            namespace=namespace,
        )
        outcomes.append(outcome)
    return outcomes


def create_absent(namespace: str) -> None:
    """The ``secrets`` command: ensures each Secret of MATOMO_HOOK_SECRETS in
    `namespace`, then prints what became of each as one JSON line."""
    plan = secrets_plan()
    outcomes = ensure(namespace, plan.specs, plan.labels, plan.annotations, timeout=plan.timeout)
    logs.result({"secrets": [o.public() for o in outcomes]})
