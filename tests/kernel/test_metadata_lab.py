"""Kubernetes names and pod selection on the real kernel, in the node lab: the tracer
runs inside node1's namespace with the kubeconfig of node1's API stand-in.

- hostNetwork pods are named by their process's cgroup and by socket owner, never by
  address (`hostport-conflict`, `externalip-untranslated`);
- `-l` attaches tc to exactly the matching pods' veths, follows a pod created after
  start (attached within about a second) and lets go of it when it is deleted.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kernel.lab_fixtures import (  # noqa: F401 - fixtures
    HostSnapshot,
    host_unchanged_fixture,
    lab_scenario_fixture,
)
from tests.kernel.tracing import TraceRun, tracing
from tracer.lab import cgroups, state
from tracer.lab.apiserver.files import write_atomic
from tracer.lab.cluster import Container, Pod
from tracer.lab.lifecycle import Lab
from tracer.lab.netns import Netns
from tracer.lab.objects import ContainerState, pod_object
from tracer.lab.scenarios import EXTIP_FROM_HOST, METRICS, METRICS_REPLICA, WEB_SVC

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(240)]
Obj = dict[str, Any]
HOLDER = "metrics-6f7c9b8d4-x7k2p"


def node1(lab: Lab) -> tuple[Netns, str]:
    node = lab.node("node1")
    return Netns(node.netns), node.kubeconfig


def finish(run: TraceRun) -> list[Obj]:
    assert run.stop() == 0, run.stderr
    return run.events


def wait_for(cond: Callable[[], bool], timeout_s: float, what: str) -> float:
    start = time.monotonic()
    while not cond():
        assert time.monotonic() - start < timeout_s, f"{what}: not within {timeout_s} s"
        time.sleep(0.05)
    return time.monotonic() - start


@pytest.mark.parametrize("lab_scenario", ["hostport-conflict"], indirect=True)
def test_hostnetwork_pod_by_cgroup_and_socket_owner(lab_scenario: Lab, tmp_path: Path) -> None:
    ns, kubeconfig = node1(lab_scenario)
    with tracing(ns, tmp_path, "--kubeconfig", kubeconfig) as run:
        # the crash-looping replica's bind(0.0.0.0:9100) fails again at each restart
        restarts = lab_scenario.container_states()[METRICS_REPLICA].restart_count
        wait_for(lambda: lab_scenario.container_states()[METRICS_REPLICA].restart_count
                 > restarts + 1, 30, "a restart of the replica")
        assert lab_scenario.probe(METRICS)["outcome"] == "ok"
        events = finish(run)
    binds = [e for e in events if e["kind"] == "sock" and e["error"] == "EADDRINUSE"]
    assert binds, run.stderr
    b = binds[0]
    # every name below comes from the process's cgroup or the socket's owner: the
    # address is node1's for all three hostNetwork pods
    assert (b["pod"]["namespace"], b["pod"]["name"], b["pod"]["hostNetwork"]) == \
        ("monitoring", METRICS_REPLICA, True)
    assert b["src"]["scope"] == "pod" and b["src"]["pod"]["name"] == METRICS_REPLICA
    assert b["holder"]["pod"]["name"] == HOLDER
    # the probe from outside to node1:9100: the listening replica, by socket owner
    to_metrics = [e for e in events if e["kind"] == "flow" and e["dst"]["port"] == 9100
                  and e["dst"]["ip"] == "192.168.1.11"]
    assert to_metrics, [e for e in events if e["kind"] == "flow"][:5]
    for e in to_metrics:
        assert e["dst"]["scope"] == "pod" and e["dst"]["pod"]["name"] == HOLDER, e
        assert e["dst"]["pod"]["hostNetwork"] is True and e["dst"]["node"] == "node1"
        assert e["src"]["scope"] == "external"
    # node1's address on another port is the node, not a pod
    other = [e for e in events if e["kind"] == "flow" and e["src"]["ip"] == "192.168.1.11"
             and e["src"]["port"] not in (9100, None)]
    assert all(e["src"]["scope"] == "node" and e["src"]["node"] == "node1" for e in other)


@pytest.mark.parametrize("lab_scenario", ["externalip-untranslated"], indirect=True)
def test_hostnetwork_client_by_cgroup_to_external_ip(lab_scenario: Lab, tmp_path: Path) -> None:
    ns, kubeconfig = node1(lab_scenario)
    with tracing(ns, tmp_path, "--kubeconfig", kubeconfig) as run:
        assert lab_scenario.probe(EXTIP_FROM_HOST)["outcome"] != "ok"
        events = finish(run)
    # records written in softirq know no process (a socket error): those are the node's
    tcp = [e for e in events if e["kind"] == "tcp" and e["dst"]["ip"] == "192.168.1.100"
           and e["process"] is not None]
    assert tcp, run.stderr
    for e in tcp:
        assert (e["pod"]["namespace"], e["pod"]["name"]) == ("kube-system", "agent")
        assert e["src"]["scope"] == "pod" and e["src"]["pod"]["name"] == "agent", e
        assert e["src"]["pod"]["hostNetwork"] is True
        assert e["dst"]["scope"] == "service"
        assert (e["dst"]["service"]["name"], e["dst"]["service"]["port"]) == ("web", 80)
    assert any(e["event"] == "failed" for e in tcp), [e["event"] for e in tcp]


# --- -l ---------------------------------------------------------------------------------

def tcx_ifindexes(pid: int) -> set[int]:
    """Interfaces the tracer holds tcx links on, from its fds' fdinfo (kernel >= 6.6
    prints a tcx link's ifindex there; bpftool 7.1 does not know tcx links yet)."""
    out: set[int] = set()
    fdinfo = Path(f"/proc/{pid}/fdinfo")
    for f in fdinfo.iterdir():
        try:
            info = dict(line.split(":", 1) for line in f.read_text().splitlines()
                        if ":" in line)
        except OSError:
            continue
        if "link_type" in info and "ifindex" in info and "attach_type" in info:
            out.add(int(info["ifindex"]))
    return out


