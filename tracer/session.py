"""A live tracing session: build, scope, attach, stream to a sink, drain, detach.

Every attachment lives in the ExitStack, so an error, a signal or the end of the
duration all leave the kernel as it was found.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tracer.conntrack import ConntrackEvents
from tracer.errors import PrerequisiteError
from tracer.interfaces import discover, pod_networks
from tracer.kernel.features import ensure_tracefs, fentry_available, kprobes_available, tracefs_dir
from tracer.kernel.ksyms import Ksyms
from tracer.kernel.loader import BuildSpec, Module, buildable_families, require_privileges
from tracer.kernel.tc import TcAttacher, sweep_stale
from tracer.model import Event
from tracer.pipeline.decode import DecodeContext, Decoder
from tracer.pipeline.local import LocalEnricher
from tracer.pipeline.path import PathMarker
from tracer.podmap import PodMap
from tracer.recording import nodestate
from tracer.recording.writer import EndInfo, RecordingWriter, RecordSpec, SessionFacts
from tracer.scope import node_namespaces, own_netns_inode
from tracer.sources.live import LiveSource, SourceStats
from tracer.sysctls import ForwardingSysctls, local_addresses
from tracer.timefmt import mono_to_wall_offset_ns

log = logging.getLogger(__name__)


class Sink(Protocol):
    def write(self, batch: Sequence[Event]) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class TraceOptions:
    duration_s: float | None = None    # counted from the moment every probe is attached
    ready_file: Path | None = None     # written when every probe is attached
    all_netns: bool = False            # every namespace, not just this node and its pods
    keep_not_specified: bool = False   # also SKB_DROP_REASON_NOT_SPECIFIED frees
    stop_after: int | None = None      # stop after this many events
    tc_mode: str = "auto"              # "auto" (tcx where the kernel has it), "tcx", "legacy"
    nat_hook: str = "auto"             # "auto" (fentry where it loads), "fentry", "kprobe"
    cluster_cidrs: tuple[str, ...] = ()  # pod networks of the whole cluster (default: local)
    service_cidrs: tuple[str, ...] = ()
    ringbuf_pages: int = 256
    record: RecordSpec | None = None   # also write the session to a recording


# issue 5: failures that are not drops (built where the kernel has their hooks)
EXPLAIN_FAMILIES = ("route", "neigh", "icmp", "tcp", "sock")


def node_ifindexes() -> set[int]:
    """Interfaces of the namespace we run in (the node's)."""
    return {idx for idx, _name in socket.if_nameindex()}


def write_ready_file(path: Path, attached: list[str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "attached": attached}) + "\n")
    tmp.replace(path)


