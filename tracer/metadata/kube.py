"""The Kubernetes API provider: list, then watch from the list's resourceVersion, for
Pods, Services, EndpointSlices and Nodes, each on its own thread (off the event path).

- The official `kubernetes` client makes every request; lists and watches are read
  as raw JSON (`_preload_content=False`), so 10 k pods are not turned into model
  objects only to be turned back into slim dicts.
- Watches ask for bookmarks, so a reconnect resumes from a recent resourceVersion.
- `410 Gone` (an ERROR event or an HTTP 410), or a watch that ends: the next watch
  starts from the last resourceVersion seen; after a 410, list again.
- Errors back off exponentially (0.5 s .. 30 s, with jitter).  While the API cannot be
  reached the index keeps serving the last known state, and that is said once (a
  warning), and once more when the API is back.
- Nothing is printed on stdout: `load_kube_config` prints there on some paths, and
  stdout carries `-o jsonl`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracer.metadata.index import MetadataIndex
from tracer.util.errors import MetadataError

log = logging.getLogger(__name__)

Obj = dict[str, Any]
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 30.0
WATCH_TIMEOUT_S = 240       # server-side end of each watch (then a new one, same rv)
CONNECT_TIMEOUT_S = 5.0


class _Gone(Exception):
    """The watch's resourceVersion is too old: list again."""


@dataclass(frozen=True)
class KubeConfig:
    kubeconfig: str | None = None
    context: str | None = None


def _config_path(cfg: KubeConfig) -> str:
    return cfg.kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] \
        or str(Path.home() / ".kube" / "config")


SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def context_namespace(cfg: KubeConfig) -> str:
    """The namespace kubectl would use without -n: the kubeconfig context's (the one
    --context names, else the current one), in a pod its service account's, else
    "default".  A kubeconfig that cannot be read here is _load_client's to report."""
    from kubernetes import config

    path = _config_path(cfg)
    if Path(path).exists():
        with contextlib.redirect_stdout(sys.stderr), contextlib.suppress(Exception):
            contexts, current = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
                config_file=path)
            chosen = next((c for c in contexts if c.get("name") == cfg.context), None) \
                if cfg.context else current
            ns = ((chosen or {}).get("context") or {}).get("namespace")
            return str(ns) if ns else "default"
        return "default"
    if os.environ.get("KUBERNETES_SERVICE_HOST") and SA_NAMESPACE.is_file():
        return SA_NAMESPACE.read_text().strip() or "default"
    return "default"


def _load_client(cfg: KubeConfig) -> Any:
    """An ApiClient from --kubeconfig/--context, $KUBECONFIG, ~/.kube/config or the
    in-cluster service account.  stdout is sent to stderr meanwhile."""
    from kubernetes import client, config

    with contextlib.redirect_stdout(sys.stderr):
        try:
            path = _config_path(cfg)
            if cfg.kubeconfig or cfg.context or Path(path).exists():
                if not Path(path).exists():
                    raise MetadataError(f"kubeconfig {path} does not exist")
                return config.new_client_from_config(  # type: ignore[no-untyped-call]
                    config_file=path, context=cfg.context)
            if os.environ.get("KUBERNETES_SERVICE_HOST"):
                conf = client.Configuration()
                config.load_incluster_config(  # type: ignore[no-untyped-call]
                    client_configuration=conf)
                return client.ApiClient(conf)
        except MetadataError:
            raise
        except Exception as exc:  # ConfigException, yaml errors, missing context
            raise MetadataError(f"cannot load Kubernetes configuration: {exc}") from exc
    raise MetadataError("no Kubernetes configuration (no kubeconfig, not in a cluster)")


def configured(cfg: KubeConfig) -> bool:
    """Whether an API is configured at all (without contacting it)."""
    if cfg.kubeconfig or cfg.context or os.environ.get("KUBERNETES_SERVICE_HOST"):
        return True
    return Path(_config_path(cfg)).exists()


@dataclass(frozen=True)
class _Resource:
    kind: str
    list_fn: Callable[..., Any]


