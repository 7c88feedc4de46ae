"""What the event families share: the value types their events hold (Endpoint,
Process, PodRef, Forwarding), the vocabularies (protocols, TCP flags, errno names),
and each value's forms beside it: its JSON record, its table text and its parse back
from a JSON line.  A family module (tracer/events/drop.py, ...) composes these."""

from __future__ import annotations

import errno
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tracer.util.timefmt import parse_rfc3339

# --- vocabulary ------------------------------------------------------------------------

PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6"}
TCP_FLAG_NAMES = ((0x01, "FIN"), (0x02, "SYN"), (0x04, "RST"), (0x08, "PSH"),
                  (0x10, "ACK"), (0x20, "URG"), (0x40, "ECE"), (0x80, "CWR"))


def proto_name(proto: int) -> str:
    return PROTO_NAMES.get(proto, str(proto))


# every value of the flags byte, spelled out once (twice per flow line in -o jsonl)
_FLAG_NAMES = tuple(tuple(name for bit, name in TCP_FLAG_NAMES if flags & bit)
                    for flags in range(256))


def tcp_flag_names(flags: int) -> list[str]:
    if 0 <= flags < 256:
        return list(_FLAG_NAMES[flags])
    return [name for bit, name in TCP_FLAG_NAMES if flags & bit]


def errno_name(err: int) -> str:
    """The kernel's name for a (positive) errno: "ECONNREFUSED"."""
    return errno.errorcode.get(err, f"errno_{err}")


def family_text(family: int) -> str | None:
    """The JSON form of an address family: "ipv4", "ipv6"; None when not parsed."""
    return f"ipv{family}" if family else None


# --- value types ---------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Endpoint:
    ip: str | None
    port: int | None


@dataclass(frozen=True, slots=True)
class Process:
    pid: int
    comm: str
    cgroup_id: int        # cgroup2 inode (bpf_get_current_cgroup_id); 0 when unknown


@dataclass(frozen=True, slots=True)
class PodRef:
    """A pod as its cgroup path names it (tracer/node/podmap.py)."""

    uid: str
    container_id: str | None
    runtime: str | None   # "containerd", "crio", "docker", or None (cgroupfs: unnamed)
    qos: str | None       # "guaranteed", "burstable", "besteffort"
    cgroup: str           # the path below the cgroup2 mount


@dataclass(frozen=True, slots=True)
class Forwarding:
    """The node's forwarding sysctls when the event happened (read every 2 s)."""

    ip_forward: int           # net.ipv4.ip_forward (net.ipv6.conf.all.forwarding for v6)
    rp_filter: int | None     # effective for `iface`: max(conf.all, conf.<iface>); v4 only
    iface: str | None         # the interface the packet came in on


# --- JSON records of the values (docs/events.md) ---------------------------------------

def endpoint(ep: Endpoint) -> dict[str, Any]:
    return {"ip": ep.ip, "port": ep.port}


def forwarding_record(f: Forwarding) -> dict[str, Any]:
    return {"ip_forward": f.ip_forward, "rp_filter": f.rp_filter, "iface": f.iface}


def process_record(p: Process | None) -> dict[str, Any] | None:
    return None if p is None else {"pid": p.pid, "comm": p.comm, "cgroup_id": p.cgroup_id}


def pod_record(pod: PodRef | None) -> dict[str, Any] | None:
    if pod is None:
        return None
    return {"uid": pod.uid, "container_id": pod.container_id, "runtime": pod.runtime,
            "qos": pod.qos, "cgroup": pod.cgroup}


# --- table text (tracer/sinks/table.py prints it) ---------------------------------------

# NAMED_FIELDS entry ("src", "orig_dst", "@pod", ...) -> the label of its Kubernetes
# name (tracer/sinks/table.py labels_of); only the fields that have one.  Lines render
# each endpoint with its own label, so two endpoints with the same text never take
# each other's name.
Labels = Mapping[str, str]
NO_LABELS: Labels = {}


def ep(e: Endpoint, label: str = "") -> str:
    """`ip:port`, or `label(ip:port)` when the endpoint has a name."""
    if e.ip is None:
        return "-"
    host = f"[{e.ip}]" if ":" in e.ip and e.port is not None else e.ip
    text = f"{host}:{e.port}" if e.port is not None else host
    return f"{label}({text})" if label else text


def marks_text(marks: tuple[str, ...]) -> str:
    return "  " + " ".join(f"!{m}" for m in marks) if marks else ""


def forwarding_text(f: Forwarding | None) -> str:
    if f is None:
        return ""
    return f"  ip_forward={f.ip_forward}" + (f" rp_filter={f.rp_filter}"
                                              if f.rp_filter is not None else "")


def who_text(process: Process | None, pod: PodRef | None, label: str = "") -> str:
    if process is None:
        return ""
    text = f"  by {process.comm}[{process.pid}]"
    return text + (f" pod {label or pod.uid}" if pod is not None else "")


# --- parsing JSON records back (tracer/events/jsonl.py) --------------------------------
# Hostile input: a missing key or a value of the wrong type raises KeyError,
# TypeError or ValueError, which the reader counts as a skipped line.

_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$")
_PROTOS = {v: k for k, v in PROTO_NAMES.items()}
_FLAGS = {name: bit for bit, name in TCP_FLAG_NAMES}


def wall_ns(text: str) -> int:
    """An RFC 3339 time -> ns since the epoch (the one parser: tracer/util/timefmt.py;
    a bad date raises ValueError)."""
    return parse_rfc3339(text)


def parse_endpoint(d: Any) -> Endpoint:
    d = d or {}
    return Endpoint(d.get("ip"), d.get("port"))


def parse_proto(v: Any) -> int:
    if v is None:
        return 0
    return _PROTOS[v] if v in _PROTOS else int(v)


def parse_family(v: Any) -> int:
    return int(str(v)[3:]) if v else 0


def parse_flags(names: Any) -> int:
    return sum(_FLAGS.get(n, 0) for n in names or [])


def parse_forwarding(d: Any) -> Forwarding | None:
    return None if not d else Forwarding(d["ip_forward"], d.get("rp_filter"), d.get("iface"))


def parse_process(d: Any) -> Process | None:
    return None if not d else Process(d["pid"], d["comm"], d.get("cgroup_id", 0))


def parse_pod(d: Any) -> PodRef | None:
    return None if not d else PodRef(d["uid"], d.get("container_id"), d.get("runtime"),
                                      d.get("qos"), d.get("cgroup", ""))


def parse_type_code(d: Any) -> tuple[int | None, int | None]:
    return (d.get("type"), d.get("code")) if d else (None, None)

