"""-o table: one aligned line per event, for people (until the TUI takes the terminal).

    TIME   KIND  WHERE                 WHAT
    05:44  drop  veth-pod              tcp 10.88.0.2:49942 → 10.88.0.1:5432  NETFILTER_DROP at …
    05:44  nat   node                  tcp 10.42.0.5:40000 → 10.43.0.10:80 ⇒ 10.42.1.7:8080 [dnat]
    05:44  flow  eth0 egress (uplink)  tcp 10.42.0.5:40000 → 192.168.2.10:5432  2 pkts 120 B SYN
                                       !untranslated-pod-source
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TextIO

from tracer.events.finding import Finding
from tracer.events.model import (
    DropEvent,
    Endpoint,
    FlowEvent,
    Forwarding,
    IcmpEvent,
    LostEvent,
    NatEvent,
    NeighEvent,
    PodRef,
    Process,
    RouteEvent,
    SockEvent,
    TcpEvent,
    proto_name,
    tcp_flag_names,
)
from tracer.events.records import Output
from tracer.metadata.names import PodName
from tracer.pipeline.enrich import NAMED_FIELDS, Names, names_of
from tracer.sinks.naming import endpoint_label, pod_label
from tracer.sinks.output import OutputStream
from tracer.util.timefmt import rfc3339_ns

HEADER = f"{'TIME':<15}  {'KIND':<4}  {'WHERE':<24}  WHAT"


def ep(e: Endpoint) -> str:
    if e.ip is None:
        return "-"
    host = f"[{e.ip}]" if ":" in e.ip and e.port is not None else e.ip
    return f"{host}:{e.port}" if e.port is not None else host


def _marks(marks: tuple[str, ...]) -> str:
    return "  " + " ".join(f"!{m}" for m in marks) if marks else ""


def drop_line(ev: DropEvent) -> tuple[str, str]:
    proto = proto_name(ev.proto) if ev.family else f"l3:{ev.l3_proto:#06x}"
    return (ev.ifname or "-",
            f"{proto} {ep(ev.src)} → {ep(ev.dst)}  {ev.reason} at {ev.location}"
            + (f"  ({ev.count} drops)" if ev.count > 1 else "") + _marks(ev.marks)
            + _fwd(ev.forwarding))


def flow_line(ev: FlowEvent) -> tuple[str, str]:
    flags = "|".join(tcp_flag_names(ev.tcp_flags_seen)) if ev.proto == 6 else ""
    role = f" ({ev.role})" if ev.role else ""
    return (f"{ev.ifname or ev.ifindex} {ev.direction}{role}",
            f"{proto_name(ev.proto)} {ep(ev.src)} → {ep(ev.dst)}  {ev.packets} pkts "
            f"{ev.bytes} B {flags}".rstrip() + _marks(ev.marks))


def nat_line(ev: NatEvent) -> tuple[str, str]:
    # orig: what the client sent; reply tuple reversed: where it really went / came from
    text = f"{proto_name(ev.proto)} {ep(ev.orig_src)} → {ep(ev.orig_dst)}"
    if "dnat" in ev.translation:
        text += f" ⇒ {ep(ev.reply_src)}"
    text += f" [{','.join(ev.translation)}]"
    if "snat" in ev.translation:
        text += f" as {ep(ev.reply_dst)}"
    state = {"destroy": "ended"}.get(ev.ct_event or "", "")
    text += "  " + ("replied" if ev.replied else "no reply yet") + (f", {state}" if state else "")
    return ("node", text)


def lost_line(ev: LostEvent) -> tuple[str, str]:
    return ("-", f"!! LOST {ev.count} events ({ev.layer}); {ev.total} in total")


# --- failures that are not drops: route, neigh, icmp, tcp, sock ---------------------

def _who(process: Process | None, pod: PodRef | None) -> str:
    if process is None:
        return ""
    text = f"  by {process.comm}[{process.pid}]"
    return text + (f" pod {pod.uid}" if pod is not None else "")


def _fwd(f: Forwarding | None) -> str:
    if f is None:
        return ""
    return f"  ip_forward={f.ip_forward}" + (f" rp_filter={f.rp_filter}"
                                              if f.rp_filter is not None else "")


def route_line(ev: RouteEvent) -> tuple[str, str]:
    via = f" via {ev.gateway}" if ev.gateway else ""
    return (f"table {ev.table}",
            f"no route {ep(ev.src)} → {ep(ev.dst)}{via}  {ev.error}"
            + (f"  ({ev.count} lookups)" if ev.count > 1 else "") + _fwd(ev.forwarding))


def neigh_line(ev: NeighEvent) -> tuple[str, str]:
    return (ev.ifname or "-", f"next hop {ev.addr} unresolved ({ev.event}, {ev.state}, "
            f"{ev.probes} probes)")


def icmp_line(ev: IcmpEvent) -> tuple[str, str]:
    what = ev.meaning + (f" (mtu {ev.mtu})" if ev.mtu is not None else "")
    # icmp_send: the node sent it; tc: an ICMPv6 error crossed the interface
    how = "sent" if ev.via == "icmp_send" else f"{ev.direction} icmpv6"
    text = f"{how} {what} for {proto_name(ev.proto)} {ep(ev.src)} → {ep(ev.dst)}"
    return (ev.ifname or "-", text + (f"  ({ev.count} errors)" if ev.count > 1 else ""))


def tcp_line(ev: TcpEvent) -> tuple[str, str]:
    text = f"{ev.event} {ep(ev.src)} → {ep(ev.dst)}"
    if ev.error:
        text += f"  {ev.error}"
    if ev.duration_ns is not None:
        text += f"  after {ev.duration_ns / 1e6:.0f} ms"
    if ev.syn_retransmits:
        text += f", {ev.syn_retransmits} SYN retransmits"
    return (ev.state, text + _who(ev.process, ev.pod))


def sock_line(ev: SockEvent) -> tuple[str, str]:
    text = f"{ev.op}({ep(ev.addr)}) {ev.error}"
    if ev.via == "so_error":
        text += " (non-blocking, SO_ERROR)"
    text += _who(ev.process, ev.pod)
    if ev.holder is not None:
        h = ev.holder
        text += f"; held by {h.comm or '?'}[{h.pid}]" + (f" pod {h.pod.uid}" if h.pod else "")
    return (f"fd {ev.fd}", text)
# --- end of the failures that are not drops -------------------------------------------


def with_names(what: str, ev: Output, names: Names) -> str:
    """Each endpoint that has a Kubernetes name shown as `name(ip:port)`, the first
    occurrence of its text in the line; a process's pod by name instead of its uid."""
    for field, name in zip(NAMED_FIELDS[type(ev)], names, strict=True):
        if name is None:
            continue
        if field.startswith("@"):
            label = pod_label(name)
            if label and isinstance(name, PodName):
                what = what.replace(f"pod {name.uid}", f"pod {label}", 1)
            continue
        label = endpoint_label(name)
        if not label:
            continue
        text = ep(getattr(ev, field))
        if text != "-":
            what = what.replace(text, f"{label}({text})", 1)
    return what


