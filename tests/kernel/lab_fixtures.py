"""Lab fixtures for kernel tests: a scenario up for one test (or one module), and a
snapshot of the host that must be the same after the lab is down.

    from tests.kernel.lab_fixtures import (  # noqa: F401
        host_unchanged_fixture, lab_scenario_fixture)

    @pytest.mark.parametrize("lab_scenario", ["masquerade-missing"], indirect=True)
    def test_x(lab_scenario: Lab) -> None:
        assert lab_scenario.probe(lab_scenario.scenario.probe)["outcome"] == "timeout"
"""

from __future__ import annotations

import fcntl
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.kernel.tracing import TraceRun, start_trace
from tracer.lab import cgroups, lifecycle, state
from tracer.lab.cluster import CLUSTER_CIDR, NETNS_PREFIX, SERVICE_CIDR, all_pod_uids
from tracer.lab.lifecycle import Lab
from tracer.lab.netns import Netns


@dataclass(frozen=True)
class HostSnapshot:
    netns: frozenset[str]
    root_links: str
    cgroups: frozenset[str]
    lab_processes: frozenset[int]


def _lab_processes() -> frozenset[int]:
    # only the lab's programs: other kernel tests may run beside these
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True,
                         check=True).stdout
    return frozenset(int(line.split(None, 1)[0]) for line in out.splitlines()
                     if "tracer.lab.workloads" in line
                     or ("tracer.lab.apiserver" in line and "nodetrace-lab" in line))


def snapshot() -> HostSnapshot:
    root = cgroups.detect_root()
    uids = all_pod_uids()
    dirs = frozenset(str(p.relative_to(root)) for p in root.rglob("*")
                     if p.is_dir() and (cgroups.INFRA in p.parts
                                        or any(u in str(p) or u.replace("-", "_") in str(p)
                                               for u in uids)))
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                           check=True).stdout
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True,
                           check=True).stdout
    return HostSnapshot(frozenset(line.split()[0] for line in netns.splitlines()
                                  if line.startswith(NETNS_PREFIX)),
                        links, dirs, _lab_processes())


# registered under the short names; the functions' own names differ so that a test
# module importing them does not shadow its fixture parameters
@pytest.fixture(name="host_unchanged")
def host_unchanged_fixture() -> Iterator[HostSnapshot]:
    """Fails the test if the lab leaves a namespace, root link, cgroup or process.

    One lab per machine: a lock file serializes lab tests of concurrent pytest runs
    (several working copies on one machine) instead of failing them."""
    with open("/run/nodetrace-lab.test-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield from _host_unchanged()


OWNER_WAIT_S = 120.0


def _clear_earlier_lab() -> None:
    """The one lab slot, free for the test.  Tests hold the lock, so a lab up now is not
    another test's: one whose owner was killed (a CI timeout, `lab run` killed before it
    could clean up) or a `lab up` left running is taken down; a `lab run` still going is
    waited for."""
    stale = lifecycle.current()
    deadline = time.monotonic() + OWNER_WAIT_S
    while stale is not None and state.owner_alive(stale.state) and \
            time.monotonic() < deadline:
        time.sleep(0.5)
        stale = lifecycle.current()
    if stale is None:
        return
    assert not state.owner_alive(stale.state), (
        f"a lab ({stale.state.scenario}) is up, owned by the running pid "
        f"{stale.state.owner_pid}")
    warnings.warn(f"removing an earlier lab ({stale.state.scenario}, "
                  f"{'abandoned' if lifecycle.abandoned(stale) else 'left up'}): "
                  f"{len(lifecycle.down())} object(s)", stacklevel=1)


def _host_unchanged() -> Iterator[HostSnapshot]:
    _clear_earlier_lab()
    before = snapshot()
    assert not Path("/run/nodetrace-lab/state.json").exists(), "a lab is already up"
    yield before
    lifecycle.down()
    after = snapshot()
    assert after.netns == before.netns
    assert after.root_links == before.root_links
    assert after.cgroups == before.cgroups
    assert after.lab_processes <= before.lab_processes


@pytest.fixture(name="lab_scenario")
def lab_scenario_fixture(request: pytest.FixtureRequest,
                         host_unchanged: HostSnapshot) -> Iterator[Lab]:
    """The scenario named by indirect parametrization, up for one test."""
    with lifecycle.lab_running(request.param, ttl_s=120) as lab:
        yield lab


# --- tracers inside a lab: `nodetrace trace` run in a lab namespace -----------------
CIDRS = ("--cluster-cidr", CLUSTER_CIDR, "--service-cidr", SERVICE_CIDR)


def netns_inode(ns: str) -> int:
    return Path(f"/run/netns/{ns}").stat().st_ino


class Traces:
    """Tracers in lab namespaces, each ended (SIGKILL last) whatever the test does."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.runs: list[TraceRun] = []

    def start(self, netns: str, *extra: str) -> TraceRun:
        d = self.tmp / f"{netns}-{len(self.runs)}"
        d.mkdir()
        run = start_trace(Netns(netns), d, *CIDRS, *extra)
        self.runs.append(run)
        return run

    def stop_all(self) -> None:
        for run in self.runs:
            if run.proc.poll() is None:
                assert run.stop() == 0, run.stderr
            else:
                run.finish()
            assert "Traceback" not in run.stderr, run.stderr


@pytest.fixture(name="traces")
def traces_fixture(tmp_path: Path) -> Iterator[Traces]:
    t = Traces(tmp_path)
    try:
        yield t
    finally:
        for run in t.runs:
            if run.proc.poll() is None:
                run.proc.kill()
                run.proc.communicate(timeout=10)


def failing_probe(lab: Lab) -> dict[str, str]:
    """Runs the scenario's failing connection once."""
    assert lab.scenario.probe is not None, f"{lab.scenario.name} has no failing probe"
    return lab.probe(lab.scenario.probe)


def events(run: TraceRun, kind: str) -> list[dict[str, Any]]:
    return [e for e in run.events if e["kind"] == kind]
