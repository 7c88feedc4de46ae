"""`lab run`: bring a scenario up, trace inside the node where it fails, drive its
traffic once the tracer is attached, let the trace finish, tear down."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tracer.lab import cgroups
from tracer.lab.cluster import CLUSTER_CIDR, SERVICE_CIDR
from tracer.lab.lifecycle import Lab, probes_of
from tracer.util.errors import TracerError
from tracer.util.proc import die_with_parent

ATTACH_TIMEOUT_S = 180.0   # BCC compiles the programs first: tens of seconds on a slow VM


def tracer_argv(output: str, duration_s: float, ready_file: Path, *,
                kubeconfig: str | None = None, metadata: str | None = None,
                node: str | None = None) -> list[str]:
    """`trace` as an operator would run it on a lab node: names from the node's API
    stand-in (--kubeconfig), and for findings the lab's objects and the node's name."""
    extra = ([f"--kubeconfig={kubeconfig}"] if kubeconfig else []) + \
        ([f"--metadata={metadata}"] if metadata else []) + \
        ([f"--node={node}"] if node else [])
    return [sys.executable, "-m", "tracer.cli.main", "trace", "-o", output,
            "--duration", str(duration_s), "--ready-file", str(ready_file),
            "--cluster-cidr", CLUSTER_CIDR, "--service-cidr", SERVICE_CIDR, *extra]


def start_tracer(lab: Lab, node: str, argv: list[str], **kwargs: object) -> \
        subprocess.Popen[bytes]:
    """The tracer as an operator would run it on that node: `ip netns exec NODE ...`,
    in the lab's own cgroup so that `lab down` ends it even if `lab run` was killed, and
    stopped (SIGTERM: it detaches and drains) as soon as `lab run` is gone."""
    infra = str(cgroups.infra_dir(Path(lab.state.cgroup_root)) / "cgroup.procs")
    parent = os.getpid()

    def join() -> None:
        with open(infra, "w") as f:
            f.write("0")
        die_with_parent(signal.SIGTERM, parent)

    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        ["ip", "netns", "exec", lab.node(node).netns, *argv], preexec_fn=join, **kwargs)


def wait_for_file(path: Path, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if proc.poll() is not None:
            raise TracerError(f"the tracer exited with status {proc.returncode} before "
                              "attaching")
        if time.monotonic() > deadline:
            raise TracerError(f"the tracer did not attach within {timeout_s:.0f} s")
        time.sleep(0.05)


def drive(lab: Lab, say: Callable[[str], None]) -> list[dict[str, str]]:
    """The scenario's traffic: the failing connection, the ones that still work, and
    the failing one again (a retry, as a real client would)."""
    sc = lab.scenario
    results = []
    plan = [*probes_of(sc), *([sc.probe] if sc.probe else [])]
    for probe in plan:
        result = lab.probe(probe)
        results.append(result)
        say(f"{probe.describe()}: {result['outcome']} ({result['detail']}, "
            f"{result['seconds']} s)")
    if sc.crashloop_pod:
        lab.refresh_objects()
        state = lab.container_states()[sc.crashloop_pod]
        say(f"pod {sc.crashloop_pod}: restartCount {state.restart_count}, "
            f"{state.waiting_reason or 'running'}; last exit {state.last_exit_code}: "
            f"{state.last_message}")
    return results


def run(lab: Lab, *, output: str, duration_s: float, say: Callable[[str], None]) -> int:
    """Traces the scenario's node while driving its traffic; returns the tracer's exit
    status.  The caller brings the lab up and down.

    With the TUI the tracer owns the terminal: what the lab says while it runs is held
    and said once the operator has quit, and the trace ends when the operator quits."""
    node = lab.scenario.trace_node
    tui = output == "tui"
    held: list[str] = []
    quiet: Callable[[str], None] = held.append if tui else say
    with tempfile.TemporaryDirectory(prefix="nodetrace-lab-run-") as tmp:
        ready = Path(tmp) / "ready"
        tracer = start_tracer(lab, node, tracer_argv(output, duration_s, ready,
                                                     kubeconfig=lab.node(node).kubeconfig,
                                                     metadata=lab.state.objects_file,
                                                     node=node))
        try:
            say(f"tracing {node} ({lab.node(node).netns}); waiting for the tracer to attach")
            wait_for_file(ready, tracer, ATTACH_TIMEOUT_S)
            quiet(f"scenario {lab.scenario.name}: {lab.scenario.summary}")
            drive(lab, quiet)
            tracer.wait(timeout=None if tui else duration_s + 60)
        finally:
            if tracer.poll() is None:
                tracer.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    tracer.wait(timeout=10)
                if tracer.poll() is None:
                    tracer.kill()
                    tracer.wait()
            for line in held:
                say(line)
    return tracer.returncode
