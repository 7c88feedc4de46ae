"""Compile nodetrace's BCC module once per run and attach its programs.

Offsets and drop-reason values come from BTF (-D flags); the header tree only has to
make the C compile.  Nothing auto-attaches: BCC attaches `tracepoint__*`/`kprobe__*`
functions at construction, which would make "load without attach" (the kprobe
programs on a kernel without kprobes) impossible, so that is switched off.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tracer.kernel import fentry, headers, offsets
from tracer.kernel.btf import Btf
from tracer.kernel.features import (
    ensure_tracefs,
    fentry_available,
    kprobes_available,
    missing_privileges,
)
from tracer.kernel.hooks import FAMILIES, FAMILY_HOOKS, Hook, Kprobe, RawTracepoint, Tracepoint
from tracer.util.errors import AttachError, BpfLoadError, PrerequisiteError, TracerError

log = logging.getLogger(__name__)



def bpf_dir() -> Path:
    """bpf/ sources: next to the package in a checkout, inside it in a wheel."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_bpf", here.parent / "bpf"):
        if (candidate / "nodetrace.c").is_file():
            return candidate
    raise PrerequisiteError("the BPF sources (bpf/nodetrace.c) are missing from the install",
                            fix="reinstall nodetrace: bin/setup")


@dataclass(frozen=True)
class BuildSpec:
    families: frozenset[str] = frozenset({"drops", "tc"})
    ringbuf_pages: int = 256          # power of two, x 4 KiB
    keep_not_specified: bool = False  # report SKB_DROP_REASON_NOT_SPECIFIED frees too
    keep_queue_purge: bool = False    # and the queues a closing socket purges
    wakeup_per_event: bool = False    # False: a wake-up per RB_WAKE_EVERY records a CPU
    nat_hook: str = "auto"            # fentry where it loads | "fentry" | "kprobe"
    storm_flows: int = 64             # new flows a drop point may report a second before
                                      # its drops fold by destination (0: never fold)


@dataclass(frozen=True)
class KernelFacts:
    """What the decoder needs from this kernel; recorded so replay needs no kernel."""

    release: str
    drop_reasons: dict[int, str]  # value -> name without the SKB_DROP_REASON_ prefix
    offsets: dict[str, int]
    headers: str


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Point fd 1 at fd 2 while libbcc, clang or libbpf may write.

    They print diagnostics from C, past sys.stdout, and stdout must stay clean for
    -o jsonl.  stderr is left live rather than captured: LLVM calls exit() on some
    backend errors, and a captured log would die with the process unseen.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


T = TypeVar("T")


def bcc_call(fn: Callable[[], T], error: type[TracerError], what: str) -> T:
    """Run one BCC call with stdout kept clean; BCC raises bare Exception on failure,
    which becomes `error` (its diagnostics are already on stderr)."""
    with stdout_to_stderr():
        try:
            return fn()
        except TracerError:
            raise
        except Exception as exc:
            raise error(f"{what} ({exc})",
                        detail="(the compiler's or verifier's output is above)") from exc


def drop_reason_names(btf: Btf) -> dict[int, str]:
    names: dict[int, str] = {}
    for name, value in btf.enum_values("skb_drop_reason").items():
        # SKB_DROP_REASON_SKB_CSUM is "SKB_CSUM", as the tracepoint prints it
        short = (name.removeprefix("SKB_DROP_REASON_") if name.startswith("SKB_DROP_REASON_")
                 else name.removeprefix("SKB_"))
        names.setdefault(value, short)
    return names


_LOCAL_INCLUDE = re.compile(r'^#include\s+"([^"]+)"\s*$', re.M)


def module_source(path: Path, search: tuple[Path, ...], _seen: set[Path] | None = None) -> str:
    """The module's C with our own quoted #includes expanded in place, once each.

    BCC rewrites map methods (`events.ringbuf_reserve`, `loss.lookup`) and generates
    tracepoint `args` structs only in the main file; in an included file they compile
    to calls the verifier rejects.  Kernel <...> includes are left to clang.
    """
    seen = _seen if _seen is not None else set()
    text = path.read_text()

    def expand(m: re.Match[str]) -> str:
        for base in (path.parent, *search):
            candidate = (base / m.group(1)).resolve()
            if candidate.is_file():
                if candidate in seen:
                    return f"/* {m.group(1)}: already included */"
                seen.add(candidate)
                return (f"/* --- {m.group(1)} --- */\n"
                        + module_source(candidate, search, seen))
        raise BpfLoadError(f"{path}: cannot find included file {m.group(1)!r}")

    return _LOCAL_INCLUDE.sub(expand, text)


