"""Which network namespaces are "this node": the one nodetrace runs in, and every
namespace joined to it by a veth (its pods).  The kernel programs filter on this set.

A veth that carries a default route is the node's uplink (a VM's or a nested node's),
not a pod: the namespace behind it is the network, and its packets are not the node's.

A veth's peer namespace is known in ours only by a namespace id (IFLA_LINK_NETNSID);
asking our namespace for the id of each candidate namespace file (RTM_GETNSID with its
fd) matches them without entering any namespace.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

NETNS_DIRS = (Path("/run/netns"), Path("/var/run/netns"))
NO_NSID = (-1, 0xFFFFFFFF)


def own_netns_inode() -> int:
    return os.stat("/proc/self/ns/net").st_ino


def _candidate_files() -> Iterator[tuple[int, str]]:
    """(inode, path) of every reachable namespace file, one path per inode."""
    seen: set[int] = set()
    paths: list[str] = []
    for d in NETNS_DIRS:
        if d.is_dir():
            paths.extend(str(p) for p in d.iterdir())
    with contextlib.suppress(OSError):
        paths.extend(f"/proc/{pid}/ns/net" for pid in os.listdir("/proc") if pid.isdigit())
    for path in paths:
        try:
            ino = os.stat(path).st_ino
        except OSError:
            continue  # a process that just exited
        if ino not in seen:
            seen.add(ino)
            yield ino, path


def node_namespaces() -> set[int]:
    """Our namespace's inode plus those of namespaces holding a peer of one of our veths."""
    from pyroute2 import IPRoute

    own = own_netns_inode()
    result = {own}
    ipr = IPRoute()
    try:
        uplinks = {int(r.get("RTA_OIF")) for family in (2, 10)
                   for r in ipr.get_routes(family=family, table=254)
                   if r.get("dst_len") == 0 and r.get("RTA_OIF") is not None}
        peer_ids = set()
        for link in ipr.get_links():
            nsid = link.get("IFLA_LINK_NETNSID")
            if (nsid is not None and link.get(("linkinfo", "kind")) == "veth"
                    and int(link["index"]) not in uplinks):
                peer_ids.add(int(nsid))
        if not peer_ids:
            return result
        for ino, path in _candidate_files():
            if ino == own:
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                reply = ipr.get_netnsid(fd=fd)
            except Exception as exc:  # pyroute2 raises NetlinkError and others
                log.debug("netnsid of %s: %s", path, exc)
                continue
            finally:
                os.close(fd)
            nsid = reply.get("nsid") if isinstance(reply, dict) else None
            if nsid is not None and nsid not in NO_NSID and int(nsid) in peer_ids:
                result.add(ino)
    finally:
        ipr.close()
    return result
