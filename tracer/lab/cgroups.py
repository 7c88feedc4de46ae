"""Pod cgroups named the way kubelet names them, in the cgroup2 hierarchy.

cgroupfs driver: kubepods/besteffort/pod<UID>/<container-id>
systemd driver:  kubepods.slice/kubepods-besteffort.slice/
                 kubepods-besteffort-pod<UID with _>.slice/cri-containerd-<id>.scope
The tracer maps bpf_get_current_cgroup_id() (the cgroup2 directory's inode) to such a
path and the path to the pod, as it will on a real node.  Lab processes that are not
pods (API stand-ins, restart loops, the external host's servers) live in
`nodetrace-lab/`, so `down` finds every process the lab started through its cgroups,
even after `up` was killed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from pathlib import Path

from tracer.lab.cluster import Pod
from tracer.util.errors import PrerequisiteError

ROOT_ENV = "NODETRACE_LAB_CGROUP_ROOT"
DRIVERS = ("cgroupfs", "systemd")
INFRA = "nodetrace-lab"


def detect_root(override: str | None = None) -> Path:
    """The cgroup2 mount: $NODETRACE_LAB_CGROUP_ROOT, else /sys/fs/cgroup on a pure
    cgroup2 machine, else the hybrid layout's /sys/fs/cgroup/unified."""
    chosen = override or os.environ.get(ROOT_ENV)
    candidates = [Path(chosen)] if chosen else [Path("/sys/fs/cgroup"),
                                                Path("/sys/fs/cgroup/unified")]
    for path in candidates:
        if (path / "cgroup.procs").exists() and (path / "cgroup.subtree_control").exists():
            return path
    raise PrerequisiteError(
        f"no cgroup2 hierarchy at {', '.join(map(str, candidates))}",
        fix=f"mount -t cgroup2 none /sys/fs/cgroup/unified, or set {ROOT_ENV}")


def pod_dir(root: Path, driver: str, pod: Pod) -> Path:
    if driver == "systemd":
        uid = pod.uid.replace("-", "_")
        return (root / "kubepods.slice" / "kubepods-besteffort.slice"
                / f"kubepods-besteffort-pod{uid}.slice")
    return root / "kubepods" / "besteffort" / f"pod{pod.uid}"


def container_dir(root: Path, driver: str, pod: Pod) -> Path:
    name = (f"cri-containerd-{pod.container_id}.scope" if driver == "systemd"
            else pod.container_id)
    return pod_dir(root, driver, pod) / name


def infra_dir(root: Path) -> Path:
    return root / INFRA


def make(path: Path, root: Path) -> list[Path]:
    """Creates `path` and missing parents below `root`; returns what it created,
    outermost first (so removal goes in reverse)."""
    created: list[Path] = []
    for part in reversed([path, *path.parents]):
        if part == root or root not in part.parents:
            continue
        try:
            part.mkdir()
            created.append(part)
        except FileExistsError:
            pass
    return created


def missing(paths: list[Path], root: Path) -> list[Path]:
    """The directories (and parents below `root`) `make` would create, outermost first."""
    out: dict[Path, None] = {}
    for path in paths:
        for part in reversed([path, *path.parents]):
            if root in part.parents and not part.exists():
                out[part] = None
    return list(out)


def procs(path: Path) -> list[int]:
    try:
        return [int(x) for x in (path / "cgroup.procs").read_text().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def kill(path: Path, timeout_s: float = 5.0) -> None:
    """Kills every process in `path` and below, and waits until they are gone."""
    if not path.is_dir():
        return
    kill_file = path / "cgroup.kill"
    if kill_file.exists():
        kill_file.write_text("1")
    else:  # before 5.14: one by one, children first
        for sub in sorted(path.rglob("*"), key=lambda p: -len(p.parts)):
            for pid in procs(sub):
                _sigkill(pid)
        for pid in procs(path):
            _sigkill(pid)
    deadline = time.monotonic() + timeout_s
    while _populated(path) and time.monotonic() < deadline:
        time.sleep(0.02)


def _sigkill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _populated(path: Path) -> bool:
    try:
        for line in (path / "cgroup.events").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "populated":
                return value.strip() == "1"
    except FileNotFoundError:
        return False
    return bool(procs(path))


def remove(path: Path) -> bool:
    """rmdir of one (empty) cgroup; False when it holds something we do not own."""
    try:
        path.rmdir()
    except FileNotFoundError:
        return True
    except OSError as exc:
        if exc.errno in (errno.EBUSY, errno.ENOTEMPTY):
            return False
        raise
    return True


def enter(path: Path) -> None:
    """Moves the calling process into `path` (used between fork and exec)."""
    (path / "cgroup.procs").write_text("0")


def cgroup_id(path: Path) -> int:
    """What bpf_get_current_cgroup_id() returns for a process in `path`."""
    return os.stat(path).st_ino
