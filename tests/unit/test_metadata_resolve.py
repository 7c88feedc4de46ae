"""Resolution of addresses to Kubernetes names, the enrich stage and its output:
Service IPs of every kind (ClusterIP, externalIPs, LoadBalancer ingress, NodePorts on
every node address), endpoints, hostNetwork pods by socket owner and cgroup (never by
address), pod CIDRs, external; `--metadata` with a `kubectl get -o json` dump."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tracer.events.model import Endpoint, FlowEvent, NatEvent, PodRef, Process, SockEvent, TcpEvent
from tracer.lab.cluster import build_cluster
from tracer.lab.objects import as_list, cluster_objects
from tracer.metadata.file import FileProvider
from tracer.metadata.index import MetadataIndex
from tracer.metadata.local import LocalPod, _fib_local_addresses, _ipv6_addresses
from tracer.metadata.names import EndpointName
from tracer.metadata.resolver import Listener
from tracer.metadata.selectors import LabelSelector
from tracer.metadata.setup import Metadata, MetadataOptions
from tracer.node.scope import own_netns_inode
from tracer.pipeline.enrich import Enricher, NamedBatch, PodFilter
from tracer.session.pod_scope import PodSelection, Selection
from tracer.sinks.jsonl import JsonlSink
from tracer.sinks.table import TableSink
from tracer.util.errors import MetadataError

Obj = dict[str, Any]
REPO = Path(__file__).resolve().parents[2]
LB_IP, EXT_IP = "203.0.113.7", "192.168.1.100"


def lb_service() -> Obj:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "shop", "namespace": "prod", "uid": "u-shop"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.43.0.77",
                     "clusterIPs": ["10.43.0.77"], "externalIPs": ["198.51.100.9"],
                     "ports": [{"name": "https", "port": 443, "targetPort": 8443,
                                "nodePort": 31443, "protocol": "TCP"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": LB_IP}]}}}


@pytest.fixture
def index() -> MetadataIndex:
    idx = MetadataIndex(rebuild_interval_s=0)
    for obj in [*cluster_objects(build_cluster()), lb_service()]:
        kind = obj["kind"]
        if kind != "Namespace":
            idx.apply(kind, "added", obj, source="test")
    idx.local_node = "node1"
    return idx


def resolve(idx: MetadataIndex, ip: str, port: int | None = None) -> EndpointName:
    n = idx.resolver().resolve(ip, port)
    assert n is not None
    return n


def svc(n: EndpointName) -> tuple[str, str, str, int | None, int | None]:
    assert n.service is not None
    return (n.scope, n.service.namespace, n.service.name, n.service.port, n.service.node_port)


@pytest.mark.parametrize(("ip", "port", "expected"), [
    ("10.43.0.77", 443, ("service", "prod", "shop", 443, None)),     # ClusterIP
    ("198.51.100.9", 443, ("service", "prod", "shop", 443, None)),   # externalIP
    (LB_IP, 443, ("service", "prod", "shop", 443, None)),            # LB ingress
    ("192.168.1.11", 31443, ("service", "prod", "shop", 443, 31443)),  # NodePort, node1
    ("192.168.1.12", 31443, ("service", "prod", "shop", 443, 31443)),  # and node2
    (EXT_IP, 80, ("service", "default", "web", 80, None)),           # the lab's externalIP
    ("192.168.1.12", 30080, ("service", "default", "web", 80, 30080)),
])
def test_service_addresses(index: MetadataIndex, ip: str, port: int,
                           expected: tuple[Any, ...]) -> None:
    assert svc(resolve(index, ip, port)) == expected


def test_nodeport_names_the_node_it_was_reached_on(index: MetadataIndex) -> None:
    assert resolve(index, "192.168.1.12", 31443).node == "node2"
    # another port of a node address is the node itself
    n = resolve(index, "192.168.1.12", 22)
    assert (n.scope, n.node, n.service) == ("node", "node2", None)
    # a Service address on a port it does not serve: the Service, no port
    n = resolve(index, LB_IP, 80)
    assert n.service is not None and (n.scope, n.service.port) == ("service", None)


def test_pods_endpoints_cidrs_external(index: MetadataIndex) -> None:
    web = resolve(index, "10.42.0.11", 8080)
    assert web.pod is not None and (web.scope, str(web.pod), web.node) == \
        ("pod", "default/web-a", "node1")
    assert web.service is not None and str(web.service) == "default/web"
    plain = resolve(index, "10.42.0.11", 40000)         # the pod, not as an endpoint
    assert plain.pod is not None and plain.service is None
    dns = resolve(index, "10.42.1.10", 53)
    assert dns.pod is not None and str(dns.pod) == "kube-system/coredns"
    unknown = resolve(index, "10.42.1.200", 80)         # node2's range, no such pod
    assert (unknown.scope, unknown.pod, unknown.node) == ("pod", None, "node2")
    assert resolve(index, "8.8.8.8", 53).scope == "external"
    assert resolve(index, "not-an-ip").scope == "external"


def test_hostnetwork_pod_by_socket_owner_not_by_address(index: MetadataIndex) -> None:
    metrics = next(p for p in index.objects("Pod") if p["metadata"]["name"].endswith("x7k2p"))
    uid = metrics["metadata"]["uid"]
    # the address alone is the node's, even though a hostNetwork pod has it as podIP
    assert resolve(index, "192.168.1.11", 9100).scope == "node"
    index.set_listeners([Listener("0.0.0.0", 9100, uid)])
    n = resolve(index, "192.168.1.11", 9100)
    assert n.pod is not None and n.scope == "pod"
    assert (n.pod.name, n.pod.host_network) == ("metrics-6f7c9b8d4-x7k2p", True)
    # only on this node's addresses: node2's 9100 is another replica's business
    assert resolve(index, "192.168.1.12", 9100).scope == "node"
    assert resolve(index, "192.168.1.11", 9101).scope == "node"


def flow(src: tuple[str, int], dst: tuple[str, int]) -> FlowEvent:
    return FlowEvent(ts_ns=1, wall_ns=1_700_000_000_000_000_000, netns=1, ifindex=3,
                     ifname="veth1", direction="ingress", report="new", family=4, proto=6,
                     src=Endpoint(*src), dst=Endpoint(*dst), tcp_flags=2, tcp_flags_seen=2,
                     icmp_type=None, icmp_code=None, packets=1, bytes=60,
                     first_wall_ns=1, last_wall_ns=1, role="pod")


def nat() -> NatEvent:
    return NatEvent(ts_ns=1, wall_ns=1_700_000_000_000_000_000, netns=1, family=4, proto=6,
                    orig_src=Endpoint("10.42.0.10", 41000), orig_dst=Endpoint("10.43.0.20", 80),
                    reply_src=Endpoint("10.42.0.11", 8080),
                    reply_dst=Endpoint("10.42.0.10", 41000),
                    status=0x20 | 0x8, origin="conntrack", manip=None, ct_event="new")


def jsonl(batch: NamedBatch) -> list[Obj]:
    out = io.StringIO()
    JsonlSink(out).write(batch)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_enrich_jsonl_fixed_names_raw_fields_untouched(index: MetadataIndex) -> None:
    ev = flow(("10.42.0.10", 41000), ("10.43.0.20", 80))
    batch = Enricher(index).process([ev, nat()])
    assert list(batch) == [ev, batch[1]] and batch[0] is ev   # the events themselves
    rec, nrec = jsonl(batch)
    assert rec["src"] == {"ip": "10.42.0.10", "port": 41000, "scope": "pod", "node": "node1",
                          "pod": {"namespace": "default", "name": "client",
                                  "hostNetwork": False, "uid": rec["src"]["pod"]["uid"]}}
    assert rec["dst"] == {"ip": "10.43.0.20", "port": 80, "scope": "service",
                          "service": {"namespace": "default", "name": "web", "port": 80,
                                      "portName": "http"}}
    # nat: the Service and the backend pod the node chose
    assert nrec["service"] == {"namespace": "default", "name": "web", "port": 80,
                               "portName": "http"}
    assert (nrec["backend"]["namespace"], nrec["backend"]["name"], nrec["backend"]["node"]) \
        == ("default", "web-a", "node1")
    assert nrec["orig"]["dst"]["scope"] == "service"
    assert nrec["reply"]["src"]["pod"]["name"] == "web-a"


def test_table_shows_names(index: MetadataIndex) -> None:
    out = io.StringIO()
    TableSink(out).write(Enricher(index).process([flow(("10.42.0.10", 41000),
                                                       ("10.43.0.20", 80)), nat()]))
    text = out.getvalue()
    assert "default/client(10.42.0.10:41000) → svc default/web(10.43.0.20:80)" in text
    assert "⇒ default/web-a(10.42.0.11:8080)" in text


def table_lines(index: MetadataIndex, events: list[Any]) -> list[str]:
    out = io.StringIO()
    TableSink(out).write(Enricher(index).process(events))
    head, *lines = out.getvalue().splitlines()
    assert head.split() == ["TIME", "KIND", "WHERE", "WHAT"]
    return lines


def test_table_names_each_endpoint_once(index: MetadataIndex) -> None:
    # a NAT entry's reply destination is its original source (no SNAT): one name, once
    assert table_lines(index, [nat()]) == [
        "22:13:20.000000  nat   node                      "
        "tcp default/client(10.42.0.10:41000) → svc default/web(10.43.0.20:80)"
        " ⇒ default/web-a(10.42.0.11:8080) [dnat]  no reply yet"]
    nodeport = NatEvent(
        ts_ns=1, wall_ns=1_700_000_000_000_000_000, netns=1, family=4, proto=6,
        orig_src=Endpoint("198.18.0.5", 50000), orig_dst=Endpoint("192.168.1.11", 30080),
        reply_src=Endpoint("10.42.0.11", 8080), reply_dst=Endpoint("192.168.1.11", 61000),
        status=0x20 | 0x10 | 0x8 | 0x2, origin="conntrack", manip=None, ct_event="destroy")
    # a pod reaching itself: one endpoint's text is a prefix of the other's
    hairpin = flow(("10.42.0.11", 8080), ("10.42.0.11", 80))
    assert table_lines(index, [nodeport, hairpin]) == [
        "22:13:20.000000  nat   node                      "
        "tcp 198.18.0.5:50000 → svc default/web(192.168.1.11:30080)"
        " ⇒ default/web-a(10.42.0.11:8080) [dnat,snat] as node node1(192.168.1.11:61000)"
        "  replied, ended",
        "22:13:20.000000  flow  veth1 ingress (pod)       "
        "tcp default/web-a(10.42.0.11:8080) → default/web-a(10.42.0.11:80)  1 pkts 60 B SYN"]


def test_hostnetwork_process_by_cgroup(index: MetadataIndex) -> None:
    metrics = next(p for p in index.objects("Pod") if p["metadata"]["name"].endswith("q9m4d"))
    uid = metrics["metadata"]["uid"]
    ref = PodRef(uid, "c" * 64, "containerd", "besteffort", f"/kubepods/pod{uid}/x")
    proc = Process(4242, "node_exporter", 99)
    tcp = TcpEvent(ts_ns=1, wall_ns=1, netns=1, event="connect", family=4,
                   src=Endpoint("192.168.1.12", 50000), dst=Endpoint("10.43.0.10", 53),
                   state="SYN_SENT", old_state="CLOSE", error=None, error_raw=0,
                   duration_ns=None, syn_retransmits=0, process=proc, pod=ref)
    bind = SockEvent(ts_ns=1, wall_ns=1, netns=1, op="bind", via="return", family=4,
                     addr=Endpoint("0.0.0.0", 9100), error="EADDRINUSE", error_raw=98, fd=3,
                     process=proc, pod=ref)
    trec, brec = jsonl(Enricher(index).process([tcp, bind]))
    assert trec["src"]["scope"] == "pod" and trec["src"]["pod"]["hostNetwork"] is True
    assert trec["src"]["pod"]["name"] == "metrics-6f7c9b8d4-q9m4d"
    assert trec["dst"]["service"]["name"] == "kube-dns"
    assert trec["pod"]["name"] == "metrics-6f7c9b8d4-q9m4d" and trec["pod"]["uid"] == uid
    assert brec["src"]["pod"]["name"] == "metrics-6f7c9b8d4-q9m4d"
    assert brec["pod"]["namespace"] == "monitoring"


def test_pod_filter_keeps_selected_pods_and_loss(index: MetadataIndex) -> None:
    web = [p["metadata"]["uid"] for p in index.select_pods(labels=LabelSelector.parse(
        "app=web"), namespace="default")]
    batch = Enricher(index).process([flow(("10.42.0.10", 41000), ("10.42.0.11", 8080)),
                                     flow(("10.42.0.10", 41000), ("10.42.1.11", 8080))])
    kept = PodFilter(lambda: (frozenset(web), frozenset(), frozenset())).process(batch)
    assert [e.dst.ip for e in kept] == ["10.42.0.11"]


def test_deleted_objects_resolve_during_grace() -> None:
    now = [100.0]
    idx = MetadataIndex(grace_s=30, rebuild_interval_s=0, clock=lambda: now[0])
    pod = next(o for o in cluster_objects(build_cluster()) if o["kind"] == "Pod")
    idx.apply("Pod", "added", pod)
    ip = pod["status"]["podIP"]
    idx.apply("Pod", "deleted", pod)
    assert resolve(idx, ip).pod is not None
    now[0] += 31
    assert resolve(idx, ip).pod is None


def test_observers_see_every_change_and_feed_replays_them() -> None:
    seen: list[tuple[str, str, Obj, float]] = []
    live = MetadataIndex(rebuild_interval_s=0)
    live.add_observer(lambda kind, action, obj, at: seen.append((kind, action, obj, at)))
    objs = [o for o in cluster_objects(build_cluster()) if o["kind"] != "Namespace"]
    for o in objs:
        live.apply(o["kind"], "added", o, at=1.0)
    pod = next(o for o in objs if o["kind"] == "Pod")
    live.apply("Pod", "deleted", pod, at=2.0)
    assert len(seen) == len(objs) + 1 and seen[-1][:2] == ("Pod", "deleted")
    assert all(isinstance(o, dict) and o["metadata"]["name"] for _k, _a, o, _t in seen)
    assert live.apply("Pod", "deleted", pod) is False     # no change, no notification
    replayed = MetadataIndex(rebuild_interval_s=0)
    for kind, action, obj, at in seen:                     # what a recording gives back
        replayed.feed(kind, action, json.loads(json.dumps(obj)), at)
    assert replayed.counts() == live.counts()
    assert resolve(replayed, "10.43.0.20", 80) == resolve(live, "10.43.0.20", 80)


def test_metadata_file_is_a_kubectl_dump(tmp_path: Path) -> None:
    dump = tmp_path / "objects.json"
    items = cluster_objects(build_cluster())
    items.append({"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": "web", "namespace": "default"}})
    dump.write_text(json.dumps(as_list(items)))
    typed = tmp_path / "svc.json"          # `kubectl get svc -o json`: items without kind
    shop = lb_service()
    del shop["kind"], shop["apiVersion"]
    typed.write_text(json.dumps({"apiVersion": "v1", "kind": "ServiceList", "items": [shop]}))
    idx = MetadataIndex(rebuild_interval_s=0)
    counts = FileProvider(idx, [dump, typed]).load()
    assert counts == {"Pod": 9, "Service": 5, "EndpointSlice": 4, "Node": 2}
    assert svc(resolve(idx, LB_IP, 443))[2] == "shop"
    web = resolve(idx, "10.42.0.11", 8080)
    assert web.pod is not None and web.pod.name == "web-a"


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"kind": "List", "items": 3}'])
def test_metadata_file_errors_are_runtime_errors(tmp_path: Path, content: str) -> None:
    """A file that cannot be read is exit 1 in every command (diagnose --from too)."""
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    with pytest.raises(MetadataError, match="--metadata"):
        FileProvider(MetadataIndex(), [bad]).load()


@pytest.mark.parametrize("args", [
    ["-l", "app in (web"], ["-l", "app=web,"], ["--selector=-bad=1"], ["-l", "a=b=c"],
    ["--field-selector", "spec.foo=1"], ["-n", "x", "-A"],
    ["--metadata", "/nonexistent/objects.json"], ["-l", "app=web", "--no-api"],
])
def test_bad_selection_is_one_line_and_exit_2(args: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", "tracer.cli.main", "trace", *args],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    # a file that cannot be read is a runtime error, as in every command
    assert done.returncode == (1 if "--metadata" in args else 2), done.stderr
    assert done.stderr.startswith("nodetrace: error: ") and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert done.stdout == ""


def test_builder_thread_serves_changes_off_the_event_path() -> None:
    idx = MetadataIndex(rebuild_interval_s=0.05).start_builder()
    try:
        first = idx.resolver()
        pod = next(o for o in cluster_objects(build_cluster()) if o["kind"] == "Pod")
        idx.apply("Pod", "added", pod)
        deadline = time.monotonic() + 5
        while idx.resolver() is first:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert resolve(idx, pod["status"]["podIP"]).pod is not None
    finally:
        idx.close()


def test_selection_that_matches_nothing_says_so(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    dump = tmp_path / "objects.json"
    dump.write_text(json.dumps(as_list(cluster_objects(build_cluster()))))
    opts = MetadataOptions(files=(dump,), use_api=False, use_local=False, node="node1")
    with Metadata(opts, own_netns_inode()) as meta:
        none = PodSelection(Selection(labels=LabelSelector.parse("app=nothing")), meta)
        with caplog.at_level(logging.INFO):
            none.refresh(force=True)
            none.refresh(force=True)
        said = [r for r in caplog.records if "matches" in r.getMessage()]
        assert len(said) == 1 and "no pod on node node1 matches" in said[0].getMessage()
        assert not none.uids
        web = PodSelection(Selection(labels=LabelSelector.parse("app in (web, client)"),
                                     namespace=None), meta)
        web.refresh(force=True)
        assert sorted(p.name for p in web.pods.values()) == ["client", "web-a"]  # node1 only
        api = PodSelection(Selection(labels=LabelSelector.parse("app=api")), meta)
        api.refresh(force=True)
        assert not api.pods   # on node2


def test_local_only_names_pods_by_uid_and_sockets() -> None:
    """No API, no file: what the node knows (tracer/metadata/local.py)."""
    idx = MetadataIndex(rebuild_interval_s=0)
    idx.local_addresses = frozenset({"192.168.5.5", "127.0.0.1"})
    idx.set_local_pods([
        LocalPod("u-host", 1, "/proc/1/ns/net", True),
        LocalPod("u-pod", 2, "/proc/2/ns/net", False, ips=["10.1.0.7"],
                 namespace="shop", name="cart-1"),
    ])
    idx.set_listeners([Listener("0.0.0.0", 9100, "u-host")])
    host = resolve(idx, "192.168.5.5", 9100)
    assert host.pod is not None and (host.pod.uid, host.pod.name, host.pod.host_network) \
        == ("u-host", None, True)
    assert resolve(idx, "192.168.5.5", 22).scope == "node"
    cart = resolve(idx, "10.1.0.7", 80)
    assert cart.pod is not None and str(cart.pod) == "shop/cart-1"
    # the API's names win over the node's for the same uid
    pod = next(o for o in cluster_objects(build_cluster()) if o["kind"] == "Pod")
    pod["metadata"]["uid"] = "u-pod"
    idx.apply("Pod", "added", pod)
    n = resolve(idx, pod["status"]["podIP"])
    assert n.pod is not None and n.pod.uid == "u-pod" and n.pod.name == pod["metadata"]["name"]


def test_fib_trie_and_if_inet6_addresses() -> None:
    trie = """Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 10.42.0.0/24 2 0 2
        |-- 10.42.0.10
           /32 host LOCAL
     |-- 127.0.0.1
        /32 host LOCAL
