"""The scenario registry and the lab's workload codecs."""

from __future__ import annotations

import os

import pytest

from tracer.lab import scenarios
from tracer.lab.cluster import build_cluster
from tracer.lab.lifecycle import Lab, abandoned
from tracer.lab.scenarios import EXT, HEALTHY, OUTCOMES, SCENARIOS
from tracer.lab.state import LabState, ProcessRecord, start_ticks
from tracer.lab.workloads import dns_answer, dns_parse_answer, dns_query, dns_records
from tracer.util.errors import UsageError

ISSUE_3 = ("masquerade-missing", "ip-forward-disabled", "no-route", "hostport-conflict",
           "externalip-untranslated", "service-no-endpoints", "dns-unreachable",
           "nodeport-remote-endpoint", "nexthop-not-adjacent", "policy-drop")


def test_registry_has_every_scenario() -> None:
    assert set(SCENARIOS) == {"healthy", *ISSUE_3, "connection-refused", "rp-filter-drop"}


@pytest.mark.parametrize("name", [n for n in SCENARIOS if n != "healthy"])
def test_each_scenario_names_its_failure(name: str) -> None:
    sc = SCENARIOS[name]
    assert (sc.probe is None) != (sc.crashloop_pod is None)
    assert sc.wire and sc.summary
    assert set(sc.expect) <= set(OUTCOMES) - {"ok"}
    assert sc.trace_node in ("node1", "node2")
    cluster = build_cluster(sc.cluster)
    for probe in (*([sc.probe] if sc.probe else []), *sc.controls):
        assert probe.source == EXT or cluster.pod(probe.source)
    if sc.crashloop_pod:
        assert cluster.crashlooping(cluster.pod(sc.crashloop_pod))
    # the failing connection is among what healthy proves works
    if sc.probe:
        assert sc.probe in HEALTHY.controls


def test_unknown_scenario_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="lab list"):
        scenarios.get("nope")


def test_pod_names_fit_the_kernel() -> None:
    for pod in build_cluster().pods:
        assert pod.veth_host is None or len(pod.veth_host) <= 15


def test_dns_round_trip() -> None:
    answer = dns_answer(dns_query("web.default.svc.cluster.local", 7), dns_records())
    assert answer is not None and dns_parse_answer(answer) == "10.43.0.20"
    nx = dns_answer(dns_query("nope.default.svc.cluster.local", 8), dns_records())
    assert nx is not None and dns_parse_answer(nx) is None
    assert dns_answer(b"\0" * 5, {}) is None


def test_a_lab_is_abandoned_only_past_its_ttl_with_no_process_alive() -> None:
    st = LabState("healthy", created=1000.0, cgroup_root="/sys/fs/cgroup",
                  cgroup_driver="cgroupfs", ttl_s=120)
    dead = ProcessRecord(pid=os.getpid(), start_ticks=-1, role="container", netns="x",
                         cgroup="/x")
    st.processes = [dead]
    assert abandoned(Lab(st), now=1121.0)
    assert not abandoned(Lab(st), now=1119.0)          # a lab still being built
    me = start_ticks(os.getpid())
    assert me is not None
    st.processes.append(ProcessRecord(os.getpid(), me, "apiserver", "x", "/x"))
    assert not abandoned(Lab(st), now=1121.0)          # someone still runs in it


def test_a_lab_whose_owner_is_gone_is_abandoned_at_once() -> None:
    st = LabState("healthy", created=1000.0, cgroup_root="/sys/fs/cgroup",
                  cgroup_driver="cgroupfs", ttl_s=1800)
    me = start_ticks(os.getpid())
    assert me is not None
    st.processes = [ProcessRecord(os.getpid(), me, "apiserver", "x", "/x")]
    st.owner_pid, st.owner_start_ticks = os.getpid(), me
    assert not abandoned(Lab(st), now=1001.0)          # `lab run` still going
    st.owner_start_ticks = me - 1                       # the pid reused by another process
    assert abandoned(Lab(st), now=1001.0)              # the owner was killed: no TTL wait
    st.owner_pid = 0                                    # `lab up`: lives until its TTL
    assert not abandoned(Lab(st), now=1001.0)
