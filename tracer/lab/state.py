"""The running lab's record, `/run/nodetrace-lab/state.json`, so `status` and `down`
work from a new process, and `down` works after `up` was killed.

`up` writes it before creating anything (what it is about to create) and again as
it goes, always atomically; `down` trusts it only as far as the kernel agrees
(processes are checked by start time, namespaces and cgroups by name).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tracer.util.errors import TracerError

STATE_DIR_ENV = "NODETRACE_LAB_STATE_DIR"
VERSION = 1


def state_dir() -> Path:
    return Path(os.environ.get(STATE_DIR_ENV, "/run/nodetrace-lab"))


@dataclass
class ProcessRecord:
    pid: int
    start_ticks: int      # /proc/PID/stat field 22: tells a reused pid from ours
    role: str             # "container", "supervisor", "apiserver", "external", "tracer"
    netns: str
    cgroup: str
    pod: str | None = None
    log: str | None = None


@dataclass
class PodRecord:
    name: str
    namespace: str
    uid: str
    node: str
    host_network: bool
    netns: str
    veth_host: str | None
    ips: list[str]
    cgroup: str
    cgroup_id: int
    container_id: str
    status_file: str | None = None   # the restart loop's, for supervised pods


@dataclass
class NodeRecord:
    name: str
    netns: str
    ip: str
    pod_cidr: str
    apiserver_url: str
    kubeconfig: str


@dataclass
class LabState:
    scenario: str
    created: float
    cgroup_root: str
    cgroup_driver: str
    ttl_s: float
    namespaces: list[str] = field(default_factory=list)
    cgroups_created: list[str] = field(default_factory=list)   # outermost first
    nodes: list[NodeRecord] = field(default_factory=list)
    pods: list[PodRecord] = field(default_factory=list)
    processes: list[ProcessRecord] = field(default_factory=list)
    objects_file: str = ""
    ready: bool = False
    version: int = VERSION
    # the process whose lifetime bounds the lab's (`lab run`, a test), 0 for `lab up`'s,
    # which lives until its TTL: a lab whose owner is gone is abandoned at once
    owner_pid: int = 0
    owner_start_ticks: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> LabState:
        if doc.get("version") != VERSION:
            raise TracerError(f"lab state version {doc.get('version')!r} is not {VERSION}",
                              fix="nodetrace lab down")
        doc = dict(doc)
        doc["nodes"] = [NodeRecord(**n) for n in doc.get("nodes", [])]
        doc["pods"] = [PodRecord(**p) for p in doc.get("pods", [])]
        doc["processes"] = [ProcessRecord(**p) for p in doc.get("processes", [])]
        return cls(**doc)


def state_file() -> Path:
    return state_dir() / "state.json"


def save(state: LabState) -> None:
    directory = state_dir()
    directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    tmp = directory / ".state.json.tmp"
    tmp.write_text(json.dumps(state.to_json(), indent=2) + "\n")
    os.replace(tmp, state_file())


def load() -> LabState | None:
    try:
        doc = json.loads(state_file().read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise TracerError(f"unreadable lab state {state_file()}: {exc}",
                          fix=f"rm {state_file()} && nodetrace lab down") from exc
    return LabState.from_json(doc)


def clear() -> None:
    """Removes the state and every file the lab kept beside it (logs, objects,
    kubeconfigs); leaves the lock file, which a concurrent command may hold."""
    directory = state_dir()
    if not directory.is_dir():
        return
    for path in directory.iterdir():
        if path.name != "lock" and path.is_file():
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """One lab command at a time (up, down, run): a second waits for the first."""
    directory = state_dir()
    directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    with open(directory / "lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # the command name may hold spaces and parentheses: split after the last ')'
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):   # exited, not yet reaped: gone for our purposes
        return None
    return int(fields[19])


def alive(record: ProcessRecord) -> bool:
    return start_ticks(record.pid) == record.start_ticks


def owner_alive(st: LabState) -> bool | None:
    """Whether the lab's owner is still running; None for a lab without one."""
    if not st.owner_pid:
        return None
    return start_ticks(st.owner_pid) == st.owner_start_ticks
