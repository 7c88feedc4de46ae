"""Kernel struct layouts and enum values from the running kernel's BTF.

The header tree BCC compiles against may belong to another kernel (on a node without
exact headers it is the distro's generic tree), so its struct layouts cannot be trusted:
every non-UAPI field offset the BPF programs use is resolved here and passed in as -D.

libbpf parses /sys/kernel/btf/vmlinux (it is a BCC dependency, so it is present wherever
tracing can run); the type records are UAPI (linux/btf.h) and read through ctypes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tracer.util.errors import PrerequisiteError

VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")

# linux/btf.h
KIND_INT, KIND_PTR, KIND_ARRAY, KIND_STRUCT, KIND_UNION, KIND_ENUM = 1, 2, 3, 4, 5, 6
KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT = 8, 9, 10, 11
KIND_TYPE_TAG, KIND_ENUM64 = 18, 19
_MODIFIERS = (KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_TYPE_TAG)


class _BtfType(ctypes.Structure):
    # struct btf_type { __u32 name_off; __u32 info; union { __u32 size; __u32 type; }; }
    _fields_ = [("name_off", ctypes.c_uint32), ("info", ctypes.c_uint32),
                ("size_or_type", ctypes.c_uint32)]


class _BtfMember(ctypes.Structure):
    # struct btf_member { __u32 name_off; __u32 type; __u32 offset; }
    _fields_ = [("name_off", ctypes.c_uint32), ("type", ctypes.c_uint32),
                ("offset", ctypes.c_uint32)]


class _BtfEnum(ctypes.Structure):
    # struct btf_enum { __u32 name_off; __s32 val; }
    _fields_ = [("name_off", ctypes.c_uint32), ("val", ctypes.c_int32)]


class _BtfEnum64(ctypes.Structure):
    # struct btf_enum64 { __u32 name_off; __u32 val_lo32; __u32 val_hi32; }
    _fields_ = [("name_off", ctypes.c_uint32), ("val_lo32", ctypes.c_uint32),
                ("val_hi32", ctypes.c_uint32)]


@dataclass(frozen=True)
class Member:
    name: str
    type_id: int
    bit_offset: int
    bitfield_size: int


class BtfError(PrerequisiteError):
    pass


def _load_libbpf() -> ctypes.CDLL:
    name = ctypes.util.find_library("bpf") or "libbpf.so.1"
    try:
        lib = ctypes.CDLL(name)
    except OSError as exc:
        raise BtfError("libbpf is not installed (it comes with BCC)",
                       fix="bin/setup") from exc
    lib.btf__parse.restype = ctypes.c_void_p
    lib.btf__parse.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    lib.btf__parse_split.restype = ctypes.c_void_p
    lib.btf__parse_split.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    lib.btf__find_by_name_kind.restype = ctypes.c_int32
    lib.btf__find_by_name_kind.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint32]
    lib.btf__type_by_id.restype = ctypes.POINTER(_BtfType)
    lib.btf__type_by_id.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.btf__name_by_offset.restype = ctypes.c_char_p
    lib.btf__name_by_offset.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.btf__free.restype = None
    lib.btf__free.argtypes = [ctypes.c_void_p]
    return lib


class Btf:
    """Read-only view of one BTF blob (normally the running kernel's vmlinux).

    A module's BTF (/sys/kernel/btf/<module>) is split BTF: its type ids continue
    vmlinux's, so it is parsed on top of `base` (which must outlive it)."""

    def __init__(self, path: Path = VMLINUX_BTF, base: Btf | None = None) -> None:
        if not path.exists():
            raise BtfError(f"{path} not found: the kernel was built without BTF "
                           "(CONFIG_DEBUG_INFO_BTF)", fix="use a kernel with BTF")
        self._lib = _load_libbpf()
        handle = (self._lib.btf__parse(str(path).encode(), None) if base is None else
                  self._lib.btf__parse_split(str(path).encode(), base._btf))
        if not handle:
            raise BtfError(f"libbpf could not parse {path}", fix="check the kernel's BTF")
        self._btf: int = handle
        self.path = path

    def close(self) -> None:
        if self._btf:
            self._lib.btf__free(self._btf)
            self._btf = 0

    def __enter__(self) -> Btf:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- raw access -------------------------------------------------------------------
    def _type(self, type_id: int) -> _BtfType:
        ptr = self._lib.btf__type_by_id(self._btf, type_id)
        if not ptr:
            raise BtfError(f"BTF has no type id {type_id}")
        t: _BtfType = ptr.contents
        return t

    def _name(self, name_off: int) -> str:
        raw = self._lib.btf__name_by_offset(self._btf, name_off)
        return raw.decode() if raw else ""

    @staticmethod
    def _kind(t: _BtfType) -> int:
        return int(t.info >> 24) & 0x1F

    @staticmethod
    def _vlen(t: _BtfType) -> int:
        return int(t.info) & 0xFFFF

    def find(self, name: str, kind: int) -> int:
        type_id = int(self._lib.btf__find_by_name_kind(self._btf, name.encode(), kind))
        if type_id < 0:
            raise BtfError(f"kernel BTF has no {_KIND_NAMES.get(kind, kind)} {name!r}")
        return type_id

    def _resolve(self, type_id: int) -> int:
        """Skip typedefs and qualifiers to the underlying type."""
        while True:
            t = self._type(type_id)
            if self._kind(t) not in _MODIFIERS:
                return type_id
            type_id = t.size_or_type

    def members(self, type_id: int) -> Iterator[Member]:
        t = self._type(type_id)
        if self._kind(t) not in (KIND_STRUCT, KIND_UNION):
            raise BtfError(f"BTF type {type_id} is not a struct or union")
        kind_flag = bool(t.info >> 31)
        base = ctypes.addressof(t) + ctypes.sizeof(_BtfType)
        for i in range(self._vlen(t)):
            m = _BtfMember.from_address(base + i * ctypes.sizeof(_BtfMember))
            if kind_flag:
                yield Member(self._name(m.name_off), m.type, m.offset & 0xFFFFFF, m.offset >> 24)
            else:
                yield Member(self._name(m.name_off), m.type, m.offset, 0)

    def size_of(self, struct: str) -> int:
        return int(self._type(self.find(struct, KIND_STRUCT)).size_or_type)

    # --- what the loader needs --------------------------------------------------------
    def _find_member(self, type_id: int, name: str) -> tuple[int, int] | None:
        """(bit offset, member type id) of `name`, looking inside anonymous members."""
        for m in self.members(type_id):
            if m.name == name:
                return m.bit_offset, m.type_id
            if not m.name:
                inner = self._resolve(m.type_id)
                if self._kind(self._type(inner)) in (KIND_STRUCT, KIND_UNION):
                    found = self._find_member(inner, name)
                    if found is not None:
                        return m.bit_offset + found[0], found[1]
        return None

    def offset_of(self, path: str) -> int:
        """Byte offset of a dotted field path such as ``net_device.nd_net.net``.

        Each step may cross into an embedded struct; anonymous unions/structs are
        searched transparently, as C does.
        """
        struct, *fields = path.split(".")
        if not fields:
            raise ValueError(f"{path!r} names no field")
        type_id = self.find(struct, KIND_STRUCT)
        bits = 0
        for field in fields:
            found = self._find_member(type_id, field)
            if found is None:
                raise BtfError(f"kernel BTF: struct {struct} has no field {path!r}")
            bits += found[0]
            type_id = self._resolve(found[1])
        if bits % 8:
            raise BtfError(f"{path} is a bit-field; it has no byte offset")
        return bits // 8

    def enum_values(self, name: str) -> dict[str, int]:
        """Enumerator name -> value, for an enum or enum64 type."""
        for kind in (KIND_ENUM, KIND_ENUM64):
            type_id = int(self._lib.btf__find_by_name_kind(self._btf, name.encode(), kind))
            if type_id >= 0:
                break
        else:
            raise BtfError(f"kernel BTF has no enum {name!r}")
        t = self._type(type_id)
        base = ctypes.addressof(t) + ctypes.sizeof(_BtfType)
        out: dict[str, int] = {}
        for i in range(self._vlen(t)):
            if kind == KIND_ENUM:
                e = _BtfEnum.from_address(base + i * ctypes.sizeof(_BtfEnum))
                out[self._name(e.name_off)] = e.val
            else:
                e64 = _BtfEnum64.from_address(base + i * ctypes.sizeof(_BtfEnum64))
                out[self._name(e64.name_off)] = (e64.val_hi32 << 32) | e64.val_lo32
        return out


_KIND_NAMES = {KIND_STRUCT: "struct", KIND_UNION: "union", KIND_ENUM: "enum",
               KIND_ENUM64: "enum64", KIND_TYPEDEF: "typedef"}
