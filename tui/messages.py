"""Messages the app receives from its feed worker and its log handler."""

from __future__ import annotations

from textual.message import Message

from tui.feed import FeedBatch


class FeedArrived(Message):
    """A batch of records and the feed's status (posted from the worker thread)."""

    def __init__(self, batch: FeedBatch) -> None:
        super().__init__()
        self.batch = batch


class FeedEnded(Message):
    def __init__(self, error: str | None) -> None:
        super().__init__()
        self.error = error


class StatusNote(Message):
    """A line for the status bar; a newer one replaces an older one still queued."""

    def __init__(self, text: str, severity: str = "information") -> None:
        super().__init__()
        self.text = text
        self.severity = severity

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StatusNote)
