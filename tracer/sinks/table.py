"""-o table: aligned columns for people (until the TUI takes the terminal)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from tracer.model import DropEvent, Endpoint, Event, LostEvent, proto_name
from tracer.timefmt import rfc3339_ns

COLUMNS = (("TIME", 15), ("NETNS", 10), ("IF", 10), ("PROTO", 6), ("SOURCE", 28),
           ("DESTINATION", 28), ("REASON", 22), ("LOCATION", 0))


def _ep(ep: Endpoint) -> str:
    if ep.ip is None:
        return "-"
    host = f"[{ep.ip}]" if ":" in ep.ip and ep.port is not None else ep.ip
    return f"{host}:{ep.port}" if ep.port is not None else host


def _row(cells: Sequence[str]) -> str:
    return "  ".join(c.ljust(w) if w else c
                     for c, (_, w) in zip(cells, COLUMNS, strict=True)).rstrip()


class TableSink:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._header = False

    def write(self, batch: Sequence[Event]) -> None:
        if not batch:
            return
        lines: list[str] = []
        if not self._header:
            lines.append(_row([name for name, _ in COLUMNS]))
            self._header = True
        for ev in batch:
            clock = rfc3339_ns(ev.wall_ns)[11:26]
            if isinstance(ev, DropEvent):
                proto = proto_name(ev.proto) if ev.family else f"l3:{ev.l3_proto:#06x}"
                lines.append(_row([clock, str(ev.netns), ev.ifname or "-", proto,
                                   _ep(ev.src), _ep(ev.dst), ev.reason, ev.location]))
            elif isinstance(ev, LostEvent):
                lines.append(f"{clock}  !! LOST {ev.count} events ({ev.layer}); "
                             f"{ev.total} in total")
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()

    def close(self) -> None:
        self.out.flush()
