"""The Kubernetes API for the commands that call it (roll, secrets).

The kubernetes client is imported here only when one of them runs (``--help`` and
``status`` never pay for it). In-cluster config when KUBERNETES_SERVICE_HOST is
set, else KUBECONFIG (tests).
"""

from __future__ import annotations

import os
from typing import Any

from .errors import HookError


def load_credentials(error: type[HookError]) -> None:
    """Loads the client's credentials; raises `error` (the caller's exit code) when it cannot."""
    from kubernetes import config  # noqa: PLC0415 -- lazy on purpose

    try:
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        else:
            config.load_kube_config()  # type: ignore[no-untyped-call]
    except Exception as exc:  # noqa: BLE001 -- the client raises many kinds
        raise error(f"cannot load Kubernetes credentials: {exc}") from None


def api(group: str, error: type[HookError]) -> Any:
    """The client's API object `group` (``CoreV1Api``, ``AppsV1Api``) with credentials
    loaded; `error` is what a credential problem raises."""
    from kubernetes import client  # noqa: PLC0415 -- lazy on purpose

    load_credentials(error)
    return getattr(client, group)()


def api_errors() -> tuple[type[BaseException], type[BaseException]]:
    """What a failed call raises: the API server's answer (``ApiException``, with
    ``status``) and the transport's failure (urllib3's ``HTTPError``)."""
    from kubernetes.client.exceptions import ApiException  # noqa: PLC0415
    from urllib3.exceptions import HTTPError  # noqa: PLC0415

    return ApiException, HTTPError
