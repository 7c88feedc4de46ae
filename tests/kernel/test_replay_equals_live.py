"""Replay equals live, on the real kernel, for every lab scenario: the scenario traced
in its node with `trace -o jsonl --record F` while its traffic runs (and IPv6
link-local traffic between a pod and the node), then

- `replay F -o jsonl` prints the same multiset of lines (loss records aside: they
  count the live session's own layers);
- `diagnose --from F -o json` names the same findings, with the same evidence, as
  the live session printed.

One lab and one live trace per scenario; ~15 s each.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.kernel.lab_fixtures import (  # noqa: F401 - fixtures
    HostSnapshot,
    host_unchanged_fixture,
    lab_scenario_fixture,
)
from tracer.lab.cluster import CLUSTER_CIDR, SERVICE_CIDR
from tracer.lab.lifecycle import Lab, probes_of
from tracer.lab.netns import Netns
from tracer.lab.runner import start_tracer, wait_for_file
from tracer.lab.scenarios import SCENARIOS

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(180)]
REPO = Path(__file__).resolve().parents[2]
WINDOW_S = 8.0      # the probes that fit start within it
AFTER_S = 1.5       # then the trace goes on this long, and stops

# a pod sends to the node's link-local address on its bridge (no one listens): the
# pod's neighbour solicitation, the node's advertisement and ICMPv6 port-unreachable,
# all between link-local addresses, cross the pod's veth
LINK_LOCAL_UDP = """
import socket, sys, time
addr = socket.getaddrinfo(sys.argv[1], 9, socket.AF_INET6, socket.SOCK_DGRAM)[0][4]
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
for _ in range(3):
    s.sendto(b"nodetrace", addr)
    time.sleep(0.2)
"""


def _link_local(ns: Netns, dev: str) -> str | None:
    out = ns.ip("-6", "-o", "addr", "show", "dev", dev, "scope", "link").stdout.split()
    return out[out.index("inet6") + 1].split("/")[0] if "inet6" in out else None


def _ipv6_link_local(lab: Lab) -> tuple[str, str]:
    """IPv6 on the traced node's uplink and bridge and on one of its pods (the lab
    turns it off): (that pod, the bridge's link-local address to send to)."""
    node = lab.node(lab.scenario.trace_node)
    pod = next(p for p in lab.cluster.pods_on(node.name) if not p.host_network)
    for ns, devs in ((Netns(node.netns), ("eth0", "cni0")), (Netns(pod.netns), ("eth0",))):
        for dev in devs:
            # no duplicate address detection: the addresses are usable at once
            ns.sysctl(f"net.ipv6.conf.{dev}.accept_dad", "0")
            ns.sysctl(f"net.ipv6.conf.{dev}.disable_ipv6", "0")
    deadline = time.monotonic() + 5
    while (addr := _link_local(Netns(node.netns), "cni0")) is None \
            or _link_local(Netns(pod.netns), "eth0") is None:
        assert time.monotonic() < deadline, "no IPv6 link-local addresses"
        time.sleep(0.05)
    return pod.name, addr


def _lines(path: Path) -> Counter[str]:
    """The stream's lines but its loss records and end-of-run summary: those count
    the run itself (a replay loses nothing and covers the recording's span)."""
    return Counter(line for line in path.read_text().splitlines()
                   if line.strip() and json.loads(line)["kind"] not in ("lost", "summary"))


def _cli(*argv: str) -> str:
    done = subprocess.run([sys.executable, "-m", "tracer.cli.main", *argv],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


def _trace(lab: Lab, tmp: Path) -> tuple[Path, Path]:
    """`trace -o jsonl --record` in the scenario's node while its traffic runs."""
    pod, bridge_ll = _ipv6_link_local(lab)
    node = lab.scenario.trace_node
    ready, rec, out = tmp / "ready", tmp / "run.ntrec", tmp / "trace.jsonl"
    argv = [sys.executable, "-m", "tracer.cli.main", "trace", "-o", "jsonl",
            "--ready-file", str(ready), "--record", str(rec),
            "--metadata", lab.state.objects_file, "--node", node,
            "--cluster-cidr", CLUSTER_CIDR, "--service-cidr", SERVICE_CIDR]
    with out.open("wb") as stdout:
        tracer = start_tracer(lab, node, argv, stdout=stdout, stderr=subprocess.PIPE,
                              cwd=REPO)
        try:
            wait_for_file(ready, tracer, 120)
            started = time.time()
            lab.exec(pod, sys.executable, "-c", LINK_LOCAL_UDP, f"{bridge_ll}%eth0")
            for probe in probes_of(lab.scenario):
                if time.time() - started < WINDOW_S - probe.timeout_s:
                    lab.probe(probe)
            time.sleep(AFTER_S)
            tracer.send_signal(signal.SIGINT)
            _out, err = tracer.communicate(timeout=60)
        finally:
            if tracer.poll() is None:
                tracer.kill()
                tracer.wait()
    assert tracer.returncode == 130, err   # SIGINT: interrupted, after the drain
    return out, rec


def _finding(f: dict[str, Any], updates: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A finding as `diagnose -o json` prints it, from a `trace -o jsonl` line and
    the last update of it the run printed (the line has the totals of when it was
    first printed)."""
    folded = {**f, **{k: v for k, v in updates.get(f["id"], {}).items()
                      if k in ("count", "last_seen", "affected")}}
    return {"kind": f["finding"], **{k: v for k, v in folded.items()
                                     if k not in ("kind", "time", "finding")}}


@pytest.mark.parametrize("lab_scenario", list(SCENARIOS), indirect=True)
def test_replay_equals_live(lab_scenario: Lab, tmp_path: Path) -> None:
    live, rec = _trace(lab_scenario, tmp_path)
    lines = _lines(live)
    link_local = [line for line in lines if '"ip":"fe80::' in line]
    assert any('"scope":"node"' in line for line in link_local), \
        "no link-local traffic of the node's own addresses was traced"

    replayed = tmp_path / "replay.jsonl"
    replayed.write_text(_cli("replay", str(rec), "-o", "jsonl"))
    again = _lines(replayed)
    assert lines - again == Counter() and again - lines == Counter(), \
        ("live only:\n" + "\n".join((lines - again).elements())
         + "\nreplay only:\n" + "\n".join((again - lines).elements()))

    doc = json.loads(_cli("diagnose", "--from", str(rec), "-o", "json"))
    found = [json.loads(line) for line in lines.elements() if '"kind":"finding"' in line]
    updates = {}
    for u in sorted((json.loads(line) for line in lines.elements()
                     if '"kind":"finding-update"' in line), key=lambda u: u["time"]):
        updates[u["id"]] = u
    def canonical(f: dict[str, Any]) -> str:
        return json.dumps(f, sort_keys=True)

    assert sorted(map(canonical, (_finding(f, updates) for f in found))) == \
        sorted(map(canonical, doc["findings"]))
    assert all(f["count"] >= 1 for f in doc["findings"])
