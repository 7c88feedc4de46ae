"""The lab's Kubernetes objects have the shapes the API server returns, and the
kubernetes client's models accept them."""

from __future__ import annotations

from typing import Any

from tracer.lab.apiserver import ObjectStore
from tracer.lab.cluster import ClusterOptions, all_pod_uids, build_cluster
from tracer.lab.objects import ContainerState, as_list, cluster_objects

CRASHING = "metrics-6f7c9b8d4-q9m4d"


def _objects(**kw: Any) -> list[dict[str, Any]]:
    states = {CRASHING: ContainerState(running=False, restart_count=3,
                                       waiting_reason="CrashLoopBackOff", last_exit_code=1,
                                       last_message="bind: address already in use")}
    return cluster_objects(build_cluster(ClusterOptions(**kw)), states, created=1.7e9)


def _by(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)


def test_the_client_models_accept_every_object() -> None:
    store = ObjectStore()
    result = store.sync(_objects(metrics_on_one_node=True))
    assert result.added == len(_objects(metrics_on_one_node=True))


def test_pod_shape() -> None:
    objs = _objects()
    pod = _by(objs, "Pod", "client")
    assert pod["metadata"]["uid"] in all_pod_uids()
    assert pod["spec"]["nodeName"] == "node1" and "hostNetwork" not in pod["spec"]
    assert pod["status"]["podIP"] == "10.42.0.10"
    assert pod["status"]["podIPs"] == [{"ip": "10.42.0.10"}]
    assert pod["status"]["phase"] == "Running"
    cs = pod["status"]["containerStatuses"][0]
    assert cs["containerID"].startswith("containerd://") and len(cs["containerID"]) == 13 + 64
    assert cs["restartCount"] == 0 and "running" in cs["state"]


def test_hostnetwork_crashloop_pod() -> None:
    pod = _by(_objects(metrics_on_one_node=True), "Pod", CRASHING)
    assert pod["spec"]["hostNetwork"] is True
    assert pod["status"]["podIP"] == "192.168.1.11"
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
    cs = pod["status"]["containerStatuses"][0]
    assert cs["restartCount"] == 3
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    assert cs["ready"] is False
    ports = pod["spec"]["containers"][0]["ports"]
    assert ports == [{"name": "metrics", "containerPort": 9100, "protocol": "TCP",
                      "hostPort": 9100}]


def test_services_and_slices() -> None:
    objs = _objects(orders_running=False)
    web = _by(objs, "Service", "web")
    assert web["spec"]["type"] == "NodePort" and web["spec"]["clusterIP"] == "10.43.0.20"
    assert web["spec"]["externalIPs"] == ["192.168.1.100"]
    assert web["spec"]["ports"][0]["nodePort"] == 30080
    assert web["spec"]["selector"] == {"app": "web"}
    slices = [o for o in objs if o["kind"] == "EndpointSlice"]
    by_svc = {s["metadata"]["labels"]["kubernetes.io/service-name"]: s for s in slices}
    assert by_svc["orders"]["endpoints"] == []
    assert by_svc["web"]["endpoints"][0]["addresses"] == ["10.42.0.11"]
    assert by_svc["kube-dns"]["ports"] == [{"name": "dns", "port": 53, "protocol": "UDP"}]
    assert by_svc["web"]["addressType"] == "IPv4"


def test_nodes_and_list() -> None:
    objs = _objects()
    node = _by(objs, "Node", "node2")
    assert node["spec"]["podCIDR"] == "10.42.1.0/24"
    assert {"type": "InternalIP", "address": "192.168.1.12"} in node["status"]["addresses"]
    doc = as_list(objs)
    assert doc["kind"] == "List" and doc["apiVersion"] == "v1" and doc["items"] is objs
