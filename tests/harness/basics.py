"""The two small helpers every tier of the harness uses: a free port, and waiting for a condition."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], Any], timeout: float, what: str = "", interval: float = 0.5, *,
               retry: tuple[type[BaseException], ...] = (Exception,), check: Callable[[], None] | None = None,
               error: type[BaseException] | None = AssertionError) -> Any:
    """Calls ``predicate`` every ``interval`` seconds until it returns something true, and returns that.

    An exception of a class in ``retry`` counts as "not yet" (and is named if time runs out); any other
    is raised at once. ``check`` runs after each "not yet" (e.g. raises when a process it waits on died).
    Once ``timeout`` has passed (the predicate is always asked once more at the end), raises ``error``
    naming ``what`` and the last answer, or, with ``error=None``, returns that last (false) answer.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            last = predicate()
        except retry as e:
            last = e
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            break
        if check is not None:
            check()
        time.sleep(interval)
    if error is None:
        return None if isinstance(last, BaseException) else last
    raise error(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
