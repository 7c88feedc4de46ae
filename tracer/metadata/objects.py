"""Slim copies of Kubernetes objects: the fields nodetrace resolves with, in the
object's own JSON shape (so a slim copy is still a valid object for `kubectl get -o
json` readers and for recordings).  A full Pod is 5-10 KiB of JSON; its slim copy is a
few hundred bytes, which is what makes 10 k pods cheap to hold."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Obj = dict[str, Any]
KINDS = ("Pod", "Service", "EndpointSlice", "Node")


def _meta(obj: Obj, labels: bool = False) -> Obj:
    m = obj.get("metadata") or {}
    out: Obj = {"name": m.get("name", ""), "uid": m.get("uid", "")}
    if m.get("namespace"):
        out["namespace"] = m["namespace"]
    # no resourceVersion: an object whose slim copy is unchanged (a Node heartbeat, a
    # Pod's conditions) must not count as a change
    if labels and m.get("labels"):
        out["labels"] = dict(m["labels"])
    return out


def slim_pod(obj: Obj) -> Obj:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    out_spec: Obj = {"nodeName": spec.get("nodeName")}
    if spec.get("hostNetwork"):
        out_spec["hostNetwork"] = True
    ips = [i.get("ip") for i in status.get("podIPs") or [] if i.get("ip")]
    if not ips and status.get("podIP"):
        ips = [status["podIP"]]
    out_status: Obj = {"phase": status.get("phase"), "podIPs": [{"ip": ip} for ip in ips]}
    if ips:
        out_status["podIP"] = ips[0]
    if status.get("hostIP"):
        out_status["hostIP"] = status["hostIP"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": _meta(obj, labels=True),
            "spec": out_spec, "status": out_status}


def slim_service(obj: Obj) -> Obj:
    spec = obj.get("spec") or {}
    keep = ("type", "clusterIP", "clusterIPs", "externalIPs", "selector")
    out_spec: Obj = {k: spec[k] for k in keep if spec.get(k) is not None}
    out_spec["ports"] = [{k: p[k] for k in ("name", "port", "targetPort", "nodePort",
                                           "protocol") if p.get(k) is not None}
                         for p in spec.get("ports") or []]
    ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    status: Obj = {"loadBalancer": {"ingress": [
        {k: i[k] for k in ("ip", "hostname") if i.get(k)} for i in ingress]}}
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(obj, labels=True),
            "spec": out_spec, "status": status}


def slim_endpointslice(obj: Obj) -> Obj:
    meta = _meta(obj)
    svc = ((obj.get("metadata") or {}).get("labels") or {}).get("kubernetes.io/service-name")
    if svc:
        meta["labels"] = {"kubernetes.io/service-name": svc}
    endpoints = []
    for ep in obj.get("endpoints") or []:
        e: Obj = {"addresses": list(ep.get("addresses") or [])}
        if ep.get("conditions"):
            e["conditions"] = {k: v for k, v in ep["conditions"].items() if v is not None}
        ref = ep.get("targetRef")
        if ref:
            e["targetRef"] = {k: ref[k] for k in ("kind", "namespace", "name", "uid")
                              if ref.get(k)}
        if ep.get("nodeName"):
            e["nodeName"] = ep["nodeName"]
        endpoints.append(e)
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": meta,
            "addressType": obj.get("addressType", "IPv4"), "endpoints": endpoints,
            "ports": [{k: p[k] for k in ("name", "port", "protocol") if p.get(k) is not None}
                      for p in obj.get("ports") or []]}


def slim_node(obj: Obj) -> Obj:
    spec = obj.get("spec") or {}
    cidrs = list(spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else []))
    out_spec: Obj = {"podCIDRs": cidrs}
    if cidrs:
        out_spec["podCIDR"] = cidrs[0]
    addrs = [{"type": a.get("type"), "address": a.get("address")}
             for a in (obj.get("status") or {}).get("addresses") or []]
    return {"apiVersion": "v1", "kind": "Node", "metadata": _meta(obj, labels=True),
            "spec": out_spec, "status": {"addresses": addrs}}


SLIM: dict[str, Callable[[Obj], Obj]] = {
    "Pod": slim_pod, "Service": slim_service, "EndpointSlice": slim_endpointslice,
    "Node": slim_node,
}


def key_of(obj: Obj) -> tuple[str, str]:
    m = obj.get("metadata") or {}
    return (m.get("namespace") or "", m.get("name") or "")
