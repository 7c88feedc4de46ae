"""The lab's Kubernetes objects, in the exact JSON shapes an API server returns:
Pods, Services, EndpointSlices, Nodes and Namespaces, rendered from the desired
cluster and the containers' live state (restart counts, CrashLoopBackOff)."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from tracer.lab.cluster import APISERVER_PORT, Cluster, Node, Pod, Service

Obj = dict[str, Any]


@dataclass(frozen=True)
class ContainerState:
    """What kubelet knows about a pod's one container (supervisor status or a pid)."""
    running: bool = True
    restart_count: int = 0
    started_at: float | None = None
    waiting_reason: str | None = None         # CrashLoopBackOff
    last_exit_code: int | None = None
    last_message: str = ""
    last_started_at: float | None = None
    last_finished_at: float | None = None


def ts(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch or time.time()))


def _suffix(text: str, n: int = 5) -> str:
    # the alphabet Kubernetes uses for generated names (no vowels, no confusables)
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    digest = hashlib.sha256(text.encode()).digest()
    return "".join(alphabet[b % len(alphabet)] for b in digest[:n])


def _uid(kind: str, namespace: str, name: str) -> str:
    h = hashlib.sha256(f"{kind}/{namespace}/{name}".encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def pod_object(cluster: Cluster, pod: Pod, state: ContainerState, created: float) -> Obj:
    node = cluster.node(pod.node)
    c = pod.container
    meta: Obj = {"name": pod.name, "namespace": pod.namespace, "uid": pod.uid,
                 "labels": pod.label_dict(), "creationTimestamp": ts(created)}
    if pod.owner:
        meta["generateName"] = f"{pod.owner}-"
        meta["labels"] = {**meta["labels"], "pod-template-hash": pod.owner.rsplit("-", 1)[-1]}
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                    "name": pod.owner, "uid": _uid("ReplicaSet", pod.namespace,
                                                                   pod.owner),
                                    "controller": True, "blockOwnerDeletion": True}]
    ports = []
    for p in c.ports:
        port: Obj = {"name": p.name, "containerPort": p.port, "protocol": p.protocol}
        if p.host_port:
            port["hostPort"] = p.host_port
        ports.append(port)
    spec: Obj = {"nodeName": pod.node, "restartPolicy": "Always",
                 "schedulerName": "default-scheduler", "serviceAccountName": "default",
                 "dnsPolicy": "ClusterFirstWithHostNet" if pod.host_network else "ClusterFirst",
                 "containers": [{"name": c.name, "image": c.image, "ports": ports,
                                 "imagePullPolicy": "IfNotPresent"}]}
    if pod.host_network:
        spec["hostNetwork"] = True
    cid = f"containerd://{pod.container_id}"
    status: Obj = {"name": c.name, "image": c.image, "imageID": f"docker.io/{c.image}@sha256:"
                   + hashlib.sha256(c.image.encode()).hexdigest(),
                   "containerID": cid, "restartCount": state.restart_count,
                   "ready": state.running, "started": state.running}
    if state.running:
        status["state"] = {"running": {"startedAt": ts(state.started_at or created)}}
    elif state.waiting_reason:
        status["state"] = {"waiting": {
            "reason": state.waiting_reason,
            "message": f"back-off restarting failed container={c.name} "
                       f"pod={pod.name}_{pod.namespace}({pod.uid})"}}
    else:
        status["state"] = {"terminated": {"exitCode": state.last_exit_code or 0,
                                          "reason": "Completed", "containerID": cid,
                                          "startedAt": ts(state.last_started_at),
                                          "finishedAt": ts(state.last_finished_at)}}
    if state.last_exit_code is not None and (state.running or state.waiting_reason):
        status["lastState"] = {"terminated": {
            "exitCode": state.last_exit_code,
            "reason": "Error" if state.last_exit_code else "Completed",
            "message": state.last_message, "containerID": cid,
            "startedAt": ts(state.last_started_at), "finishedAt": ts(state.last_finished_at)}}
    else:
        status["lastState"] = {}
    ready = "True" if state.running else "False"
    conditions = [{"type": t, "status": s, "lastProbeTime": None,
                   "lastTransitionTime": ts(created)}
                  for t, s in (("PodReadyToStartContainers", "True"), ("Initialized", "True"),
                               ("Ready", ready), ("ContainersReady", ready),
                               ("PodScheduled", "True"))]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec,
            "status": {"phase": "Running", "conditions": conditions, "hostIP": node.ip,
                       "hostIPs": [{"ip": node.ip}], "podIP": pod.address,
                       "podIPs": [{"ip": pod.address}], "startTime": ts(created),
                       "qosClass": "BestEffort", "containerStatuses": [status]}}


