"""Who holds a port when no process can be shown to: the socket's own cgroup from
sock_diag (real sockets of this process, in its own namespace: no root needed), and
how the table says it."""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator

import pytest

from tracer.events.model import Endpoint, PodRef, PortHolder, Process, SockEvent
from tracer.events.sock import sock_line
from tracer.node import sockdiag
from tracer.node.podmap import CgroupIndex, cgroup_of_pid
from tracer.node.ports import find_holder, own_netns


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    try:
        yield s
    finally:
        s.close()


def test_socket_cgroup_is_the_cgroup_of_its_creator(listener: socket.socket) -> None:
    index = CgroupIndex()
    if index.root is None:
        pytest.skip("no cgroup2 hierarchy to name cgroups by")
    cgroup_id = sockdiag.socket_cgroup("tcp", os.fstat(listener.fileno()).st_ino)
    assert cgroup_id is not None       # Linux 5.9 and later say it
    assert index.path_of(cgroup_id) == cgroup_of_pid(os.getpid())


def test_no_such_socket_no_cgroup() -> None:
    assert sockdiag.socket_cgroup("tcp", 1) is None
    assert sockdiag.socket_cgroup("sctp", 123) is None
    assert sockdiag.socket_cgroup("udp", 0) is None


def test_holder_no_process_shows_is_found_by_cgroup(listener: socket.socket) -> None:
    netns = own_netns()
    assert netns is not None
    port = listener.getsockname()[1]
    # the only process holding it is the one excluded (as the one whose bind failed)
    h = find_holder(netns, port, "127.0.0.1", exclude_pid=os.getpid())
    assert h is not None and (h.pid, h.comm) == (None, None)
    assert (h.socket.proto, h.socket.port, h.socket.state) == ("tcp", port, "LISTEN")
    assert h.socket.inode == os.fstat(listener.fileno()).st_ino
    assert h.cgroup_id == sockdiag.socket_cgroup("tcp", h.socket.inode)
    # when a process shows, it is named and no cgroup is asked for
    mine = find_holder(netns, port, "127.0.0.1")
    assert mine is not None and (mine.pid, mine.cgroup_id) == (os.getpid(), None)


def _nlmsg(kind: int, body: bytes) -> bytes:
    return sockdiag.NLMSGHDR.pack(sockdiag.NLMSGHDR.size + len(body), kind, 0, 1, 0) + body


def _diag_msg(inode: int, cgroup_id: int | None) -> bytes:
    msg = sockdiag.DIAG_MSG.pack(2, 10, 0, 0, 0, 0, 0, 0, inode)
    if cgroup_id is not None:
        msg += sockdiag.NLATTR.pack(4 + 1, 8) + b"\0\0\0\0"     # INET_DIAG_SHUTDOWN, padded
        msg += sockdiag.NLATTR.pack(12, sockdiag.INET_DIAG_CGROUP_ID) + struct.pack(
            "=Q", cgroup_id)
    return _nlmsg(sockdiag.SOCK_DIAG_BY_FAMILY, msg)


def test_dump_parsing() -> None:
    batch = _diag_msg(7, 70) + _diag_msg(8, 80)
    assert sockdiag.parse_dump(batch, 8) == (True, 80)
    assert sockdiag.parse_dump(batch, 9) == (False, None)          # read on
    assert sockdiag.parse_dump(batch + _nlmsg(sockdiag.NLMSG_DONE, b"\0" * 4), 9) == (True, None)
    assert sockdiag.parse_dump(_diag_msg(8, None), 8) == (True, None)   # kernel < 5.9
    assert sockdiag.parse_dump(batch[:-3], 8) == (True, None)       # cut short: stop
    with pytest.raises(OSError, match="EPERM"):
        sockdiag.parse_dump(_nlmsg(sockdiag.NLMSG_ERROR, struct.pack("=i", -1)), 8)


def _bind_failed(holder: PortHolder) -> SockEvent:
    return SockEvent(ts_ns=1, wall_ns=1, netns=1, op="bind", via="return", family=4,
                     addr=Endpoint("0.0.0.0", 9100), error="EADDRINUSE", error_raw=98, fd=3,
                     process=Process(4242, "node_exporter", 99), pod=None, holder=holder)


def test_table_says_the_owner_could_not_be_read() -> None:
    pod = PodRef("u-1", None, None, "besteffort", "/kubepods/besteffort/podu-1")
    held = PortHolder("tcp", Endpoint("0.0.0.0", 9100), "LISTEN", None, None, pod)
    assert sock_line(_bind_failed(held)) == (
        "fd 3", "bind(0.0.0.0:9100) EADDRINUSE  by node_exporter[4242]; held by a socket "
        "whose owner could not be read (pod u-1)")
    assert sock_line(_bind_failed(held), {"@holder": "monitoring/metrics"})[1].endswith(
        "held by a socket whose owner could not be read (pod monitoring/metrics)")
    bare = PortHolder("tcp", Endpoint("0.0.0.0", 9100), "LISTEN", None, None, None)
    assert sock_line(_bind_failed(bare))[1].endswith(
        "; held by a socket whose owner could not be read")
    known = PortHolder("tcp", Endpoint("0.0.0.0", 9100), "LISTEN", 11, "node_exporter", pod)
    assert sock_line(_bind_failed(known))[1].endswith("; held by node_exporter[11] pod u-1")
