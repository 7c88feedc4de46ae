"""A child process that must not outlive the process that started it."""

from __future__ import annotations

import contextlib
import ctypes
import os

PR_SET_PDEATHSIG = 1


def die_with_parent(signum: int, parent: int) -> None:
    """Called in the child (a preexec_fn, or first thing after fork): the kernel sends it
    `signum` when `parent` ends, however it ends (kill -9 included).  The setting
    survives exec, so it holds for the program the child becomes."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signum)
    if os.getppid() != parent:       # it ended before the line above took effect
        os._exit(1)
