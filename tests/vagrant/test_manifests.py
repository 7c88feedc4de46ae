"""Every scenario manifest parses and validates against the Kubernetes OpenAPI schemas of
the pinned k3s's minor version (kubernetes-validate's bundled schemas, strict: an unknown
field is an error), offline; and fits the cluster the Vagrantfile builds."""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.vagrant.support import SCENARIOS_DIR, VagrantConfig, load_vagrantfile, manifests

CLUSTER_SCOPED = {"Namespace"}


@pytest.fixture(scope="module")
def cfg() -> VagrantConfig:
    return load_vagrantfile()


@pytest.fixture(scope="module")
def k8s_version(cfg: VagrantConfig) -> str:
    """v1.33.4+k3s1 -> 1.33: the schemas of the Kubernetes the cluster runs."""
    versions = {p["env"]["INSTALL_K3S_VERSION"] for m in cfg.machines.values()
                for p in m.provisioners if "INSTALL_K3S_VERSION" in p.get("env", {})}
    assert len(versions) == 1, versions
    m = re.fullmatch(r"v(\d+)\.(\d+)\.\d+\+k3s\d+", versions.pop())
    assert m, "unexpected k3s version format"
    return f"{m.group(1)}.{m.group(2)}"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Validation must not reach for a schema over the network: any attempt fails the test."""
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"network access during validation: {args!r}")
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield


def documents(path: Path) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs, f"{path}: empty"
    for d in docs:
        assert isinstance(d, dict) and d.get("apiVersion") and d.get("kind"), path
    return docs


def all_documents() -> list[tuple[Path, dict[str, Any]]]:
    return [(p, d) for p in manifests() for d in documents(p)]


def test_manifests_are_found() -> None:
    found = manifests()
    assert len(found) >= len([p for p in SCENARIOS_DIR.iterdir() if p.is_dir()])


@pytest.mark.parametrize("path", manifests(), ids=lambda p: p.relative_to(SCENARIOS_DIR).as_posix())
@pytest.mark.usefixtures("no_network")
def test_manifest_validates(path: Path, k8s_version: str) -> None:
    newest = tuple(map(int, kubernetes_validate.latest_version().split(".")[:2]))
    assert newest >= tuple(map(int, k8s_version.split("."))), "kubernetes-validate too old"
    for doc in documents(path):
        what = f"{path.relative_to(SCENARIOS_DIR)}: {doc['kind']} {doc['metadata']['name']}"
        error = ""
        try:
            validated = kubernetes_validate.validate(doc, k8s_version, strict=True)
        except kubernetes_validate.ValidationError as e:
            error = f"{'.'.join(map(str, e.path))}: {e.message}"
        except kubernetes_validate.SchemaNotFoundError as e:
            error = e.message
        assert not error, f"{what}: {error}"
        assert validated == k8s_version, f"{what}: validated against {validated}"


def test_objects_live_in_their_scenarios_namespace() -> None:
    for path, doc in all_documents():
        scenario = path.relative_to(SCENARIOS_DIR).parts[0]
        ns = f"nt-{scenario}"      # what scenarios/clean deletes and lib.sh waits on
        if doc["kind"] in CLUSTER_SCOPED:
            assert doc["metadata"]["name"] == ns, path
        else:
            assert doc["metadata"].get("namespace") == ns, f"{path}: {doc['metadata']}"
    for d in sorted(p for p in SCENARIOS_DIR.iterdir() if p.is_dir()):
        kinds = {(doc["kind"], doc["metadata"]["name"]) for doc in documents(d / "manifest.yaml")}
        assert ("Namespace", f"nt-{d.name}") in kinds, d.name


def test_pods_are_placed_on_cluster_nodes(cfg: VagrantConfig) -> None:
    nodes = set(cfg.machines) - {"nt-legacy"}
    for path, doc in all_documents():
        spec = pod_spec(doc)
        if spec is None:
            continue
        host = spec.get("nodeSelector", {}).get("kubernetes.io/hostname")
        assert host in nodes, f"{path}: {doc['metadata']['name']} pinned to {host!r}"


def test_service_addresses_fit_the_cluster(cfg: VagrantConfig) -> None:
    env = next(p["env"] for m in cfg.machines.values() for p in m.provisioners
               if "SERVICE_CIDR" in p.get("env", {}))
    service_cidr = ipaddress.ip_network(env["SERVICE_CIDR"])
    taken = {env["CLUSTER_DNS"]: "kube-dns"}
    node_ports: dict[int, str] = {}
    for path, doc in all_documents():
        if doc["kind"] != "Service":
            continue
        where = f"{path.relative_to(SCENARIOS_DIR)} {doc['metadata']['name']}"
        ip = doc["spec"].get("clusterIP")
        if ip:
            assert ipaddress.ip_address(ip) in service_cidr, where
            # scenarios may run side by side: no two Services may ask for one address
            assert ip not in taken, f"{where}: {ip} also in {taken[ip]}"
            taken[ip] = where
        for port in doc["spec"]["ports"]:
            if "nodePort" in port:
                assert 30000 <= port["nodePort"] <= 32767, where
                assert port["nodePort"] not in node_ports, f"{where}: {node_ports}"
                node_ports[port["nodePort"]] = where


def pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    if doc["kind"] == "Pod":
        spec: dict[str, Any] = doc["spec"]
        return spec
    if doc["kind"] in ("Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Job"):
        template: dict[str, Any] = doc["spec"]["template"]["spec"]
        return template
    return None
