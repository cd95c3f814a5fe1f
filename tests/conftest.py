"""Fixtures shared by every suite under tests/ (implementations in tests/harness/)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


from harness.controlplane import controlplane  # noqa: F401  (session: etcd + apiserver + kcm + kwok)
from harness.mariadb import mariadb, mariadb_database  # noqa: F401  (session: mariadbd on 127.0.0.1)

NODE_SUITE = "tests/node/"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The groups of `./dev test`'s pytest-xdist workers (`-n 2 --dist loadgroup`): tests/node is one group,
    since one real node at a time runs on a machine and its tests share it; every other test module is a
    group of its own, so its module and session fixtures start once per worker. tests/node comes first:
    it is the longest group and mostly waits on pods, so one worker runs it while the other runs the rest."""
    node = [i for i in items if i.nodeid.startswith(NODE_SUITE)]
    rest = [i for i in items if not i.nodeid.startswith(NODE_SUITE)]
    for item in node:
        item.add_marker(pytest.mark.xdist_group("tests/node"))
    for item in rest:
        item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
    items[:] = node + rest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    """Keep the call report on the item: later steps of a release skip once one failed."""
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        item.rep_call = rep  # type: ignore[attr-defined]
