"""The status header: node, kernel, probes, metadata and its health, the pod
selection, rate, loss, recording, replay."""

from __future__ import annotations

from pathlib import PurePath

from rich.text import Text
from textual.widgets import Static

from tui.feed import FeedStatus, ReplayState


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def offset(ns: int) -> str:
    s = max(0, ns) / 1e9
    return f"{int(s // 60):02d}:{s % 60:04.1f}"


def replay_text(r: ReplayState) -> str:
    speed = "max" if r.speed <= 0 else f"x{r.speed:g}"
    state = "done" if r.done else ("paused" if r.paused else "playing")
    return (f"replay {offset(r.position_ns - r.start_ns)} / {offset(r.end_ns - r.start_ns)}"
            f" {speed} {state}")


def metadata_style(health: str) -> str:
    """Stale names are a warning (they may be wrong); names from the node only, dim."""
    if "stale" in health:
        return "bold black on yellow"
    if "listing" in health:
        return "yellow"
    if health.startswith("API connected"):
        return "green"
    return "dim" if health == "local only" else ""


class StatusHeader(Static):
    text = Text()    # what is shown (tests read it)

    def show(self, status: FeedStatus, rate: float, events: int, lost: dict[str, int],
             display_paused: bool, selection: str = "") -> None:
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(" nodetrace ", style="bold reverse")
        t.append(f" node {status.node}  kernel {status.kernel}  metadata: ")
        t.append(status.metadata, style=metadata_style(status.metadata))
        t.append("  ")
        if selection:
            t.append(f"pods: {selection}  ", style="bold cyan")
        if status.source and status.source != "live":
            t.append(f"source {status.source}  ", style="dim")
        t.append("\n ")
        # first on its line: the loss is always shown, whatever the width (lines are
        # cut at the edge)
        total = sum(lost.values())
        if total:
            layers = ", ".join(f"{k} {v:,}" for k, v in sorted(lost.items()) if v)
            t.append(f" lost {total:,} ({layers}) ", style="bold white on red")
        else:
            t.append("lost 0", style="green")
        if status.warnings:
            n = len(status.warnings)
            t.append(f"  ! {n} input warning{'s' if n > 1 else ''}",
                     style="bold black on yellow")
        n_att = len(status.attached)
        t.append(f"  probes {n_att} attached", style="green" if n_att else "yellow")
        if status.unavailable:
            t.append(f", {len(status.unavailable)} unavailable", style="yellow")
        t.append(f"  {rate:,.0f} ev/s  {events:,} events")
        if status.recording is not None:   # the file's name: its directory was said once
            t.append(f"  ● REC {PurePath(status.recording.path).name} "
                     f"{human_bytes(status.recording.size_bytes)}", style="bold red")
        if status.replay is not None:
            t.append(f"  {replay_text(status.replay)}", style="bold cyan")
        if display_paused:
            t.append("  DISPLAY PAUSED (p)", style="bold black on yellow")
        if not status.running:
            t.append("  feed ended" + (f": {status.error}" if status.error else ""),
                     style="bold red" if status.error else "dim")
        if status.unavailable:   # last: the line is cut at the screen's edge
            t.append(f"  (unavailable: {', '.join(sorted(status.unavailable))})",
                     style="yellow")
        self.text = t
        self.update(t)
