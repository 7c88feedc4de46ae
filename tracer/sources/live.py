"""The live source: drain the kernel ring buffer in batches, decode, report loss.

The ring-buffer callback only copies bytes; decoding happens per batch.  Programs
wake the reader only every 64th record of a CPU (common.h: rb_flags), not per record
(a wake-up per record costs more than the record and loses events under load).
So the reader sleeps in poll() on the ring buffer and the other
inputs' sockets: a burst or a conntrack message wakes it at once, a trickle within
`idle_wait_s`; while events flow it drains every `drain_interval_s`, so each drain
is a batch.  Idle, that is ~15 wake-ups a second instead of 100 on a timer: the CPU
an idle tracer takes comes off the workloads of the node it watches.
"""

from __future__ import annotations

import ctypes
import logging
import select
import threading
import time
from collections.abc import Callable, Iterator, Sequence

from tracer.events.drop import decode_unreported_agg, decode_unreported_drop
from tracer.events.flow import decode_final_flow, decode_final_flow_agg
from tracer.events.icmp import decode_unreported_icmp6
from tracer.events.model import Event, LostEvent
from tracer.events.schema import LossSlot
from tracer.events.stats import SourceStats as SourceStats  # its old home: re-exported
from tracer.kernel.loader import Module
from tracer.pipeline.decode import Decoder

log = logging.getLogger(__name__)


class LiveSource:
    def __init__(self, module: Module, decoder: Decoder, *,
                 drain_interval_s: float = 0.01, idle_wait_s: float = 0.1,
                 loss_interval_s: float = 1.0,
                 inputs: Sequence[Callable[[], list[Event]]] = (),
                 input_fds: Sequence[int] = (),
                 losses: Callable[[], dict[str, int]] | None = None,
                 refresh: Callable[[], None] | None = None,
                 refresh_interval_s: float = 2.0,
                 heartbeat_s: float | None = None) -> None:
        """`inputs` are other non-blocking event producers drained with the ring
        buffer (conntrack), `input_fds` what wakes the reader for them (each drain
        must empty them: poll() is level-triggered); `losses` their loss counters
        by layer; `refresh` runs every `refresh_interval_s` (scope and interface
        re-sync: pods come and go);
        `heartbeat_s`: yield an empty batch when nothing came for that long (a stage
        that judges silence — diagnosis: no reply — needs the clock to move)."""
        self.module = module
        self.decoder = decoder
        self.drain_interval_s = drain_interval_s
        self.idle_wait_s = idle_wait_s
        self.loss_interval_s = loss_interval_s
        self.inputs = list(inputs)
        self.losses = losses
        self.refresh = refresh
        self.refresh_interval_s = refresh_interval_s
        self.heartbeat_s = heartbeat_s
        self._stats = SourceStats()
        self._pending: list[bytes] = []
        self._reported: dict[str, int] = {}

        def on_event(_ctx: object, data: int, size: int) -> int:
            self._pending.append(ctypes.string_at(data, size))
            return 0

        self._callback = on_event  # BCC keeps only a ctypes wrapper; keep ours alive too
        ring = module.bpf["events"]
        ring.open_ring_buffer(on_event)
        # readable while the ring buffer holds records (checked on entry) or after a
        # forced wake-up; the inputs' sockets while they hold messages
        self._poll = select.poll()
        for fd in (ring.map_fd, *input_fds):
            self._poll.register(fd, select.POLLIN)

    def stats(self) -> SourceStats:
        return self._stats

    def _drain(self) -> list[Event]:
        self.module.bpf.ring_buffer_consume()
        events: list[Event] = []
        if self._pending:
            raws, self._pending = self._pending, []
            self._stats.received += len(raws)
            before = self.decoder.errors
            events = self.decoder.decode_all(raws)
            self._stats.decode_errors += self.decoder.errors - before
        for produce in self.inputs:
            more = produce()
            self._stats.received += len(more)
            events.extend(more)
        return events

    def _loss(self, wall_ns: int) -> list[Event]:
        kernel = self.module.loss_counts()
        totals = {slot.name.lower(): kernel[slot] for slot in LossSlot}
        totals["decode"] = self._stats.decode_errors
        if self.losses is not None:
            totals.update(self.losses())
        out: list[Event] = []
        for layer, total in totals.items():
            prev = self._reported.get(layer, 0)
            if total > prev:
                out.append(LostEvent(wall_ns=wall_ns, layer=layer, count=total - prev,
                                     total=total))
                self._reported[layer] = total
        self._stats.lost = dict(self._reported)
        return out

    def batches(self, stop: threading.Event) -> Iterator[list[Event]]:
        """Yield decoded batches until `stop` is set; then drain what is queued and
        report the final loss, so nothing the kernel delivered is dropped on exit."""
        next_loss = time.monotonic() + self.loss_interval_s
        next_refresh = time.monotonic() + self.refresh_interval_s
        next_beat = time.monotonic()
        while not stop.is_set():
            batch = self._drain()
            now = time.monotonic()
            if now >= next_loss:
                batch.extend(self._loss(time.time_ns()))
                next_loss = now + self.loss_interval_s
            if self.refresh is not None and now >= next_refresh:
                self.refresh()
                next_refresh = now + self.refresh_interval_s
            if batch or (self.heartbeat_s is not None and now >= next_beat):
                yield batch
                next_beat = now + (self.heartbeat_s or 0)
            if batch:   # more is likely on its way: let it gather into one batch
                stop.wait(self.drain_interval_s)
            due = [next_loss, self.idle_wait_s + time.monotonic()]
            if self.refresh is not None:
                due.append(next_refresh)
            if self.heartbeat_s is not None:
                due.append(next_beat)
            if not stop.is_set():
                self._poll.poll(max(0.0, min(due) - time.monotonic()) * 1000)
        final = self._drain()
        # what a drop storm left counted but unreported in the kernel
        for raw_key, count, ts_ns in self.module.unreported_drops():
            final.append(decode_unreported_drop(raw_key, count, ts_ns, self.decoder.ctx))
        for raw_key, raw_val, held in self.module.unreported_drop_aggs():
            folded = decode_unreported_agg(raw_key, raw_val, held, time.monotonic_ns(),
                                           self.decoder.ctx)
            if folded is not None:
                final.append(folded)
        for raw_key, count, ts_ns in self.module.unreported_icmp6():
            final.append(decode_unreported_icmp6(raw_key, count, ts_ns, self.module.node_netns,
                                                 self.decoder.ctx))
        for raw_key, raw_val in self.module.unreported_flows():
            final.append(decode_final_flow(raw_key, raw_val, self.module.node_netns,
                                           self.decoder.ctx))
        for raw_key, raw_val, held in self.module.unreported_flow_aggs():
            ending = decode_final_flow_agg(raw_key, raw_val, held, self.module.node_netns,
                                           self.decoder.ctx)
            if ending is not None:
                final.append(ending)
        final.extend(self._loss(time.time_ns()))
        if final:
            yield final
