"""The local provider: what the node itself knows, with no API at all.

- pods: every process whose cgroup kubelet named (tracer/node/podmap.py) gives a pod uid;
  its network namespace tells a hostNetwork pod (the node's namespace) from one with
  its own, whose addresses are read from /proc/PID/net/fib_trie (no need to enter it);
- names: kubelet's log directories /var/log/pods/<namespace>_<name>_<uid>, where present;
- CNI state: /var/lib/cni/networks/<network>/<ip> files name the sandbox container
  that holds an address (host-local IPAM), where present;
- listeners: sockets held by hostNetwork pods' processes in the node's namespace, so
  an address of the node plus a port names the pod that holds it (by socket owner,
  never by the address alone);
- veths: the host side of each pod namespace's veth (pyroute2, by namespace id), for
  `-l` to attach tc exactly there.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tracer.metadata.index import MetadataIndex
from tracer.metadata.resolver import Listener
from tracer.node.interfaces import ROLE_POD, Iface
from tracer.node.podmap import cgroup_of_pid, parse_cgroup_path
from tracer.node.ports import parse_proc_net

log = logging.getLogger(__name__)

PROC = Path("/proc")
POD_LOGS = Path("/var/log/pods")
CNI_NETWORKS = Path("/var/lib/cni/networks")


@dataclass
class LocalPod:
    uid: str
    netns: int                       # namespace inode
    netns_path: str                  # /proc/PID/ns/net of one of its processes
    host_network: bool
    ips: list[str] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)
    container_ids: set[str] = field(default_factory=set)
    namespace: str | None = None     # from /var/log/pods, when kubelet writes there
    name: str | None = None


def _fib_local_addresses(text: str) -> list[str]:
    """Addresses marked `/32 host LOCAL` in a /proc/net/fib_trie text."""
    out: list[str] = []
    last = None
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("|--") or s.startswith("+--"):
            last = s[3:].split()[0] if s.startswith("|--") else None
        elif s == "/32 host LOCAL" and last and not last.startswith("127.") \
                and last not in out:
            out.append(last)
    return out


def _ipv6_addresses(text: str) -> list[str]:
    """/proc/net/if_inet6: global-scope (00) addresses, not loopback."""
    out = []
    for line in text.splitlines():
        cols = line.split()
        if len(cols) >= 6 and cols[3] == "00" and cols[5] != "lo":
            out.append(str(ipaddress.IPv6Address(bytes.fromhex(cols[0]))))
    return out


def _pod_log_names(root: Path = POD_LOGS) -> dict[str, tuple[str, str]]:
    """uid -> (namespace, name) from kubelet's <namespace>_<name>_<uid> directories."""
    out: dict[str, tuple[str, str]] = {}
    try:
        entries = list(root.iterdir())
    except OSError:
        return out
    for entry in entries:
        parts = entry.name.split("_")
        if len(parts) == 3:
            out[parts[2]] = (parts[0], parts[1])
    return out


def _cni_addresses(root: Path = CNI_NETWORKS) -> dict[str, str]:
    """container (sandbox) id -> address, from host-local IPAM's reservations."""
    out: dict[str, str] = {}
    try:
        networks = [d for d in root.iterdir() if d.is_dir()]
    except OSError:
        return out
    for net in networks:
        for f in net.iterdir():
            if f.name.startswith(("last_reserved", "lock")):
                continue
            try:
                cid = f.read_text().split()[0]
            except (OSError, IndexError):
                continue
            out[cid] = f.name
    return out


def scan_pods(node_netns: int, proc: Path = PROC) -> list[LocalPod]:
    pods: dict[str, LocalPod] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        path = cgroup_of_pid(pid, proc)
        ref = parse_cgroup_path(path) if path and "pod" in path else None
        if ref is None:
            continue
        try:
            ino = os.stat(entry / "ns" / "net").st_ino
        except OSError:
            continue
        pod = pods.get(ref.uid)
        if pod is None:
            pod = pods[ref.uid] = LocalPod(ref.uid, ino, str(entry / "ns" / "net"),
                                           ino == node_netns)
            if not pod.host_network:
                for name, parse in (("fib_trie", _fib_local_addresses),
                                    ("if_inet6", _ipv6_addresses)):
                    try:
                        pod.ips += parse((entry / "net" / name).read_text())
                    except OSError:
                        continue
        pod.pids.append(pid)
        if ref.container_id:
            pod.container_ids.add(ref.container_id)
    names = _pod_log_names()
    cni = _cni_addresses() if any(not p.host_network for p in pods.values()) else {}
    for pod in pods.values():
        if pod.uid in names:
            pod.namespace, pod.name = names[pod.uid]
        for cid in pod.container_ids:
            ip = cni.get(cid)
            if ip and ip not in pod.ips and not pod.host_network:
                pod.ips.append(ip)
    return list(pods.values())