def service_object(svc: Service, created: float) -> Obj:
    ports = []
    for p in svc.ports:
        port: Obj = {"name": p.name, "port": p.port, "protocol": p.protocol,
                     "targetPort": p.target_port}
        if p.node_port:
            port["nodePort"] = p.node_port
        ports.append(port)
    spec: Obj = {"type": svc.type, "clusterIP": svc.cluster_ip, "clusterIPs": [svc.cluster_ip],
                 "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                 "selector": dict(svc.selector), "ports": ports,
                 "sessionAffinity": "None", "internalTrafficPolicy": "Cluster"}
    if svc.type == "NodePort":
        spec["externalTrafficPolicy"] = "Cluster"
    if svc.external_ips:
        spec["externalIPs"] = list(svc.external_ips)
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": svc.name, "namespace": svc.namespace,
                         "uid": _uid("Service", svc.namespace, svc.name),
                         "labels": {"app.kubernetes.io/name": svc.name},
                         "creationTimestamp": ts(created)},
            "spec": spec, "status": {"loadBalancer": {}}}


def endpointslice_object(cluster: Cluster, svc: Service, created: float) -> Obj:
    endpoints = []
    for pod in cluster.selected(svc.namespace, svc.selector):
        ready = pod in cluster.endpoints(svc)
        endpoints.append({"addresses": [pod.address],
                          "conditions": {"ready": ready, "serving": ready,
                                         "terminating": False},
                          "nodeName": pod.node,
                          "targetRef": {"kind": "Pod", "namespace": pod.namespace,
                                        "name": pod.name, "uid": pod.uid}})
    name = f"{svc.name}-{_suffix(svc.namespace + svc.name)}"
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": svc.namespace,
                         "uid": _uid("EndpointSlice", svc.namespace, name),
                         "generateName": f"{svc.name}-", "creationTimestamp": ts(created),
                         "labels": {"kubernetes.io/service-name": svc.name,
                                    "endpointslice.kubernetes.io/managed-by":
                                        "endpointslice-controller.k8s.io"},
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Service",
                                              "name": svc.name,
                                              "uid": _uid("Service", svc.namespace, svc.name),
                                              "controller": True,
                                              "blockOwnerDeletion": True}]},
            "addressType": "IPv4", "endpoints": endpoints,
            "ports": [{"name": p.name, "port": p.target_port, "protocol": p.protocol}
                      for p in svc.ports]}


def node_object(node: Node, created: float) -> Obj:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": node.name, "uid": _uid("Node", "", node.name),
                         "creationTimestamp": ts(created),
                         "labels": {"kubernetes.io/hostname": node.name,
                                    "kubernetes.io/os": "linux",
                                    "kubernetes.io/arch": "amd64"},
                         "annotations": {"flannel.alpha.coreos.com/backend-type": "host-gw",
                                         "flannel.alpha.coreos.com/public-ip": node.ip}},
            "spec": {"podCIDR": node.pod_cidr, "podCIDRs": [node.pod_cidr]},
            "status": {"addresses": [{"type": "InternalIP", "address": node.ip},
                                     {"type": "Hostname", "address": node.name}],
                       "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                       "conditions": [{"type": "Ready", "status": "True",
                                       "reason": "KubeletReady",
                                       "message": "kubelet is posting ready status",
                                       "lastHeartbeatTime": ts(None),
                                       "lastTransitionTime": ts(created)}]}}


def namespace_object(name: str, created: float) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "uid": _uid("Namespace", "", name),
                         "labels": {"kubernetes.io/metadata.name": name},
                         "creationTimestamp": ts(created)},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


def cluster_objects(cluster: Cluster, states: dict[str, ContainerState] | None = None,
                    created: float | None = None) -> list[Obj]:
    """Every object of the lab; `states` by pod name (default: running, no restarts)."""
    t = created or time.time()
    states = states or {}
    namespaces = sorted({p.namespace for p in cluster.pods}
                        | {s.namespace for s in cluster.services})
    objs = [namespace_object(n, t) for n in namespaces]
    objs += [node_object(n, t) for n in cluster.nodes]
    objs += [pod_object(cluster, p, states.get(p.name, ContainerState()), t)
             for p in cluster.pods]
    objs += [service_object(s, t) for s in cluster.services]
    objs += [endpointslice_object(cluster, s, t) for s in cluster.services]
    return objs


def as_list(objects: list[Obj]) -> Obj:
    """A `kubectl get -o json` List of the objects."""
    return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
            "items": objects}


def apiserver_url() -> str:
    return f"http://127.0.0.1:{APISERVER_PORT}"
