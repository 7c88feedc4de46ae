"""`?`: every key binding of the app and of the screen below, with what it does."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

FILTER_HELP = """Filter (/): words must all match, case-insensitive substrings
  web             text anywhere        pod:client     a pod on either end
  ns:kube-system  a namespace          svc:orders     a Service
  reason:NETFILTER a drop reason       kind:drop      a record kind
Esc clears the filter.  Enter on a finding or connection opens it.

Pods (l, N): kubectl's -l and -n.  Live, the session re-attaches to the pods
selected (tc on their veths); in a replay they narrow the view instead.
  l  app=web,tier!=db   env in (a,b)   !canary   (empty: no label selector)
  N  shop               -A or empty: every namespace
A label selector without a namespace means `default`, as kubectl has it.

Recording (r, live only): starts nodetrace-NODE-TIME.ntrec in the current directory
(--record-dir DIR), r again or q ends it; the header shows the file and its size."""


def bindings_text(groups: list[tuple[str, list[Binding]]]) -> Text:
    t = Text()
    for title, bindings in groups:
        t.append(f"{title}\n", style="bold underline")
        for b in bindings:
            t.append(f"  {b.key_display or b.key:<18}", style="bold cyan")
            t.append(f"{b.description or b.action}\n")
        t.append("\n")
    t.append(FILTER_HELP)
    return t


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "app.pop_screen", "Close help")]

    def __init__(self, groups: list[tuple[str, list[Binding]]]) -> None:
        super().__init__()
        self.groups = groups

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(bindings_text(self.groups), id="help-body")
