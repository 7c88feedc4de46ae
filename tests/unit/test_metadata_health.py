"""What a display says of the metadata source (Metadata.health): the API connected,
stale while it is unreachable and connected again, files, the node only.  The API is
the lab's stand-in on loopback (tests/unit/test_metadata_kube.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.test_metadata_kube import Api, wait_for
from tracer.lab.apiserver import ObjectStore, write_kubeconfig
from tracer.lab.cluster import build_cluster
from tracer.lab.objects import cluster_objects
from tracer.metadata.index import MetadataIndex
from tracer.metadata.kube import KubeConfig, KubeProvider
from tracer.metadata.setup import Metadata, MetadataOptions

pytestmark = pytest.mark.timeout(60)

OBJECTS = Path(__file__).resolve().parent.parent / "data" / "diagnosis" / \
    "connection-refused.objects.json"
STALE = "API stale (unreachable, last known state)"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    store = ObjectStore(history=20)
    store.sync(cluster_objects(build_cluster()))
    a = Api(store, tmp_path / "kubeconfig")
    yield a
    if a.server is not None:
        a.server.stop()


def metadata(kubeconfig: Path | None = None, files: tuple[Path, ...] = (),
             use_api: bool = True) -> Metadata:
    return Metadata(MetadataOptions(kubeconfig=str(kubeconfig) if kubeconfig else None,
                                    files=files, use_api=use_api, use_local=False,
                                    initial_sync_s=10), node_netns=0)


def test_api_connected_then_stale_then_connected(api: Api) -> None:
    with metadata(kubeconfig=api.kubeconfig) as meta:
        assert meta.health() == "API connected"
        assert meta.kube is not None
        meta.kube.backoff_max_s = 0.5
        api.stop()
        wait_for(lambda: meta.health() == STALE, timeout_s=20)
        assert meta.index.counts()["Pod"] > 0          # the last known state, served
        api.start()
        wait_for(lambda: meta.health() == "API connected", timeout_s=20)


def test_api_and_files(api: Api) -> None:
    with metadata(kubeconfig=api.kubeconfig, files=(OBJECTS,)) as meta:
        assert meta.health() == "API connected + file"


def test_file_only_and_local_only() -> None:
    with metadata(files=(OBJECTS,), use_api=False) as meta:
        assert meta.health() == "file"
    with metadata(use_api=False) as meta:
        assert meta.health() == "local only"


def test_an_api_never_reached_is_listing_then_stale(tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kc", "http://127.0.0.1:9")  # discard port
    provider = KubeProvider(MetadataIndex(), KubeConfig(kubeconfig=str(kubeconfig)),
                            backoff_max_s=0.2)
    assert provider.reachability() == "listing"          # not asked yet
    with provider:
        wait_for(lambda: provider.reachability() == "unreachable")
