"""What the running kernel and this process can do, probed without side effects
(except mounting tracefs where it is missing, which tracing needs anyway)."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tracer.kernel import headers
from tracer.kernel.btf import KIND_STRUCT, VMLINUX_BTF, Btf, BtfError
from tracer.kernel.fentry import prog_load
from tracer.util.errors import PrerequisiteError, TracerError

TRACEFS_CANDIDATES = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
REQUIRED_TRACEPOINTS = ("skb/kfree_skb",)
USEFUL_TRACEPOINTS = ("skb/kfree_skb", "fib/fib_table_lookup", "neigh/neigh_update",
                      "icmp/icmp_send", "sock/inet_sock_set_state", "tcp/tcp_retransmit_skb",
                      "syscalls/sys_exit_bind")

# capability bits (linux/capability.h)
CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 12, 21, 38, 39


@dataclass
class Check:
    name: str
    ok: bool
    verdict: str          # short: "yes", "no", "mismatched", ...
    meaning: str          # what it means for tracing
    required: bool = False
    fix: str | None = None


@dataclass
class Features:
    kernel: str
    checks: list[Check] = field(default_factory=list)

    def get(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    def has(self, name: str) -> bool:
        c = self.get(name)
        return bool(c and c.ok)

    @property
    def can_trace(self) -> bool:
        return all(c.ok for c in self.checks if c.required)

    def to_json(self) -> dict[str, object]:
        return {"kernel": self.kernel, "can_trace": self.can_trace,
                "checks": [asdict(c) for c in self.checks]}


def tracefs_dir() -> Path | None:
    """The mounted tracefs this process can read, or None (a user without root may see
    the mount but not its events: that is no tracefs for it)."""
    for p in TRACEFS_CANDIDATES:
        try:
            if (p / "events").is_dir():
                return p
        except PermissionError:
            continue
    return None


def ensure_tracefs() -> Path:
    """Mount tracefs if nothing has (fresh VMs and containers often lack it)."""
    found = tracefs_dir()
    if found:
        return found
    target = TRACEFS_CANDIDATES[0]
    proc = subprocess.run(["mount", "-t", "tracefs", "nodev", str(target)],
                          capture_output=True, text=True, check=False)
    found = tracefs_dir()
    if found is None:
        raise PrerequisiteError(f"tracefs is not mounted and mounting it failed: "
                                f"{proc.stderr.strip()}",
                                fix=f"mount -t tracefs nodev {target}")
    return found


def effective_caps() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    except OSError:
        pass
    return 0


def missing_privileges() -> list[str]:
    caps = effective_caps()
    if os.geteuid() == 0 and caps & (1 << CAP_SYS_ADMIN):
        return []
    need = {"CAP_BPF": CAP_BPF, "CAP_PERFMON": CAP_PERFMON, "CAP_NET_ADMIN": CAP_NET_ADMIN}
    if caps & (1 << CAP_SYS_ADMIN):
        # CAP_SYS_ADMIN implies BPF and perfmon rights.
        need = {"CAP_NET_ADMIN": CAP_NET_ADMIN}
    return [name for name, bit in need.items() if not caps & (1 << bit)]


KIND_FUNC = 12
# r0 = 0; exit
_RET0 = bytes.fromhex("b700000000000000" "9500000000000000")


def probe_fentry(btf: Btf, func: str = "tcp_v4_connect") -> tuple[bool, str]:
    """Load (not attach) a minimal fentry program: the real test of fentry support."""
    try:
        btf_id = btf.find(func, KIND_FUNC)
    except BtfError:
        return False, f"no BTF for {func}"
    fd, why = prog_load("nt_probe_fentry", _RET0, btf_id)
    if fd >= 0:
        os.close(fd)
        return True, "an fentry program loads"
    return False, f"loading an fentry program fails: {why}"


@functools.cache
def fentry_available() -> tuple[bool, str]:
    """doctor's fentry verdict for this process (one probe a run): where it is yes,
    hooks that have an fentry form use it (tracer/kernel/loader.py)."""
    if missing_privileges():
        return False, "not probed (needs privileges)"
    try:
        with Btf(VMLINUX_BTF) as btf:
            return probe_fentry(btf)
    except TracerError as exc:
        return False, f"not probed ({exc.message})"


def kprobes_available(tracefs: Path | None) -> bool:
    if Path("/sys/bus/event_source/devices/kprobe").exists():
        return True
    return bool(tracefs and (tracefs / "kprobe_events").exists())


def probe(*, mount: bool = True) -> Features:
    feats = Features(kernel=platform.release())
    add = feats.checks.append

    missing = missing_privileges()
    add(Check("privileges", not missing, "ok" if not missing else "missing " + ", ".join(missing),
              "root or CAP_BPF+CAP_PERFMON+CAP_NET_ADMIN: load programs, read kernel memory, "
              "attach to tc" if not missing else "cannot load BPF programs",
              required=True, fix=None if not missing else "run as root (sudo)"))

    btf: Btf | None = None
    try:
        btf = Btf(VMLINUX_BTF)
        add(Check("btf", True, "yes", f"{VMLINUX_BTF}: struct offsets and drop reasons come "
                  "from the running kernel", required=True))
    except TracerError as exc:
        add(Check("btf", False, "no", exc.message, required=True, fix=exc.fix))

    try:
        choice = headers.resolve()
        add(Check("headers", True, "exact" if choice.matches_running else "mismatched",
                  choice.describe(), required=True))
    except TracerError as exc:
        add(Check("headers", False, "none", exc.message, required=True, fix=exc.fix))

    tfs = tracefs_dir()
    if tfs is None and mount and not missing:
        try:
            tfs = ensure_tracefs()
        except TracerError:
            tfs = None
    if tfs is None:
        add(Check("tracepoints", False, "no", "tracefs is not mounted", required=True,
                  fix="mount -t tracefs nodev /sys/kernel/tracing"))
    else:
        found = [tp for tp in USEFUL_TRACEPOINTS if (tfs / "events" / tp).is_dir()]
        lacking = [tp for tp in USEFUL_TRACEPOINTS if tp not in found]
        ok = all(tp in found for tp in REQUIRED_TRACEPOINTS)
        add(Check("tracepoints", ok, "yes" if ok else "no",
                  f"{len(found)}/{len(USEFUL_TRACEPOINTS)} used tracepoints found in {tfs}"
                  + (f" (missing: {', '.join(lacking)})" if lacking else ""), required=True))

    kp = kprobes_available(tfs)
    add(Check("kprobes", kp, "yes" if kp else "no",
              "per-packet NAT decisions from the netfilter NAT functions" if kp else
              "no kprobes (CONFIG_KPROBES off): NAT decisions come from conntrack"))

    if btf is not None and not missing:
        ok, why = probe_fentry(btf)
    else:
        ok, why = False, "not probed (needs BTF and privileges)"
    add(Check("fentry", ok, "yes" if ok else "no",
              why + ("" if ok else "; kprobes or tracepoints are used instead")))

    tcx = False
    ringbuf = False
    sched_cls = False
    if btf is not None:
        try:
            sched_cls = "BPF_PROG_TYPE_SCHED_CLS" in btf.enum_values("bpf_prog_type")
            tcx = "BPF_TCX_INGRESS" in btf.enum_values("bpf_attach_type")
            ringbuf = "BPF_MAP_TYPE_RINGBUF" in btf.enum_values("bpf_map_type")
        except TracerError:
            pass
        # sk_buff must exist in BTF for the offsets; checked here so doctor says so early.
        try:
            btf.find("sk_buff", KIND_STRUCT)
        except TracerError as exc:
            add(Check("btf-sk_buff", False, "no", exc.message, required=True))
    add(Check("tc", sched_cls, "yes" if sched_cls else "no",
              "tc BPF programs (clsact + cls_bpf)" if sched_cls else
              "no tc BPF programs: no per-interface flows"))
    add(Check("tcx", tcx, "yes" if tcx else "no",
              "tc programs attach through bpf_link (kernel removes them if we die)" if tcx else
              "legacy tc filters, tagged and swept at start"))
    add(Check("ringbuf", ringbuf, "yes" if ringbuf else "no",
              "BPF ring buffer for events" if ringbuf else "kernel < 5.8: no ring buffer",
              required=True))
    bcc_ok, bcc_why = _bcc_importable()
    add(Check("bcc", bcc_ok, "yes" if bcc_ok else "no", bcc_why, required=True,
              fix=None if bcc_ok else "bin/setup   (installs python3-bpfcc and the venv)"))
    if btf is not None:
        btf.close()
    return feats


def _bcc_importable() -> tuple[bool, str]:
    try:
        import bcc  # noqa: F401
    except ImportError as exc:
        return False, f"BCC's Python bindings are not importable: {exc}"
    return True, "BCC's Python bindings (distro python3-bpfcc)"
