"""The file provider: `--metadata FILE`, what `kubectl get pods,svc,endpointslices,nodes
-A -o json` prints (a `List`), a typed list (`PodList`, items without `kind`) or one
object.  Several files add up; kinds nodetrace does not use are skipped and counted."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tracer.metadata.index import MetadataIndex
from tracer.metadata.objects import KINDS
from tracer.util.errors import MetadataError

log = logging.getLogger(__name__)

Obj = dict[str, Any]
_LIST_KINDS = {f"{k}List": k for k in KINDS}


def read_objects(path: Path) -> tuple[dict[str, list[Obj]], int]:
    """(objects by kind, skipped count).  Raises MetadataError naming the file: one
    that cannot be read is exit 1 in every command."""
    try:
        doc: Any = json.loads(path.read_bytes())
    except OSError as exc:
        raise MetadataError(f"--metadata {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise MetadataError(f"--metadata {path}: not JSON ({exc}); expected the output of "
                         "`kubectl get ... -o json`") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("kind"), str):
        raise MetadataError(f"--metadata {path}: not a Kubernetes object or List")
    if "items" in doc:
        if not isinstance(doc["items"], list):
            raise MetadataError(f"--metadata {path}: `items` is not a list")
        default_kind = _LIST_KINDS.get(doc["kind"])
        items = doc["items"]
    else:
        default_kind, items = None, [doc]
    by_kind: dict[str, list[Obj]] = {k: [] for k in KINDS}
    skipped = 0
    for item in items:
        kind = item.get("kind", default_kind) if isinstance(item, dict) else None
        if kind not in by_kind or not isinstance((item.get("metadata") or {}).get("name"),
                                                 str):
            skipped += 1
            continue
        by_kind[kind].append(item)
    return by_kind, skipped


class FileProvider:
    name = "file"

    def __init__(self, index: MetadataIndex, paths: Iterable[Path]) -> None:
        self.index = index
        self.paths = list(paths)

    def load(self) -> dict[str, int]:
        """Reads every file now (all of them, before anything is applied, so a bad
        second file changes nothing).  Returns the object counts by kind."""
        merged: dict[str, list[Obj]] = {k: [] for k in KINDS}
        for path in self.paths:
            by_kind, skipped = read_objects(path)
            if skipped:
                log.info("--metadata %s: skipped %d object(s) of kinds nodetrace does not "
                         "use", path, skipped)
            for kind, objs in by_kind.items():
                merged[kind].extend(objs)
        for kind, objs in merged.items():
            self.index.replace(kind, objs, source=self.name)
        self.index.synced.add(self.name)
        return {k: len(v) for k, v in merged.items()}
