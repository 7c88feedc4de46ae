"""fentry attachment of a BCC-compiled function, including to a module's function.

BCC 0.26 (Debian 12) finds an fentry target only in vmlinux's BTF, and the NAT hook's
target, nf_nat_manip_pkt, lives in the nf_nat module on distro kernels.  So BCC only
compiles the function; it is loaded here as BPF_PROG_TYPE_TRACING with the target's
BTF id and, for a module, the fd of the module's BTF object (what libbpf does for
`SEC("fentry/...")`), and attached through a raw tracepoint link.  The instructions
come from BCC with its map fds already in them, so the program shares the module's maps.
"""

from __future__ import annotations

import ctypes
import errno
import os
from dataclasses import dataclass
from pathlib import Path

from tracer.kernel.btf import VMLINUX_BTF, Btf, BtfError
from tracer.kernel.libbpf import lib
from tracer.util.errors import AttachError, BpfLoadError

BTF_DIR = VMLINUX_BTF.parent
BPF_PROG_TYPE_TRACING = 26
BPF_TRACE_FENTRY = 24
KIND_FUNC = 12
LOG_SIZE = 1 << 20


class ProgLoadOpts(ctypes.Structure):
    # struct bpf_prog_load_opts of libbpf 1.x (bpf.h), up to log_buf; `sz` tells libbpf
    # how much of it we know, so newer libbpf versions accept it.
    _fields_ = [("sz", ctypes.c_size_t), ("attempts", ctypes.c_int),
                ("expected_attach_type", ctypes.c_int), ("prog_btf_fd", ctypes.c_uint32),
                ("prog_flags", ctypes.c_uint32), ("prog_ifindex", ctypes.c_uint32),
                ("kern_version", ctypes.c_uint32), ("attach_btf_id", ctypes.c_uint32),
                ("attach_prog_fd", ctypes.c_uint32), ("attach_btf_obj_fd", ctypes.c_uint32),
                ("fd_array", ctypes.c_void_p), ("func_info", ctypes.c_void_p),
                ("func_info_cnt", ctypes.c_uint32), ("func_info_rec_size", ctypes.c_uint32),
                ("line_info", ctypes.c_void_p), ("line_info_cnt", ctypes.c_uint32),
                ("line_info_rec_size", ctypes.c_uint32), ("log_level", ctypes.c_uint32),
                ("log_size", ctypes.c_uint32), ("log_buf", ctypes.c_char_p)]


class _BtfInfo(ctypes.Structure):
    # struct bpf_btf_info (linux/bpf.h)
    _fields_ = [("btf", ctypes.c_uint64), ("btf_size", ctypes.c_uint32),
                ("id", ctypes.c_uint32), ("name", ctypes.c_uint64),
                ("name_len", ctypes.c_uint32), ("kernel_btf", ctypes.c_uint32)]


def _errname(ret: int) -> str:
    code = -ret if ret < 0 else ctypes.get_errno()
    return errno.errorcode.get(code, str(code))


def _bind() -> ctypes.CDLL:
    h = lib()
    h.bpf_prog_load.restype = ctypes.c_int
    h.bpf_prog_load.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p,
                                ctypes.c_char_p, ctypes.c_size_t,
                                ctypes.POINTER(ProgLoadOpts)]
    h.bpf_btf_get_next_id.argtypes = [ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint32)]
    h.bpf_btf_get_fd_by_id.argtypes = [ctypes.c_uint32]
    h.bpf_obj_get_info_by_fd.argtypes = [ctypes.c_int, ctypes.c_void_p,
                                         ctypes.POINTER(ctypes.c_uint32)]
    h.bpf_raw_tracepoint_open.argtypes = [ctypes.c_char_p, ctypes.c_int]
    return h


