"""The enrich stage on the hot path: events per second on one core with a large
inventory loaded (10 k pods, 5 k Services with EndpointSlices, 100 nodes), and the
memory that inventory takes (slim objects in the index + the resolver's dicts).

Every event gets two lookups (src, dst); the mix is what a node sees: pod to Service
VIP, pod to pod (an endpoint backing a Service), pod to external, node to NodePort.
Also measured, as the ratio's reference: a loop that only reads the same two
endpoints of every event (what any stage costs at least), and the rebuild of the
resolver after a change (done on its own thread, at most every max(0.2 s, 10 build
times) under churn).

    .venv/bin/python bench/enrich_throughput.py [--pods 10000] [--services 5000] [--runs 5]
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import random
import statistics
import time
import tracemalloc
from typing import Any

from tracer.events.model import Endpoint, Event, FlowEvent
from tracer.metadata.index import MetadataIndex
from tracer.pipeline.enrich import Enricher

Obj = dict[str, Any]
BATCH = 512


def inventory(n_pods: int, n_svcs: int, n_nodes: int) -> dict[str, list[Obj]]:
    rnd = random.Random(1)
    nodes: list[Obj] = [{"apiVersion": "v1", "kind": "Node",
              "metadata": {"name": f"node{i}", "uid": f"n{i}",
                           "labels": {"kubernetes.io/hostname": f"node{i}"}},
              "spec": {"podCIDR": f"10.{64 + i // 256}.{i % 256}.0/24"},
              "status": {"addresses": [
                  {"type": "InternalIP", "address": f"172.20.{i // 250}.{i % 250 + 1}"},
                  {"type": "Hostname", "address": f"node{i}"}]}}
             for i in range(n_nodes)]
    pods: list[Obj] = []
    for i in range(n_pods):
        node = i % n_nodes
        ip = f"10.{64 + node // 256}.{node % 256}.{i // n_nodes + 2}"
        pods.append({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": f"app{i % n_svcs}-{i:05d}", "namespace": f"ns{i % 50}",
                                  "uid": f"00000000-0000-0000-0000-{i:012d}",
                                  "labels": {"app": f"app{i % n_svcs}", "tier": "web"}},
                     "spec": {"nodeName": f"node{node}",
                              "containers": [{"name": "c", "image": "x"}]},
                     "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                                "hostIP": nodes[node]["status"]["addresses"][0]["address"]}})
    svcs: list[Obj] = []
    slices: list[Obj] = []
    for s in range(n_svcs):
        ns = f"ns{s % 50}"
        vip = str(ipaddress.ip_address("10.96.0.10") + s)
        port: Obj = {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}
        if s % 10 == 0:
            port["nodePort"] = 30000 + s % 2700
        svcs.append({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": f"app{s}", "namespace": ns, "uid": f"s{s}"},
                     "spec": {"type": "NodePort" if s % 10 == 0 else "ClusterIP",
                              "clusterIP": vip, "clusterIPs": [vip],
                              "selector": {"app": f"app{s}"}, "ports": [port]}})
        backing = [p for p in pods[s::n_svcs]]
        slices.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                       "metadata": {"name": f"app{s}-x", "namespace": ns, "uid": f"e{s}",
                                    "labels": {"kubernetes.io/service-name": f"app{s}"}},
                       "addressType": "IPv4",
                       "endpoints": [{"addresses": [p["status"]["podIP"]],
                                      "conditions": {"ready": True},
                                      "targetRef": {"kind": "Pod", "name": p["metadata"]["name"],
                                                    "namespace": ns}} for p in backing],
                       "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]})
    rnd.shuffle(pods)
    return {"Node": nodes, "Pod": pods, "Service": svcs, "EndpointSlice": slices}


def events(inv: dict[str, list[Obj]], n: int) -> list[Event]:
    rnd = random.Random(2)
    pod_ips = [p["status"]["podIP"] for p in inv["Pod"]]
    vips = [s["spec"]["clusterIP"] for s in inv["Service"]]
    node_ips = [n["status"]["addresses"][0]["address"] for n in inv["Node"]]
    out: list[Event] = []
    for i in range(n):
        src = Endpoint(rnd.choice(pod_ips), rnd.randrange(32768, 60999))
        r = i % 10
        if r < 4:
            dst = Endpoint(rnd.choice(vips), 80)
        elif r < 7:
            dst = Endpoint(rnd.choice(pod_ips), 8080)
        elif r < 9:
            dst = Endpoint(f"93.184.{rnd.randrange(256)}.{rnd.randrange(256)}", 443)
        else:
            dst = Endpoint(rnd.choice(node_ips), 30000 + 10 * rnd.randrange(270))
        out.append(FlowEvent(ts_ns=i, wall_ns=i, netns=1, ifindex=3, ifname="veth0",
                             direction="ingress", report="update", family=4, proto=6,
                             src=src, dst=dst, tcp_flags=0x10, tcp_flags_seen=0x12,
                             icmp_type=None, icmp_code=None, packets=1, bytes=100,
                             first_wall_ns=i, last_wall_ns=i, role="pod"))
    return out


def reference(batch: list[Event]) -> int:
    """The floor: read the same attributes, build the same tuples, no lookups."""
    out = []
    for ev in batch:
        src, dst = ev.src, ev.dst  # type: ignore[union-attr]
        out.append((src.ip, dst.ip))
    return len(out)


def rate(fn: Any, batches: list[list[Event]], seconds: float = 1.0) -> float:
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for b in batches:
            fn(b)
            n += len(b)
    return n / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pods", type=int, default=10_000)
    ap.add_argument("--services", type=int, default=5_000)
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()

    inv = inventory(args.pods, args.services, args.nodes)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    index = MetadataIndex()
    t0 = time.perf_counter()
    for kind, objs in inv.items():
        index.replace(kind, objs, source="bench")
    t_load = time.perf_counter() - t0
    after_objects = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    index.resolver()
    t_build = time.perf_counter() - t0
    after_resolver = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    builds = []
    for _ in range(3):
        t0 = time.perf_counter()
        index.rebuild()
        builds.append(time.perf_counter() - t0)

    enricher = Enricher(index)
    evs = events(inv, 64 * BATCH)
    batches = [evs[i:i + BATCH] for i in range(0, len(evs), BATCH)]
    enricher.process(batches[0])  # warm the miss cache like a running node would be
    for b in batches:
        enricher.process(b)
    enrich_rates, ref_rates = [], []
    for _ in range(args.runs):
        enrich_rates.append(rate(enricher.process, batches))
        ref_rates.append(rate(reference, batches))
    e_med, r_med = statistics.median(enrich_rates), statistics.median(ref_rates)
    ratios = [e / r for e, r in zip(enrich_rates, ref_rates, strict=True)]

    print(f"inventory: {args.pods} pods, {args.services} services (+ as many "
          f"EndpointSlices), {args.nodes} nodes")
    print(f"load (slim + index): {t_load:.2f} s, first resolver build {t_build:.2f} s (both "
          f"under tracemalloc); rebuild: {statistics.median(builds) * 1e3:.0f} ms "
          "(on the index's own thread, at most every max(0.2 s, 10 builds))")
    print(f"memory: slim objects {(after_objects - before) / 2**20:.1f} MiB, resolver "
          f"{(after_resolver - after_objects) / 2**20:.1f} MiB (tracemalloc)")
    print(f"enrich: {e_med / 1e3:.0f} k events/s on one core (median of {args.runs}; "
          f"runs {', '.join(f'{r / 1e3:.0f}k' for r in enrich_rates)})")
    print(f"reference loop (attribute reads only): {r_med / 1e3:.0f} k events/s; "
          f"enrich/reference ratio {statistics.median(ratios):.2f}")
    print(f"per event: {1e9 / e_med:.0f} ns; target >= 500 k/s: "
          f"{'met' if e_med >= 500_000 else 'NOT met'}")


if __name__ == "__main__":
    main()
