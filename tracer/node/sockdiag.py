"""The cgroup of a socket, from the kernel's socket diagnostics (NETLINK_SOCK_DIAG).

A socket remembers the cgroup2 directory of the process that created it
(INET_DIAG_CGROUP_ID, Linux 5.9 and later; `ss --cgroup` shows it), so it names its
pod even when no process's /proc/PID/fd can be read: the tracer lacks CAP_SYS_PTRACE
for it, or the socket is held by no process at all (passed in an SCM_RIGHTS message
still queued, kept by the kernel).  The same inode as bpf_get_current_cgroup_id(), so
tracer/node/podmap.py turns it into the pod.

A plain netlink socket, not pyroute2: it is opened in the caller's namespace by the
calling thread, with no helper process, and one dump per (family, protocol) is all
that is asked.  Only the caller's own network namespace can be asked this way.
"""

from __future__ import annotations

import errno
import socket
import struct

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
INET_DIAG_CGROUP_ID = 21
_NLA_TYPE_MASK = 0x3FFF
_PROTOS = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP}

# struct nlmsghdr { __u32 nlmsg_len; __u16 nlmsg_type; __u16 nlmsg_flags;
#                   __u32 nlmsg_seq; __u32 nlmsg_pid; };
NLMSGHDR = struct.Struct("=IHHII")
# struct inet_diag_req_v2 { __u8 sdiag_family; __u8 sdiag_protocol; __u8 idiag_ext;
#                           __u8 pad; __u32 idiag_states; struct inet_diag_sockid id; };
# struct inet_diag_sockid (48 bytes) left zero: a dump, matched by inode here
REQ_V2 = struct.Struct("=BBBxI48x")
# struct inet_diag_msg { __u8 idiag_family, idiag_state, idiag_timer, idiag_retrans;
#                        struct inet_diag_sockid id; __u32 idiag_expires, idiag_rqueue,
#                        idiag_wqueue, idiag_uid, idiag_inode; };  then attributes
DIAG_MSG = struct.Struct("=BBBB48xIIIII")
NLATTR = struct.Struct("=HH")
_ALL_STATES = 0xFFFFFFFF
_RECV = 1 << 16


def _align(n: int) -> int:
    return (n + 3) & ~3


def _cgroup_attr(msg: bytes, start: int, end: int) -> int | None:
    pos = start
    while pos + NLATTR.size <= end:
        length, kind = NLATTR.unpack_from(msg, pos)
        if length < NLATTR.size:
            return None
        if kind & _NLA_TYPE_MASK == INET_DIAG_CGROUP_ID and length >= NLATTR.size + 8:
            cgroup_id: int = struct.unpack_from("=Q", msg, pos + NLATTR.size)[0]
            return cgroup_id
        pos += _align(length)
    return None


def parse_dump(data: bytes, inode: int) -> tuple[bool, int | None]:
    """(the dump is complete, the cgroup id of the socket with this inode) from one
    recv() of a sock_diag dump."""
    pos = 0
    while pos + NLMSGHDR.size <= len(data):
        length, kind, _flags, _seq, _pid = NLMSGHDR.unpack_from(data, pos)
        if length < NLMSGHDR.size or pos + length > len(data):
            return True, None
        if kind == NLMSG_DONE:
            return True, None
        if kind == NLMSG_ERROR:
            code = -struct.unpack_from("=i", data, pos + NLMSGHDR.size)[0]
            raise OSError(code, f"sock_diag: {errno.errorcode.get(code, code)}")
        body = pos + NLMSGHDR.size
        if length >= NLMSGHDR.size + DIAG_MSG.size:
            *_head, found = DIAG_MSG.unpack_from(data, body)
            if found == inode:
                return True, _cgroup_attr(data, body + DIAG_MSG.size, pos + length)
        pos += _align(length)
    return False, None


def socket_cgroup(proto: str, inode: int) -> int | None:
    """The cgroup2 inode of the socket with this inode in our network namespace; None
    when the kernel does not say (older than 5.9, no such socket, sock_diag refused)."""
    if proto not in _PROTOS or not inode:
        return None
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            found = _dump_for(family, _PROTOS[proto], inode)
        except OSError:
            return None      # no sock_diag (module absent, refused): the name is optional
        if found is not None:
            return found
    return None


def _dump_for(family: int, protocol: int, inode: int) -> int | None:
    req = REQ_V2.pack(family, protocol, 0, _ALL_STATES)
    hdr = NLMSGHDR.pack(NLMSGHDR.size + len(req), SOCK_DIAG_BY_FAMILY,
                        NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                       NETLINK_SOCK_DIAG) as nl:
        nl.settimeout(2.0)   # a dump is answered at once; never hang the pipeline
        nl.sendto(hdr + req, (0, 0))
        while True:
            done, cgroup_id = parse_dump(nl.recv(_RECV), inode)
            if done:
                return cgroup_id