"""
    assert _fib_local_addresses(trie) == ["10.42.0.10"]
    inet6 = ("fd000000000000000000000000000007 02 40 00 80 eth0\n"
             "fe800000000000000000000000000001 02 40 20 80 eth0\n")
    assert _ipv6_addresses(inet6) == ["fd00::7"]


def test_tcp_names_follow_the_index_for_the_same_objects(index: MetadataIndex) -> None:
    """The enricher remembers a tcp event's names by its endpoint and pod objects (the
    reader hands out one per value), per resolver: a change of the index renames them."""
    metrics = next(p for p in index.objects("Pod") if p["metadata"]["name"].endswith("x7k2p"))
    uid = metrics["metadata"]["uid"]
    tcp = TcpEvent(ts_ns=1, wall_ns=1, netns=1, event="connect", family=4,
                   src=Endpoint("10.42.0.10", 41000), dst=Endpoint("192.168.1.11", 9100),
                   state="SYN_SENT", old_state="CLOSE", error=None, error_raw=0,
                   duration_ns=None, syn_retransmits=0, process=None, pod=None)
    enrich = Enricher(index)
    first, again = enrich.process([tcp]).names[0], enrich.process([tcp]).names[0]
    assert first is not None and again == first
    assert first[1].scope == "node"
    index.set_listeners([Listener("0.0.0.0", 9100, uid)])
    renamed = enrich.process([tcp]).names[0]
    assert renamed is not None and renamed[1].scope == "pod"
    assert renamed == Enricher(index).process([tcp]).names[0]
