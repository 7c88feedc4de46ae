"""One opener for every command that reads a capture (`replay`, `diagnose --from`, the
TUI): a path or `-` (standard input) in, an open stream out, told apart as a
nodetrace recording or JSON lines (`trace -o jsonl`) by its first bytes — or one
RecordingFormatError naming the input and what is wrong with it.

Nothing here seeks or asks for a size: standard input is a pipe (`ssh node cat
node.ntrec | nodetrace replay -`), so the first bytes are read once and handed back
in front of the rest (`OpenedInput.stream`), and a reader finds truncation by
counting what it read (tracer/recording/reader.py).

    with open_input(args.file) as opened:
        if opened.kind == "recording":
            reader = RecordingReader(opened)
        else:
            lines = opened.text_lines()
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Literal

from tracer.recording.format import MAGIC_PREFIX
from tracer.util.errors import RecordingFormatError

STDIN = "-"
# how far to look past leading blank lines for the first `{` of a JSON-lines file
_SNIFF_MAX = 64 << 10
_WHITESPACE = b" \t\r\n"

Kind = Literal["recording", "jsonl"]


class InputStream:
    """The input's bytes from the first one: the sniffed head, then the rest.

    `read` hands out what the file has (`read1`: a pipe is never waited on for more
    than it holds), and `consumed` counts every byte handed out, which is how a
    reader tells a cut-off last record without a file size."""

    def __init__(self, name: str, head: bytes, raw: IO[bytes]) -> None:
        self.name = name
        self._head = head
        self._raw = raw
        self._read1 = getattr(raw, "read1", raw.read)
        self.consumed = 0

    def read(self, n: int = -1) -> bytes:
        if self._head:
            data, self._head = self._head, b""
        else:
            try:
                data = self._read1(n if n > 0 else 1 << 16)
            except OSError as exc:
                raise RecordingFormatError(f"cannot read {self.name}: "
                                           f"{exc.strerror or exc}") from None
        self.consumed += len(data)
        return data

    def close(self) -> None:
        if self._raw is not sys.stdin.buffer:
            self._raw.close()


@dataclass
class OpenedInput:
    name: str                     # for messages: the path, or "standard input"
    kind: Kind
    stream: InputStream
    path: Path | None             # None for standard input: it cannot be opened again

    def __enter__(self) -> OpenedInput:
        return self

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None
                 ) -> None:
        self.close()

    def close(self) -> None:
        self.stream.close()

    def text_lines(self) -> Iterator[str]:
        """The lines of a JSON-lines input, decoded leniently (a bad byte is one
        skipped line downstream, not a failure)."""
        pending = b""
        while chunk := self.stream.read(1 << 16):
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            for line in lines:
                yield line.decode("utf-8", errors="replace")
        if pending:
            yield pending.decode("utf-8", errors="replace")


def _raw(path_or_dash: Path | str) -> tuple[str, IO[bytes], Path | None]:
    text = str(path_or_dash)
    if text == STDIN:
        if sys.stdin is None or sys.stdin.isatty():
            raise RecordingFormatError("standard input is a terminal: pipe a recording or "
                                       "JSON lines into `-`, or name a file")
        return "standard input", sys.stdin.buffer, None
    path = Path(text)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise RecordingFormatError(f"cannot read {path}: no such file") from None
    except OSError as exc:
        raise RecordingFormatError(f"cannot read {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise RecordingFormatError(f"cannot read {path}: it is a directory, not a recording")
    if stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode):
        try:
            ours = sys.stdin is not None and os.path.samestat(st, os.fstat(0))
        except OSError:
            ours = False
        if ours:            # /dev/stdin, /proc/self/fd/0: standard input by its name
            return "standard input", sys.stdin.buffer, None
        what = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a socket"
        raise RecordingFormatError(f"cannot read {path}: it is {what}, not a file (give "
                                   f"its data on standard input instead: - < {path})")
    try:
        return str(path), open(path, "rb"), path
    except OSError as exc:
        raise RecordingFormatError(f"cannot read {path}: "
                                   f"{(exc.strerror or str(exc)).lower()}") from None


def _sniff(stream: IO[bytes], name: str) -> bytes:
    """Enough of the first bytes to tell a recording (the 23-byte magic) from JSON
    lines (the first byte that is not blank)."""
    read1 = getattr(stream, "read1", stream.read)
    head = b""
    try:
        while len(head) < _SNIFF_MAX:
            if len(head) >= len(MAGIC_PREFIX) and head.lstrip(_WHITESPACE):
                break
            chunk = read1(_SNIFF_MAX - len(head))
            if not chunk:
                break
            head += chunk
    except OSError as exc:
        raise RecordingFormatError(f"cannot read {name}: "
                                   f"{(exc.strerror or str(exc)).lower()}") from None
    return head


def _what(head: bytes) -> str:
    sample = head[:64]
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if text and all(c.isprintable() or c in "\t\r\n" for c in text):
        first = text.strip().splitlines()[0][:24] if text.strip() else ""
        return f"text starting {first!r}"
    return "binary data"


def classify(head: bytes, name: str) -> Kind:
    """A recording, JSON lines, or the RecordingFormatError that says what it is."""
    if not head:
        raise RecordingFormatError(f"{name} is not a nodetrace recording: it is empty")
    if head.startswith(MAGIC_PREFIX):
        return "recording"
    if len(head) < len(MAGIC_PREFIX) and MAGIC_PREFIX.startswith(head):
        raise RecordingFormatError(f"{name}: the header is truncated ({len(head)} bytes)")
    body = head.lstrip(_WHITESPACE)
    if not body:
        raise RecordingFormatError(f"{name} is not a nodetrace recording: it holds only "
                                   "blank lines")
    if body[:1] == b"{":
        return "jsonl"
    raise RecordingFormatError(f"{name} is not a nodetrace recording (wrong magic) nor "
                               f"JSON lines of `trace -o jsonl`: it starts with {_what(head)}")


def open_input(path_or_dash: Path | str, *, allow: tuple[Kind, ...] = ("recording", "jsonl")
               ) -> OpenedInput:
    """Open a capture: a path, or `-` for standard input.  Raises RecordingFormatError
    (one line, naming the input) for anything that is neither a readable recording
    nor JSON lines, or of a kind the caller does not take."""
    name, raw, path = _raw(path_or_dash)
    try:
        head = _sniff(raw, name)
        kind = classify(head, name)
        if kind not in allow:
            raise RecordingFormatError(f"{name} is not a nodetrace recording (wrong magic)")
    except BaseException:
        if raw is not sys.stdin.buffer:
            raw.close()
        raise
    return OpenedInput(name, kind, InputStream(name, head, raw), path)