def ifindex(ns: Netns, dev: str) -> int:
    return int(json.loads(ns.ip("-j", "link", "show", "dev", dev).stdout)[0]["ifindex"])


def attached_to(run: TraceRun, ns: Netns, dev: str) -> bool:
    try:
        idx = ifindex(ns, dev)
    except Exception:  # the device is gone
        return False
    return idx in tcx_ifindexes(run.proc.pid)


def reload_objects(lab: Lab, change: Callable[[list[Obj]], None]) -> None:
    """Edits the objects the API stand-ins serve and waits until they have reloaded."""
    path = Path(lab.state.objects_file)
    doc = json.loads(path.read_text())
    change(doc["items"])
    ready = [state.state_dir() / f"{n.name}-apiserver.ready" for n in lab.state.nodes]
    before = [json.loads(r.read_text())["reloads"] for r in ready]
    write_atomic(path, json.dumps(doc).encode())
    for p in lab.state.processes:
        if p.role == "apiserver" and state.alive(p):
            os.kill(p.pid, signal.SIGHUP)
    wait_for(lambda: all(json.loads(r.read_text())["reloads"] > b
                         for r, b in zip(ready, before, strict=True)), 10, "API reload")


@contextlib.contextmanager
def late_pod(lab: Lab) -> Iterator[Pod]:
    """A pod of node1 that did not exist when the tracer started: its namespace, its
    veth on cni0, a process in its kubelet-named cgroup.  Removed afterwards."""
    pod = Pod("late-web", "default", "node1", (("app", "web"),),
              Container("web", "nginx:1.27", ("idle",)), ip="10.42.0.60")
    node = Netns(lab.node("node1").netns)
    netns = Netns(pod.netns).create()
    netns.sysctl("net.ipv6.conf.all.disable_ipv6", "1")   # as the lab's pods: IPv4 only
    netns.sysctl("net.ipv6.conf.default.disable_ipv6", "1")
    root = Path(lab.state.cgroup_root)
    cg = cgroups.container_dir(root, lab.state.cgroup_driver, pod)
    created = cgroups.make(cg, root)
    proc = None
    try:
        assert pod.veth_host is not None
        node.ip("link", "add", "name", pod.veth_host, "type", "veth", "peer", "name", "eth0",
                "netns", netns.name)
        node.ip("link", "set", pod.veth_host, "master", "cni0", "up")
        netns.ip("link", "set", "eth0", "up")
        netns.ip("addr", "add", f"{pod.ip}/24", "dev", "eth0")
        proc = subprocess.Popen(["nsenter", f"--net={netns.path}", "--", "sleep", "120"],
                                preexec_fn=lambda: cgroups.enter(cg), start_new_session=True)
        yield pod
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        cgroups.kill(cg)
        for path in reversed(created):
            cgroups.remove(path)
        netns.delete()   # takes the veth pair with it


