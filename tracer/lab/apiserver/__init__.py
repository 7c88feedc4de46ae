"""A small, faithful stand-in for the Kubernetes API server, for the lab.

The official `kubernetes` Python client works against it unchanged: typed lists,
gets, chunked watches with bookmarks and 410 Expired, label and field selectors,
and discovery.  It is read-only over HTTP; the lab changes objects through the
ObjectStore, or by rewriting the objects file and sending SIGHUP to the process
(`python -m tracer.lab.apiserver`).  docs/lab-apiserver.md lists what it leaves out.
"""

from tracer.lab.apiserver.files import dump_list, load_list, write_kubeconfig
from tracer.lab.apiserver.resources import RESOURCES, InvalidObjectError, Resource
from tracer.lab.apiserver.server import ApiServer, status
from tracer.lab.apiserver.store import (
    ObjectStore,
    ResourceExpiredError,
    StoreEvent,
    SyncResult,
)

__all__ = [
    "RESOURCES",
    "ApiServer",
    "InvalidObjectError",
    "ObjectStore",
    "Resource",
    "ResourceExpiredError",
    "StoreEvent",
    "SyncResult",
    "dump_list",
    "load_list",
    "status",
    "write_kubeconfig",
]
