"""`replay -o jsonl --jobs 2`: a second process renders most of the lines.

Rendering `-o jsonl` lines is 40 % of a fast replay's CPU, and every other stage must
see the events in order.  So a forked worker reads the same file and runs the same
stages but diagnosis (they are deterministic: it holds the same marks and names at
every batch), and renders every other batch; the main process runs every stage,
renders the other half itself, and stays the only writer of stdout: it copies the
worker's lines in batch order and writes each batch's findings after it.  (Two of
three to the worker was slower: the two wait on each other more when they are as
busy as each other.)  The
main process has every event, so a worker that dies costs speed, never output: a
batch it did not finish is rendered again, and so is every batch after it.

Frames on the pipe: `<II` (batch number, length), then that many bytes of lines; a
frame of length 0 closes its batch.  A batch is written only once it is whole.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import select
import signal
import struct
import threading
from collections.abc import Sequence
from pathlib import Path

from tracer.events.finding import Finding, FindingUpdate
from tracer.events.records import Output
from tracer.modes import build
from tracer.modes.drive import drive
from tracer.recording.reader import RecordingReader
from tracer.sinks.jsonl import JsonlSink, jsonl_chunks
from tracer.sinks.output import OutputStream, write_all
from tracer.util.proc import die_with_parent

log = logging.getLogger(__name__)

FRAME = struct.Struct("<II")
SILENCE_S = 30.0            # no frame for this long: the worker is taken for dead
PIPE_BYTES = 1 << 20        # a batch's lines in one go (F_SETPIPE_SZ; 64 KiB otherwise)


def rendered_by_worker(batch: int) -> bool:
    return batch % 2 == 1


class LineWorker:
    def __init__(self, pid: int, fd: int) -> None:
        self.pid = pid
        self.fd = fd
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)
        self.alive = True
        self.copied = 0            # batches whose lines came from the worker

    @classmethod
    def start(cls, args: argparse.Namespace, since: int | None,
              until: int | None) -> LineWorker | None:
        try:
            rfd, wfd = os.pipe()
        except OSError as exc:
            log.debug("no line worker: %s", exc)
            return None
        with contextlib.suppress(OSError):   # a smaller pipe: more switches, same lines
            fcntl.fcntl(wfd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        parent = os.getpid()
        try:
            pid = os.fork()
        except OSError as exc:         # no process to spare: one does it all
            log.debug("no line worker: %s", exc)
            os.close(rfd)
            os.close(wfd)
            return None
        if pid == 0:
            os.close(rfd)
            _die_with(parent)
            _run(args.file, args.metadata, args.node, since, until, wfd)   # never returns
        os.close(wfd)
        return cls(pid, rfd)

    def copy(self, batch: int, out: OutputStream) -> bool:
        """Batch `batch`'s lines from the worker to `out`; False: render it here."""
        if not self.alive or not rendered_by_worker(batch):
            return False
        parts: list[bytes] = []
        try:
            while True:
                number, length = FRAME.unpack(self._read(FRAME.size))
                if number != batch:
                    raise OSError(f"batch {number} where {batch} was due")
                if length == 0:
                    break
                parts.append(self._read(length))
        except (OSError, struct.error) as exc:
            log.debug("line worker gone at batch %d: %s", batch, exc)
            self.close()
            return False
        for part in parts:
            out.write_bytes(part)
        self.copied += 1
        return True

    def _read(self, n: int) -> bytes:
        chunks: list[bytes] = []
        while n:
            if not self._poll.poll(SILENCE_S * 1000):
                raise OSError("the worker fell silent")
            data = os.read(self.fd, n)
            if not data:
                raise OSError("the worker ended")
            chunks.append(data)
            n -= len(data)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def close(self) -> None:
        """Stop the worker (it may still be rendering batches nobody will read)."""
        if not self.alive:
            return
        self.alive = False
        log.debug("line worker: rendered %d batches", self.copied)
        os.close(self.fd)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)    # our own child, by its PID
        os.waitpid(self.pid, 0)


class WorkerLines:
    """The main process's jsonl sink, the worker's lines copied in for the batches it
    rendered.  drive() writes each batch of the stream, then the findings made
    beside it (never an empty list of them): so every write that is not findings
    is the next batch of the stream, numbered as the worker numbers them."""

    def __init__(self, sink: JsonlSink, worker: LineWorker) -> None:
        self.sink = sink
        self.worker = worker
        self.number = 0

    def write(self, batch: Sequence[Output]) -> None:
        if batch and isinstance(batch[0], (Finding, FindingUpdate)):
            self.sink.write(batch)
            return
        number = self.number
        self.number += 1
        if not self.worker.copy(number, self.sink.out):
            self.sink.write(batch)

    def close(self) -> None:
        self.sink.close()


class _Frames:
    """The worker's sink: the lines of its batches, framed, to the main process."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.number = 0

    def write(self, batch: Sequence[Output]) -> None:
        number = self.number
        self.number += 1
        if not rendered_by_worker(number):
            return
        for chunk in jsonl_chunks(batch):
            write_all(self.fd, FRAME.pack(number, len(chunk)) + chunk)
        write_all(self.fd, FRAME.pack(number, 0))

    def close(self) -> None:
        pass


def _die_with(parent: int) -> None:
    # it must not go on rendering for nobody
    die_with_parent(signal.SIGKILL, parent)


def _run(path: Path, metadata: Sequence[Path], node: str | None, since: int | None,
         until: int | None, fd: int) -> None:
    """The worker: the main process's stages but diagnosis, lines of its batches to
    `fd`.  Leaves by os._exit: the parent's buffers and exit handlers are not its."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)    # the main process stops it
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)   # not the main process's handler
        logging.disable(logging.CRITICAL)                # the main process says it all
        with RecordingReader(path) as reader:
            rep = build.replay_lines(reader, metadata=metadata, node=node, since_ns=since,
                                     until_ns=until)
            drive(rep.source, rep.pipeline, [_Frames(fd)], threading.Event(),
                  loss_warning=None)
        code = 0
    finally:       # an exception too: the main process renders what is missing
        os._exit(code)
