"""A live tracing session: probe what the kernel has, build the probes, attach them,
build the pipeline (tracer/modes/build.py), drive it (tracer/modes/drive.py)
until stopped, detach.

Every attachment lives in the ExitStack, so an error, a signal or the end of the
duration all leave the kernel as it was found.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tracer.diagnosis.engine import Diagnoser
from tracer.kernel.features import ensure_tracefs, fentry_available, kprobes_available, tracefs_dir
from tracer.kernel.ksyms import Ksyms
from tracer.kernel.loader import BuildSpec, Module, buildable_families, require_privileges
from tracer.kernel.tc import TcAttacher, sweep_stale
from tracer.metadata.setup import Metadata, MetadataOptions
from tracer.modes import build
from tracer.modes.drive import drive
from tracer.node.conntrack import ConntrackEvents
from tracer.node.interfaces import Iface, bridge_ports, discover, pod_networks
from tracer.node.netchanges import NetChanges
from tracer.node.scope import node_namespaces, own_netns_inode
from tracer.node.sysctls import ForwardingSysctls, local_addresses
from tracer.pipeline.decode import DecodeContext, Decoder
from tracer.pipeline.enrich import PodFilter
from tracer.recording.live import LiveRecording
from tracer.recording.writer import RecordSpec, SessionFacts
from tracer.session.control import SessionControl
from tracer.session.pod_scope import PodSelection, Selection
from tracer.sinks.sink import Sink as Sink  # its old home: re-exported
from tracer.sources.live import LiveSource
from tracer.sources.stats import SourceStats
from tracer.util.beside import HANDOFF_S, Beside, quick_handoffs
from tracer.util.errors import PrerequisiteError, UsageError
from tracer.util.timefmt import mono_to_wall_offset_ns

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TraceOptions:
    duration_s: float | None = None    # counted from the moment every probe is attached
    ready_file: Path | None = None     # written when every probe is attached
    all_netns: bool = False            # every namespace, not just this node and its pods
    keep_not_specified: bool = False   # also SKB_DROP_REASON_NOT_SPECIFIED frees
    keep_queue_purge: bool = False     # and QUEUE_PURGE (sockets closing)
    stop_after: int | None = None      # stop after this many events
    tc_mode: str = "auto"              # "auto" (tcx where the kernel has it), "tcx", "legacy"
    nat_hook: str = "auto"             # "auto" (fentry where it loads), "fentry", "kprobe"
    cluster_cidrs: tuple[str, ...] = ()  # pod networks of the whole cluster (default: local)
    service_cidrs: tuple[str, ...] = ()
    ringbuf_pages: int = 256
    storm_flows: int = 64              # new flows a drop point reports a second, then folds
    record: RecordSpec | None = None   # also write the session to a recording
    metadata: MetadataOptions = field(default_factory=MetadataOptions)  # Kubernetes names
    selection: Selection | None = None  # -l/-n/--pod: only these pods of this node


REFRESH_S = 0.25   # a new pod (its veth, or a -l match) is attached within a second


@dataclass(frozen=True)
class Attached:
    """What a session attached, for a display (the TUI's header)."""

    kernel_release: str
    netns: int
    attached: tuple[str, ...]
    unavailable: dict[str, str] = field(default_factory=dict)

# failures that are not drops (built where the kernel has their hooks)
EXPLAIN_FAMILIES = ("route", "neigh", "icmp", "tcp", "sock")


def _select(selection: Selection | None, meta: Metadata) -> PodSelection | None:
    if selection is None:
        return None
    if not meta.knows_labels:
        raise UsageError("selecting pods (-l, -n, --pod) needs Kubernetes metadata: "
                         "a reachable API (--kubeconfig, --context) or --metadata FILE")
    selected = PodSelection(selection, meta)
    selected.refresh(force=True)
    return selected


def write_ready_file(path: Path, attached: list[str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "attached": attached}) + "\n")
    tmp.replace(path)


def probe_families(nat_hook: str) -> tuple[set[str], dict[str, str]]:
    """The probe families this kernel can run, and why each other one cannot (the
    recording's header and the coverage say it)."""
    families = {"drops", "tc"}
    not_built: dict[str, str] = {}
    # per-packet NAT decisions (fentry where it loads, else kprobe); conntrack
    # events otherwise
    kprobes = kprobes_available(tracefs_dir())
    fentry_ok, fentry_why = fentry_available()
    if {"auto": kprobes or fentry_ok, "kprobe": kprobes, "fentry": fentry_ok}[nat_hook]:
        families.add("nat")
    elif nat_hook != "auto":
        raise PrerequisiteError(
            f"--nat-hook {nat_hook}: " + ("this kernel has no kprobes"
                                          if nat_hook == "kprobe" else fentry_why),
            fix="--nat-hook auto   (NAT decisions then come from conntrack events)")
    else:
        not_built["family nat (per packet)"] = ("no kprobes, no fentry: NAT from "
                                                "conntrack events")
    # every failure family whose required hooks this kernel has
    for family, why in buildable_families(ensure_tracefs(), EXPLAIN_FAMILIES).items():
        if why:
            log.info("not tracing %s events: %s", family, why)
            not_built[f"family {family}"] = why
        else:
            families.add(family)
    return families, not_built


