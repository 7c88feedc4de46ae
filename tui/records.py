"""Reading the fields of a record dict (one `trace -o jsonl` line) for display.

Kubernetes names arrive beside the raw fields of `src`/`dst`:
`scope`, `pod` {namespace, name, hostNetwork}, `service` {namespace, name, port},
`node`.  Everything here tolerates their absence: without them an endpoint is its
address.
"""

from __future__ import annotations

import time
from typing import Any

from tracer.util.timefmt import parse_rfc3339
from tui.feed import Record


def time_ns(text: Any) -> int:
    """A record's RFC 3339 time -> wall ns; 0 for anything else (records are hostile
    input too: a bad time sorts first instead of stopping the view)."""
    try:
        return parse_rfc3339(text)
    except ValueError:
        return 0


def clock(ns: int) -> str:
    """HH:MM:SS.mmm of a wall time."""
    if ns <= 0:
        return "-"
    return time.strftime("%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + \
        f".{ns // 1_000_000 % 1000:03d}"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def addr(ep: Any) -> str:
    """"10.42.0.10:5432", "[fd00::1]:80", "10.42.0.1" (no port)."""
    e = _dict(ep)
    ip, port = e.get("ip"), e.get("port")
    if ip is None:
        return "?"
    text = f"[{ip}]" if ":" in str(ip) and port is not None else str(ip)
    return f"{text}:{port}" if port is not None else text


def pod_name(ep: Any) -> str | None:
    pod = _dict(_dict(ep).get("pod"))
    if pod.get("name"):
        return f"{pod.get('namespace') or '-'}/{pod['name']}"
    return None


def service_name(ep: Any) -> str | None:
    svc = _dict(_dict(ep).get("service"))
    if svc.get("name"):
        return f"{svc.get('namespace') or '-'}/{svc['name']}"
    return None


def name(ep: Any) -> str:
    """An endpoint by its Kubernetes name when the record has one, else its address."""
    e = _dict(ep)
    port = e.get("port")
    suffix = f":{port}" if port is not None else ""
    svc = service_name(e)
    pod = pod_name(e)
    # `scope` says what the address is: a Service's backend carries its Service too
    # (the port it backs), but it is the pod
    if svc and (e.get("scope") != "pod" or not pod):
        return f"svc/{svc}{suffix}"
    if pod:
        return f"{pod}{suffix}"
    if e.get("node"):
        return f"node/{e['node']}{suffix}"
    return addr(e)


def endpoints(rec: Record) -> tuple[Any, Any]:
    """(src, dst) of a record; nat records: the original direction."""
    if rec.get("kind") == "nat":
        orig = _dict(rec.get("orig"))
        return orig.get("src"), orig.get("dst")
    return rec.get("src"), rec.get("dst")


def describe(rec: Record) -> str:
    """One line for the event log."""
    kind = rec.get("kind", "?")
    src, dst = endpoints(rec)
    where = f" on {rec['ifname']}" if rec.get("ifname") else ""
    if kind == "drop":
        what = f"{rec.get('reason')} x{rec.get('count', 1)} at {rec.get('location') or '?'}"
    elif kind == "flow":
        what = (f"{rec.get('direction')} {rec.get('report')} {rec.get('packets')} pkts "
                f"{rec.get('bytes')} B")
    elif kind == "nat":
        what = f"{'+'.join(rec.get('translation') or [])} {rec.get('ct_event') or ''} " \
               f"-> {name(_dict(rec.get('reply')).get('src'))}"
    elif kind == "tcp":
        what = f"{rec.get('event')} {rec.get('error') or ''}".rstrip()
    elif kind == "icmp":
        what = str(rec.get("meaning"))
    elif kind == "lost":
        return f"lost {rec.get('count')} at {rec.get('layer')} (total {rec.get('total')})"
    elif kind == "finding":
        return f"finding {rec.get('severity')}: {rec.get('summary')}"
    else:
        what = " ".join(str(rec.get(k)) for k in ("event", "op", "error") if rec.get(k))
    proto = rec.get("proto") or ""
    return f"{kind:<5} {proto:<4} {name(src)} -> {name(dst)}{where}: {what}"
