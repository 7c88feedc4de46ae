"""What every output takes: batches of events, then close."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from tracer.events.records import Output


class Sink(Protocol):
    def write(self, batch: Sequence[Output]) -> None: ...
    def close(self) -> None: ...
