"""The session re-reads interfaces, addresses, routes and forwarding sysctls when the
kernel announces a change (tracer/node/netchanges.py), not on a timer: each kind of change
an operator or a CNI makes must be announced, and silence must stay silent."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator

import pytest

from tracer.lab.netns import Netns

pytestmark = pytest.mark.kernel

# runs inside the namespace: every change is made there, then due() is asked at once
# (rtnetlink queues the announcement before the command that made it returns)
CHILD = r"""
import json, subprocess, sys
from tracer.node.netchanges import NetChanges

def sh(*cmd):
    subprocess.run(cmd, check=True, capture_output=True)

def sysctl(name, value):
    with open("/proc/sys/net/" + name, "w") as f:
        f.write(value)

changes = NetChanges(safety_s=3600)
steps = [
    ("nothing yet", lambda: None),
    ("veth added", lambda: sh("ip", "link", "add", "nt-a", "type", "veth", "peer", "nt-b")),
    ("quiet", lambda: None),
    ("link up", lambda: sh("ip", "link", "set", "nt-a", "up")),
    ("address", lambda: sh("ip", "addr", "add", "10.55.0.1/24", "dev", "nt-a")),
    ("route", lambda: sh("ip", "route", "add", "10.56.0.0/16", "via", "10.55.0.2")),
    ("ipv6 route", lambda: sh("ip", "-6", "route", "add", "fd00:56::/64", "dev", "nt-a")),
    ("quiet again", lambda: None),
    ("ip_forward", lambda: sysctl("ipv4/ip_forward", "1")),
    ("rp_filter of an interface", lambda: sysctl("ipv4/conf/nt-a/rp_filter", "2")),
    ("ip rule", lambda: sh("ip", "rule", "add", "from", "10.55.0.9", "table", "7")),
    ("veth deleted", lambda: sh("ip", "link", "del", "nt-a")),
    ("quiet at last", lambda: None),
]
out = []
for name, change in steps:
    change()
    out.append([name, changes.due()])
print(json.dumps({"steps": out, "changes": changes.changes}))
"""


@pytest.fixture
def ns() -> Iterator[Netns]:
    n = Netns(f"nt-chg-{os.getpid()}")
    n.delete()
    n.create()
    try:
        yield n
    finally:
        n.delete()


def test_every_kind_of_change_is_announced_once_and_silence_is_silent(ns: Netns) -> None:
    out = json.loads(ns.exec(sys.executable, "-c", CHILD).stdout)
    due = dict(out["steps"])
    quiet = {"nothing yet", "quiet", "quiet again", "quiet at last"}
    assert {name for name, d in due.items() if not d} == quiet, due
    assert out["changes"] == len(due) - len(quiet)


def test_without_announcements_the_safety_timer_still_rereads(ns: Netns) -> None:
    child = ("import json, time\nfrom tracer.node.netchanges import NetChanges\n"
             "c = NetChanges(safety_s=0.2)\nfirst = c.due()\ntime.sleep(0.3)\n"
             "print(json.dumps([first, c.due(), c.due()]))\n")
    assert json.loads(ns.exec(sys.executable, "-c", child).stdout) == [False, True, False]
