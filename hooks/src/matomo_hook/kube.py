"""Kubernetes credentials for the subcommands that call the API (roll, secrets).

The kubernetes client is imported here only when one of them runs (``--help`` and
``status`` never pay for it). In-cluster config when KUBERNETES_SERVICE_HOST is
set, else KUBECONFIG (tests).
"""

from __future__ import annotations

import os

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
