"""What a source reports besides its events (shared by live and replay: replay must
not import the live source, which imports tracer.kernel)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SourceStats:
    received: int = 0
    decode_errors: int = 0
    lost: dict[str, int] = field(default_factory=dict)  # by layer
