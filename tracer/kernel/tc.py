"""Attach the tc programs to interfaces, and take them off again.

Preferred: tcx links (kernel >= 6.6).  A link lives as long as its fd, so the kernel
removes it when nodetrace dies, however it dies.  Fallback: legacy clsact + cls_bpf
filters, which outlive the process; each is tagged with our owner (name
`nodetrace/<pid>/<start time>`, priority NT_PRIO) so a later start sweeps exactly the
stale filters of dead nodetrace processes and never touches anyone else's filter or
qdisc.  A clsact qdisc we find is reused; one we created is deleted on detach only if
it holds no other filter.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tracer.kernel import libbpf
from tracer.kernel.btf import Btf
from tracer.node.interfaces import Iface
from tracer.util.errors import AttachError, TracerError

log = logging.getLogger(__name__)

NT_PRIO = 49200            # legacy filter priority: ours, and rare elsewhere
NT_HANDLE = ":1"
TAG_PREFIX = "nodetrace/"
TAG_RE = re.compile(r"^nodetrace/(\d+)/(\d+)$")
PARENTS = {"ingress": 0xFFFFFFF2, "egress": 0xFFFFFFF3}
PARENT_STR = {"ingress": "ffff:fff2", "egress": "ffff:fff3"}
MODES = ("auto", "tcx", "legacy")


def _proc_start_time(pid: int) -> int | None:
    try:
        stat = open(f"/proc/{pid}/stat").read()  # noqa: SIM115 - tiny, read at once
    except OSError:
        return None
    # comm may contain spaces and parentheses: fields follow the last ')'
    return int(stat.rsplit(")", 1)[1].split()[19])


def owner_tag(pid: int | None = None) -> str:
    pid = pid or os.getpid()
    return f"{TAG_PREFIX}{pid}/{_proc_start_time(pid) or 0}"


def tag_owner_alive(tag: str) -> bool:
    m = TAG_RE.match(tag)
    if not m:
        return True  # not parseable: never assume it is ours to remove
    pid, start = int(m.group(1)), int(m.group(2))
    return _proc_start_time(pid) == start


def tcx_attach_types() -> dict[str, int] | None:
    """BPF_TCX_INGRESS/EGRESS values of this kernel, or None without tcx."""
    with Btf() as btf:
        types = btf.enum_values("bpf_attach_type")
    if "BPF_TCX_INGRESS" not in types:
        return None
    return {"ingress": types["BPF_TCX_INGRESS"], "egress": types["BPF_TCX_EGRESS"]}


def _iproute() -> Any:
    from pyroute2 import IPRoute

    return IPRoute()


def _filter_name(f: Any) -> str | None:
    name = f.get(("TCA_OPTIONS", "TCA_BPF_NAME"))
    return str(name) if name is not None else None


def sweep_stale(ipr: Any = None) -> list[str]:
    """Remove our legacy filters whose owning process is gone.  Returns what went."""
    own = ipr is None
    ipr = ipr or _iproute()
    removed: list[str] = []
    try:
        for link in ipr.get_links():
            idx = int(link["index"])
            name = link.get("IFLA_IFNAME")
            for direction, parent in PARENTS.items():
                try:
                    filters = ipr.get_filters(index=idx, parent=parent)
                except Exception:  # no clsact on this link: nothing of ours either
                    continue
                for f in filters:
                    tag = _filter_name(f)
                    if (f.get("TCA_KIND") != "bpf" or not tag or not tag.startswith(TAG_PREFIX)
                            or tag_owner_alive(tag)):
                        continue
                    prio = int(f["info"]) >> 16
                    ipr.tc("del-filter", "bpf", idx, NT_HANDLE, parent=PARENT_STR[direction],
                           prio=prio)
                    removed.append(f"{name} {direction} {tag}")
                    log.info("removed stale nodetrace filter on %s %s (%s)", name, direction,
                             tag)
    finally:
        if own:
            ipr.close()
    return removed


@dataclass
class _Attachment:
    iface: Iface
    links: dict[str, int] = field(default_factory=dict)      # tcx: direction -> link fd
    legacy: list[str] = field(default_factory=list)          # directions with a filter
    created_qdisc: bool = False


class TcAttacher:
    """Keeps tc_ingress/tc_egress attached to a changing set of interfaces."""

    def __init__(self, prog_fds: dict[str, int], mode: str = "auto") -> None:
        if mode not in MODES:
            raise ValueError(f"tc mode must be one of {MODES}")
        self.prog_fds = prog_fds      # direction -> program fd
        self.tcx_types = tcx_attach_types() if mode in ("auto", "tcx") else None
        if mode == "tcx" and self.tcx_types is None:
            raise AttachError("tcx is not available on this kernel (needs >= 6.6)",
                              fix="use --tc-mode legacy")
        self.mode = "tcx" if self.tcx_types is not None else "legacy"
        self.tag = owner_tag()
        self._ipr: Any = None
        self.attached: dict[int, _Attachment] = {}
        self._names: dict[int, str] = {}
        self._roles: dict[int, str] = {}  # every interface ever attached: late events
                                          # from a deleted pod veth still get a name

    def _netlink(self) -> Any:
        if self._ipr is None:
            self._ipr = _iproute()
        return self._ipr

    # --- one interface ----------------------------------------------------------------
    def attach(self, iface: Iface) -> None:
        if iface.ifindex in self.attached:
            return
        att = _Attachment(iface)
        try:
            if self.mode == "tcx":
                assert self.tcx_types is not None
                for direction, fd in self.prog_fds.items():
                    att.links[direction] = libbpf.link_create(fd, iface.ifindex,
                                                              self.tcx_types[direction])
            else:
                self._attach_legacy(att)
        except TracerError:
            self._detach(att)
            raise
        except Exception as exc:  # pyroute2 NetlinkError and friends
            self._detach(att)
            raise AttachError(f"attaching tc programs to {iface.name} failed: {exc}") from exc
        self.attached[iface.ifindex] = att
        self._names[iface.ifindex] = iface.name
        self._roles[iface.ifindex] = iface.role
        log.debug("tc attached to %s (%s, %s)", iface.name, iface.role, self.mode)

    def _attach_legacy(self, att: _Attachment) -> None:
        ipr = self._netlink()
        idx = att.iface.ifindex
        has_clsact = any(q.get("TCA_KIND") == "clsact" for q in ipr.get_qdiscs(index=idx))
        if not has_clsact:
            ipr.tc("add", "clsact", idx)
            att.created_qdisc = True
        for direction, fd in self.prog_fds.items():
            ipr.tc("add-filter", "bpf", idx, NT_HANDLE, fd=fd, name=self.tag,
                   parent=PARENT_STR[direction], classid=1, direct_action=True, prio=NT_PRIO)
            att.legacy.append(direction)

    def _detach(self, att: _Attachment) -> None:
        for fd in att.links.values():
            os.close(fd)
        att.links.clear()
        if not att.legacy and not att.created_qdisc:
            return
        ipr = self._netlink()
        idx = att.iface.ifindex
        try:
            for direction in att.legacy:
                ipr.tc("del-filter", "bpf", idx, NT_HANDLE, parent=PARENT_STR[direction],
                       prio=NT_PRIO)
            if att.created_qdisc and not any(
                    ipr.get_filters(index=idx, parent=p) for p in PARENTS.values()):
                ipr.tc("del", "clsact", idx)
        except Exception as exc:  # the interface may be gone already (pod deleted)
            log.debug("detaching from %s: %s", att.iface.name, exc)
        att.legacy.clear()

    def detach(self, ifindex: int) -> None:
        att = self.attached.pop(ifindex, None)
        if att is not None:
            self._detach(att)

    # --- the set ----------------------------------------------------------------------
    def sync(self, ifaces: Iterable[Iface]) -> tuple[list[Iface], list[Iface]]:
        """Attach to new interfaces, forget vanished ones.  Returns (added, removed)."""
        want = {i.ifindex: i for i in ifaces}
        removed = [self.attached[idx].iface for idx in list(self.attached) if idx not in want]
        for iface in removed:
            self.detach(iface.ifindex)
        added = [i for idx, i in want.items() if idx not in self.attached]
        for iface in added:
            self.attach(iface)
        return added, removed

    def ifname_of(self, ifindex: int) -> str:
        return self._names.get(ifindex, "")

    def role_of(self, ifindex: int) -> str:
        return self._roles.get(ifindex, "")

    def close(self) -> None:
        for idx in list(self.attached):
            self.detach(idx)
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None

    def __enter__(self) -> TcAttacher:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
