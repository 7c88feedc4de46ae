"""`nodetrace lab`: simulated Kubernetes nodes in network namespaces, broken the way
real clusters break (no cluster needed)."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tracer.cli.options import OUTPUTS, add_output_choice, duration_s, write_document
from tracer.lab import cgroups, lifecycle, runner
from tracer.lab.scenarios import SCENARIOS, get
from tracer.util.errors import UsageError

LAB_OUTPUTS = ("table", "wide", "json", "yaml")

EXAMPLES = """examples:
  nodetrace lab list                          the scenarios
  nodetrace lab run masquerade-missing        up, trace the failure, down
  nodetrace lab up dns-unreachable            leave a broken lab running
  nodetrace lab status -o json                its pods: netns, veths, IPs, cgroups, pids
  ip netns exec nt-lab-node1 nodetrace trace  trace it yourself
  nodetrace lab down                          remove everything the lab made
"""


def _say(text: str) -> None:
    print(f"nodetrace lab: {text}", file=sys.stderr, flush=True)


def register(sub: Any) -> None:
    p = sub.add_parser("lab", help="simulated nodes with real failures, to trace (no cluster)",
                       description="Simulated Kubernetes nodes in network namespaces, broken "
                       "the way real clusters break (no cluster needed).", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    lab = p.add_subparsers(dest="lab_command", metavar="SUBCOMMAND",
                           parser_class=type(p))
    p.set_defaults(func=lambda _a: _missing(p))

    ls = lab.add_parser("list", help="the scenarios", epilog="example:\n  nodetrace lab list",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_output_choice(ls, LAB_OUTPUTS, "table", "table (default), wide (with how each "
                      "scenario is wired), json, yaml")
    ls.set_defaults(func=cmd_list)

    up = lab.add_parser("up", help="bring a scenario up (idempotent)",
                        epilog="example:\n  nodetrace lab up no-route",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    _scenario_args(up)
    up.set_defaults(func=cmd_up)

    st = lab.add_parser("status", help="what is up: nodes, pods, namespaces, cgroups, pids",
                        epilog="example:\n  nodetrace lab status -o json",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_output_choice(st, LAB_OUTPUTS, "table", "table (default), wide (with each pod's "
                      "cgroup), json, yaml")
    st.set_defaults(func=cmd_status)

    dn = lab.add_parser("down", help="remove every namespace, cgroup and process of the lab",
                        epilog="example:\n  nodetrace lab down",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    dn.set_defaults(func=cmd_down)

    rn = lab.add_parser("run", help="up, trace the failing node while driving traffic, down",
                        epilog="example:\n  nodetrace lab run masquerade-missing -o jsonl",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    _scenario_args(rn)
    add_output_choice(rn, OUTPUTS, None, "the tracer's output (default: the TUI on a "
                      "terminal, else table); with the TUI the lab stays up until you quit "
                      "it (q)")
    rn.add_argument("--duration", type=duration_s, metavar="DURATION",
                    help="how long to trace after attaching (30s, 2m; default: long enough "
                         "for the scenario's traffic)")
    rn.add_argument("--keep", action="store_true", help="leave the lab up afterwards")
    rn.set_defaults(func=cmd_run)


def _missing(p: argparse.ArgumentParser) -> int:
    raise UsageError(f"{p.prog}: a subcommand is required (list, up, status, down, run)\n"
                     f"{p.format_usage().rstrip()}")


def _scenario_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenario", metavar="SCENARIO",
                   help=f"one of: {', '.join(SCENARIOS)}")
    p.add_argument("--replace", action="store_true",
                   help="take down a lab of another scenario first (default: refuse)")
    p.add_argument("--ttl", type=duration_s, default=lifecycle.DEFAULT_TTL_S,
                   metavar="DURATION", help="the workloads stop by themselves after this "
                   "long (30m, 2h; default %(default)s s)")
    p.add_argument("--cgroup-root", metavar="DIR",
                   help=f"the cgroup2 mount (default: ${cgroups.ROOT_ENV}, /sys/fs/cgroup or "
                        "/sys/fs/cgroup/unified)")
    p.add_argument("--cgroup-driver", choices=cgroups.DRIVERS, default="cgroupfs",
                   help="kubelet's cgroup naming (default: cgroupfs)")


def cmd_list(args: argparse.Namespace) -> int:
    if args.output in ("json", "yaml"):
        write_document([{"name": s.name, "summary": s.summary, "wire": s.wire,
                         "traceNode": s.trace_node,
                         "failingConnection": s.probe.describe() if s.probe else None,
                         "crashLoopPod": s.crashloop_pod}
                        for s in SCENARIOS.values()], args.output, sys.stdout)
        return 0
    width = max(len(n) for n in SCENARIOS)
    print(f"{'NAME':<{width}}  WHAT BREAKS")
    for s in SCENARIOS.values():
        print(f"{s.name:<{width}}  {s.summary}")
        if args.output == "wide" and s.wire:
            for line in textwrap.wrap(s.wire, 100 - width):
                print(f"{'':<{width}}    {line}")
    return 0


class _Stopped(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def _stoppable() -> Iterator[None]:
    """SIGTERM (`timeout`, a CI runner, systemd) and SIGHUP (the terminal went away) end
    the command through its cleanup, as Ctrl-C does: by default either would kill it with
    the lab half built or left up.  Once one arrived, the cleanup is not interrupted."""
    stops = (signal.SIGTERM, signal.SIGHUP)

    def handler(signum: int, _frame: object) -> None:
        for s in stops:
            signal.signal(s, signal.SIG_IGN)
        raise _Stopped(signum)

    old = {s: signal.signal(s, handler) for s in stops}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _up(args: argparse.Namespace, *, owned: bool = False) -> lifecycle.Lab:
    get(args.scenario)   # an unknown name: the usage error that lists them
    _say(f"bringing up {args.scenario}")
    return lifecycle.up(args.scenario, replace=args.replace, ttl_s=args.ttl,
                        cgroup_root=args.cgroup_root, driver=args.cgroup_driver,
                        owned=owned)


def cmd_up(args: argparse.Namespace) -> int:
    try:
        with _stoppable():
            lab = _up(args)   # a stop while it builds takes down what was built
    except _Stopped as stop:
        _say(f"stopped by {stop}")
        return _stop_status(stop)
    _say(f"{lab.scenario.name} is up: {lab.scenario.summary}")
    for node in lab.state.nodes:
        _say(f"{node.name}: ip netns exec {node.netns} nodetrace trace   "
             f"(kubeconfig {node.kubeconfig})")
    if lab.scenario.probe:
        _say(f"failing connection: {lab.scenario.probe.describe()}")
    _say("nodetrace lab status shows the pods; nodetrace lab down removes it all")
    return 0


def status_doc(lab: lifecycle.Lab) -> dict[str, Any]:
    lab.refresh_objects()
    states = lab.container_states()
    st = lab.state
    pods = []
    for p in st.pods:
        s = states[p.name]
        pods.append({"name": p.name, "namespace": p.namespace, "uid": p.uid, "node": p.node,
                     "hostNetwork": p.host_network, "netns": p.netns, "vethHost": p.veth_host,
                     "ips": p.ips, "cgroup": p.cgroup, "cgroupId": p.cgroup_id,
                     "containerId": f"containerd://{p.container_id}",
                     "pids": cgroups.procs(Path(p.cgroup)),
                     "state": "Running" if s.running else (s.waiting_reason or "Terminated"),
                     "restartCount": s.restart_count})
    return {"scenario": st.scenario, "summary": lab.scenario.summary, "ready": st.ready,
            "created": st.created, "ttlSeconds": st.ttl_s,
            "cgroupRoot": st.cgroup_root, "cgroupDriver": st.cgroup_driver,
            "objectsFile": st.objects_file, "namespaces": st.namespaces,
            "nodes": [{"name": n.name, "netns": n.netns, "ip": n.ip, "podCIDR": n.pod_cidr,
                       "apiserver": n.apiserver_url, "kubeconfig": n.kubeconfig}
                      for n in st.nodes],
            "pods": pods,
            "processes": [{"pid": p.pid, "role": p.role, "pod": p.pod, "netns": p.netns}
                          for p in lab.processes()]}


def cmd_status(args: argparse.Namespace) -> int:
    lab = lifecycle.current()
    if lab is None:
        if args.output in ("json", "yaml"):
            write_document({}, args.output, sys.stdout)
        _say("no lab is up")
        return 0
    doc = status_doc(lab)
    if args.output in ("json", "yaml"):
        write_document(doc, args.output, sys.stdout)
        return 0
    print(f"scenario {doc['scenario']}: {doc['summary']}")
    for n in doc["nodes"]:
        print(f"node {n['name']}  netns {n['netns']}  {n['ip']}  podCIDR {n['podCIDR']}  "
              f"kubeconfig {n['kubeconfig']}")
    cols = ["NAMESPACE", "NAME", "NODE", "IP", "STATUS", "RESTARTS", "NETNS", "VETH", "PIDS"]
    rows = [[p["namespace"], p["name"], p["node"], p["ips"][0], p["state"],
             str(p["restartCount"]), p["netns"], p["vethHost"] or "-",
             ",".join(map(str, p["pids"])) or "-"] for p in doc["pods"]]
    if args.output == "wide":
        cols.append("CGROUP")
        for row, p in zip(rows, doc["pods"], strict=True):
            row.append(p["cgroup"])
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    for row in (cols, *rows):
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    return 0


def cmd_down(_args: argparse.Namespace) -> int:
    removed = lifecycle.down()
    _say(f"removed {len(removed)} object(s)" if removed else "nothing to remove")
    return 0


def _stop_status(stop: _Stopped) -> int:
    # SIGTERM asks for a stop: a clean end, as for `trace`; a lost terminal is not
    return 0 if stop.signum == signal.SIGTERM else 128 + stop.signum


def cmd_run(args: argparse.Namespace) -> int:
    try:
        with _stoppable():
            return _run(args)
    except _Stopped as stop:
        _say(f"stopped by {stop}")
        return _stop_status(stop)


def _run(args: argparse.Namespace) -> int:
    lab = _up(args, owned=not args.keep)
    try:
        probes = lifecycle.probes_of(lab.scenario)
        duration = args.duration or sum(p.timeout_s for p in probes) + \
            (lab.scenario.probe.timeout_s if lab.scenario.probe else 0) + 4
        output = args.output or ("tui" if sys.stdout.isatty() and sys.stderr.isatty()
                                 else "table")
        status = runner.run(lab, output=output, duration_s=duration, say=_say)
    finally:
        for s in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)   # the cleanup runs to its end
        if args.keep:
            _say("left up (--keep); nodetrace lab down removes it")
        else:
            lifecycle.down()
            _say("lab removed")
    return 0 if status == 0 else 1
