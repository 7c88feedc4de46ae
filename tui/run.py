"""Open the TUI on a feed, from the CLI: logs go to the app's status line while it
runs (nothing may write over the screen), a feed's error is re-raised afterwards so
the CLI prints it and exits with its code."""

from __future__ import annotations

import logging
import signal
import sys
from types import FrameType

from tracer.util.errors import TracerError
from tui.app import NodetraceApp
from tui.feed import Feed
from tui.messages import StatusNote


class _ToApp(logging.Handler):
    def __init__(self, app: NodetraceApp) -> None:
        super().__init__(logging.INFO)
        self.app = app
        self.kept: list[str] = []     # warnings, printed again once the screen is gone

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.levelno >= logging.WARNING:
            self.kept.append(text)
        self.app.post_message(StatusNote(text, "warning" if record.levelno >= logging.WARNING
                                          else "information"))


def run_tui(feed: Feed) -> int:
    if not (sys.stdout.isatty() and sys.stderr.isatty()):
        # Textual draws on stderr; stdout must not be a file expecting a line format
        raise TracerError("-o tui needs a terminal on stdout and stderr "
                          "(use -o table or -o jsonl)")
    app = NodetraceApp(feed)
    root = logging.getLogger()
    saved = root.handlers[:]
    handler = _ToApp(app)
    root.handlers = [handler]

    def on_term(_signum: int, _frame: FrameType | None) -> None:
        app.stop.set()
        app.exit(0)

    old_term = signal.signal(signal.SIGTERM, on_term)
    try:
        app.run()
    finally:
        signal.signal(signal.SIGTERM, old_term)
        root.handlers = saved
    for text in handler.kept[-20:]:
        logging.getLogger("nodetrace").warning("%s", text)
    if isinstance(app.feed_error, TracerError):
        raise app.feed_error
    if app.feed_error is not None:
        raise TracerError(f"the feed failed: {app.feed_error!r}")
    return 0