def _socket_inodes(pid: int, proc: Path) -> set[int]:
    out: set[int] = set()
    fd_dir = proc / str(pid) / "fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return out
    for fd in fds:
        try:
            link = os.readlink(fd_dir / fd)
        except OSError:
            continue
        if link.startswith("socket:["):
            out.add(int(link[8:-1]))
    return out


def scan_listeners(pods: Iterable[LocalPod], proc: Path = PROC) -> list[Listener]:
    """Sockets hostNetwork pods listen on (TCP LISTEN, bound UDP) in the node's
    namespace."""
    host = [p for p in pods if p.host_network and p.pids]
    if not host:
        return []
    owner: dict[int, str] = {}
    for pod in host:
        for pid in pod.pids:
            for ino in _socket_inodes(pid, proc):
                owner[ino] = pod.uid
    out: list[Listener] = []
    pid = host[0].pids[0]
    for name, proto in (("tcp", "tcp"), ("tcp6", "tcp"), ("udp", "udp"), ("udp6", "udp")):
        try:
            text = (proc / str(pid) / "net" / name).read_text()
        except OSError:
            continue
        for s in parse_proc_net(text, proto):
            if (proto == "udp" or s.state == "LISTEN") and s.inode in owner:
                out.append(Listener(s.ip, s.port, owner[s.inode]))
    return out


def pod_veths(pods: Iterable[LocalPod]) -> dict[str, list[Iface]]:
    """Pod uid -> host-side veths whose peer is in the pod's namespace."""
    from pyroute2 import IPRoute

    wanted = [p for p in pods if not p.host_network]
    out: dict[str, list[Iface]] = {}
    if not wanted:
        return out
    ipr = IPRoute()
    try:
        by_nsid: dict[int, list[Iface]] = {}
        for link in ipr.get_links():
            nsid = link.get("IFLA_LINK_NETNSID")
            if nsid is None or link.get(("linkinfo", "kind")) != "veth":
                continue
            by_nsid.setdefault(int(nsid), []).append(
                Iface(int(link["index"]), str(link.get("IFLA_IFNAME")), ROLE_POD, "veth", ()))
        for pod in wanted:
            try:
                fd = os.open(pod.netns_path, os.O_RDONLY)
            except OSError:
                continue
            try:
                reply = ipr.get_netnsid(fd=fd)
            except Exception as exc:  # pyroute2 raises NetlinkError and others
                log.debug("netnsid of %s: %s", pod.netns_path, exc)
                continue
            finally:
                os.close(fd)
            nsid = reply.get("nsid") if isinstance(reply, dict) else None
            if nsid is not None and int(nsid) in by_nsid:
                out[pod.uid] = by_nsid[int(nsid)]
    finally:
        ipr.close()
    return out


class LocalProvider:
    """Scans every `interval_s` on its own thread and hands the index the pods it
    found and the sockets hostNetwork pods hold."""

    name = "local"

    def __init__(self, index: MetadataIndex, node_netns: int, interval_s: float = 2.0,
                 proc: Path = PROC) -> None:
        self.index = index
        self.node_netns = node_netns
        self.interval_s = interval_s
        self.proc = proc
        self.pods: list[LocalPod] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def scan(self) -> list[LocalPod]:
        pods = scan_pods(self.node_netns, self.proc)
        self.pods = pods
        self.index.set_local_pods(pods)
        self.index.set_listeners(scan_listeners(pods, self.proc))
        return pods

    def start(self) -> LocalProvider:
        self.scan()
        self._thread = threading.Thread(target=self._run, daemon=True, name="local-meta")
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.scan()
            except Exception:  # a racing /proc must not end the scans
                log.exception("local metadata scan failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(3)
