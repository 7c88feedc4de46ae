"""What a display asks of a running session, and what it reads back.

The TUI's `r` (start/stop recording), `l` and the namespace switch (a new pod
selection) are requests queued from the app's thread; the session applies them on
its own thread between batches (`serve`), so the recorder, the tc attachments and
the kernel's scope are only ever touched by the thread that owns them.  Outcomes a
display must hear (a file that cannot be written, a selection without metadata to
select by) go to `notes`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tracer.recording.live import LiveRecording
from tracer.recording.writer import RecordSpec
from tracer.session.pod_scope import Selection
from tracer.util.errors import TracerError

log = logging.getLogger(__name__)

Note = Callable[[str, str], object]     # (text, severity: information|warning|error)


@dataclass(frozen=True)
class StartRecording:
    spec: RecordSpec


@dataclass(frozen=True)
class StopRecording:
    pass


@dataclass(frozen=True)
class Select:
    selection: Selection | None      # None: no pod selection (this node and its pods)


Request = StartRecording | StopRecording | Select


class SessionControl:
    def __init__(self, selection: Selection | None = None, *,
                 recording: bool = False) -> None:
        self._lock = threading.Lock()
        self._requests: list[Request] = []
        self.notes: Note = _log_note
        # what the session has applied (read from any thread: each is one reference)
        self.selection = selection
        self.recording_path: Path | None = None
        self.wants_recording = recording     # asked for and not failed since
        self.metadata_health: Callable[[], str] = lambda: "local only"

    # --- the display's side -----------------------------------------------------------

    def start_recording(self, spec: RecordSpec) -> None:
        self._put(StartRecording(spec), recording=True)

    def stop_recording(self) -> None:
        self._put(StopRecording(), recording=False)

    def select(self, selection: Selection | None) -> None:
        self._put(Select(selection))

    def _put(self, req: Request, recording: bool | None = None) -> None:
        with self._lock:
            self._requests.append(req)
            if recording is not None:
                self.wants_recording = recording

    # --- the session's side -----------------------------------------------------------

    def serve(self, recording: LiveRecording,
              reselect: Callable[[Selection | None], str]) -> None:
        """Apply what was asked since the last call.  `reselect` changes the pod
        selection and says what is traced now; it raises TracerError to refuse."""
        with self._lock:
            requests, self._requests = self._requests, []
        for req in requests:
            if isinstance(req, StartRecording):
                try:
                    writer = recording.start(req.spec)
                except TracerError as exc:
                    with self._lock:
                        self.wants_recording = False
                    self.notes(exc.message, "error")
                    continue
                self.recording_path = writer.path
                self.notes(f"recording to {writer.path}", "information")
            elif isinstance(req, StopRecording):
                path = recording.stop()
                self.recording_path = None
                if path is not None:
                    self.notes(f"recording stopped: {path}", "information")
            else:
                try:
                    now = reselect(req.selection)
                except TracerError as exc:
                    self.notes(exc.message, "error")
                    continue
                self.selection = req.selection
                self.notes(f"now tracing {now}", "information")

    def ended(self) -> None:
        """The session is over: whatever it recorded is closed."""
        self.recording_path = None
        with self._lock:
            self.wants_recording = False
            self._requests = []


def _log_note(text: str, severity: str) -> object:
    log.log(logging.ERROR if severity == "error" else logging.INFO, "%s", text)
    return None
