"""The Kubernetes provider with the real `kubernetes` client against the lab's API
stand-in (tracer/lab/apiserver): list, watch, bookmarks, 410, disconnects, an API that
goes away.  Everything on loopback, port 0 (or the port a stopped server had)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tracer.cli.main import build_parser
from tracer.cli.trace_cmd import selection_of
from tracer.lab.apiserver import ApiServer, ObjectStore, write_kubeconfig
from tracer.lab.cluster import build_cluster
from tracer.lab.objects import cluster_objects
from tracer.metadata.index import MetadataIndex
from tracer.metadata.kube import KubeConfig, KubeProvider
from tracer.metadata.names import EndpointName
from tracer.metadata.selectors import LabelSelector

pytestmark = pytest.mark.timeout(60)

Obj = dict[str, Any]
WEB_A = "10.42.0.11"


def wait_for(cond: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def new_pod(name: str, ip: str, labels: dict[str, str]) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": labels},
            "spec": {"nodeName": "node1", "containers": [{"name": "app", "image": "x"}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}}


def name_of(index: MetadataIndex, ip: str, port: int | None = None) -> EndpointName | None:
    return index.rebuild().resolve(ip, port)   # at once, not at the rebuild pace


def pod_name(index: MetadataIndex, ip: str) -> str | None:
    n = name_of(index, ip)
    return n.pod.name if n is not None and n.pod is not None else None


@pytest.fixture
def store() -> ObjectStore:
    s = ObjectStore(history=20)
    s.sync(cluster_objects(build_cluster()))
    return s


class Api:
    """An API stand-in that can be stopped and started again on the same port."""

    def __init__(self, store: ObjectStore, kubeconfig: Path) -> None:
        self.store = store
        self.server: ApiServer | None = ApiServer(store, bookmark_interval_s=0.2).start()
        self.port = self.server.address[1]
        self.kubeconfig = write_kubeconfig(kubeconfig, self.server.url)

    def stop(self) -> None:
        assert self.server is not None
        self.server.stop()
        self.server = None

    def start(self) -> None:
        self.server = ApiServer(self.store, "127.0.0.1", self.port,
                                bookmark_interval_s=0.2).start()


@pytest.fixture
def api(store: ObjectStore, tmp_path: Path) -> Iterator[Api]:
    a = Api(store, tmp_path / "kubeconfig")
    yield a
    if a.server is not None:
        a.server.stop()


@pytest.fixture
def index() -> MetadataIndex:
    return MetadataIndex(grace_s=0.5)


@pytest.fixture
def provider(api: Api, index: MetadataIndex) -> Iterator[KubeProvider]:
    p = KubeProvider(index, KubeConfig(kubeconfig=str(api.kubeconfig)), watch_timeout_s=2,
                     backoff_max_s=0.5).start()
    assert p.wait_synced(10)
    yield p
    p.stop()


def test_initial_list_resolves_every_kind(provider: KubeProvider, index: MetadataIndex) -> None:
    assert index.counts() == {"Pod": 9, "Service": 4, "EndpointSlice": 4, "Node": 2}
    web = name_of(index, WEB_A, 8080)
    assert web is not None and web.scope == "pod" and web.pod is not None
    assert (web.pod.namespace, web.pod.name, web.node) == ("default", "web-a", "node1")
    assert web.service is not None and web.service.name == "web"   # the Service it backs
    svc = name_of(index, "10.43.0.10", 53)
    assert svc is not None and svc.service is not None
    assert (svc.scope, svc.service.namespace, svc.service.name, svc.service.port) == \
        ("service", "kube-system", "kube-dns", 53)
    node = name_of(index, "192.168.1.12")
    assert node is not None and (node.scope, node.node) == ("node", "node2")
    ext = name_of(index, "192.168.2.10", 5432)
    assert ext is not None and ext.scope == "external"
    # nothing is held but the slim copies
    pod = index.objects("Pod")[0]
    assert set(pod) == {"apiVersion", "kind", "metadata", "spec", "status"}
    assert "containers" not in pod["spec"] and "conditions" not in pod["status"]


def test_watch_added_relabelled_deleted(provider: KubeProvider, index: MetadataIndex,
                                        store: ObjectStore) -> None:
    changes: list[tuple[str, str, str]] = []
    index.add_observer(lambda kind, action, obj, at: changes.append(
        (kind, action, obj["metadata"]["name"])))
    store.apply(new_pod("late", "10.42.0.50", {"app": "late"}))
    wait_for(lambda: pod_name(index, "10.42.0.50") == "late")
    assert ("Pod", "added", "late") in changes

    sel = LabelSelector.parse("app=later")
    assert index.select_pods(labels=sel) == []
    store.apply(new_pod("late", "10.42.0.50", {"app": "later"}))
    wait_for(lambda: [p["metadata"]["name"] for p in index.select_pods(labels=sel)] == ["late"])
    assert ("Pod", "updated", "late") in changes

    store.delete("Pod", "default", "late")
    wait_for(lambda: ("Pod", "deleted", "late") in changes)
    # kept for the grace period: late events still resolve ...
    assert pod_name(index, "10.42.0.50") == "late"
    assert index.select_pods(labels=sel) == []
    # ... then the address is just one of node1's pod range
    wait_for(lambda: pod_name(index, "10.42.0.50") is None, timeout_s=5)
    after = name_of(index, "10.42.0.50")
    assert after is not None and (after.scope, after.node) == ("pod", "node1")


def test_watch_ends_and_resumes_without_relisting(provider: KubeProvider,
                                                  store: ObjectStore,
                                                  index: MetadataIndex) -> None:
    # watches end every ~2 s (timeoutSeconds); each resumes from the last version seen
    wait_for(lambda: provider.stats["watches"] >= 8, timeout_s=15)
    store.apply(new_pod("resumed", "10.42.0.51", {"app": "x"}))
    wait_for(lambda: pod_name(index, "10.42.0.51") == "resumed")
    assert provider.stats["lists"] == 4 and provider.stats["gone"] == 0


def test_disconnect_keeps_state_warns_once_and_reconnects(
        provider: KubeProvider, api: Api, store: ObjectStore, index: MetadataIndex,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tracer.metadata.kube")
    api.stop()
    wait_for(lambda: provider.health.down, timeout_s=15)
    time.sleep(2.0)   # several failed attempts, one warning
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "unreachable" in warnings[0].getMessage()
    assert "keeping the last known state" in warnings[0].getMessage()
    assert pod_name(index, WEB_A) == "web-a"          # the last known state, still served
    store.apply(new_pod("while-down", "10.42.0.52", {"app": "x"}))
    api.start()
    wait_for(lambda: pod_name(index, "10.42.0.52") == "while-down", timeout_s=15)
    assert not provider.health.down
    assert any("reachable again" in r.getMessage() for r in caplog.records)
    # resumed from the last resourceVersion: the history still held it, no relist
    assert provider.stats["gone"] == 0 and provider.stats["lists"] == 4


def test_410_gone_lists_again(provider: KubeProvider, api: Api, store: ObjectStore,
                              index: MetadataIndex) -> None:
    api.stop()
    wait_for(lambda: provider.health.down, timeout_s=15)
    # more changes than the store's history (20) while nobody watches: the
    # resourceVersion the provider resumes from has expired
    for i in range(30):
        store.apply(new_pod("churn", f"10.42.0.{100 + i}", {"app": "churn"}))
    store.delete("Pod", "default", "web-a")
    api.start()
    wait_for(lambda: provider.stats["gone"] >= 1, timeout_s=15)
    wait_for(lambda: pod_name(index, "10.42.0.129") == "churn", timeout_s=15)
    assert provider.stats["lists"] > 4
    # the relist removed what was deleted while the watch was away (then its grace ends)
    wait_for(lambda: "web-a" not in {p["metadata"]["name"] for p in index.objects("Pod")})
    wait_for(lambda: pod_name(index, WEB_A) is None, timeout_s=5)


def test_api_down_from_the_start_serves_nothing_and_says_so_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tracer.metadata.kube")
    kubeconfig = write_kubeconfig(tmp_path / "kc", "http://127.0.0.1:9")  # discard port
    index = MetadataIndex()
    with KubeProvider(index, KubeConfig(kubeconfig=str(kubeconfig)),
                      backoff_max_s=0.2) as p:
        assert not p.wait_synced(1.5)
        assert p.stats["errors"] >= 3
    assert [r.levelno for r in caplog.records].count(logging.WARNING) == 1
    assert index.counts()["Pod"] == 0


def test_bookmarks_advance_the_resume_point(provider: KubeProvider, api: Api,
                                            store: ObjectStore, index: MetadataIndex) -> None:
    # changes to kinds the Service watch does not see move the global version; the
    # Service watch learns it from bookmarks, so its resume point is recent even
    # though no Service changed, and it survives a history that has moved on
    for i in range(25):   # paced: the live watches keep up with the 20-event history
        store.apply(new_pod("noise", f"10.42.0.{150 + i}", {"app": "noise"}))
        time.sleep(0.05)
    time.sleep(1.0)   # bookmarks every 0.2 s
    api.stop()
    api.start()
    svc = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "after", "namespace": "default"},
           "spec": {"clusterIP": "10.43.0.99", "type": "ClusterIP",
                    "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}
    store.apply(svc)
    wait_for(lambda: (n := name_of(index, "10.43.0.99", 80)) is not None
             and n.service is not None and n.service.name == "after", timeout_s=15)
    assert provider.stats["gone"] == 0


def test_nothing_on_stdout(api: Api, capfd: pytest.CaptureFixture[str]) -> None:
    index = MetadataIndex()
    with KubeProvider(index, KubeConfig(kubeconfig=str(api.kubeconfig))) as p:
        assert p.wait_synced(10)
    assert capfd.readouterr().out == ""


KUBECONFIG_TWO_CONTEXTS = """apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster: {server: "http://127.0.0.1:1"}
users:
- name: u
  user: {}
contexts:
- name: ops
  context: {cluster: lab, user: u, namespace: kube-system}
- name: plain
  context: {cluster: lab, user: u}
current-context: ops
"""


def test_without_n_the_namespace_is_the_contexts_as_kubectl_does(tmp_path: Path) -> None:
    cfg = tmp_path / "config"
    cfg.write_text(KUBECONFIG_TWO_CONTEXTS)

    def namespace(*argv: str) -> str | None:
        args = build_parser().parse_args(["trace", "--kubeconfig", str(cfg), *argv])
        sel = selection_of(args)
        assert sel is not None
        return sel.namespace

    assert namespace("-l", "app=web") == "kube-system"                 # current context
    assert namespace("-l", "app=web", "--context", "plain") == "default"
    assert namespace("-l", "app=web", "-n", "team-a") == "team-a"
    assert namespace("-l", "app=web", "-A") is None
    cfg.write_text("{not yaml: [")
    assert namespace("-l", "app=web") == "default"   # the API client says what is wrong