class _Health:
    """Says once that the API is unreachable, and once that it is back."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.down = False
        self.warnings = 0

    def failed(self, kind: str, exc: BaseException) -> None:
        with self._lock:
            if self.down:
                log.debug("%s: %s", kind, exc)
                return
            self.down = True
            self.warnings += 1
        log.warning("Kubernetes API unreachable (%s: %s); keeping the last known state "
                    "and retrying", kind, _brief(exc))

    def ok(self) -> None:
        with self._lock:
            if not self.down:
                return
            self.down = False
        log.info("Kubernetes API reachable again")


def _brief(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)   # urllib3: the connection error inside
    if isinstance(reason, BaseException):
        exc = reason
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


class KubeProvider:
    name = "kubernetes"

    def __init__(self, index: MetadataIndex, cfg: KubeConfig = KubeConfig(), *,
                 api_client: Any = None, watch_timeout_s: int = WATCH_TIMEOUT_S,
                 backoff_max_s: float = BACKOFF_MAX_S) -> None:
        self.index = index
        self.cfg = cfg
        self.api = api_client if api_client is not None else _load_client(cfg)
        # urllib3 warns on every retry: the provider says once that the API is down
        logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
        self.watch_timeout_s = watch_timeout_s
        self.backoff_max_s = backoff_max_s
        self.health = _Health()
        self.stats = {"lists": 0, "watches": 0, "gone": 0, "errors": 0, "events": 0}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._responses: set[Any] = set()
        self._resp_lock = threading.Lock()
        self._synced: set[str] = set()
        self._synced_event = threading.Event()
        from kubernetes import client

        core, discovery = client.CoreV1Api(self.api), client.DiscoveryV1Api(self.api)
        self.resources = [
            _Resource("Pod", core.list_pod_for_all_namespaces),
            _Resource("Service", core.list_service_for_all_namespaces),
            _Resource("EndpointSlice", discovery.list_endpoint_slice_for_all_namespaces),
            _Resource("Node", core.list_node),
        ]

    # --- lifecycle --------------------------------------------------------------------
    def start(self) -> KubeProvider:
        for res in self.resources:
            t = threading.Thread(target=self._run, args=(res,), daemon=True,
                                 name=f"k8s-{res.kind}")
            t.start()
            self._threads.append(t)
        return self

    def reachability(self) -> str:
        """"connected" (every kind listed, the last request answered), "unreachable"
        (the index serves the last known state) or "listing" (not listed yet)."""
        if self.health.down:
            return "unreachable"
        return "connected" if self._synced_event.is_set() else "listing"

    def wait_synced(self, timeout_s: float) -> bool:
        """Whether every kind has been listed once within the timeout."""
        return self._synced_event.wait(timeout_s)

    def stop(self, timeout_s: float = 3.0) -> None:
        self._stop.set()
        with self._resp_lock:
            responses = list(self._responses)
        for resp in responses:
            _shutdown(resp)
        for t in self._threads:
            t.join(timeout_s)
        with contextlib.suppress(Exception):
            self.api.close()

    def __enter__(self) -> KubeProvider:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # --- one kind ---------------------------------------------------------------------
    def _run(self, res: _Resource) -> None:
        delay = BACKOFF_MIN_S
        rv: str | None = None
        while not self._stop.is_set():
            try:
                if rv is None:
                    rv = self._list(res)
                    self.health.ok()
                    delay = BACKOFF_MIN_S
                rv = self._watch(res, rv)
                delay = BACKOFF_MIN_S
            except _Gone:
                self.stats["gone"] += 1
                log.info("%s watch: resourceVersion %s expired (410); listing again",
                         res.kind, rv)
                rv = None
            except Exception as exc:  # urllib3 and ApiException alike: back off, retry
                if self._stop.is_set():
                    break
                self.stats["errors"] += 1
                if getattr(exc, "status", None) == 410:
                    rv = None
                    continue
                self.health.failed(res.kind, exc)
                self._stop.wait(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, self.backoff_max_s)

    def _list(self, res: _Resource) -> str:
        resp = res.list_fn(_preload_content=False,
                           _request_timeout=(CONNECT_TIMEOUT_S, 60))
        try:
            doc = json.loads(resp.data)
        finally:
            resp.release_conn()
        items = doc.get("items") or []
        for item in items:  # typed lists carry no kind
            item.setdefault("kind", res.kind)
        self.index.replace(res.kind, items, source=self.name)
        self.stats["lists"] += 1
        if res.kind not in self._synced:
            self._synced.add(res.kind)
            if len(self._synced) == len(self.resources):
                self.index.synced.add(self.name)
                self._synced_event.set()
        rv: str = (doc.get("metadata") or {}).get("resourceVersion") or "0"
        log.debug("listed %d %s at resourceVersion %s", len(items), res.kind, rv)
        return rv

    def _watch(self, res: _Resource, rv: str) -> str:
        """Follow changes from `rv` until the server ends the watch; returns the last
        resourceVersion seen.  Raises _Gone on 410."""
        timeout = int(self.watch_timeout_s * random.uniform(0.9, 1.1)) or 1
        resp = res.list_fn(watch=True, resource_version=rv, allow_watch_bookmarks=True,
                           timeout_seconds=timeout, _preload_content=False,
                           _request_timeout=(CONNECT_TIMEOUT_S, timeout + 30))
        self.stats["watches"] += 1
        with self._resp_lock:
            self._responses.add(resp)
        try:
            answered = False
            for line in _lines(resp):
                if self._stop.is_set():
                    break
                if not answered:
                    # reachable: the watch delivered something (a server that is going
                    # away may still accept a watch and end it at once)
                    answered = True
                    self.health.ok()
                event = json.loads(line)
                etype, obj = event.get("type"), event.get("object") or {}
                if etype == "ERROR":
                    if obj.get("code") == 410:
                        raise _Gone()
                    raise MetadataError(f"{res.kind} watch error: {obj.get('message')}")
                rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                if etype == "BOOKMARK":
                    continue
                action = {"ADDED": "added", "MODIFIED": "updated",
                          "DELETED": "deleted"}.get(str(etype))
                if action is None:
                    continue
                obj.setdefault("kind", res.kind)
                self.stats["events"] += 1
                self.index.apply(res.kind, action, obj, source=self.name)
        finally:
            with self._resp_lock:
                self._responses.discard(resp)
            with contextlib.suppress(Exception):
                resp.close()
                resp.release_conn()
        return rv


def _lines(resp: Any) -> Iterator[str]:
    from kubernetes.watch.watch import iter_resp_lines

    for line in iter_resp_lines(resp):  # type: ignore[no-untyped-call]
        if line.strip():
            yield line


def _shutdown(resp: Any) -> None:
    """Unblock a thread reading a watch: shut the socket down under it."""
    import socket

    with contextlib.suppress(Exception):
        sock = getattr(getattr(resp, "connection", None), "sock", None)
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
