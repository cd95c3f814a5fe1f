"""Fixtures shared by every suite under tests/ (implementations in tests/harness/)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


from harness.controlplane import controlplane  # noqa: F401  (session: etcd + apiserver + kcm + kwok)
from harness.mariadb import mariadb, mariadb_database  # noqa: F401  (session: mariadbd on 127.0.0.1)

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    """Keep the call report on the item: later steps of a release skip once one failed."""
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        item.rep_call = rep  # type: ignore[attr-defined]
