"""The node's state at the start of a recording: routes, neighbours, addresses,
forwarding sysctls, the ruleset and the listeners, as the standard tools print them.

Run in the namespace nodetrace traces (its own), so `ip netns exec NS nodetrace ...`
snapshots NS.  Text, not parsed: a person reads it, and a later diagnosis can parse
it with today's code.  Every item is bounded in time and size.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from tracer.recording.format import SNAPSHOT_TEXT_MAX

COMMANDS: dict[str, tuple[str, ...]] = {
    "ip_addr": ("ip", "-o", "addr", "show"),
    "ip_route": ("ip", "route", "show", "table", "all"),
    "ip6_route": ("ip", "-6", "route", "show", "table", "all"),
    "ip_rule": ("ip", "rule", "show"),
    "ip_neigh": ("ip", "neigh", "show"),
    "iptables": ("iptables-save",),
    "ip6tables": ("ip6tables-save",),
    "listeners": ("ss", "-Hltuna"),
}
SYSCTLS = ("ipv4/ip_forward", "ipv6/conf/all/forwarding", "ipv4/conf/all/rp_filter",
           "ipv4/conf/default/rp_filter")
TIMEOUT_S = 5.0


def _run(cmd: tuple[str, ...]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, timeout=TIMEOUT_S, check=False,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"# {' '.join(cmd)}: {exc}\n"
    text = out.stdout.decode(errors="replace")
    if out.returncode != 0:
        text += f"# {' '.join(cmd)} exited {out.returncode}: " \
                f"{out.stderr.decode(errors='replace').strip()}\n"
    if len(text) > SNAPSHOT_TEXT_MAX:
        text = text[:SNAPSHOT_TEXT_MAX] + f"\n# cut at {SNAPSHOT_TEXT_MAX} characters\n"
    return text


def sysctls(root: Path = Path("/proc/sys/net")) -> dict[str, str]:
    out: dict[str, str] = {}
    names = list(SYSCTLS)
    conf = root / "ipv4" / "conf"
    if conf.is_dir():
        names += sorted(f"ipv4/conf/{d.name}/rp_filter" for d in conf.iterdir()
                        if d.name not in ("all", "default"))
    for name in names:
        try:
            out["net." + name.replace("/", ".")] = (root / name).read_text().strip()
        except OSError:
            continue
    return out


def snapshot() -> dict[str, Any]:
    items: dict[str, Any] = {name: _run(cmd) for name, cmd in COMMANDS.items()}
    items["sysctls"] = sysctls()
    return items
