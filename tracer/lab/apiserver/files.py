"""Files the lab exchanges with the stand-in: kubeconfigs and `kubectl get -o json`
style List files.  Writes are atomic (temporary file, then rename), so a reader such
as a SIGHUP reload never sees half a file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from tracer.lab.apiserver.resources import InvalidObjectError, Obj
from tracer.lab.apiserver.store import ObjectStore


def write_atomic(path: str | os.PathLike[str], data: bytes, mode: int = 0o644) -> Path:
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def write_kubeconfig(path: str | os.PathLike[str], server_url: str,
                     context: str = "nodetrace-lab", namespace: str | None = None) -> Path:
    """One cluster, user and context over plain http (the client accepts JSON as YAML).
    Mode 0600 like any kubeconfig, although it holds no credentials."""
    ctx: Obj = {"cluster": context, "user": context}
    if namespace:
        ctx["namespace"] = namespace
    config = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": context, "cluster": {"server": server_url}}],
        "users": [{"name": context, "user": {}}],
        "contexts": [{"name": context, "context": ctx}],
        "current-context": context,
    }
    return write_atomic(path, json.dumps(config, indent=2).encode() + b"\n", mode=0o600)


def dump_list(store: ObjectStore, path: str | os.PathLike[str]) -> Path:
    """The whole store as `kubectl get -o json` prints a mixed result."""
    doc = {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
           "items": store.objects()}
    return write_atomic(path, json.dumps(doc, indent=2).encode() + b"\n")


def load_list(path: str | os.PathLike[str]) -> list[Obj]:
    """The items of a List (kubectl's `List` or a typed `PodList` whose items lack
    kind/apiVersion) or a single object.  Raises InvalidObjectError, naming the file."""
    try:
        doc: Any = json.loads(Path(path).read_bytes())
    except (OSError, ValueError) as err:
        raise InvalidObjectError(f"{path}: cannot read a JSON List: {err}") from err
    if not isinstance(doc, dict) or not isinstance(doc.get("kind"), str):
        raise InvalidObjectError(f"{path}: not a Kubernetes object or List")
    kind: str = doc["kind"]
    if not kind.endswith("List"):
        return [doc]
    items = doc.get("items")
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise InvalidObjectError(f"{path}: {kind}.items must be a list of objects")
    if kind != "List":
        for item in items:
            item.setdefault("kind", kind.removesuffix("List"))
            item.setdefault("apiVersion", doc.get("apiVersion", "v1"))
    return items
