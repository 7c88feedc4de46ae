"""Work run beside the caller's, joined later: the kernel's own waits (a detach waits
for an RCU grace period, tens of milliseconds each) overlap with other work instead of
adding up, and an exception comes back at the join, where the caller can handle it."""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any


class Beside:
    def __init__(self) -> None:
        self._jobs: list[tuple[threading.Thread, list[BaseException]]] = []

    def start(self, fn: Callable[..., Any], *args: Any) -> None:
        errors: list[BaseException] = []

        def run() -> None:
            try:
                fn(*args)
            except BaseException as exc:  # re-raised at join, in the caller's thread
                errors.append(exc)

        t = threading.Thread(target=run, name=getattr(fn, "__name__", "beside"),
                             daemon=True)
        t.start()
        self._jobs.append((t, errors))

    def join(self, *, quiet: bool = False) -> None:
        """Waits for every job started; re-raises the first one's exception (`quiet`:
        keeps it for the next join, as a teardown that must go on does)."""
        first: BaseException | None = None
        for t, errors in self._jobs:
            t.join()
            if errors and first is None:
                first = errors[0]
        if quiet:
            return
        self._jobs = []
        if first is not None:
            raise first


HANDOFF_S = 0.0005


@contextlib.contextmanager
def quick_handoffs() -> Iterator[None]:
    """A thread back from a system call waits for the GIL until the thread holding it
    gives it up, by default after 5 ms.  A hundred tcx attaches (one grace period
    each, ~8.5 ms) beside a busy thread then take 1.2-1.9 s instead of 0.85; with
    0.5 ms hand-offs, 0.81.  Only for a start or a teardown: a pipeline that runs for
    hours keeps Python's default."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(HANDOFF_S)
    try:
        yield
    finally:
        sys.setswitchinterval(before)
