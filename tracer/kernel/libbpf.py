"""The few libbpf calls BCC does not wrap: bpf_link_create (tcx) and
bpf_prog_test_run_opts.  libbpf.so.1 is a dependency of BCC itself."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from dataclasses import dataclass
from functools import cache

from tracer.util.errors import AttachError, PrerequisiteError


class _TestRunOpts(ctypes.Structure):
    # struct bpf_test_run_opts (libbpf bpf.h); `sz` lets libbpf accept this prefix
    _fields_ = [("sz", ctypes.c_size_t), ("data_in", ctypes.c_void_p),
                ("data_out", ctypes.c_void_p), ("data_size_in", ctypes.c_uint32),
                ("data_size_out", ctypes.c_uint32), ("ctx_in", ctypes.c_void_p),
                ("ctx_out", ctypes.c_void_p), ("ctx_size_in", ctypes.c_uint32),
                ("ctx_size_out", ctypes.c_uint32), ("retval", ctypes.c_uint32),
                ("repeat", ctypes.c_int), ("duration", ctypes.c_uint32),
                ("flags", ctypes.c_uint32), ("cpu", ctypes.c_uint32),
                ("batch_size", ctypes.c_uint32)]


@cache
def lib() -> ctypes.CDLL:
    name = ctypes.util.find_library("bpf") or "libbpf.so.1"
    try:
        handle = ctypes.CDLL(name, use_errno=True)
    except OSError as exc:
        raise PrerequisiteError("libbpf is not installed (it comes with BCC)",
                                fix="bin/setup") from exc
    handle.bpf_link_create.restype = ctypes.c_int
    handle.bpf_link_create.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                       ctypes.c_void_p]
    handle.bpf_prog_test_run_opts.restype = ctypes.c_int
    handle.bpf_prog_test_run_opts.argtypes = [ctypes.c_int, ctypes.POINTER(_TestRunOpts)]
    return handle


def _err(ret: int) -> str:
    code = -ret if ret < 0 else ctypes.get_errno()
    return f"{errno.errorcode.get(code, str(code))} ({os.strerror(code)})"


def link_create(prog_fd: int, target: int, attach_type: int) -> int:
    """A bpf_link (its fd).  For tcx, `target` is the ifindex; closing the fd — or the
    process dying — detaches."""
    fd = int(lib().bpf_link_create(prog_fd, target, attach_type, None))
    if fd < 0:
        raise AttachError(f"bpf_link_create(ifindex {target}, attach type {attach_type}) "
                          f"failed: {_err(fd)}")
    return fd


@dataclass(frozen=True)
class TestRun:
    retval: int
    data_out: bytes
    duration_ns: int


def prog_test_run(prog_fd: int, data: bytes, repeat: int = 1) -> TestRun:
    """Run a program on `data` in the kernel (BPF_PROG_TEST_RUN): its verdict, the
    packet as it left, and the mean run time."""
    data_in = ctypes.create_string_buffer(data, len(data))
    out = ctypes.create_string_buffer(len(data) + 512)
    opts = _TestRunOpts(sz=ctypes.sizeof(_TestRunOpts),
                        data_in=ctypes.cast(data_in, ctypes.c_void_p),
                        data_out=ctypes.cast(out, ctypes.c_void_p),
                        data_size_in=len(data), data_size_out=len(out), repeat=repeat)
    ret = int(lib().bpf_prog_test_run_opts(prog_fd, ctypes.byref(opts)))
    if ret < 0:
        raise AttachError(f"BPF_PROG_TEST_RUN failed: {_err(ret)}")
    # tc return codes are signed (TC_ACT_UNSPEC is -1)
    retval = ctypes.c_int32(opts.retval).value
    return TestRun(retval, out.raw[:opts.data_size_out], opts.duration)
