"""The metadata of a session: one index, the providers that feed it, this node's name.

    with Metadata(MetadataOptions(files=(Path("dump.json"),)), node_netns) as meta:
        meta.index.resolver().resolve("10.42.0.11", 8080)

Providers: every `--metadata` file (read at start; a bad file is a usage error), the
Kubernetes API when one is configured (kubeconfig, --kubeconfig/--context, in-cluster;
a broken configuration given explicitly is an error, one found by default is a
warning and the session goes on with local metadata), and always the node itself.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tracer.metadata.file import FileProvider
from tracer.metadata.index import DEFAULT_GRACE_S, MetadataIndex
from tracer.metadata.kube import KubeConfig, KubeProvider, configured
from tracer.metadata.local import LocalProvider
from tracer.metadata.resolver import node_addresses
from tracer.util.errors import MetadataError, UsageError

log = logging.getLogger(__name__)

INITIAL_SYNC_S = 5.0
API_HEALTH = {"connected": "API connected", "listing": "API listing",
              "unreachable": "API stale (unreachable, last known state)"}


@dataclass(frozen=True)
class MetadataOptions:
    kubeconfig: str | None = None
    context: str | None = None
    files: tuple[Path, ...] = ()
    use_api: bool = True
    use_local: bool = True
    node: str | None = None          # --node; default: found from addresses/hostname
    grace_s: float = DEFAULT_GRACE_S
    initial_sync_s: float = INITIAL_SYNC_S


class Metadata:
    def __init__(self, opts: MetadataOptions, node_netns: int,
                 local_addresses: Iterable[str] = ()) -> None:
        self.opts = opts
        self.node_netns = node_netns
        self.local_addresses = set(local_addresses)
        self.index = MetadataIndex(grace_s=opts.grace_s)
        self.kube: KubeProvider | None = None
        self.local: LocalProvider | None = None
        self.sources: list[str] = []

    def start(self) -> Metadata:
        if self.opts.files:
            counts = FileProvider(self.index, self.opts.files).load()
            self.sources.append("file")
            log.info("metadata from %s: %s", ", ".join(map(str, self.opts.files)),
                     ", ".join(f"{n} {k}" for k, n in counts.items() if n))
        cfg = KubeConfig(self.opts.kubeconfig, self.opts.context)
        if self.opts.use_api and configured(cfg):
            try:
                self.kube = KubeProvider(self.index, cfg).start()
            except MetadataError as exc:
                if cfg.kubeconfig or cfg.context:
                    raise UsageError(exc.message) from None
                log.warning("%s; names from the node only", exc.message)
            else:
                self.sources.append("kubernetes")
                if not self.kube.wait_synced(self.opts.initial_sync_s):
                    log.info("Kubernetes API not listed yet; going on, names follow")
        elif self.opts.use_api and not self.opts.files:
            log.info("no Kubernetes API configured: names from the node itself (pods "
                     "by cgroup and network namespace)")
        self.index.local_node = self.opts.node or self.detect_node()
        self.index.local_addresses = frozenset(self.local_addresses)
        self.index.start_builder()
        if self.opts.use_local:
            self.local = LocalProvider(self.index, self.node_netns).start()
            self.sources.append("local")
        return self

    def detect_node(self) -> str | None:
        """The Node holding one of our addresses, else the one named as our host."""
        nodes = self.index.objects("Node")
        for node in nodes:
            if self.local_addresses & set(node_addresses(node)):
                return str(node["metadata"]["name"])
        host = socket.gethostname()
        for node in nodes:
            if node["metadata"]["name"] in (host, host.split(".")[0]):
                return host if node["metadata"]["name"] == host else host.split(".")[0]
        return None

    def health(self) -> str:
        """Where names come from now and whether that source is current, for a display:
        "API connected", "API stale (unreachable, last known state)", "API listing",
        "file" or "local only" (files beside an API: "API connected + file")."""
        parts = []
        if self.kube is not None:
            parts.append(API_HEALTH[self.kube.reachability()])
        if "file" in self.sources:
            parts.append("file")
        return " + ".join(parts) or "local only"

    @property
    def knows_labels(self) -> bool:
        return "kubernetes" in self.sources or "file" in self.sources

    def close(self) -> None:
        self.index.close()
        if self.kube is not None:
            self.kube.stop()
        if self.local is not None:
            self.local.stop()

    def __enter__(self) -> Metadata:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()