LINE_FNS: dict[type, Callable[[Any], tuple[str, str]]] = {
    DropEvent: drop_line,
    FlowEvent: flow_line,
    NatEvent: nat_line,
    LostEvent: lost_line,
    RouteEvent: route_line,
    NeighEvent: neigh_line,
    IcmpEvent: icmp_line,
    TcpEvent: tcp_line,
    SockEvent: sock_line,
}


def finding_lines(f: Finding) -> list[str]:
    names = ", ".join(str(o) for o in dict.fromkeys(f.objects))
    return [f"!! {f.kind}: {f.summary}", *([f"   objects: {names}"] if names else []),
            f"   fix: {f.fix}", *([f"   to be sure: {f.ambiguity}"] if f.ambiguity else [])]


class TableSink:
    def __init__(self, out: TextIO) -> None:
        self.out = OutputStream(out)
        self._header = False

    def write(self, batch: Sequence[Output]) -> None:
        if not batch:
            return
        lines: list[str] = []
        if not self._header:
            lines.append(HEADER)
            self._header = True
        for ev, names in zip(batch, names_of(batch), strict=True):
            if isinstance(ev, Finding):
                head = f"{rfc3339_ns(ev.wall_ns)[11:26]:<15}  find  {'node':<24}  "
                lines += [head + line if i == 0 else " " * len(head) + line
                          for i, line in enumerate(finding_lines(ev))]
                continue
            fn = LINE_FNS.get(type(ev))
            if fn is None:
                continue
            where, what = fn(ev)
            if names is not None:
                what = with_names(what, ev, names)
            lines.append(f"{rfc3339_ns(ev.wall_ns)[11:26]:<15}  {ev.kind:<4}  {where:<24}  {what}")
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()

    def close(self) -> None:
        self.out.flush()
