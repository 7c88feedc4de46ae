"""What every family's decoder needs: the per-session facts a raw record does not
carry (DecodeContext), named access to an unpacked record (Fields), and the address
and string conversions of events.h's fields."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tracer.events.common import Endpoint


@dataclass
class DecodeContext:
    """Per-kernel facts the raw records need; recorded so replay needs no kernel."""

    drop_reasons: dict[int, str]
    resolve_location: Callable[[int], str]
    mono_to_wall_ns: int  # wall = mono + this
    # tc hooks report an ifindex of the node namespace; the attach layer knows names
    ifname_of: Callable[[int], str] = lambda _ifindex: ""
    role_of: Callable[[int], str] = lambda _ifindex: ""


class Fields:
    """Named access to one unpacked record.

    The decoders read fields by name (`v["tuple.saddr"]`), as events.h names them, so
    that a decoder reads like its struct; the name -> position dict is the struct's
    own (WireStruct.index), built once, so a read is two dict/tuple look-ups in C
    instead of a namedtuple or dataclass built per record."""

    __slots__ = ("_index", "_values")

    def __init__(self, index: dict[str, int], values: tuple[Any, ...]) -> None:
        self._index = index
        self._values = values

    def __getitem__(self, name: str) -> Any:
        return self._values[self._index[name]]


def addr(family: int, raw: bytes) -> str | None:
    if family == 4:
        return socket.inet_ntop(socket.AF_INET, raw[:4])
    if family == 6:
        return socket.inet_ntop(socket.AF_INET6, raw)
    return None


def cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace")


def tuple_endpoints(v: Fields, prefix: str) -> tuple[Endpoint, Endpoint, int | None, int | None]:
    """src, dst, icmp type, icmp code of the struct ev_tuple at `prefix` ("tuple.")."""
    family, proto = v[prefix + "family"], v[prefix + "proto"]
    sport, dport = v[prefix + "sport"], v[prefix + "dport"]
    ports = proto in (6, 17)
    icmp = proto in (1, 58)
    return (Endpoint(addr(family, v[prefix + "saddr"]), sport if ports else None),
            Endpoint(addr(family, v[prefix + "daddr"]), dport if ports else None),
            sport if icmp else None, dport if icmp else None)
