"""The command palette (ctrl+p): every action by name."""

from __future__ import annotations

from functools import partial

from textual.command import Hit, Hits, Provider

COMMANDS = (
    ("Toggle all traffic / failures only", "toggle_all()"),
    ("Cycle the connections' sort order", "cycle_sort()"),
    ("Pause / resume the display", "toggle_display_pause()"),
    ("Start / stop recording", "toggle_recording()"),
    ("Replay: pause / play", "replay_pause()"),
    ("Replay: step one event", "replay_step()"),
    ("Replay: faster", "replay_speed(1)"),
    ("Replay: slower", "replay_speed(-1)"),
    ("Replay: seek forward 10 s", "replay_seek(10)"),
    ("Replay: seek back 10 s", "replay_seek(-10)"),
    ("Replay: from the start", "replay_seek_start()"),
    ("Replay: go to a time", "screen.open_seek()"),
    ("Clear the filter", "screen.clear_filter()"),
    ("Edit the label selector (-l)", "screen.open_input('selector')"),
    ("Switch namespace (-n, -A)", "screen.open_input('namespace')"),
    ("Help: every key", "help()"),
    ("Quit (detach)", "quit()"),
)


class NodetraceCommands(Provider):
    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, action in COMMANDS:
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title),
                          partial(self.app.run_action, action), help=action)
