"""The node lab on the real kernel: every scenario comes up, its connection really
fails (and the same connection works in `healthy`), and `down` leaves nothing —
also after `kill -9` of `up`.  About a minute on 2 cores."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.kernel.lab_fixtures import (  # noqa: F401 - fixtures
    HostSnapshot,
    host_unchanged_fixture,
    lab_scenario_fixture,
)
from tracer.lab import lifecycle, state
from tracer.lab.lifecycle import Lab
from tracer.lab.scenarios import HEALTHY, SCENARIOS
from tracer.util.errors import UsageError

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(120)]
REPO = Path(__file__).resolve().parents[2]
BROKEN = [name for name in SCENARIOS if name != "healthy"]


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tracer.cli.main", "lab", *args],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)


@pytest.mark.parametrize("lab_scenario", BROKEN, indirect=True)
def test_scenario_fails_as_designed(lab_scenario: Lab) -> None:
    sc = lab_scenario.scenario
    if sc.probe is not None:
        result = lab_scenario.probe(sc.probe)
        assert result["outcome"] != "ok", result
        assert result["outcome"] in sc.expect, result
    if sc.crashloop_pod is not None:
        deadline = time.monotonic() + 10
        while (st := lab_scenario.container_states()[sc.crashloop_pod]).restart_count < 1:
            assert time.monotonic() < deadline, st
            time.sleep(0.1)
        assert "address already in use" in st.last_message, st
        assert st.last_exit_code == 1
    for control in sc.controls:
        assert lab_scenario.probe(control)["outcome"] == "ok", control.describe()


@pytest.mark.parametrize("lab_scenario", ["healthy"], indirect=True)
def test_healthy_everything_works(lab_scenario: Lab) -> None:
    failed = [r for r in map(lab_scenario.probe, HEALTHY.controls) if r["outcome"] != "ok"]
    assert not failed
    states = lab_scenario.container_states()
    assert all(s.running and s.restart_count == 0 for s in states.values()), states
    # every pod process sits in its kubelet-named cgroup, in the pod's namespace
    for pod in lab_scenario.state.pods:
        pids = [int(p) for p in Path(pod.cgroup, "cgroup.procs").read_text().split()]
        assert pids, pod.name
        assert f"pod{pod.uid}" in pod.cgroup
        netns = os.stat(f"/run/netns/{pod.netns}").st_ino
        assert all(os.stat(f"/proc/{pid}/ns/net").st_ino == netns for pid in pids), pod.name
        assert Path(pod.cgroup).stat().st_ino == pod.cgroup_id


@pytest.mark.parametrize("lab_scenario", ["hostport-conflict"], indirect=True)
def test_objects_served_inside_the_node(lab_scenario: Lab) -> None:
    node = lab_scenario.node("node1")
    script = (
        "import json\nfrom kubernetes import client, config\n"
        f"config.load_kube_config({node.kubeconfig!r})\n"
        "pods = client.CoreV1Api().list_pod_for_all_namespaces("
        "field_selector='spec.nodeName=node1').items\n"
        "print(json.dumps({p.metadata.name: [p.status.pod_ip, p.spec.host_network, "
        "p.status.container_statuses[0].restart_count, "
        "p.status.container_statuses[0].state.waiting and "
        "p.status.container_statuses[0].state.waiting.reason] for p in pods}))\n")
    deadline = time.monotonic() + 20
    while True:
        # kubelet's view moves on as the replica restarts; the lab republishes it
        lab_scenario.refresh_objects()
        done = subprocess.run(["ip", "netns", "exec", node.netns, sys.executable, "-c",
                               script], capture_output=True, text=True, timeout=30,
                              check=True, cwd=REPO)
        pods = json.loads(done.stdout)
        crashing = pods["metrics-6f7c9b8d4-q9m4d"]
        if crashing[2] >= 1 and crashing[3] == "CrashLoopBackOff":
            break
        assert time.monotonic() < deadline, crashing
        time.sleep(0.3)
    assert pods["client"][:2] == ["10.42.0.10", None]
    assert crashing[:2] == ["192.168.1.11", True]
    assert pods["metrics-6f7c9b8d4-x7k2p"][2:] == [0, None]


def test_second_up_refused_then_replaced(host_unchanged: HostSnapshot) -> None:
    first = lifecycle.up("no-route", ttl_s=60)
    again = lifecycle.up("no-route", ttl_s=60)   # idempotent: the same processes
    assert [p.pid for p in again.state.processes] == [p.pid for p in first.state.processes]
    with pytest.raises(UsageError, match="already up with scenario 'no-route'"):
        lifecycle.up("policy-drop", ttl_s=60)
    cli = _cli("up", "policy-drop")
    assert cli.returncode == 2 and "--replace" in cli.stderr and "Traceback" not in cli.stderr
    replaced = lifecycle.up("policy-drop", replace=True, ttl_s=60)
    assert replaced.scenario.name == "policy-drop"
    status = json.loads(_cli("status", "-o", "json").stdout)
    assert status["scenario"] == "policy-drop"
    client = next(p for p in status["pods"] if p["name"] == "client")
    assert client["netns"] == "nt-lab-pod-client" and client["pids"]
    assert client["vethHost"].startswith("veth") and client["ips"] == ["10.42.0.10"]


@pytest.mark.parametrize("delay_s", [0.4, 1.5])
def test_down_after_kill_9_of_up(host_unchanged: HostSnapshot, delay_s: float) -> None:
    up = subprocess.Popen([sys.executable, "-m", "tracer.cli.main", "lab", "up", "healthy",
                           "--ttl", "60"], cwd=REPO, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    time.sleep(delay_s)
    up.send_signal(signal.SIGKILL)
    up.wait()
    done = _cli("down")
    assert done.returncode == 0, done.stderr
    assert not state.state_file().exists()
    # host_unchanged checks namespaces, root links, cgroups and processes


def _lab_run(*extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tracer.cli.main", "lab", "run",
                             "masquerade-missing", "-o", "jsonl", "--duration", "60s",
                             *extra], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_lab_up(proc: subprocess.Popen[str], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lab = lifecycle.current()
        if lab is not None and lab.state.ready:
            return
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.2)
    raise AssertionError("the lab did not come up")


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 0),
                                            (signal.SIGHUP, 128 + signal.SIGHUP)])
def test_lab_run_stopped_by_a_signal_takes_the_lab_down(
        host_unchanged: HostSnapshot, signum: int, status: int) -> None:
    # how a CI runner's timeout or a closed terminal ends the README's first command
    run = _lab_run()
    _wait_for_lab_up(run)
    run.send_signal(signum)
    _, err = run.communicate(timeout=60)
    assert run.returncode == status, err
    assert "lab removed" in err and "Traceback" not in err
    assert not state.state_file().exists()


def test_a_killed_lab_run_leaves_a_lab_the_next_one_replaces(
        host_unchanged: HostSnapshot) -> None:
    run = _lab_run()
    _wait_for_lab_up(run)
    run.send_signal(signal.SIGKILL)
    _, err = run.communicate(timeout=30)   # its tracer, stopped by the kernel, closes stderr
    assert "Traceback" not in err
    left = lifecycle.current()
    assert left is not None and lifecycle.abandoned(left)   # its owner is gone: no TTL wait
    again = lifecycle.up("healthy", ttl_s=60)                # no --replace needed
    assert again.scenario.name == "healthy"
    lifecycle.down()
