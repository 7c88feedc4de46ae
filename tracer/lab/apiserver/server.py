"""ApiServer: the read-only HTTP face of an ObjectStore, speaking enough of the
Kubernetes API (lists, gets, chunked watches, discovery) for the official client."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tracer.lab.apiserver import discovery
from tracer.lab.apiserver.query import Query
from tracer.lab.apiserver.resources import Obj, Resource, by_path
from tracer.lab.apiserver.store import ObjectStore, ResourceExpiredError
from tracer.metadata.selectors import FieldSelector, SelectorError

log = logging.getLogger(__name__)

# Real API servers end a watch after a random 30-60 minutes; clients must re-watch.
DEFAULT_WATCH_TIMEOUT_S = 1800.0
# Real API servers send a bookmark about once a minute; the lab wants them sooner.
DEFAULT_BOOKMARK_INTERVAL_S = 1.0
# Upper bound on one wait, so a watch notices stop() even if it missed the wake-up.
_POLL_S = 0.25
_INITIAL_EVENTS_END = "k8s.io/initial-events-end"


def status(code: int, reason: str, message: str, details: Obj | None = None) -> Obj:
    """A metav1.Status failure, the body of every error response."""
    body: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                 "message": message, "reason": reason, "code": code}
    if details is not None:
        body["details"] = details
    return body


class _HttpError(Exception):
    def __init__(self, body: Obj):
        super().__init__(body["message"])
        self.body = body


def _bad_request(message: str) -> _HttpError:
    return _HttpError(status(400, "BadRequest", message))


def _not_found(message: str, details: Obj | None = None) -> _HttpError:
    return _HttpError(status(404, "NotFound", message, details))


def _encode(obj: Obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], api: ApiServer):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.api = api
        super().__init__(address, _Handler)


class ApiServer:
    """Serves `store` on http://host:port.  The socket is bound at construction, so
    `url` is known before `start()`.  Use as a context manager or call stop()."""

    def __init__(self, store: ObjectStore, host: str = "127.0.0.1", port: int = 0, *,
                 bookmark_interval_s: float = DEFAULT_BOOKMARK_INTERVAL_S,
                 watch_timeout_s: float = DEFAULT_WATCH_TIMEOUT_S) -> None:
        self.store = store
        self.bookmark_interval_s = bookmark_interval_s
        self.watch_timeout_s = watch_timeout_s
        self.stopping = threading.Event()
        self._httpd = _HttpServer((host, port), self)
        self._thread: threading.Thread | None = None
        self._lock = threading.Condition()
        self._connections: set[socket.socket] = set()
        self._watches = 0

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self) -> ApiServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                name=f"lab-apiserver-{self.address[1]}", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout_s: float = 3.0) -> None:
        """Stop accepting, end every watch with a clean end of stream, then close the
        idle keep-alive connections so no handler thread is left behind."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        self.store.wake()
        if self._thread is not None:
            self._httpd.shutdown()
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._watches and time.monotonic() < deadline:
                self._lock.wait(_POLL_S)
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):  # the handler closed it meanwhile
                conn.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    @contextmanager
    def _watching(self) -> Iterator[None]:
        with self._lock:
            self._watches += 1
        try:
            yield
        finally:
            with self._lock:
                self._watches -= 1
                self._lock.notify_all()