def run(opts: TraceOptions, sink: Sink, stop: threading.Event,
        diagnoser: Diagnoser | None = None,
        on_attached: Callable[[Attached], None] | None = None,
        control: SessionControl | None = None) -> SourceStats:
    """Trace until `stop`; with a `diagnoser`, its findings go to the sink beside the
    events, as soon as each is complete, and the rest at the end; `on_attached` hears
    what was attached (a display's header); `control` takes a display's requests
    (recording, pod selection) while the session runs."""
    with contextlib.ExitStack() as stack:
        require_privileges()  # before anything touches tracefs or netlink
        families, not_built = probe_families(opts.nat_hook)
        # kallsyms is read (CPU) while BCC compiles (in C, without the GIL); tc's
        # attach and detach (one RCU grace period a link, under the rtnl lock) run
        # beside the rest of the start and of the teardown
        beside = Beside()
        stack.callback(sys.setswitchinterval, sys.getswitchinterval())
        stack.callback(beside.join)       # the teardown's last work
        starting = stack.enter_context(contextlib.ExitStack())
        starting.enter_context(quick_handoffs())
        ksyms = Ksyms()
        beside.start(ksyms.preload)
        module = stack.enter_context(Module(BuildSpec(
            families=frozenset(families), keep_not_specified=opts.keep_not_specified,
            keep_queue_purge=opts.keep_queue_purge,
            nat_hook=opts.nat_hook,
            ringbuf_pages=opts.ringbuf_pages, storm_flows=opts.storm_flows)))
        facts = module.load()
        node_ino = own_netns_inode()
        # names from the API, files and the node; -l selects pods
        meta = stack.enter_context(Metadata(opts.metadata, node_ino, local_addresses()))
        if control is not None:
            control.metadata_health = meta.health
        selected = _select(opts.selection, meta)

        def scope() -> set[int] | None:   # the selection may change (the TUI's -l)
            if selected is not None:
                return {node_ino, *selected.inodes}
            return None if opts.all_netns else node_namespaces()

        # interfaces, pod namespaces, addresses and sysctls: read now, then again when
        # the kernel announces a change (tracer/node/netchanges.py), not on a timer
        changes = NetChanges()
        stack.callback(changes.close)
        module.set_scope(scope(), node_ino)
        module.set_bridge_ports(bridge_ports())
        attached = module.attach_all()

        # tc: reclaim stale legacy filters of dead runs first, then follow interfaces
        swept = sweep_stale()
        if swept:
            log.info("removed %d stale nodetrace tc filter(s): %s", len(swept), "; ".join(swept))
        progs = module.tc_programs()
        tc = TcAttacher({d: p.fd for d, p in progs.items()}, mode=opts.tc_mode)


        def close_tc() -> None:
            beside.join(quiet=True)       # an attach still running ends first
            sys.setswitchinterval(HANDOFF_S)   # until the teardown's end (see above)
            beside.start(tc.close)

        stack.callback(close_tc)
        beside.start(tc.sync, discover() if selected is None else selected.ifaces())

        conntrack = ConntrackEvents(node_ino)
        stack.callback(conntrack.close)

        sysctls = ForwardingSysctls()
        sysctls.refresh(local_addresses())

        def refresh() -> None:
            if control is not None:
                control.serve(recording, reselect)
            full = changes.due()
            # pods come and go in the API too: follow the selection within a second
            if selected is not None and selected.refresh() and not full:
                module.set_scope({node_ino, *selected.inodes}, node_ino)
                _log_tc(*tc.sync(selected.ifaces()))
            if not full:
                return
            if selected is not None or not opts.all_netns:
                module.set_scope(scope(), node_ino)
            module.set_bridge_ports(bridge_ports())
            sysctls.refresh(local_addresses())
            _log_tc(*tc.sync(discover() if selected is None else selected.ifaces()))

        def reselect(selection: Selection | None) -> str:
            """The display's new -l/-n: attach to the pods it selects, now."""
            nonlocal selected
            selected = _select(selection, meta)
            module.set_scope(scope(), node_ino)
            _log_tc(*tc.sync(discover() if selected is None else selected.ifaces()))
            pod_filter.select(selected.current if selected is not None else None)
            return describe(selected)

        def describe(sel: PodSelection | None) -> str:
            if sel is None:
                return ("every network namespace" if opts.all_netns else
                        f"netns {node_ino} and its pod namespaces")
            return f"pods of node {meta.index.local_node or '?'} ({sel.selection.describe()})"

        def _log_tc(added: list[Iface], removed: list[Iface]) -> None:
            for i in added:
                log.info("tc attached to %s (%s)", i.name, i.role)
            for i in removed:
                log.info("tc detached from %s (%s)", i.name,
                         "gone" if selected is None else "gone or no longer selected")

        beside.join()                     # kallsyms read, tc attached
        ifaces = [a.iface for a in tc.attached.values()]
        attached.append(f"tc/{tc.mode}: " + (", ".join(f"{i.name}({i.role})" for i in ifaces)
                                             or "no interfaces yet"))
        decoder = Decoder(DecodeContext(drop_reasons=facts.drop_reasons,
                                        resolve_location=ksyms.resolve,
                                        mono_to_wall_ns=mono_to_wall_offset_ns(),
                                        ifname_of=tc.ifname_of, role_of=tc.role_of))
        pods = [ipaddress.ip_network(c, strict=False) for c in opts.cluster_cidrs] \
            or pod_networks()
        services = [ipaddress.ip_network(c, strict=False) for c in opts.service_cidrs]
        unavailable = {**not_built, **module.unavailable}
        recording = LiveRecording(SessionFacts(
            kernel_release=facts.release, attached=attached, families=module.families(),
            unavailable=unavailable,
            drop_reasons=facts.drop_reasons, mono_to_wall_ns=decoder.ctx.mono_to_wall_ns,
            netns=node_ino, pod_networks=[str(n) for n in pods],
            service_networks=[str(n) for n in services if n not in pods],
            addresses=sorted(meta.index.local_addresses),
            **({"node": meta.index.local_node} if meta.index.local_node else {})),
            meta.index, lambda: source.stats(),
            on_full=stop.set if opts.record is not None and opts.record.stop_when_full
            else None)
        stack.callback(recording.close)
        pipeline = build.live(node_netns=node_ino, sysctls=sysctls, recording=recording,
                              index=meta.index, pod_networks=pods,
                              service_networks=services,
                              selected=selected.current if selected is not None else None,
                              diagnoser=diagnoser, attached=attached,
                              families=module.families(),
                              unavailable=unavailable)
        found = pipeline.stage("pod-filter")   # the display's -l changes its selection
        assert isinstance(found, PodFilter)
        pod_filter = found
        source = LiveSource(module, decoder, inputs=[conntrack.drain],
                            input_fds=[conntrack.sock.fileno()],
                            losses=lambda: {"conntrack": conntrack.overflows},
                            refresh=refresh, refresh_interval_s=REFRESH_S,
                            heartbeat_s=pipeline.heartbeat_s)
        where = describe(selected)
        names = ", ".join(meta.sources) or "nothing"
        log.info("tracing %s (%s); names from %s; Ctrl-C to stop", where, "; ".join(attached),
                 names)
        for label, why in module.unavailable.items():
            log.info("not attached: %s (%s)", label, why)
        if opts.record is not None:  # before the ready file: every event is recorded
            recording.start(opts.record)
            if control is not None:
                control.recording_path = opts.record.path
        if on_attached is not None:
            on_attached(Attached(facts.release, node_ino, tuple(attached),
                                 dict(module.unavailable)))
        starting.close()                  # started: Python's own hand-offs again
        if opts.ready_file:
            write_ready_file(opts.ready_file, attached)
        if opts.duration_s is not None:
            timer = threading.Timer(opts.duration_s, stop.set)
            timer.daemon = True
            timer.start()
            stack.callback(timer.cancel)
        ended: list[int] = []

        def stream_ended() -> None:
            ended.append(time.time_ns())   # the recording ends where diagnosis did
            recording.stop(end_ns=ended[0])

        stats = drive(source, pipeline, [sink], stop, stop_after=opts.stop_after,
                      end_wall_ns=lambda: ended[0] if ended else time.time_ns(),
                      stream_ended=stream_ended,
                      # a loss layer of its own: events the recording could not keep
                      more_losses=lambda: {"recording": recording.failed})
        if control is not None:
            control.ended()
        return stats
