"""The resources the stand-in serves: names, scope, and the field selectors each
accepts (the same per-kind tables as the API server's registry strategies)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tracer.util.errors import TracerError

Obj = dict[str, Any]

_COMMON_FIELDS = ("metadata.name", "metadata.namespace")


class InvalidObjectError(TracerError):
    """An object the stand-in cannot hold: unknown kind, missing name, wrong shape."""


@dataclass(frozen=True)
class Resource:
    kind: str
    plural: str
    singular: str
    group: str  # "" for the core group
    version: str
    namespaced: bool
    short_names: tuple[str, ...]
    fields: tuple[str, ...]  # fieldSelector labels beyond metadata.name/namespace
    model: str  # the kubernetes client's model class for one object

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def selectable_fields(self) -> tuple[str, ...]:
        common = _COMMON_FIELDS if self.namespaced else _COMMON_FIELDS[:1]
        return common + self.fields


RESOURCES: tuple[Resource, ...] = (
    Resource("Pod", "pods", "pod", "", "v1", True, ("po",),
             ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
              "spec.serviceAccountName", "spec.hostNetwork", "status.phase",
              "status.podIP", "status.nominatedNodeName"), "V1Pod"),
    Resource("Service", "services", "service", "", "v1", True, ("svc",),
             ("spec.clusterIP", "spec.type"), "V1Service"),
    Resource("Node", "nodes", "node", "", "v1", False, ("no",), ("spec.unschedulable",),
             "V1Node"),
    Resource("Namespace", "namespaces", "namespace", "", "v1", False, ("ns",),
             ("status.phase",), "V1Namespace"),
    Resource("EndpointSlice", "endpointslices", "endpointslice", "discovery.k8s.io", "v1",
             True, (), (), "V1EndpointSlice"),
)

BY_KIND: dict[str, Resource] = {r.kind: r for r in RESOURCES}
_BY_PATH: dict[tuple[str, str], Resource] = {(r.api_version, r.plural): r for r in RESOURCES}


def by_path(api_version: str, plural: str) -> Resource | None:
    return _BY_PATH.get((api_version, plural))


def group_versions() -> list[tuple[str, str]]:
    """(group, version) pairs with a served resource, the core group first."""
    seen = dict.fromkeys((r.group, r.version) for r in RESOURCES)
    return sorted(seen, key=lambda gv: (gv[0] != "", gv))


def resource_of(obj: Obj) -> Resource:
    kind = obj.get("kind")
    resource = BY_KIND.get(kind) if isinstance(kind, str) else None
    if resource is None:
        served = ", ".join(sorted(BY_KIND))
        raise InvalidObjectError(f"kind {kind!r} is not served by the lab API server "
                                 f"(served: {served})")
    api_version = obj.get("apiVersion", resource.api_version)
    if api_version != resource.api_version:
        raise InvalidObjectError(f"{resource.kind} must have apiVersion "
                                 f"{resource.api_version!r}, not {api_version!r}")
    return resource


def check_client_shape(resource: Resource, obj: Obj) -> None:
    """Rejects what the official client cannot deserialize (a Pod without
    spec.containers, an endpoint without addresses).  The real API server validates
    far more strictly, so such an object could never reach the tracer from a real
    cluster; held here, it would crash the tracer's watch instead of the lab setup."""
    from kubernetes.client import models  # deferred: a third of a second to import

    try:
        getattr(models, resource.model).from_dict(obj)
    except (ValueError, TypeError) as err:  # pydantic's ValidationError is a ValueError
        name = obj.get("metadata", {}).get("name")
        raise InvalidObjectError(f"{resource.kind} {name!r} is not a valid "
                                 f"{resource.kind}: {err}") from err


def field_value(obj: Obj, path: str) -> str:
    """The string the API server compares a field selector with: booleans as
    "true"/"false", absent fields as "" (so `spec.nodeName=` finds unscheduled pods)."""
    node: Any = obj
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, bool):
        return "true" if node else "false"
    if node is None:
        # Unset booleans have their Go zero value.
        return "false" if path in ("spec.hostNetwork", "spec.unschedulable") else ""
    return str(node)