def _flag(params: dict[str, str], name: str) -> bool:
    return params.get(name, "").lower() in ("1", "true")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # chunked watch streams need it
    server: _HttpServer

    def setup(self) -> None:
        super().setup()
        self.server.api._track(self.request, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.api._track(self.request, False)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        try:
            self._route()
        except _HttpError as err:
            self._send_json(err.body["code"], err.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away mid-response

    def _read_only(self) -> None:
        self.close_connection = True  # the request body is not read
        self._send_json(405, status(405, "MethodNotAllowed",
                                    "the lab API server is read-only"))

    do_POST = do_PUT = do_PATCH = do_DELETE = _read_only

    def _send_json(self, code: int, body: Obj) -> None:
        data = _encode(body)
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self) -> None:
        url = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        parts = [unquote(p) for p in url.path.split("/") if p]
        doc = self._discovery(parts)
        if doc is not None:
            self._send_json(200, doc)
            return
        if parts[:2] == ["api", "v1"]:
            api_version, rest = "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            api_version, rest = f"{parts[1]}/{parts[2]}", parts[3:]
        else:
            raise _not_found(f"the server could not find the requested resource "
                             f"(get {url.path})")
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        resource = by_path(api_version, rest[0]) if rest else None
        name = rest[1] if len(rest) == 2 else None
        if (resource is None or len(rest) > 2
                or (namespace is not None and not resource.namespaced)
                or (namespace is None and resource.namespaced and name is not None)):
            raise _not_found(f"the server could not find the requested resource "
                             f"(get {url.path})")
        if _flag(params, "watch"):
            self._watch(self._query(resource, namespace, name, params), params)
        elif name is not None:
            self._get(resource, namespace, name)
        else:
            self._list(self._query(resource, namespace, None, params))

    def _discovery(self, parts: list[str]) -> Obj | None:
        match parts:
            case ["version"]:
                return discovery.version_info()
            case ["api"]:
                host, port = self.server.api.address
                return discovery.core_versions(f"{host}:{port}")
            case ["apis"]:
                return discovery.group_list()
            case ["api", "v1"]:
                return discovery.resource_list("v1")
            case ["apis", group]:
                return discovery.group(group)
            case ["apis", group, version]:
                return discovery.resource_list(f"{group}/{version}")
        return None

    def _query(self, resource: Resource, namespace: str | None, name: str | None,
               params: dict[str, str]) -> Query:
        try:
            query = Query.build(resource, namespace, params.get("labelSelector", ""),
                                params.get("fieldSelector", ""))
        except SelectorError as err:
            raise _bad_request(err.message) from err
        if name is not None:
            # Watching one object by path is a watch with a metadata.name selector.
            named = FieldSelector.parse(f"metadata.name={name}")
            query = Query(query.resource, query.namespace, query.labels,
                          FieldSelector(query.fields.requirements + named.requirements))
        return query

    def _get(self, resource: Resource, namespace: str | None, name: str) -> None:
        obj = self.server.api.store.get(resource.kind, namespace, name)
        if obj is None:
            details: Obj = {"name": name, "kind": resource.plural}
            if resource.group:
                details["group"] = resource.group
            raise _not_found(f'{resource.plural} "{name}" not found', details)
        self._send_json(200, obj)

    def _list(self, query: Query) -> None:
        items, rv = self.server.api.store.snapshot(query)
        for item in items:
            # Typed lists carry kind and apiVersion once, on the list, like the real API.
            item.pop("kind", None)
            item.pop("apiVersion", None)
        self._send_json(200, {"kind": f"{query.resource.kind}List",
                              "apiVersion": query.resource.api_version,
                              "metadata": {"resourceVersion": str(rv)}, "items": items})

    def _watch(self, query: Query, params: dict[str, str]) -> None:
        api = self.server.api
        requested = params.get("resourceVersion", "")
        try:
            cursor = int(requested) if requested else 0
            timeout_s = float(params.get("timeoutSeconds") or 0) or api.watch_timeout_s
        except ValueError as err:
            raise _bad_request(f"invalid resourceVersion or timeoutSeconds: {err}") from err
        send_initial = requested in ("", "0") or _flag(params, "sendInitialEvents")
        with api._watching():
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Cache-Control", "no-cache, private")
            self.end_headers()
            try:
                self._stream(query, cursor, send_initial, timeout_s,
                             _flag(params, "sendInitialEvents"),
                             _flag(params, "allowWatchBookmarks"))
            finally:
                if api.stopping.is_set():
                    self.close_connection = True
            self.wfile.write(b"0\r\n\r\n")

    def _event(self, type_: str, obj: Obj) -> None:
        data = _encode({"type": type_, "object": obj}) + b"\n"
        # One event per chunk: the client yields each line as soon as its chunk arrives.
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    def _bookmark(self, resource: Resource, rv: int, initial_end: bool = False) -> None:
        meta: Obj = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {_INITIAL_EVENTS_END: "true"}
        self._event("BOOKMARK", {"kind": resource.kind, "apiVersion": resource.api_version,
                                 "metadata": meta})

    def _stream(self, query: Query, cursor: int, send_initial: bool, timeout_s: float,
                mark_initial_end: bool, bookmarks: bool) -> None:
        api = self.server.api
        store = api.store
        deadline = time.monotonic() + timeout_s
        if send_initial:
            items, cursor = store.snapshot(query)
            for item in items:
                self._event("ADDED", item)
            if mark_initial_end:
                self._bookmark(query.resource, cursor, initial_end=True)
        next_bookmark = time.monotonic() + api.bookmark_interval_s
        while not api.stopping.is_set():
            try:
                events = store.events_after(cursor)
            except ResourceExpiredError as err:
                self._event("ERROR", status(410, "Expired", err.message))
                return
            for event in events:
                seen = query.view(event)
                if seen is not None:
                    self._event(*seen)
                cursor = event.resource_version
            now = time.monotonic()
            if now >= deadline:
                return
            if bookmarks and now >= next_bookmark:
                self._bookmark(query.resource, cursor)
                next_bookmark = now + api.bookmark_interval_s
            wake_at = min(deadline, next_bookmark) if bookmarks else deadline
            store.wait_for_change(cursor, max(0.0, min(wake_at - now, _POLL_S)))
