"""Fixtures shared by every suite under tests/ (implementations in tests/harness/)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


from harness.controlplane import controlplane  # noqa: F401  (session: etcd + apiserver + kcm + kwok)
from harness.mariadb import mariadb, mariadb_database  # noqa: F401  (session: mariadbd on 127.0.0.1)

NODE_SUITE = "tests/node/"


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`./dev test`'s two pytest-xdist workers (`-n 2 --dist loadscope`): tests/node is one unit of work,
    since one real node at a time runs on a machine and its tests share it; every other test module is a
    unit of its own, so its module and session fixtures start once per worker. (xdist's `loadgroup` marks
    do nothing on pytest 9, whose node ids no longer read the `_nodeid` xdist rewrites.)"""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SuiteScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return NODE_SUITE if nodeid.startswith(NODE_SUITE) else nodeid.split("::", 1)[0]

    return SuiteScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """tests/node first (with --no-loadscope-reorder the units go out in this order): it is the longest unit
    and mostly waits on pods, so one worker runs it while the other runs the rest."""
    items[:] = [i for i in items if i.nodeid.startswith(NODE_SUITE)] + \
        [i for i in items if not i.nodeid.startswith(NODE_SUITE)]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    """Keep the call report on the item: later steps of a release skip once one failed."""
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        item.rep_call = rep  # type: ignore[attr-defined]
