"""Process -> pod: the cgroup path kubelet creates names the pod (UID) and container.

    cgroupfs  /kubepods/besteffort/pod<UID>/<container-id>           (containerd, docker)
              /kubepods/burstable/pod<UID>/crio-<container-id>        (cri-o)
              /kubepods/pod<UID>/<container-id>                       (guaranteed QoS)
    systemd   /kubepods.slice/kubepods-besteffort.slice/
                kubepods-besteffort-pod<UID, _ for ->.slice/cri-containerd-<id>.scope
              .../crio-<id>.scope[/container], .../docker-<id>.scope

The BPF programs report bpf_get_current_cgroup_id(), the inode of the process's
cgroup2 directory; CgroupIndex turns it back into a path by walking the cgroup2 mount
(/sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid hosts).  Lookups by inode keep
working after the process has exited, as long as its container does.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from tracer.events.model import PodRef

_UID = r"[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}"
_POD_SEGMENT = re.compile(rf"^(?:kubepods-(?:(besteffort|burstable)-)?)?pod({_UID})(?:\.slice)?$")
_QOS_SEGMENT = re.compile(r"^(?:kubepods-)?(besteffort|burstable)(?:\.slice)?$")
_CONTAINER = (
    (re.compile(r"^cri-containerd-([0-9a-f]{12,64})\.scope$"), "containerd"),
    (re.compile(r"^crio-(?:conmon-)?([0-9a-f]{12,64})(?:\.scope)?$"), "crio"),
    (re.compile(r"^docker-([0-9a-f]{12,64})\.scope$"), "docker"),
    (re.compile(r"^([0-9a-f]{12,64})$"), None),  # cgroupfs: the runtime is not named
)


def parse_cgroup_path(path: str) -> PodRef | None:
    """The pod (and container) a cgroup path belongs to; None for non-pod cgroups.

    Accepts a bare path or a /proc/PID/cgroup line ("0::/kubepods/..." or a cgroup v1
    "4:memory:/kubepods/...")."""
    if not path.startswith("/") and ":" in path:
        path = path.split(":", 2)[2]
    parts = [p for p in path.strip().split("/") if p]
    for i, seg in enumerate(parts):
        m = _POD_SEGMENT.match(seg)
        if m is None:
            continue
        qos = m.group(1)
        if qos is None and i > 0:
            q = _QOS_SEGMENT.match(parts[i - 1])
            qos = q.group(1) if q else None
        if qos is None:
            qos = "guaranteed"
        container_id = runtime = None
        if i + 1 < len(parts):
            for pattern, rt in _CONTAINER:
                c = pattern.match(parts[i + 1])
                if c:
                    container_id, runtime = c.group(1), rt
                    break
        return PodRef(uid=m.group(2).replace("_", "-"), container_id=container_id,
                      runtime=runtime, qos=qos, cgroup="/" + "/".join(parts))
    return None


def _cgroup2_mounts(mountinfo: str) -> list[str]:
    """Mount points of cgroup2 in a /proc/PID/mountinfo text."""
    out = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" in fields and fields[fields.index("-") + 1] == "cgroup2":
            out.append(fields[4])
    return out


def _ancestors(proc: Path) -> list[str]:
    """"self", then our parent, its parent ... up to PID 1."""
    out, pid = ["self"], "self"
    for _ in range(32):
        try:
            status = (proc / pid / "status").read_text()
        except OSError:
            break
        ppid = next((line.split()[1] for line in status.splitlines()
                     if line.startswith("PPid:")), "0")
        if ppid in ("0", pid):
            break
        out.append(ppid)
        pid = ppid
    return out


def cgroup2_root(proc: Path = Path("/proc")) -> Path | None:
    """The cgroup2 hierarchy: ours if mounted, else an ancestor's, seen through its
    root.  `ip netns exec` gives its command a fresh /sys without cgroup mounts, and
    a tracer run that way must still see the pods' cgroups; PID 1's root may be
    closed to us (it is here), our parent's is not.  The directory is held open, so
    the path stays valid when that ancestor exits."""
    for pid in _ancestors(proc):
        try:
            mounts = _cgroup2_mounts((proc / pid / "mountinfo").read_text())
        except OSError:
            continue
        for mnt in sorted(mounts, key=len):
            path = Path(mnt) if pid == "self" else proc / pid / "root" / mnt.lstrip("/")
            try:
                if not (path / "cgroup.procs").exists():
                    continue
                if pid == "self":
                    return path
                fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
            except OSError:
                continue
            return Path(f"/proc/self/fd/{fd}")
    return None


class CgroupIndex:
    """cgroup2 inode -> path below the mount.  Rebuilt by walking the hierarchy when an
    inode is not known, at most once per `rescan_s` (a burst of events from an unknown
    cgroup must not become a burst of walks)."""

    def __init__(self, root: Path | None = None, rescan_s: float = 1.0) -> None:
        self.root = root if root is not None else cgroup2_root()
        self.rescan_s = rescan_s
        self._paths: dict[int, str] = {}
        self._scanned = float("-inf")

    def _scan(self) -> None:
        self._scanned = time.monotonic()
        if self.root is None:
            return
        paths: dict[int, str] = {}
        for dirpath, _dirs, _files in os.walk(self.root):
            try:
                ino = os.stat(dirpath).st_ino
            except FileNotFoundError:
                continue
            rel = os.path.relpath(dirpath, self.root)
            paths[ino] = "/" if rel == "." else "/" + rel
        self._paths = paths

    def path_of(self, cgroup_id: int) -> str | None:
        path = self._paths.get(cgroup_id)
        if path is None and time.monotonic() - self._scanned >= self.rescan_s:
            self._scan()
            path = self._paths.get(cgroup_id)
        return path


def cgroup_of_pid(pid: int, proc: Path = Path("/proc")) -> str | None:
    """The cgroup2 path of a process ("0::" line), or the first v1 line naming a pod."""
    try:
        lines = (proc / str(pid) / "cgroup").read_text().splitlines()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    for line in lines:
        if line.startswith("0::"):
            return line[3:]
    for line in lines:
        if "pod" in line:
            return line.split(":", 2)[2]
    return None


class PodMap:
    def __init__(self, index: CgroupIndex | None = None) -> None:
        self.index = index if index is not None else CgroupIndex()

    def pod_of_cgroup_id(self, cgroup_id: int) -> PodRef | None:
        path = self.index.path_of(cgroup_id) if cgroup_id else None
        return parse_cgroup_path(path) if path else None

    def pod_of_pid(self, pid: int) -> PodRef | None:
        path = cgroup_of_pid(pid)
        return parse_cgroup_path(path) if path else None

    def pod_of(self, pid: int, cgroup_id: int) -> PodRef | None:
        """By cgroup inode first (valid after the process exited), else by pid."""
        return self.pod_of_cgroup_id(cgroup_id) or (self.pod_of_pid(pid) if pid else None)