def module_of(func: str, kallsyms: Path = Path("/proc/kallsyms")) -> str | None:
    """The module that defines `func` ("nf_nat"), or None for vmlinux."""
    try:
        with kallsyms.open() as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[2] == func and parts[1] in "tT":
                    return parts[3].strip("[]") if len(parts) > 3 else None
    except OSError as exc:
        raise BtfError(f"cannot read {kallsyms}: {exc.strerror}") from exc
    raise BtfError(f"{func} is not a kernel function here (not in {kallsyms})")


def module_btf_fd(module: str) -> int:
    """An fd of the kernel's BTF object for `module` (the caller closes it)."""
    h = _bind()
    cur = ctypes.c_uint32(0)
    while h.bpf_btf_get_next_id(cur.value, ctypes.byref(cur)) == 0:
        fd = int(h.bpf_btf_get_fd_by_id(cur.value))
        if fd < 0:
            continue
        name = ctypes.create_string_buffer(64)
        info = _BtfInfo(name=ctypes.addressof(name), name_len=len(name))
        size = ctypes.c_uint32(ctypes.sizeof(info))
        if (h.bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size)) == 0
                and info.kernel_btf and name.value.decode() == module):
            return fd
        os.close(fd)
    raise BtfError(f"no kernel BTF object for module {module} (is it loaded?)")


@dataclass(frozen=True)
class Target:
    func: str
    module: str | None     # None: vmlinux
    btf_id: int


def resolve_target(func: str) -> Target:
    module = module_of(func)
    with Btf() as vmlinux:
        if module is None:
            return Target(func, None, vmlinux.find(func, KIND_FUNC))
        with Btf(BTF_DIR / module, base=vmlinux) as mod:
            return Target(func, module, mod.find(func, KIND_FUNC))


def prog_load(name: str, insns: bytes, btf_id: int, obj_fd: int = 0) -> tuple[int, str]:
    """bpf_prog_load as fentry: (fd, "") or (-1, errno name and the verifier's last
    lines).  The first try logs nothing (on older kernels a log too small for a long
    program is itself an error); a failure is retried with the log on, for the reason."""
    h = _bind()

    def attempt(log: ctypes.Array[ctypes.c_char] | None) -> int:
        opts = ProgLoadOpts(sz=ctypes.sizeof(ProgLoadOpts),
                            expected_attach_type=BPF_TRACE_FENTRY, attach_btf_id=btf_id,
                            attach_btf_obj_fd=obj_fd, log_level=1 if log else 0,
                            log_size=len(log) if log else 0,
                            log_buf=ctypes.cast(log, ctypes.c_char_p) if log else None)
        return int(h.bpf_prog_load(BPF_PROG_TYPE_TRACING, name.encode()[:15], b"GPL", insns,
                                   len(insns) // 8, ctypes.byref(opts)))

    fd = attempt(None)
    if fd >= 0:
        return fd, ""
    err = _errname(fd)
    log = ctypes.create_string_buffer(LOG_SIZE)
    fd = attempt(log)
    if fd >= 0:
        return fd, ""
    lines = log.value.decode(errors="replace").strip().splitlines()
    return -1, err + (f": {' | '.join(lines[-3:])}" if lines else "")


def load(name: str, insns: bytes, target: Target) -> int:
    """Load `insns` as an fentry program on `target`; its fd.  BpfLoadError names the
    errno and the verifier's last words."""
    obj_fd = module_btf_fd(target.module) if target.module else 0
    try:
        fd, why = prog_load(name, insns, target.btf_id, obj_fd)
    finally:
        if obj_fd:
            os.close(obj_fd)
    if fd < 0:
        raise BpfLoadError(f"loading {name} as fentry on {target.func} failed: {why}")
    return fd


def attach(prog_fd: int, target: Target) -> int:
    """A link fd; closing it (or the process dying) detaches."""
    fd = int(_bind().bpf_raw_tracepoint_open(None, prog_fd))
    if fd < 0:
        raise AttachError(f"attaching fentry on {target.func} failed: {_errname(fd)}")
    return fd
