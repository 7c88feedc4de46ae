"""The lab's Kubernetes API stand-in, driven by the real `kubernetes` client.

Everything listens on 127.0.0.1 with port 0.  Watches replay from a known
resourceVersion and carry timeout_seconds, so no test depends on thread timing
to see its events, and none can hang."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kubernetes import client, config, watch

from tracer.lab.apiserver import (
    ApiServer,
    InvalidObjectError,
    ObjectStore,
    ResourceExpiredError,
    dump_list,
    load_list,
    write_kubeconfig,
)

pytestmark = pytest.mark.timeout(30)

Obj = dict[str, Any]
REPO = Path(__file__).resolve().parents[2]


def pod(name: str, node: str, labels: dict[str, str], ip: str, ns: str = "default") -> Obj:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "lab"}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}}


def node(name: str, ip: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name,
            "labels": {"kubernetes.io/hostname": name}},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}]}}


def service(name: str, cluster_ip: str, selector: dict[str, str]) -> Obj:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"clusterIP": cluster_ip, "type": "ClusterIP", "selector": selector,
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080,
                                "protocol": "TCP"}]}}


def slice_(name: str, svc: str, ips: list[str]) -> Obj:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": "default",
                         "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}


def lab_objects() -> list[Obj]:
    return [
        node("node1", "172.18.0.2"), node("node2", "172.18.0.3"),
        pod("web-1", "node1", {"app": "web", "tier": "frontend"}, "10.244.1.5"),
        pod("web-2", "node2", {"app": "web", "tier": "frontend"}, "10.244.2.7"),
        pod("db-1", "node1", {"app": "db"}, "10.244.1.9"),
        pod("dns-1", "node2", {"k8s-app": "kube-dns"}, "10.244.2.2", ns="kube-system"),
        service("web", "10.96.0.10", {"app": "web"}),
        slice_("web-x1", "web", ["10.244.1.5", "10.244.2.7"]),
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}},
    ]


@pytest.fixture
def store() -> ObjectStore:
    store = ObjectStore()
    store.sync(lab_objects())
    return store


@pytest.fixture
def server(store: ObjectStore) -> Iterator[ApiServer]:
    with ApiServer(store, bookmark_interval_s=0.2) as srv:
        yield srv


@pytest.fixture
def api(server: ApiServer, tmp_path: Path) -> Iterator[client.ApiClient]:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url)
    api_client = config.new_client_from_config(config_file=str(kubeconfig))
    yield api_client
    api_client.close()


def names(items: list[Any]) -> list[str]:
    return sorted(i.metadata.name for i in items)


def events(stream: Iterator[Obj]) -> list[tuple[str, str | None]]:
    return [(e["type"], e["raw_object"].get("metadata", {}).get("name")) for e in stream]


# --- the kubeconfig and lists ---------------------------------------------------------

def test_kubeconfig_is_private_and_loads(server: ApiServer, tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "kc", server.url, context="lab-a")
    assert path.stat().st_mode & 0o777 == 0o600
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(path), client_configuration=cfg)
    assert cfg.host == server.url
    _contexts, active = config.list_kube_config_contexts(config_file=str(path))
    assert active["name"] == "lab-a"


def test_list_pods_with_selectors(api: client.ApiClient, store: ObjectStore) -> None:
    v1 = client.CoreV1Api(api)
    everything = v1.list_pod_for_all_namespaces()
    assert isinstance(everything, client.V1PodList)
    assert names(everything.items) == ["db-1", "dns-1", "web-1", "web-2"]
    assert everything.metadata.resource_version == store.resource_version
    assert names(v1.list_namespaced_pod("default").items) == ["db-1", "web-1", "web-2"]
    assert names(v1.list_namespaced_pod("kube-system").items) == ["dns-1"]
    assert names(v1.list_namespaced_pod("nowhere").items) == []
    assert names(v1.list_pod_for_all_namespaces(label_selector="app=web").items) == \
        ["web-1", "web-2"]
    assert names(v1.list_pod_for_all_namespaces(label_selector="app in (db),!tier").items) \
        == ["db-1"]
    assert names(v1.list_pod_for_all_namespaces(label_selector="app!=web").items) == \
        ["db-1", "dns-1"]
    # What the tracer sends for "pods on this node".
    local = v1.list_pod_for_all_namespaces(field_selector="spec.nodeName=node1")
    assert names(local.items) == ["db-1", "web-1"]
    assert names(v1.list_pod_for_all_namespaces(
        field_selector="spec.nodeName=node1,metadata.name!=db-1",
        label_selector="tier").items) == ["web-1"]
    assert names(v1.list_pod_for_all_namespaces(field_selector="metadata.name=dns-1").items) \
        == ["dns-1"]
    assert local.items[0].status.pod_ip == "10.244.1.9"


def test_list_items_look_like_the_real_api(server: ApiServer) -> None:
    with urllib.request.urlopen(f"{server.url}/api/v1/pods?labelSelector=app%3Ddb") as r:
        body = json.load(r)
    assert body["kind"] == "PodList" and body["apiVersion"] == "v1"
    # Items of a typed list carry no kind/apiVersion, as from a real API server.
    (item,) = body["items"]
    assert "kind" not in item and "apiVersion" not in item
    meta = item["metadata"]
    assert meta["uid"] and meta["creationTimestamp"].endswith("Z")
    assert int(meta["resourceVersion"]) <= int(body["metadata"]["resourceVersion"])


def test_services_endpointslices_nodes_namespaces(api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    discovery_v1 = client.DiscoveryV1Api(api)
    (svc,) = v1.list_service_for_all_namespaces().items
    assert svc.spec.cluster_ip == "10.96.0.10" and svc.spec.ports[0].port == 80
    assert v1.read_namespaced_service("web", "default").spec.selector == {"app": "web"}
    slices = discovery_v1.list_endpoint_slice_for_all_namespaces(
        label_selector="kubernetes.io/service-name=web")
    assert isinstance(slices, client.V1EndpointSliceList)
    (eps,) = slices.items
    assert eps.address_type == "IPv4"
    assert [e.addresses[0] for e in eps.endpoints] == ["10.244.1.5", "10.244.2.7"]
    assert names(discovery_v1.list_namespaced_endpoint_slice("default").items) == ["web-x1"]
    assert discovery_v1.read_namespaced_endpoint_slice("web-x1", "default").ports[0].port \
        == 8080
    assert names(v1.list_node().items) == ["node1", "node2"]
    assert v1.read_node("node2").status.addresses[0].address == "172.18.0.3"
    assert names(v1.list_node(label_selector="kubernetes.io/hostname=node1").items) == \
        ["node1"]
    assert names(v1.list_namespace().items) == ["default"]
    assert v1.read_namespace("default").metadata.name == "default"
    assert v1.read_namespaced_pod("dns-1", "kube-system").spec.node_name == "node2"


def test_errors_are_status_objects(api: client.ApiClient, server: ApiServer) -> None:
    v1 = client.CoreV1Api(api)
    with pytest.raises(client.ApiException) as missing:
        v1.read_namespaced_pod("nope", "default")
    assert missing.value.status == 404
    assert json.loads(missing.value.body or "")["reason"] == "NotFound"
    with pytest.raises(client.ApiException) as bad_labels:
        v1.list_pod_for_all_namespaces(label_selector="app in (web")
    assert bad_labels.value.status == 400
    with pytest.raises(client.ApiException) as bad_field:
        v1.list_pod_for_all_namespaces(field_selector="spec.bogus=1")
    assert bad_field.value.status == 400
    assert "field label not supported" in json.loads(bad_field.value.body or "")["message"]
    for path in ("/api/v1/widgets", "/api/v1/pods/web-1", "/apis/apps/v1/deployments",
                 "/api/v1/namespaces/default/nodes", "/nope"):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(server.url + path)
        assert err.value.code == 404
        assert json.load(err.value)["kind"] == "Status"
    request = urllib.request.Request(f"{server.url}/api/v1/namespaces/default/pods",
                                     data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as post:
        urllib.request.urlopen(request)
    assert post.value.code == 405


def test_discovery(api: client.ApiClient, server: ApiServer) -> None:
    assert client.VersionApi(api).get_code().major == "1"
    assert client.CoreApi(api).get_api_versions().versions == ["v1"]
    groups = client.ApisApi(api).get_api_versions().groups
    assert [g.name for g in groups] == ["discovery.k8s.io"]
    core = client.CoreV1Api(api).get_api_resources()
    assert {r.name: r.namespaced for r in core.resources} == {
        "pods": True, "services": True, "nodes": False, "namespaces": False}
    assert all(r.verbs == ["get", "list", "watch"] for r in core.resources)
    (eps,) = client.DiscoveryV1Api(api).get_api_resources().resources
    assert (eps.name, eps.kind) == ("endpointslices", "EndpointSlice")
    assert client.DiscoveryApi(api).get_api_group().preferred_version.version == "v1"


# --- watches ----------------------------------------------------------------------------

def test_watch_added_relabelled_deleted(api: client.ApiClient, store: ObjectStore) -> None:
    v1 = client.CoreV1Api(api)
    start = v1.list_namespaced_pod("default", label_selector="app=web").metadata.resource_version
    store.apply(pod("web-3", "node1", {"app": "web"}, "10.244.1.20"))
    store.apply(pod("web-3", "node1", {"app": "web", "v": "2"}, "10.244.1.20"))
    store.apply(pod("web-1", "node1", {"app": "legacy"}, "10.244.1.5"))  # relabelled away
    store.apply(pod("db-1", "node1", {"app": "web"}, "10.244.1.9"))  # relabelled in
    store.delete("Pod", "default", "web-2")
    store.delete("Pod", "default", "db-1")
    stream = watch.Watch().stream(v1.list_namespaced_pod, "default", label_selector="app=web",
                                  resource_version=start, timeout_seconds=1)
    got = list(stream)
    assert [(e["type"], e["object"].metadata.name) for e in got] == [
        ("ADDED", "web-3"), ("MODIFIED", "web-3"), ("DELETED", "web-1"), ("ADDED", "db-1"),
        ("DELETED", "web-2"), ("DELETED", "db-1")]
    assert isinstance(got[0]["object"], client.V1Pod)
    assert got[1]["object"].metadata.labels == {"app": "web", "v": "2"}
    # The object that left the selection is its last matching state, at the new version.
    assert got[2]["raw_object"]["metadata"]["labels"] == {"app": "web", "tier": "frontend"}
    versions = [int(e["raw_object"]["metadata"]["resourceVersion"]) for e in got]
    assert versions == sorted(versions) and versions[-1] == int(store.resource_version)


def test_watch_without_version_starts_with_current_state(api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    got = events(watch.Watch().stream(v1.list_pod_for_all_namespaces,
                                      field_selector="spec.nodeName=node2", timeout_seconds=1))
    assert got == [("ADDED", "web-2"), ("ADDED", "dns-1")]  # by namespace, then name


def test_watch_sees_changes_made_while_it_waits(api: client.ApiClient,
                                                store: ObjectStore) -> None:
    v1 = client.CoreV1Api(api)
    start = store.resource_version
    threading.Timer(0.3, store.apply,
                    [node("node3", "172.18.0.4")]).start()
    w = watch.Watch()
    began = time.monotonic()
    for event in w.stream(v1.list_node, resource_version=start, timeout_seconds=10):
        assert (event["type"], event["object"].metadata.name) == ("ADDED", "node3")
        w.stop()
    assert time.monotonic() - began < 5


def test_watch_bookmarks(api: client.ApiClient, store: ObjectStore) -> None:
    v1 = client.CoreV1Api(api)
    w = watch.Watch()
    got = list(w.stream(v1.list_namespaced_pod, "default", resource_version=store.resource_version,
                        allow_watch_bookmarks=True, timeout_seconds=1))
    assert len(got) >= 2 and {e["type"] for e in got} == {"BOOKMARK"}
    raw = got[0]["raw_object"]
    assert raw == {"kind": "Pod", "apiVersion": "v1",
                   "metadata": {"resourceVersion": store.resource_version}}
    # The client keeps the bookmark's version, to resume from it after a reconnect.
    assert w.resource_version == store.resource_version
    without = list(watch.Watch().stream(v1.list_node, resource_version=store.resource_version,
                                        timeout_seconds=1))
    assert without == []


def test_watch_initial_events_end_bookmark(server: ApiServer) -> None:
    url = (f"{server.url}/api/v1/nodes?watch=true&sendInitialEvents=true"
           "&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1")
    with urllib.request.urlopen(url) as r:
        assert r.headers["Transfer-Encoding"] == "chunked"
        lines = [json.loads(line) for line in r.read().splitlines()]
    assert [e["type"] for e in lines[:3]] == ["ADDED", "ADDED", "BOOKMARK"]
    assert lines[2]["object"]["metadata"]["annotations"] == {
        "k8s.io/initial-events-end": "true"}


def test_watch_too_old_version_is_410(tmp_path: Path) -> None:
    store = ObjectStore(history=3)
    for i in range(6):
        store.apply(node(f"n{i}", f"172.18.0.{i + 10}"))
    with pytest.raises(ResourceExpiredError):
        store.events_after(1)
    assert len(store.events_after(3)) == 3
    with ApiServer(store) as srv, config.new_client_from_config(
            config_file=str(write_kubeconfig(tmp_path / "kc", srv.url))) as c:
        v1 = client.CoreV1Api(c)
        # With timeout_seconds the client does not retry: the ERROR event becomes ApiException.
        with pytest.raises(client.ApiException) as err:
            list(watch.Watch().stream(v1.list_node, resource_version="1", timeout_seconds=5))
        assert err.value.status == 410
        assert "Expired" in str(err.value.reason)
        # Without it, the client re-watches once from the same version, then raises too.
        with pytest.raises(client.ApiException) as again:
            list(watch.Watch().stream(v1.list_node, resource_version="2"))
        assert again.value.status == 410
        # Raw: HTTP 200, then one ERROR event holding a Status, then the end of the stream.
        with urllib.request.urlopen(f"{srv.url}/api/v1/nodes?watch=1&resourceVersion=1") as r:
            (line,) = r.read().splitlines()
        event = json.loads(line)
        assert event["type"] == "ERROR"
        assert event["object"]["code"] == 410 and event["object"]["reason"] == "Expired"


def test_watch_ends_when_server_stops(api: client.ApiClient, server: ApiServer,
                                      store: ObjectStore) -> None:
    v1 = client.CoreV1Api(api)
    threading.Timer(0.3, server.stop).start()
    began = time.monotonic()
    got = list(watch.Watch().stream(v1.list_node, resource_version=store.resource_version,
                                    allow_watch_bookmarks=True, timeout_seconds=20))
    assert time.monotonic() - began < 3
    assert {e["type"] for e in got} <= {"BOOKMARK"}
    # Without timeout_seconds the client re-watches, and finds nobody listening.
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        list(watch.Watch().stream(v1.list_node, resource_version=store.resource_version))


def test_stop_closes_idle_keepalive_connections(api: client.ApiClient,
                                                server: ApiServer) -> None:
    client.CoreV1Api(api).list_node()  # leaves a pooled keep-alive connection
    before = threading.active_count()
    server.stop()
    deadline = time.monotonic() + 3
    while threading.active_count() >= before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert threading.active_count() < before


# --- the store --------------------------------------------------------------------------

def test_apply_bumps_versions_only_on_change(store: ObjectStore) -> None:
    before = store.resource_version
    first = store.apply(pod("web-1", "node1", {"app": "web", "tier": "frontend"},
                            "10.244.1.5"))
    assert store.resource_version == before  # unchanged: no new version, no event
    changed = store.apply(pod("web-1", "node1", {"app": "web"}, "10.244.1.5"))
    assert int(changed["metadata"]["resourceVersion"]) == int(before) + 1
    assert changed["metadata"]["uid"] == first["metadata"]["uid"]
    assert changed["metadata"]["creationTimestamp"] == first["metadata"]["creationTimestamp"]
    (event,) = store.events_after(int(before))
    assert event.type == "MODIFIED" and event.previous is not None


def test_new_uid_is_a_recreation(store: ObjectStore) -> None:
    before = int(store.resource_version)
    recreated = pod("web-1", "node1", {"app": "web"}, "10.244.1.77")
    recreated["metadata"]["uid"] = "0f6c2f52-0000-4000-8000-000000000001"
    store.apply(recreated)
    assert [e.type for e in store.events_after(before)] == ["DELETED", "ADDED"]


def test_delete(store: ObjectStore) -> None:
    gone = store.delete("Pod", "default", "web-1")
    assert gone is not None and gone["metadata"]["resourceVersion"] == store.resource_version
    assert store.delete("Pod", "default", "web-1") is None
    assert store.get("Pod", "default", "web-1") is None
    assert store.delete("Node", None, "node1") is not None
    assert [o["metadata"]["name"] for o in store.list("Node")] == ["node2"]


def test_list_selectors_in_process(store: ObjectStore) -> None:
    assert [p["metadata"]["name"] for p in store.list(
        "Pod", "default", label_selector="app", field_selector="spec.nodeName=node1")] == \
        ["db-1", "web-1"]


@pytest.mark.parametrize(("obj", "message"), [
    ({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}}, "not served"),
    ({"apiVersion": "v2", "kind": "Pod", "metadata": {"name": "p"}}, "apiVersion"),
    ({"apiVersion": "v1", "kind": "Pod", "metadata": {}}, "metadata.name"),
    ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": 1}}},
     "labels"),
    ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}, "containers"),
    ({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "s"},
      "endpoints": []}, "addressType"),
])
def test_rejects_objects_the_client_could_not_read(store: ObjectStore, obj: Obj,
                                                   message: str) -> None:
    before = store.resource_version
    with pytest.raises(InvalidObjectError, match=message):
        store.apply(obj)
    with pytest.raises(InvalidObjectError):
        store.sync([*lab_objects(), obj])  # all or nothing
    assert store.resource_version == before


def test_sync_applies_the_difference(store: ObjectStore) -> None:
    objects = lab_objects()
    objects[2]["metadata"]["labels"]["tier"] = "edge"  # web-1 modified
    del objects[3]  # web-2 deleted
    objects.append(pod("web-9", "node2", {"app": "web"}, "10.244.2.99"))
    result = store.sync(objects)
    assert (result.added, result.modified, result.deleted) == (1, 1, 1)
    assert store.sync(objects).__dict__ == {"added": 0, "modified": 0, "deleted": 0}


def test_dump_and_load_round_trip(store: ObjectStore, tmp_path: Path) -> None:
    path = dump_list(store, tmp_path / "objects.json")
    doc = json.loads(path.read_text())
    assert doc["kind"] == "List" and doc["apiVersion"] == "v1"
    assert all("kind" in item and "apiVersion" in item for item in doc["items"])
    loaded = load_list(path)
    copy = ObjectStore()
    copy.sync(loaded)
    assert copy.objects() == store.objects()


def test_load_typed_list_and_bad_files(tmp_path: Path) -> None:
    typed = tmp_path / "pods.json"
    typed.write_text(json.dumps({"apiVersion": "v1", "kind": "PodList", "items": [
        {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}]}))
    (item,) = load_list(typed)
    assert (item["kind"], item["apiVersion"]) == ("Pod", "v1")
    bad = tmp_path / "bad.json"
    for text in ("{", "[]", '{"kind": "List", "items": {}}'):
        bad.write_text(text)
        with pytest.raises(InvalidObjectError, match=r"bad\.json"):
            load_list(bad)


# --- the process: python -m tracer.lab.apiserver ----------------------------------------

def _wait_ready(path: Path, proc: subprocess.Popen[bytes], reloads: int = 0) -> Obj:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        if path.exists():
            ready: Obj = json.loads(path.read_text())
            if ready["reloads"] >= reloads:
                return ready
        time.sleep(0.02)
    raise AssertionError(f"no ready file {path} with reloads >= {reloads}")


def test_process_reloads_on_sighup_and_stops_on_sigterm(tmp_path: Path) -> None:
    objects_file = tmp_path / "objects.json"
    objects_file.write_text(json.dumps({"apiVersion": "v1", "kind": "List",
                                        "items": lab_objects()}))
    ready_file, kubeconfig = tmp_path / "ready.json", tmp_path / "kubeconfig"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracer.lab.apiserver", "--objects", str(objects_file),
         "--listen", "127.0.0.1:0", "--kubeconfig", str(kubeconfig),
         "--ready-file", str(ready_file), "--bookmark-interval", "0.2"],
        cwd=REPO, stderr=subprocess.PIPE)
    try:
        ready = _wait_ready(ready_file, proc)
        assert ready["pid"] == proc.pid and ready["url"].startswith("http://127.0.0.1:")
        with config.new_client_from_config(config_file=str(kubeconfig)) as api_client:
            v1 = client.CoreV1Api(api_client)
            start = v1.list_pod_for_all_namespaces().metadata.resource_version
            assert start == ready["resourceVersion"]

            objects = lab_objects()
            objects[2]["metadata"]["labels"]["tier"] = "edge"  # web-1 modified
            del objects[3]  # web-2 deleted
            objects.append(pod("web-9", "node2", {"app": "web"}, "10.244.2.99"))
            objects.append({"apiVersion": "apps/v1", "kind": "Deployment",
                            "metadata": {"name": "skipped"}})
            tmp = tmp_path / "objects.json.new"
            tmp.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))
            tmp.replace(objects_file)
            proc.send_signal(signal.SIGHUP)
            reloaded = _wait_ready(ready_file, proc, reloads=1)
            assert reloaded["reloadError"] is None

            got = events(watch.Watch().stream(v1.list_namespaced_pod, "default",
                                              resource_version=start, timeout_seconds=1))
            assert got == [("DELETED", "web-2"), ("MODIFIED", "web-1"), ("ADDED", "web-9")]

            # A broken file is reported and the old objects stay served.
            objects_file.write_text("{ not json")
            proc.send_signal(signal.SIGHUP)
            broken = _wait_ready(ready_file, proc, reloads=2)
            assert "objects.json" in broken["reloadError"]
            assert len(v1.list_namespaced_pod("default").items) == 3
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        assert time.monotonic() - began < 3
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


def test_process_refuses_a_bad_objects_file(tmp_path: Path) -> None:
    objects_file = tmp_path / "objects.json"
    objects_file.write_text(json.dumps({"kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "no-spec"}, "spec": {}}]}))
    proc = subprocess.run(
        [sys.executable, "-m", "tracer.lab.apiserver", "--objects", str(objects_file)],
        cwd=REPO, capture_output=True, timeout=20)
    assert proc.returncode == 1
    assert b"no-spec" in proc.stderr
