"""A dict that remembers what was made from a key, and empties itself when full.

The jsonl sink and the recording reader keep values that repeat from event to event
(an endpoint's JSON, an interned struct).  Their keys come from the traffic, so every
such cache is bounded; emptying it when full costs one rebuild of what is still in
use, and needs no bookkeeping on a hit.  A hit is a plain dict look-up in C
(`memo[key]`, `__missing__` runs only on a miss)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedMemo(dict[K, V], Generic[K, V]):
    def __init__(self, limit: int, make: Callable[[K], V] | None = None) -> None:
        super().__init__()
        self.limit = limit
        self.make = make

    def __missing__(self, key: K) -> V:
        if self.make is None:
            raise KeyError(key)
        return self.keep(key, self.make(key))

    def keep(self, key: K, value: V) -> V:
        """Remember `value` for `key` (emptying the memo first when it is full)."""
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
        return value
