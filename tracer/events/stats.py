"""What a source reports besides its events: the counts and the loss ledger a live and
a replayed stream share, and that the recording's end record carries (so it sits below
the sources and the recording, and imports nothing of tracer.kernel)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SourceStats:
    received: int = 0
    decode_errors: int = 0
    lost: dict[str, int] = field(default_factory=dict)  # by layer