@pytest.mark.parametrize("lab_scenario", ["healthy"], indirect=True)
def test_selector_attaches_exactly_and_follows_new_pods(lab_scenario: Lab,
                                                        tmp_path: Path) -> None:
    lab = lab_scenario
    ns, kubeconfig = node1(lab)
    web, client = lab.pod("web-a"), lab.pod("client")
    assert web.veth_host and client.veth_host
    with tracing(ns, tmp_path, "--kubeconfig", kubeconfig, "-l", "app=web") as run:
        attached = json.loads(run.ready.read_text())["attached"]
        tc_line = next(a for a in attached if a.startswith("tc/"))
        assert tc_line.split(": ", 1)[1] == f"{web.veth_host}(pod)", attached
        held = tcx_ifindexes(run.proc.pid)
        assert held == {ifindex(ns, web.veth_host)}, held   # not client's, no uplink
        assert lab.probe(WEB_SVC)["outcome"] == "ok"     # client -> web Service -> web-a
        with late_pod(lab) as pod:
            assert pod.veth_host is not None
            late_veth = pod.veth_host
            time.sleep(1.0)   # its sandbox exists; the API does not know it yet
            assert not attached_to(run, ns, late_veth)
            obj = pod_object(lab.cluster, pod, ContainerState(), time.time())
            reload_objects(lab, lambda items: items.append(obj))
            took = wait_for(lambda: attached_to(run, ns, late_veth), 5, "attach to the new pod")
            reload_objects(lab, lambda items: items.remove(
                next(i for i in items if i["metadata"]["name"] == "late-web")))
            wait_for(lambda: not attached_to(run, ns, late_veth), 5,
                     "detach from the deleted pod")
        assert tcx_ifindexes(run.proc.pid) == {ifindex(ns, web.veth_host)}
        events = finish(run)
    print(f"new matching pod attached {took:.2f} s after the API reload")
    assert took < 1.5, took
    flows = [e for e in events if e["kind"] == "flow"]
    assert flows, [e["kind"] for e in events]
    assert {e["ifname"] for e in flows} <= {web.veth_host, late_veth}
    for e in flows:   # every IPv4 flow names web-a at one end
        if e["family"] != "ipv4":
            continue
        assert "web-a" in (e["src"].get("pod", {}).get("name"), e["dst"].get("pod", {})
                           .get("name")), json.dumps(e)
    assert "late-web" in run.stderr and "no longer selected" in run.stderr


@pytest.mark.parametrize("lab_scenario", ["healthy"], indirect=True)
def test_metadata_file_names_service_traffic_and_nat(lab_scenario: Lab, tmp_path: Path) -> None:
    """Offline: no API at all, the objects from a `kubectl get -o json` List."""
    ns, _kubeconfig = node1(lab_scenario)
    dump = tmp_path / "objects.json"
    dump.write_text(Path(lab_scenario.state.objects_file).read_text())
    with tracing(ns, tmp_path, "--no-api", "--metadata", str(dump)) as run:
        assert lab_scenario.probe(WEB_SVC)["outcome"] == "ok"
        events = finish(run)
    assert "names from file, local" in run.stderr
    nat = [e for e in events if e["kind"] == "nat" and e["orig"]["dst"]["ip"] == "10.43.0.20"]
    assert nat, [e["kind"] for e in events]
    for e in nat:
        assert e["service"]["name"] == "web" and e["service"]["port"] == 80
        assert (e["backend"]["namespace"], e["backend"]["name"]) == ("default", "web-a")
        assert e["orig"]["src"]["pod"]["name"] == "client"
    to_vip = [e for e in events if e["kind"] == "flow" and e["dst"]["ip"] == "10.43.0.20"]
    assert to_vip and all(e["dst"]["scope"] == "service" and e["src"]["pod"]["name"] == "client"
                          for e in to_vip)
