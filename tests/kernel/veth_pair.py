"""Two private namespaces joined by one veth (eth0 on both sides), for kernel tests
that need a wire and nothing else.  Names carry the test process's pid, so runs beside
each other never collide."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from tracer.lab.netns import Netns, veth


@contextlib.contextmanager
def veth_pair(tag: str, a_ip: str, b_ip: str) -> Iterator[tuple[Netns, Netns]]:
    """`a_ip`/`b_ip` go on the two ends as /24s; both namespaces are deleted after."""
    a, b = Netns(f"nt-{tag}-a-{os.getpid()}"), Netns(f"nt-{tag}-b-{os.getpid()}")
    for ns in (a, b):
        ns.delete()
        ns.create()
    try:
        veth(a, "eth0", b, "eth0")
        a.ip("addr", "add", f"{a_ip}/24", "dev", "eth0")
        b.ip("addr", "add", f"{b_ip}/24", "dev", "eth0")
        yield a, b
    finally:
        for ns in (a, b):
            ns.delete()
