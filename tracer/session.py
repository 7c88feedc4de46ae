"""A live tracing session: build, scope, attach, stream to a sink, drain, detach.

Every attachment lives in the ExitStack, so an error, a signal or the end of the
duration all leave the kernel as it was found.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tracer.kernel.ksyms import Ksyms
from tracer.kernel.loader import BuildSpec, Module
from tracer.model import Event
from tracer.pipeline.decode import DecodeContext, Decoder
from tracer.scope import node_namespaces, own_netns_inode
from tracer.sources.live import LiveSource, SourceStats
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


def write_ready_file(path: Path, attached: list[str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "attached": attached}) + "\n")
    tmp.replace(path)


def run(opts: TraceOptions, sink: Sink, stop: threading.Event) -> SourceStats:
    with contextlib.ExitStack() as stack:
        module = stack.enter_context(Module(BuildSpec(keep_not_specified=opts.keep_not_specified)))
        facts = module.load()
        decoder = Decoder(DecodeContext(drop_reasons=facts.drop_reasons,
                                        resolve_location=Ksyms().resolve,
                                        mono_to_wall_ns=mono_to_wall_offset_ns()))
        scope_fn = None if opts.all_netns else node_namespaces
        scope = scope_fn() if scope_fn else None
        module.set_scope(scope)
        attached = module.attach_all()
        source = LiveSource(module, decoder, scope=scope_fn)
        where = ("every network namespace" if scope is None else
                 f"netns {own_netns_inode()} and {len(scope) - 1} pod namespace(s)")
        log.info("tracing packet drops in %s (%s); Ctrl-C to stop", where, ", ".join(attached))
        if opts.ready_file:
            write_ready_file(opts.ready_file, attached)
        if opts.duration_s is not None:
            timer = threading.Timer(opts.duration_s, stop.set)
            timer.daemon = True
            timer.start()
            stack.callback(timer.cancel)
        seen = 0
        for batch in source.batches(stop):
            sink.write(batch)
            seen += len(batch)
            if opts.stop_after is not None and seen >= opts.stop_after:
                stop.set()
        sink.close()
        stats = source.stats()
        if any(stats.lost.values()):
            log.warning("events lost: %s", ", ".join(f"{k} {v}" for k, v in stats.lost.items()))
        return stats