def cflags_for(spec: BuildSpec, offs: dict[str, int], reasons: dict[str, int],
               src: Path) -> list[str]:
    flags = [f"-I{src}", f"-I{src / 'include'}",
             f"-DRINGBUF_PAGES={spec.ringbuf_pages}"]
    if spec.wakeup_per_event:
        flags.append("-DRB_FLAGS=0")
    flags += [f"-D{k}={v}" for k, v in sorted(offs.items())]
    flags += [f"-D{k}={v}" for k, v in sorted(reasons.items())]
    flags += [f"-DWITH_{fam.upper()}" for fam in sorted(spec.families)]
    if spec.keep_not_specified:
        flags.append("-DDROP_KEEP_NOT_SPECIFIED")
    if spec.keep_queue_purge:
        flags.append("-DDROP_KEEP_QUEUE_PURGE")
    flags.append(f"-DSTORM_FLOW_BUDGET={spec.storm_flows}")
    return flags


def require_privileges() -> None:
    missing = missing_privileges()
    if missing:
        raise PrerequisiteError("missing privileges to load BPF programs: "
                                + ", ".join(missing), fix="run as root (sudo)")


def _bcc() -> Any:
    try:
        import bcc
    except ImportError as exc:
        raise PrerequisiteError(f"BCC's Python bindings are not importable ({exc})",
                                fix="bin/setup   (installs python3-bpfcc and a venv with "
                                "--system-site-packages)") from exc
    return bcc


def hook_unavailable(hook: Hook, tracefs: Path) -> str | None:
    """Why `hook` cannot exist on this kernel, or None."""
    if isinstance(hook, Tracepoint | RawTracepoint):
        if not (tracefs / "events" / hook.category / hook.event).is_dir():
            return "tracepoint not in this kernel"
        return None
    if kprobes_available(tracefs):
        return None
    if hook.fentry_fn is not None:
        ok, why = fentry_available()
        return None if ok else f"kernel has no kprobes, and {why}"
    return "kernel has no kprobes"


def buildable_families(tracefs: Path, wanted: tuple[str, ...] = FAMILIES) -> dict[str, str]:
    """Family -> "" when every required hook of it exists here, else why not."""
    out: dict[str, str] = {}
    for family in wanted:
        missing = [h.label for h in FAMILY_HOOKS[family]
                   if h.required and hook_unavailable(h, tracefs) is not None]
        out[family] = f"kernel lacks {', '.join(missing)}" if missing else ""
    return out


