"""Failures that are not drops, on the real kernel: a route lookup that
fails, a next hop that never answers ARP, an ICMP error sent back by a REJECT, TCP
handshakes that are refused or time out, and a bind() that loses its port to a
process of another pod.

The node namespace is traced as `nodetrace trace` would trace a node; the pod is a
namespace joined to it by a veth; pod processes run in cgroups named as kubelet names
them.  The lab's scenarios (tracer/lab/scenarios.py) show the same shapes in a whole
cluster; these namespaces are small and private (nt-t5-*), so they run beside other
kernel tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.kernel.tracing import TraceRun, of, poke, raw, tracing
from tracer.lab import cgroups
from tracer.lab.netns import Netns, veth

pytestmark = pytest.mark.kernel

NODE_POD_IP, POD_IP = "10.77.0.1", "10.77.0.2"
NODE_EXT_IP, EXT_IP = "10.77.1.1", "10.77.1.2"
NO_ROUTE_DST = "192.168.2.10"          # nothing on the node routes 192.168.2.0/24
NOT_ADJACENT_NEXTHOP = "192.168.9.12"   # "via ... onlink" on eth1: nobody answers ARP
BEHIND_NEXTHOP = "192.168.3.5"
SERVICE_VIP, SERVICE_PORT = "10.96.0.30", 80  # kube-proxy's REJECT: no endpoints
CLOSED_PORT = 9
BLACKHOLE_PORT = 9999                  # dropped on the node: SYNs go unanswered
HOST_PORT = 9100


@dataclass
class Node:
    node: Netns
    pod: Netns
    ext: Netns

    def down(self) -> None:
        for ns in (self.pod, self.ext, self.node):
            ns.delete()


def _node(prefix: str, *, ip_forward: bool = True) -> Node:
    n = Node(Netns(f"{prefix}-node"), Netns(f"{prefix}-pod"), Netns(f"{prefix}-ext"))
    n.down()
    try:
        for ns in (n.node, n.pod, n.ext):
            ns.create()
        veth(n.node, "veth-pod", n.pod, "eth0")
        veth(n.node, "eth1", n.ext, "eth0")
        n.node.ip("addr", "add", f"{NODE_POD_IP}/24", "dev", "veth-pod")
        n.node.ip("addr", "add", f"{NODE_EXT_IP}/24", "dev", "eth1")
        n.pod.ip("addr", "add", f"{POD_IP}/24", "dev", "eth0")
        n.pod.ip("route", "add", "default", "via", NODE_POD_IP)
        n.ext.ip("addr", "add", f"{EXT_IP}/24", "dev", "eth0")
        n.ext.ip("route", "add", "default", "via", NODE_EXT_IP)
        n.node.ip("route", "add", "192.168.3.0/24", "via", NOT_ADJACENT_NEXTHOP, "dev", "eth1",
                  "onlink")
        n.node.ip("route", "add", "10.96.0.0/16", "via", EXT_IP)
        n.node.sysctl("net.ipv4.ip_forward", "1" if ip_forward else "0")
        # one SYN retransmit, then ETIMEDOUT: a blackholed connect fails in ~3 s
        n.pod.sysctl("net.ipv4.tcp_syn_retries", "1")
        n.node.iptables_restore(
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
            f"-A FORWARD -d {SERVICE_VIP}/32 -p tcp --dport {SERVICE_PORT} "
            "-j REJECT --reject-with icmp-port-unreachable\n"
            f"-A FORWARD -d {EXT_IP}/32 -p tcp --dport {BLACKHOLE_PORT} -j DROP\n"
            "COMMIT\n")
    except BaseException:
        n.down()
        raise
    return n


@pytest.fixture(scope="module")
def node() -> Iterator[Node]:
    n = _node("nt-t5-a")
    try:
        yield n
    finally:
        n.down()


@pytest.fixture(scope="module")
def traced(node: Node, tmp_path_factory: pytest.TempPathFactory) -> TraceRun:
    """One trace of the node while the pod meets every failure once."""
    with tracing(node.node, tmp_path_factory.mktemp("trace")) as run:
        assert poke(node.pod, "tcp", NO_ROUTE_DST, 5432, sport=42001, timeout_s=2) in (
            "error: Network is unreachable", "error: No route to host", "timeout")
        assert poke(node.pod, "tcp", SERVICE_VIP, SERVICE_PORT, sport=42002) == "refused"
        assert poke(node.pod, "tcp", NODE_POD_IP, CLOSED_PORT, sport=42003) == "refused"
        assert poke(node.pod, "tcp", EXT_IP, BLACKHOLE_PORT, sport=42004,
                    timeout_s=15) == "timeout"
        # the node itself: no route, connect() fails before any packet exists
        assert poke(node.node, "tcp", NO_ROUTE_DST, 5433) == "error: Network is unreachable"
        # ARP for the not-adjacent next hop: 3 probes a second apart, then FAILED
        assert poke(node.pod, "tcp", BEHIND_NEXTHOP, 80, sport=42005, timeout_s=5) in (
            "timeout", "error: No route to host")
        assert run.stop() == 0, run.stderr
    return run


def test_route_failure_names_destination_error_and_forwarding(traced: TraceRun,
                                                              node: Node) -> None:
    hits = of(traced, "route", dst__ip=NO_ROUTE_DST)
    assert hits, f"no route event for {NO_ROUTE_DST}: {traced.events}"
    e = hits[0]
    assert e["error"] == "ENETUNREACH"
    # an input lookup knows addresses only (the kernel fills in no ports or protocol
    # unless policy rules need them)
    assert e["src"]["ip"] == POD_IP
    assert e["netns"] == node.node.inode()
    # a received packet the node had to forward: its forwarding sysctls are attached
    assert e["iif"] > 1
    assert e["forwarding"]["ip_forward"] == 1
    assert e["forwarding"]["iface"] == "veth-pod"
    assert e["forwarding"]["rp_filter"] in (0, 1, 2)


def test_successful_lookups_are_not_reported(traced: TraceRun) -> None:
    # every other connection of the run was routed: none of them is a route event
    # (only this pod's: another forwarding namespace on the host may share ifindexes)
    ours = [e for e in of(traced, "route") if e["src"]["ip"] == POD_IP]
    assert {e["dst"]["ip"] for e in ours} == {NO_ROUTE_DST}


def test_a_connect_the_node_cannot_route_is_the_syscalls_error(traced: TraceRun,
                                                               node: Node) -> None:
    hits = of(traced, "sock", op="connect", dst__ip=NO_ROUTE_DST, via="return")
    assert len(hits) == 1, traced.events
    e = hits[0]
    assert e["error"] == "ENETUNREACH" and e["error_raw"] == 101
    assert e["dst"]["port"] == 5433
    assert e["netns"] == node.node.inode()
    assert e["process"]["comm"].startswith("python") and e["process"]["pid"] > 0


def test_a_non_blocking_connect_fails_with_the_so_error_it_reads(traced: TraceRun,
                                                                 node: Node) -> None:
    # the pod's connect() returned EINPROGRESS; the node's net-unreachable ICMP ended
    # it, and the pod learned ENETUNREACH from getsockopt(SO_ERROR)
    hits = of(traced, "sock", op="connect", dst__ip=NO_ROUTE_DST, via="so_error")
    assert [(e["dst"]["port"], e["error"]) for e in hits] == [(5432, "ENETUNREACH")], hits
    assert hits[0]["netns"] == node.pod.inode()
    # connects that succeeded, or were refused at once, are not reported this way
    assert {e["dst"]["ip"] for e in of(traced, "sock", via="so_error")} <= {
        NO_ROUTE_DST, SERVICE_VIP, NODE_POD_IP, EXT_IP, BEHIND_NEXTHOP}


def test_reject_is_an_icmp_port_unreachable_for_the_service_vip(traced: TraceRun,
                                                                node: Node) -> None:
    hits = of(traced, "icmp", dst__ip=SERVICE_VIP)
    assert hits, f"no icmp event for {SERVICE_VIP}: {traced.events}"
    e = hits[0]
    assert e["icmp"] == {"type": 3, "code": 3} and e["meaning"] == "port-unreachable"
    assert raw(e["src"]) == {"ip": POD_IP, "port": 42002}
    assert raw(e["dst"]) == {"ip": SERVICE_VIP, "port": SERVICE_PORT}
    assert e["proto"] == "tcp" and e["ifname"] == "veth-pod"
    assert e["netns"] == node.node.inode()
    # and the no-route SYN got its net-unreachable
    assert of(traced, "icmp", dst__ip=NO_ROUTE_DST, meaning="net-unreachable")


def test_connect_to_a_closed_port_is_refused(traced: TraceRun, node: Node) -> None:
    hits = of(traced, "tcp", event="failed", dst__port=CLOSED_PORT)
    assert len(hits) == 1, traced.events
    e = hits[0]
    assert e["error"] == "ECONNREFUSED"
    assert raw(e["src"]) == {"ip": POD_IP, "port": 42003}
    assert raw(e["dst"]) == {"ip": NODE_POD_IP, "port": CLOSED_PORT}
    assert e["syn_retransmits"] == 0
    assert 0 < e["duration_ns"] < 1_000_000_000
    assert e["process"]["comm"].startswith("python")
    assert e["netns"] == node.pod.inode()
    # the connect that started it, and the node's reset that ended it
    assert of(traced, "tcp", event="connect", dst__port=CLOSED_PORT)
    assert of(traced, "tcp", event="reset_sent", src__port=CLOSED_PORT,
              dst__ip=POD_IP)


def test_connect_to_a_blackholed_address_times_out_after_syn_retransmits(
        traced: TraceRun, node: Node) -> None:
    hits = of(traced, "tcp", event="failed", dst__ip=EXT_IP, dst__port=BLACKHOLE_PORT)
    assert len(hits) == 1, of(traced, "tcp", dst__port=BLACKHOLE_PORT)
    e = hits[0]
    assert e["error"] == "ETIMEDOUT"
    # every SYN was dropped by the node's DROP rule: the first and its retransmits
    counters = node.node.exec("iptables", "-L", "FORWARD", "-v", "-n", "-x").stdout
    dropped = next(int(line.split()[0]) for line in counters.splitlines()
                   if f"dpt:{BLACKHOLE_PORT}" in line)
    assert e["syn_retransmits"] == dropped - 1 >= 1
    assert 2_000_000_000 < e["duration_ns"] < 10_000_000_000
    assert e["src"]["port"] == 42004


def test_unanswered_next_hop_is_a_failed_neighbour(traced: TraceRun, node: Node) -> None:
    hits = of(traced, "neigh", addr=NOT_ADJACENT_NEXTHOP)
    assert hits, f"no neigh event for {NOT_ADJACENT_NEXTHOP}: {traced.events}"
    e = hits[0]
    assert e["event"] == "failed" and e["state"] == "FAILED"
    assert e["ifname"] == "eth1" and e["family"] == "ipv4"
    assert e["probes"] >= 3
    assert e["netns"] == node.node.inode()


def test_no_loss_and_jsonl_only_on_stdout(traced: TraceRun) -> None:
    assert of(traced, "lost") == []
    assert "Traceback" not in traced.stderr


@pytest.mark.parametrize("when", ["before", "while tracing"])
def test_ip_forward_disabled_drop_carries_the_sysctl(tmp_path: Path, when: str) -> None:
    """Turned off while tracing: the sysctls are re-read when the kernel announces the
    change (RTM_NEWNETCONF), well within the 0.6 s waited here (a 2 s timer would miss
    it most of the time)."""
    n = _node("nt-t5-b", ip_forward=when != "before")
    try:
        with tracing(n.node, tmp_path) as run:
            if when != "before":
                n.node.sysctl("net.ipv4.ip_forward", "0")
                time.sleep(0.6)
            assert poke(n.pod, "tcp", EXT_IP, 5432, sport=42010, timeout_s=1.5) == "timeout"
            assert run.stop() == 0, run.stderr
    finally:
        n.down()
    drops = of(run, "drop", src__ip=POD_IP, dst__ip=EXT_IP)
    assert drops, run.events
    assert {e["reason"] for e in drops} == {"IP_INADDRERRORS"}
    assert all(e["forwarding"]["ip_forward"] == 0 for e in drops), drops
    assert drops[0]["forwarding"]["iface"] == "veth-pod"


# --- hostPort conflict: two hostNetwork "pods" of the node, one port -----------------

def _pod_cgroup(root: Path, uid: str, cid: str, driver: str) -> Path:
    if driver == "systemd":
        return (root / "kubepods.slice" / "kubepods-besteffort.slice"
                / f"kubepods-besteffort-pod{uid.replace('-', '_')}.slice"
                / f"cri-containerd-{cid}.scope")
    return root / "kubepods" / "besteffort" / f"pod{uid}" / cid


def _in_cgroup(ns: Netns, cgroup: Path, *cmd: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["ip", "netns", "exec", ns.name, *cmd],
                            preexec_fn=lambda: cgroups.enter(cgroup),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


LISTEN = ("import socket,sys\ns=socket.socket()\ns.bind(('0.0.0.0',%d))\ns.listen()\n"
          "print('ready',flush=True)\nsys.stdin.read()\n")
BIND = ("import socket\ns=socket.socket()\ntry:\n  s.bind(('0.0.0.0',%d))\n"
        "except OSError as e:\n  print(e.errno)\n")


@pytest.mark.parametrize("driver", ["cgroupfs", "systemd"])
def test_hostport_conflict_names_both_pods(node: Node, tmp_path: Path, driver: str) -> None:
    root = cgroups.detect_root()
    holder_uid, loser_uid = str(uuid.uuid4()), str(uuid.uuid4())
    holder_cg = _pod_cgroup(root, holder_uid, os.urandom(32).hex(), driver)
    loser_cg = _pod_cgroup(root, loser_uid, os.urandom(32).hex(), driver)
    created = cgroups.make(holder_cg, root) + cgroups.make(loser_cg, root)
    holder = None
    try:
        holder = subprocess.Popen(
            ["ip", "netns", "exec", node.node.name, sys.executable, "-c", LISTEN % HOST_PORT],
            preexec_fn=lambda: cgroups.enter(holder_cg),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert holder.stdout is not None and holder.stdout.readline() == b"ready\n"
        with tracing(node.node, tmp_path) as run:
            loser = _in_cgroup(node.node, loser_cg, sys.executable, "-c", BIND % HOST_PORT)
            out, _ = loser.communicate(timeout=30)
            assert out.strip() == b"98"  # EADDRINUSE
            assert run.stop() == 0, run.stderr
        hits = of(run, "sock", op="bind", error="EADDRINUSE")
        assert len(hits) == 1, run.events
        e = hits[0]
        assert raw(e["src"]) == {"ip": "0.0.0.0", "port": HOST_PORT}
        assert e["process"]["pid"] == loser.pid or e["process"]["comm"].startswith("python")
        assert e["pod"] is not None, (e["process"], os.stat(loser_cg).st_ino)
        assert e["pod"]["uid"] == loser_uid
        assert e["pod"]["runtime"] == ("containerd" if driver == "systemd" else None)
        assert e["netns"] == node.node.inode()
        h = e["holder"]
        assert h["pid"] is not None and h["comm"].startswith("python")
        assert h["state"] == "LISTEN" and h["proto"] == "tcp"
        assert h["pod"]["uid"] == holder_uid
    finally:
        if holder is not None:
            holder.kill()
            holder.wait(timeout=10)
        for path in (loser_cg, holder_cg):
            cgroups.kill(path)
        for path in reversed(created):
            cgroups.remove(path)


# the listening socket's only reference travels in an SCM_RIGHTS message nobody
# receives: it listens on, and no process has it among its fds
ORPHAN = ("import array,socket,sys\ns=socket.socket()\ns.bind(('0.0.0.0',%d))\ns.listen()\n"
          "a,b=socket.socketpair()\n"
          "a.sendmsg([b'x'],[(socket.SOL_SOCKET,socket.SCM_RIGHTS,array.array('i',"
          "[s.fileno()]))])\ns.close()\nprint('ready',flush=True)\nsys.stdin.read()\n")


@pytest.mark.parametrize("in_pod", [True, False])
def test_hostport_holder_without_a_process_is_named_by_its_cgroup(
        node: Node, tmp_path: Path, in_pod: bool) -> None:
    """No process can be shown to hold the port: the socket's own cgroup (sock_diag)
    names its pod; out of any pod, the finding says the owner could not be read."""
    root = cgroups.detect_root()
    holder_uid, loser_uid = str(uuid.uuid4()), str(uuid.uuid4())
    holder_cg = _pod_cgroup(root, holder_uid, os.urandom(32).hex(), "cgroupfs")
    loser_cg = _pod_cgroup(root, loser_uid, os.urandom(32).hex(), "cgroupfs")
    created = cgroups.make(holder_cg, root) + cgroups.make(loser_cg, root)
    holder = None
    try:
        holder = subprocess.Popen(
            ["ip", "netns", "exec", node.node.name, sys.executable, "-c", ORPHAN % HOST_PORT],
            preexec_fn=(lambda: cgroups.enter(holder_cg)) if in_pod else None,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert holder.stdout is not None and holder.stdout.readline() == b"ready\n"
        listening = node.node.exec("ss", "-Htln", f"sport = :{HOST_PORT}").stdout
        assert "LISTEN" in listening, listening
        with tracing(node.node, tmp_path) as run:
            loser = _in_cgroup(node.node, loser_cg, sys.executable, "-c", BIND % HOST_PORT)
            out, _ = loser.communicate(timeout=30)
            assert out.strip() == b"98"  # EADDRINUSE
            assert run.stop() == 0, run.stderr
        hits = of(run, "sock", op="bind", error="EADDRINUSE")
        assert len(hits) == 1, run.events
        h = hits[0]["holder"]
        assert (h["pid"], h["comm"], h["state"], h["proto"]) == (None, None, "LISTEN", "tcp")
        assert hits[0]["pod"]["uid"] == loser_uid
        if in_pod:
            assert h["pod"] is not None and h["pod"]["uid"] == holder_uid, h
        else:
            assert h["pod"] is None, h
        found = [f["summary"] for f in run.events if f["kind"] == "finding"
                 and f["finding"] == "hostport-conflict"]
        held_by = f"pod uid {holder_uid}" if in_pod else "a socket whose owner could not be read"
        assert found == [f"pod uid {loser_uid} cannot bind 0.0.0.0:{HOST_PORT} on this node: "
                         f"{held_by} already holds it (tcp LISTEN)"]
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
        for cg in reversed(created):
            cgroups.kill(cg)
            cgroups.remove(cg)