def run(opts: TraceOptions, sink: Sink, stop: threading.Event) -> SourceStats:
    with contextlib.ExitStack() as stack:
        require_privileges()  # before anything touches tracefs or netlink
        families = {"drops", "tc"}
        # per-packet NAT decisions (fentry where it loads, else kprobe); conntrack
        # events otherwise
        kprobes = kprobes_available(tracefs_dir())
        fentry_ok, fentry_why = fentry_available()
        if {"auto": kprobes or fentry_ok, "kprobe": kprobes, "fentry": fentry_ok}[opts.nat_hook]:
            families.add("nat")
        elif opts.nat_hook != "auto":
            raise PrerequisiteError(
                f"--nat-hook {opts.nat_hook}: " + ("this kernel has no kprobes"
                                                   if opts.nat_hook == "kprobe" else fentry_why),
                fix="--nat-hook auto   (NAT decisions then come from conntrack events)")
        # issue 5: every failure family whose required hooks this kernel has
        for family, why in buildable_families(ensure_tracefs(), EXPLAIN_FAMILIES).items():
            if why:
                log.info("not tracing %s events: %s", family, why)
            else:
                families.add(family)
        module = stack.enter_context(Module(BuildSpec(
            families=frozenset(families), keep_not_specified=opts.keep_not_specified,
            nat_hook=opts.nat_hook,
            ringbuf_pages=opts.ringbuf_pages)))
        facts = module.load()
        node_ino = own_netns_inode()
        scope_fn = None if opts.all_netns else node_namespaces
        module.set_scope(scope_fn() if scope_fn else None, node_ino)
        module.set_node_ifindexes(node_ifindexes())
        attached = module.attach_all()

        # tc: reclaim stale legacy filters of dead runs first, then follow interfaces
        swept = sweep_stale()
        if swept:
            log.info("removed %d stale nodetrace tc filter(s): %s", len(swept), "; ".join(swept))
        progs = module.tc_programs()
        tc = stack.enter_context(TcAttacher({d: p.fd for d, p in progs.items()},
                                            mode=opts.tc_mode))
        tc.sync(discover())
        ifaces = [a.iface for a in tc.attached.values()]
        attached.append(f"tc/{tc.mode}: " + (", ".join(f"{i.name}({i.role})" for i in ifaces)
                                             or "no interfaces yet"))

        conntrack = ConntrackEvents(node_ino)
        stack.callback(conntrack.close)

        sysctls = ForwardingSysctls()
        sysctls.refresh(local_addresses())
        enricher = LocalEnricher(node_ino, PodMap(), sysctls)

        def refresh() -> None:
            if scope_fn is not None:
                module.set_scope(scope_fn(), node_ino)
            module.set_node_ifindexes(node_ifindexes())
            sysctls.refresh(local_addresses())
            added, removed = tc.sync(discover())
            for i in added:
                log.info("tc attached to %s (%s)", i.name, i.role)
            for i in removed:
                log.info("tc detached from %s (gone)", i.name)

        decoder = Decoder(DecodeContext(drop_reasons=facts.drop_reasons,
                                        resolve_location=Ksyms().preload().resolve,
                                        mono_to_wall_ns=mono_to_wall_offset_ns(),
                                        ifname_of=tc.ifname_of, role_of=tc.role_of))
        marker = PathMarker(
            [ipaddress.ip_network(c, strict=False) for c in opts.cluster_cidrs]
            or pod_networks(),
            [ipaddress.ip_network(c, strict=False) for c in opts.service_cidrs])
        source = LiveSource(module, decoder, inputs=[conntrack.drain],
                            losses=lambda: {"conntrack": conntrack.overflows},
                            refresh=refresh)
        where = ("every network namespace" if opts.all_netns else
                 f"netns {node_ino} and its pod namespaces")
        log.info("tracing %s (%s); Ctrl-C to stop", where, "; ".join(attached))
        for label, why in module.unavailable.items():
            log.info("not attached: %s (%s)", label, why)
        recorder = None
        if opts.record is not None:  # before the ready file: every event is recorded
            recorder = stack.enter_context(RecordingWriter(opts.record, SessionFacts(
                kernel_release=facts.release, attached=attached, unavailable=module.unavailable,
                drop_reasons=facts.drop_reasons, mono_to_wall_ns=decoder.ctx.mono_to_wall_ns,
                netns=node_ino, pod_networks=[str(n) for n in marker.pod_networks],
                service_networks=[str(n) for n in marker.cluster_networks
                                  if n not in marker.pod_networks]),
                on_full=stop.set if opts.record.stop_when_full else None,
                snapshot=nodestate.snapshot))
        if opts.ready_file:
            write_ready_file(opts.ready_file, attached)
        if opts.duration_s is not None:
            timer = threading.Timer(opts.duration_s, stop.set)
            timer.daemon = True
            timer.start()
            stack.callback(timer.cancel)
        seen = 0
        for batch in source.batches(stop):
            batch = enricher.process(batch)
            if recorder is not None:
                # decoded and joined with the node's state of the moment (pods, port
                # holders, sysctls: gone by replay time); derivations such as the path
                # marks are re-run on replay, by the code of the day
                recorder.write(batch)
            batch = marker.process(batch)
            sink.write(batch)
            seen += len(batch)
            if opts.stop_after is not None and seen >= opts.stop_after:
                stop.set()
        sink.close()
        stats = source.stats()
        if recorder is not None:
            recorder.finish(EndInfo("stopped", stats.received, stats.decode_errors, stats.lost))
        if any(stats.lost.values()):
            log.warning("events lost: %s", ", ".join(f"{k} {v}" for k, v in stats.lost.items()
                                                     if v))
        return stats