class Module:
    """One compiled BCC module.  A context manager: leaving it detaches everything."""

    def __init__(self, spec: BuildSpec = BuildSpec()) -> None:
        unknown = spec.families - set(FAMILIES)
        if unknown:
            raise ValueError(f"unknown program families: {sorted(unknown)}")
        self.spec = spec
        self.bpf: Any = None
        self.facts: KernelFacts | None = None
        self.attached: list[str] = []
        # what attached, by family: the coverage's record of which evidence could be
        # seen (a family with none of its hooks attached saw nothing)
        self.attached_by_family: dict[str, list[str]] = {}
        self.node_netns = 0
        self.unavailable: dict[str, str] = {}  # hook label -> why it is not attached
        self.fallbacks: dict[str, str] = {}    # fentry label -> why the kprobe is used
        self._fds: list[int] = []              # our own fentry programs and links

    # --- build ------------------------------------------------------------------------
    def load(self) -> KernelFacts:
        require_privileges()
        bcc = _bcc()
        choice = headers.resolve()
        choice.apply()
        ensure_tracefs()
        with Btf() as btf:
            offs = offsets.resolve(btf, self.spec.families)
            reason_values = btf.enum_values("skb_drop_reason")
            reasons = drop_reason_names(btf)
        src = bpf_dir()
        flags = cflags_for(spec=self.spec, offs=offs,
                           reasons=offsets.reason_defines(reason_values), src=src)
        log.debug("compiling %s with %s", src / "nodetrace.c", " ".join(flags))

        class _NoAutoload(bcc.BPF):  # type: ignore[misc, name-defined]
            def _trace_autoload(self) -> None:
                pass

        text = module_source(src / "nodetrace.c", (src / "include",))
        self.bpf = bcc_call(lambda: _NoAutoload(text=text.encode(), cflags=flags),
                            BpfLoadError, "compiling the BPF programs failed")
        self.facts = KernelFacts(release=os.uname().release, drop_reasons=reasons,
                                 offsets=offs, headers=choice.describe())
        return self.facts

    def tc_programs(self) -> dict[str, Any]:
        """tc_ingress/tc_egress loaded as SCHED_CLS, by direction."""
        bcc = _bcc()
        progs = {d: self.load_program(f"tc_{d}", bcc.BPF.SCHED_CLS)
                 for d in ("ingress", "egress")}
        # the attacher follows interfaces from here on: the family runs from now on,
        # on whichever interfaces exist (none yet is still a tc that runs)
        self.attached_by_family["tc"] = [f"tc_{d}" for d in progs]
        return progs

    def load_program(self, fn_name: str, prog_type: int) -> Any:
        """Load one function into the kernel (verifier runs); no attach."""
        return bcc_call(lambda: self.bpf.load_func(fn_name.encode(), prog_type),
                        BpfLoadError, f"the verifier rejected {fn_name}")

    # --- attach -----------------------------------------------------------------------
    def _attach(self, hook: Hook) -> None:
        bcc = _bcc()
        if isinstance(hook, Tracepoint):
            fn = self.load_program(hook.fn_name, bcc.BPF.TRACEPOINT)
            attach = self.bpf.attach_tracepoint
            where = {"tp": f"{hook.category}:{hook.event}".encode()}
        elif isinstance(hook, RawTracepoint):
            fn = self.load_program(hook.fn_name, bcc.BPF.RAW_TRACEPOINT)
            attach = self.bpf.attach_raw_tracepoint
            where = {"tp": hook.event.encode()}
        else:
            if hook.fentry_fn is not None and self._try_fentry(hook):
                return
            fn = self.load_program(hook.fn_name, bcc.BPF.KPROBE)
            attach = self.bpf.attach_kprobe
            where = {"event": hook.function.encode()}
        bcc_call(lambda: attach(fn_name=fn.name, **where), AttachError,
                 f"attaching {hook.label} failed")
        self.attached.append(hook.label)

    def _try_fentry(self, hook: Kprobe) -> bool:
        """Attach `hook`'s fentry form where doctor's fentry check says fentry loads;
        False (the reason kept in `fallbacks`) sends the caller to the kprobe.  With
        nat_hook "fentry" a failure is an error, with "kprobe" fentry is not tried."""
        assert hook.fentry_fn is not None
        ok, why = fentry_available()
        if self.spec.nat_hook == "kprobe":
            ok, why = False, "--nat-hook kprobe"
        elif self.spec.nat_hook == "fentry" and not ok:
            raise AttachError(f"--nat-hook fentry: {why}")
        if ok:
            try:
                target = fentry.resolve_target(hook.function)
                fn_name = hook.fentry_fn.encode()
                insns = bcc_call(lambda: self.bpf.dump_func(fn_name), BpfLoadError,
                                 f"BCC did not compile {hook.fentry_fn}")
                prog = fentry.load(hook.fentry_fn, insns, target)
                self._fds.append(prog)
                self._fds.append(fentry.attach(prog, target))
                self.attached.append(hook.fentry_label)
                return True
            except TracerError as exc:
                if self.spec.nat_hook == "fentry":
                    raise
                why = exc.message
        self.fallbacks[hook.fentry_label] = why
        log.info("%s not used (%s): %s instead", hook.fentry_label, why, hook.label)
        return False

    def _available(self, hook: Hook) -> str | None:
        """Why `hook` cannot exist on this kernel, or None."""
        return hook_unavailable(hook, ensure_tracefs())

    def attach_all(self) -> list[str]:
        """Attach every hook of the built families.  A missing optional hook is
        recorded in `unavailable` (doctor and the recording say so); a missing
        required one is an error."""
        for family in sorted(self.spec.families):
            before = len(self.attached)
            for hook in FAMILY_HOOKS[family]:
                why = self._available(hook)
                if why is None:
                    self._attach(hook)
                elif hook.required:
                    raise AttachError(f"cannot attach {hook.label}: {why}")
                else:
                    self.unavailable[hook.label] = why
            if len(self.attached) > before:
                self.attached_by_family[family] = self.attached[before:]
        return list(self.attached)

    def families(self) -> list[str]:
        """The probe families that run (at least one hook attached; tc once its
        programs are loaded), sorted: what coverage and the recording's header say
        was observable."""
        return sorted(f for f, labels in self.attached_by_family.items() if labels)

    def load_only(self) -> list[str]:
        """Load every program of the built families through the verifier, attach none
        (proves kprobe programs on kernels that cannot attach them)."""
        bcc = _bcc()
        loaded = []
        for family in sorted(self.spec.families):
            for hook in FAMILY_HOOKS[family]:
                kind = (bcc.BPF.TRACEPOINT if isinstance(hook, Tracepoint) else
                        bcc.BPF.RAW_TRACEPOINT if isinstance(hook, RawTracepoint) else
                        bcc.BPF.KPROBE)
                self.load_program(hook.fn_name, kind)
                loaded.append(hook.fn_name)
        return loaded

    # --- maps -------------------------------------------------------------------------
    def set_scope(self, netns_inodes: set[int] | None, node_netns: int = 0) -> None:
        """Restrict events to these network namespaces (None: every namespace);
        `node_netns` labels the events of hooks that only see the node (tc)."""
        config = self.bpf["config"]
        value = config[ctypes.c_int(0)]
        value.scope_all = 1 if netns_inodes is None else 0
        value.node_netns = node_netns
        config[ctypes.c_int(0)] = value
        self.node_netns = node_netns
        if netns_inodes is None:
            return
        table = self.bpf["scope_netns"]
        current = {int(k.value) for k in table}
        for ino in current - netns_inodes:
            del table[table.Key(ino)]
        for ino in netns_inodes - current:
            table[table.Key(ino)] = table.Leaf(1)

    def set_bridge_ports(self, ports: dict[int, int]) -> None:
        """Bridge port ifindex -> its bridge's, in the node's namespace: a packet that
        tc saw on a port is routed as input of the bridge (bpf/route.c)."""
        if not {"route", "tc"} <= self.spec.families:
            return
        table = self.bpf["bridge_port"]
        current = {int(k.value): int(v.value) for k, v in table.items()}
        for port in current.keys() - ports.keys():
            del table[table.Key(port)]
        for port, bridge in ports.items():
            if current.get(port) != bridge:
                table[table.Key(port)] = table.Leaf(bridge)

    def unreported_drops(self) -> list[tuple[bytes, int, int]]:
        """(raw struct drop_key, unreported count, last report ns) of aggregated drops
        not yet reported; their counters are cleared, so each is handed out once."""
        return self._unreported("drops", "drop_seen")

    def unreported_drop_aggs(self) -> list[tuple[bytes, bytes | None, list[bytes]]]:
        """(raw struct drop_agg_key, raw struct drop_agg_val or None, raw struct
        drop_pending of each CPU holding drops of that key) of folded storm keys, read
        once at exit; the slots are read after the table, so a flush in between leaves
        drops out of this count (at most DROP_PENDING_MAX - 1 a CPU), never in twice."""
        if "drops" not in self.spec.families:
            return []
        vals: dict[bytes, bytes | None] = {
            bytes(k): bytes(v) for k, v in self.bpf["drop_agg"].items() if v.unreported}
        held: dict[bytes, list[bytes]] = {}
        pending = self.bpf["drop_pending"]
        for p in pending[ctypes.c_int(0)]:
            if p.armed and p.packets:
                held.setdefault(bytes(p.key), []).append(bytes(p))
        for k in held:
            vals.setdefault(k, None)
        return [(k, v, held.get(k, [])) for k, v in vals.items()]

    def unreported_icmp6(self) -> list[tuple[bytes, int, int]]:
        """(raw struct icmp6_key, unreported count, last report ns) of ICMPv6 errors the
        tc programs counted but did not report yet; handed out once, as drops are."""
        return self._unreported("tc", "icmp6_seen")

    def _unreported(self, family: str, table_name: str) -> list[tuple[bytes, int, int]]:
        if family not in self.spec.families:
            return []
        table = self.bpf[table_name]
        out = []
        for key, val in table.items():
            if val.unreported:
                out.append((bytes(key), int(val.unreported), int(val.reported_ns)))
                val.unreported = 0
                table[key] = val
        return out

    def unreported_flows(self) -> list[tuple[bytes, bytes]]:
        """(raw struct flow_key, raw struct flow_val) of flows that saw packets since
        their last report: the ending update of each, read once at exit."""
        if "tc" not in self.spec.families:
            return []
        flows = {bytes(k): v for k, v in self.bpf["flows"].items()}
        # what each CPU counted and had not yet added (tc.c: flow_pending), read after
        # the table: a flush in between leaves those packets out of this last count
        # (at most FLOW_PENDING_MAX - 1 a CPU), never counts them twice
        pending = self.bpf["flow_pending"]
        for slot in range(len(pending)):
            for p in pending[ctypes.c_int(slot)]:
                v = flows.get(bytes(p.key))
                if not p.packets or not p.key.family or v is None:
                    continue
                v.packets += p.packets
                v.bytes += p.bytes
                v.tcp_flags_seen |= p.tcp_flags
                v.last_ns = max(v.last_ns, p.last_ns)
        return [(k, bytes(v)) for k, v in flows.items() if v.packets > v.reported_packets]

    def unreported_flow_aggs(self) -> list[tuple[bytes, bytes | None, list[bytes]]]:
        """(raw struct flow_agg_key, raw struct flow_agg_val or None, raw struct
        flow_agg_pending of each CPU and direction holding packets of that key) of the
        keys tc folded, read once at exit, slots after the table (as flows)."""
        if "tc" not in self.spec.families:
            return []
        vals: dict[bytes, bytes | None] = {
            bytes(k): bytes(v) for k, v in self.bpf["flow_agg"].items()}
        held: dict[bytes, list[bytes]] = {}
        pending = self.bpf["flow_agg_pending"]
        for slot in range(len(pending)):
            for p in pending[ctypes.c_int(slot)]:
                if p.armed and p.packets:
                    held.setdefault(bytes(p.key), []).append(bytes(p))
        for k in held:
            vals.setdefault(k, None)
        return [(k, v, held.get(k, [])) for k, v in vals.items()]

    def loss_counts(self) -> list[int]:
        """Per-slot totals of the per-CPU loss counters (enum loss_slot)."""
        table = self.bpf["loss"]
        return [sum(int(v) for v in table[ctypes.c_int(i)]) for i in range(len(table))]

    # --- lifetime ---------------------------------------------------------------------
    def close(self) -> None:
        for fd in reversed(self._fds):  # links before their programs
            os.close(fd)
        self._fds.clear()
        if self.bpf is not None:
            with stdout_to_stderr():
                self._detach_tracepoints()
                self.bpf.cleanup()
            self.bpf = None
            self.attached.clear()
            self.attached_by_family.clear()

    def _detach_tracepoints(self) -> None:
        """Closing a tracepoint's perf event waits for the tracepoint to be
        unregistered (~75 ms here, each); side by side those waits overlap (13: 0.94 s
        in turn, 0.48 s together).  What fails here is left to cleanup()."""
        tps = list(self.bpf.tracepoint_fds)
        if len(tps) < 2:
            return

        def detach(tp: bytes) -> None:
            try:
                self.bpf.detach_tracepoint(tp)
            except Exception as exc:  # BCC raises bare Exception
                log.debug("detaching %s: %s", tp.decode(), exc)

        with ThreadPoolExecutor(min(16, len(tps)), thread_name_prefix="detach") as pool:
            list(pool.map(detach, tps))

    def __enter__(self) -> Module:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
