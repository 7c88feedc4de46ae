"""Discovery documents (/version, /api, /apis, /api/v1, /apis/GROUP[/VERSION]).

Only what clients read to find resources; the verbs say honestly that the stand-in
is read-only."""

from __future__ import annotations

from tracer.lab.apiserver.resources import RESOURCES, Obj, group_versions

KUBERNETES_VERSION = ("1", "31")
_VERBS = ["get", "list", "watch"]


def version_info() -> Obj:
    major, minor = KUBERNETES_VERSION
    return {"major": major, "minor": minor, "gitVersion": f"v{major}.{minor}.0-nodetrace-lab",
            "gitCommit": "", "gitTreeState": "clean", "buildDate": "1970-01-01T00:00:00Z",
            "goVersion": "", "compiler": "", "platform": "linux/amd64"}


def _address(server_address: str) -> list[Obj]:
    return [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]


def core_versions(server_address: str) -> Obj:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": _address(server_address)}


def _group(name: str) -> Obj:
    versions = [{"groupVersion": f"{g}/{v}", "version": v} for g, v in group_versions()
                if g == name]
    return {"name": name, "versions": versions, "preferredVersion": versions[0]}


def group_names() -> list[str]:
    return [g for g, _ in group_versions() if g]


def group_list() -> Obj:
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [_group(name) for name in dict.fromkeys(group_names())]}


def group(name: str) -> Obj | None:
    if name not in group_names():
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name)}


def resource_list(api_version: str) -> Obj | None:
    served = [r for r in RESOURCES if r.api_version == api_version]
    if not served:
        return None
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": api_version,
            "resources": [{"name": r.plural, "singularName": r.singular,
                           "namespaced": r.namespaced, "kind": r.kind, "verbs": _VERBS,
                           **({"shortNames": list(r.short_names)} if r.short_names else {})}
                          for r in served]}
