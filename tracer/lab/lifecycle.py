"""Bringing a lab scenario up and down, and a handle on the running lab.

    with lab_running("masquerade-missing") as lab:
        result = lab.probe(lab.scenario.probe)        # {"outcome": "timeout", ...}
        lab.exec("client", "python3", "-c", "...")     # in the pod's netns and cgroup

`up` is idempotent for the same scenario and refuses a different one unless told
to replace it; `down` removes everything with the lab's prefix or in its cgroups,
with or without a state file.  Every process the lab starts is placed in a cgroup
before it execs (pods: kubelet's names; the rest: nodetrace-lab/), so `down` kills
exactly the lab's processes, including any started by a `up` that was killed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tracer.lab import cgroups, state, topology
from tracer.lab.apiserver.files import write_atomic
from tracer.lab.cluster import (
    APISERVER_PORT,
    EXTERNAL_DB_PORT,
    EXTERNAL_HOST,
    NETNS_PREFIX,
    Cluster,
    Pod,
    all_pod_uids,
    build_cluster,
)
from tracer.lab.netns import Netns, NetnsError
from tracer.lab.objects import ContainerState, as_list, cluster_objects
from tracer.lab.scenarios import EXT, Probe, Scenario, get
from tracer.util.errors import PrerequisiteError, TracerError, UsageError

__all__ = ["DEFAULT_TTL_S", "Lab", "current", "down", "lab_running", "probes_of", "up"]
from tracer.lab.state import LabState, NodeRecord, PodRecord, ProcessRecord

log = logging.getLogger("tracer.lab")

DEFAULT_TTL_S = 1800.0
# the kernel matrix raises it: its VMs emulate the CPU, and Python starts 10x slower
READY_TIMEOUT_S = float(os.environ.get("NODETRACE_LAB_READY_TIMEOUT_S", "30"))


def _cluster(sc: Scenario) -> Cluster:
    return build_cluster(sc.cluster)


def _python() -> list[str]:
    return [sys.executable, "-m"]


@dataclass
class Lab:
    """A running lab, as its state file describes it."""
    state: LabState
    scenario: Scenario = field(init=False)
    cluster: Cluster = field(init=False)

    def __post_init__(self) -> None:
        self.scenario = get(self.state.scenario)
        self.cluster = _cluster(self.scenario)

    @property
    def dir(self) -> Path:
        return state.state_dir()

    def pod(self, name: str) -> PodRecord:
        for p in self.state.pods:
            if p.name == name:
                return p
        raise UsageError(f"no pod {name!r} in scenario {self.state.scenario}")

    def node(self, name: str) -> NodeRecord:
        for n in self.state.nodes:
            if n.name == name:
                return n
        raise UsageError(f"no node {name!r}; nodes: "
                         f"{', '.join(n.name for n in self.state.nodes)}")

    def _where(self, source: str) -> tuple[str, Path]:
        if source == EXT:
            return topology.EXT.name, cgroups.infra_dir(Path(self.state.cgroup_root))
        pod = self.pod(source)
        return pod.netns, Path(pod.cgroup)

    def popen(self, source: str, *argv: str, **kwargs: object) -> subprocess.Popen[bytes]:
        """A process in a pod (its netns and container cgroup) or on the external host."""
        netns, cgroup = self._where(source)
        return _spawn(netns, cgroup, list(argv), **kwargs)

    def exec(self, source: str, *argv: str, timeout_s: float = 30) -> \
            subprocess.CompletedProcess[str]:
        netns, cgroup = self._where(source)
        proc = _spawn(netns, cgroup, list(argv), stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE)
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        return subprocess.CompletedProcess(proc.args, proc.returncode,
                                           out.decode(errors="replace"),
                                           err.decode(errors="replace"))

    def probe(self, probe: Probe) -> dict[str, str]:
        argv = [*_python(), "tracer.lab.workloads", "probe", probe.kind, probe.host,
                str(probe.port), "--timeout", str(probe.timeout_s)]
        if probe.source_ip:
            argv += ["--source", probe.source_ip]
        done = self.exec(probe.source, *argv, timeout_s=probe.timeout_s + 10)
        try:
            result: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            result = {"outcome": "error", "detail": (done.stderr or done.stdout).strip()[-300:]}
        result["probe"] = probe.describe()
        return result

    def container_states(self) -> dict[str, ContainerState]:
        """What kubelet would report, from the restart loops' status files and pids."""
        states: dict[str, ContainerState] = {}
        for pod in self.state.pods:
            if pod.status_file:
                states[pod.name] = _supervised_state(Path(pod.status_file))
            else:
                running = bool(cgroups.procs(Path(pod.cgroup)))
                states[pod.name] = ContainerState(running=running, started_at=self.state.created)
        return states

    def refresh_objects(self) -> bool:
        """Rewrites the objects file from the containers' state; the API stand-ins
        reload it on SIGHUP.  Returns whether anything changed."""
        objects = cluster_objects(self.cluster, self.container_states(), self.state.created)
        data = json.dumps(as_list(objects), indent=2).encode() + b"\n"
        path = Path(self.state.objects_file)
        if path.exists() and path.read_bytes() == data:
            return False
        write_atomic(path, data)
        for p in self.state.processes:
            if p.role == "apiserver" and state.alive(p):
                os.kill(p.pid, signal.SIGHUP)
        return True

    def processes(self) -> list[ProcessRecord]:
        return [p for p in self.state.processes if state.alive(p)]


def _supervised_state(path: Path) -> ContainerState:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return ContainerState(running=False, waiting_reason="ContainerCreating")
    last = doc.get("lastState") or {}
    return ContainerState(
        running=doc.get("state") == "running", restart_count=int(doc.get("restartCount", 0)),
        started_at=doc.get("startedAt"),
        waiting_reason=doc.get("reason") if doc.get("state") == "waiting" else None,
        last_exit_code=last.get("exitCode"), last_message=last.get("message", ""),
        last_started_at=last.get("startedAt"), last_finished_at=last.get("finishedAt"))


# --- processes ------------------------------------------------------------------------

def _spawn(netns: str, cgroup: Path, argv: list[str], **kwargs: object) -> \
        subprocess.Popen[bytes]:
    """Starts argv in `netns`, already inside `cgroup` when it execs.  nsenter rather
    than `ip netns exec`: the latter remounts /sys in a new mount namespace, which
    hides the cgroup mounts from a restart loop that must place its containers."""
    procs_file = str(cgroup / "cgroup.procs")

    def join() -> None:
        with open(procs_file, "w") as f:
            f.write("0")

    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        ["nsenter", f"--net=/run/netns/{netns}", "--", *argv], preexec_fn=join,
        start_new_session=True, cwd="/", env={**os.environ, "PYTHONPATH": _repo_path()}, **kwargs)


def _repo_path() -> str:
    root = str(Path(__file__).resolve().parents[2])
    extra = os.environ.get("PYTHONPATH")
    return f"{root}:{extra}" if extra else root


def _own(st: state.LabState) -> None:
    st.owner_pid = os.getpid()
    st.owner_start_ticks = state.start_ticks(os.getpid()) or 0


def _record(proc: subprocess.Popen[bytes], role: str, netns: str, cgroup: Path,
            pod: str | None = None, log_path: Path | None = None) -> ProcessRecord:
    ticks = None
    for _ in range(100):
        ticks = state.start_ticks(proc.pid)
        if ticks is not None:
            break
        time.sleep(0.005)
    return ProcessRecord(pid=proc.pid, start_ticks=ticks or 0, role=role, netns=netns,
                         cgroup=str(cgroup), pod=pod, log=str(log_path) if log_path else None)


def _logfile(name: str) -> tuple[Path, IO[bytes]]:
    path = state.state_dir() / f"{name}.log"
    return path, open(path, "wb")


# --- up -------------------------------------------------------------------------------

def _plan(sc: Scenario, root: Path, driver: str, ttl_s: float) -> LabState:
    cluster = _cluster(sc)
    st = LabState(scenario=sc.name, created=time.time(), cgroup_root=str(root),
                  cgroup_driver=driver, ttl_s=ttl_s,
                  namespaces=[ns.name for ns in topology.namespaces(cluster)],
                  objects_file=str(state.state_dir() / "objects.json"))
    for node in cluster.nodes:
        st.nodes.append(NodeRecord(
            name=node.name, netns=node.netns, ip=node.ip, pod_cidr=node.pod_cidr,
            apiserver_url=f"http://127.0.0.1:{APISERVER_PORT}",
            kubeconfig=str(state.state_dir() / f"{node.name}.kubeconfig")))
    for pod in cluster.pods:
        cg = cgroups.container_dir(root, driver, pod)
        st.pods.append(PodRecord(
            name=pod.name, namespace=pod.namespace, uid=pod.uid, node=pod.node,
            host_network=pod.host_network, netns=pod.netns, veth_host=pod.veth_host,
            ips=[pod.address, *pod.extra_ips], cgroup=str(cg), cgroup_id=0,
            container_id=pod.container_id,
            status_file=str(state.state_dir() / f"{pod.name}.status.json")
            if pod.restart_loop else None))
    return st


def _container_argv(pod: Pod, ttl_s: float) -> list[str]:
    argv = [*_python(), "tracer.lab.workloads", *pod.container.workload, "--ttl", str(ttl_s)]
    if pod.container.workload[0] == "serve":
        argv += ["--name", pod.name]
    return argv


def _start_processes(lab: Lab, ttl_s: float, *, late: bool = False) -> None:
    """Starts the containers, the external host's server and the API stand-ins; with
    `late`, only the replicas that must lose a port conflict, after the rest serve."""
    st, root = lab.state, Path(lab.state.cgroup_root)
    infra = cgroups.infra_dir(root)
    for pod_rec in st.pods:
        pod = lab.cluster.pod(pod_rec.name)
        if lab.cluster.crashlooping(pod) != late:
            continue
        argv = _container_argv(pod, ttl_s)
        log_path, log_f = _logfile(pod.name)
        if pod_rec.status_file:
            argv = [*_python(), "tracer.lab.workloads", "supervise", "--status",
                    pod_rec.status_file, "--cgroup", pod_rec.cgroup, "--ttl", str(ttl_s),
                    "--", *argv]
            proc = _spawn(pod.netns, infra, argv, stdout=log_f, stderr=log_f)
            st.processes.append(_record(proc, "supervisor", pod.netns, infra, pod.name,
                                        log_path))
        else:
            proc = _spawn(pod.netns, Path(pod_rec.cgroup), argv, stdout=log_f, stderr=log_f)
            st.processes.append(_record(proc, "container", pod.netns, Path(pod_rec.cgroup),
                                        pod.name, log_path))
        log_f.close()
    if late:
        return
    log_path, log_f = _logfile("ext-db")
    proc = _spawn(topology.EXT.name, infra,
                  [*_python(), "tracer.lab.workloads", "serve", "tcp", "--host", EXTERNAL_HOST,
                   "--port", str(EXTERNAL_DB_PORT), "--ttl", str(ttl_s)],
                  stdout=log_f, stderr=log_f)
    log_f.close()
    st.processes.append(_record(proc, "external", topology.EXT.name, infra, None, log_path))
    for node in st.nodes:
        log_path, log_f = _logfile(f"{node.name}-apiserver")
        proc = _spawn(node.netns, infra,
                      [*_python(), "tracer.lab.apiserver", "--objects", st.objects_file,
                       "--listen", f"127.0.0.1:{APISERVER_PORT}",
                       "--kubeconfig", node.kubeconfig,
                       "--ready-file", str(state.state_dir() / f"{node.name}-apiserver.ready")],
                      stdout=log_f, stderr=log_f)
        log_f.close()
        st.processes.append(_record(proc, "apiserver", node.netns, infra, None, log_path))


def _wait_ready(lab: Lab, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Servers have printed "serving", restart loops have written a status (and a
    conflicting replica has failed once), the API stand-ins have written ready files."""
    deadline = time.monotonic() + timeout_s
    pending = list(lab.state.processes)
    while pending:
        still = []
        for p in pending:
            if not _is_ready(lab, p):
                if not state.alive(p):
                    raise TracerError(f"lab {p.role} {p.pod or ''} (pid {p.pid}) exited "
                                      "during start", detail=_tail(p.log))
                still.append(p)
        pending = still
        if pending and time.monotonic() > deadline:
            raise TracerError("lab processes not ready within "
                              f"{timeout_s:.0f} s: " + ", ".join(
                                  f"{p.role} {p.pod or p.netns}" for p in pending),
                              detail="\n".join(_tail(p.log) for p in pending))
        if pending:
            time.sleep(0.05)


def _tail(path: str | None) -> str:
    if not path:
        return ""
    with contextlib.suppress(OSError):
        return Path(path).read_text(errors="replace")[-800:]
    return ""


def _is_ready(lab: Lab, p: ProcessRecord) -> bool:
    if p.role == "apiserver":
        return (state.state_dir() / f"{p.netns.removeprefix(NETNS_PREFIX)}-apiserver.ready") \
            .exists()
    if p.role == "supervisor" and p.pod:
        status = lab.pod(p.pod).status_file
        if not status or not Path(status).exists():
            return False
        doc = json.loads(Path(status).read_text())
        if lab.cluster.crashlooping(lab.cluster.pod(p.pod)):
            return doc.get("lastState") is not None
        return _log_says_serving(p.log)
    if p.role == "container" and p.pod and \
            lab.cluster.pod(p.pod).container.workload[0] != "serve":
        return True
    return _log_says_serving(p.log)


def _log_says_serving(path: str | None) -> bool:
    return bool(path) and "serving " in _tail(path)


def up(name: str, *, replace: bool = False, ttl_s: float = DEFAULT_TTL_S,
       cgroup_root: str | None = None, driver: str = "cgroupfs", owned: bool = False) -> Lab:
    """Brings the scenario up.  `owned`: the lab is this process's, to be taken down
    when it ends; if it is killed instead, the lab counts as abandoned at once."""
    sc = get(name)
    if driver not in cgroups.DRIVERS:
        raise UsageError(f"cgroup driver {driver!r}: expected one of {', '.join(cgroups.DRIVERS)}")
    _require_root()
    with state.locked():
        existing = state.load()
        if existing is not None and abandoned(Lab(existing)):
            log.info("taking down the abandoned lab %s", existing.scenario)
            _down_locked()
            existing = None
        if existing is not None:
            if existing.scenario != name and not replace:
                raise UsageError(
                    f"the lab is already up with scenario {existing.scenario!r}",
                    fix=f"nodetrace lab down, or nodetrace lab up {name} --replace")
            if existing.scenario == name and _intact(Lab(existing)):
                log.info("lab %s is already up", name)
                if owned:
                    _own(existing)
                    state.save(existing)
                return Lab(existing)
        if existing is not None or topology.lab_namespaces_present():
            _down_locked()
        root = cgroups.detect_root(cgroup_root)
        st = _plan(sc, root, driver, ttl_s)
        if owned:
            _own(st)
        state.save(st)   # before anything exists: a crash from here on is recoverable
        lab = Lab(st)
        try:
            _build(lab, root, ttl_s)
        except BaseException:
            _down_locked()
            raise
        return lab


def _build(lab: Lab, root: Path, ttl_s: float) -> None:
    st = lab.state
    wanted = [Path(p.cgroup) for p in st.pods] + [cgroups.infra_dir(root)]
    # recorded before mkdir, so a `down` after kill -9 removes parents made here too
    # (only when empty: rmdir never removes a cgroup holding someone else's)
    st.cgroups_created = [str(d) for d in cgroups.missing(wanted, root)]
    state.save(st)
    for path in wanted:
        cgroups.make(path, root)
    for pod_rec in st.pods:
        pod_rec.cgroup_id = cgroups.cgroup_id(Path(pod_rec.cgroup))
    state.save(st)
    try:
        topology.build(lab.cluster, lab.scenario.topology, lab.scenario.proxy)
    except NetnsError as exc:
        raise TracerError(f"building the lab's namespaces failed: {exc}") from exc
    lab.refresh_objects()
    _start_processes(lab, ttl_s)
    state.save(st)
    _wait_ready(lab)
    _start_processes(lab, ttl_s, late=True)
    state.save(st)
    _wait_ready(lab)
    lab.refresh_objects()
    st.ready = True
    state.save(st)


def _intact(lab: Lab) -> bool:
    return (all(Netns(n).exists() for n in lab.state.namespaces)
            and all(state.alive(p) for p in lab.state.processes if p.role == "apiserver"))


def _require_root() -> None:
    if os.geteuid() != 0:
        raise PrerequisiteError("the lab needs root (network namespaces, cgroups, iptables)",
                                fix="sudo nodetrace lab ...")


# --- down -----------------------------------------------------------------------------

def down() -> list[str]:
    """Removes the lab; returns what it removed (empty when nothing was up)."""
    _require_root()
    with state.locked():
        return _down_locked()


def _sweep_cgroups(root: Path) -> list[Path]:
    """The lab's cgroups found by name alone: nodetrace-lab/, and pod cgroups whose
    uid is one the lab generates (never another pod's)."""
    found: list[Path] = []
    infra = cgroups.infra_dir(root)
    if infra.is_dir():
        found.append(infra)
    uids = all_pod_uids()
    for parent in (root / "kubepods" / "besteffort",
                   root / "kubepods.slice" / "kubepods-besteffort.slice"):
        if not parent.is_dir():
            continue
        for d in parent.iterdir():
            uid = d.name.removeprefix("kubepods-besteffort-pod").removeprefix("pod") \
                .removesuffix(".slice").replace("_", "-")
            if d.is_dir() and uid in uids:
                found.append(d)
    return found


def _down_locked() -> list[str]:
    removed: list[str] = []
    st = state.load()
    roots: set[Path] = set()
    if st is not None:
        roots.add(Path(st.cgroup_root))
    with contextlib.suppress(TracerError):
        roots.add(cgroups.detect_root())
    targets: list[Path] = []
    for root in sorted(roots):
        targets += _sweep_cgroups(root)
    if st is not None:
        targets += [Path(p.cgroup) for p in st.pods]
    # kill everything in the lab's cgroups, then any recorded process still alive
    # (one that somehow left its cgroup), checked by start time against pid reuse
    for cg in dict.fromkeys(targets):
        cgroups.kill(cg)
    if st is not None:
        for p in st.processes:
            if state.alive(p):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGKILL)
                removed.append(f"process {p.pid} ({p.role})")
    for ns in topology.lab_namespaces_present():
        ns.delete()
        removed.append(f"netns {ns.name}")
    for cg in dict.fromkeys(targets):
        for sub in sorted((d for d in cg.rglob("*") if d.is_dir()),
                          key=lambda d: -len(d.parts)):
            cgroups.remove(sub)
        if cgroups.remove(cg):
            removed.append(f"cgroup {cg}")
    if st is not None:
        # parents the lab created (kubepods/, besteffort/), innermost first; one that
        # holds anything else is left alone
        for created in reversed(st.cgroups_created):
            path = Path(created)
            if path.is_dir() and cgroups.remove(path):
                removed.append(f"cgroup {path}")
    state.clear()
    return removed


def abandoned(lab: Lab, now: float | None = None) -> bool:
    """A lab nobody will take down: its owning `lab run` or test was killed, or (a lab
    without an owner) its time to live has passed and none of its processes is alive
    (each exits at its TTL)."""
    st = lab.state
    if state.owner_alive(st) is False:
        return True
    expired = st.created + st.ttl_s < (time.time() if now is None else now)
    return expired and not any(state.alive(p) for p in st.processes)


def current() -> Lab | None:
    st = state.load()
    return Lab(st) if st is not None else None


@contextlib.contextmanager
def lab_running(name: str, *, replace: bool = True, ttl_s: float = 600.0,
                cgroup_root: str | None = None, driver: str = "cgroupfs") -> Iterator[Lab]:
    """Up for the duration of the block, then down (for tests and `lab run`)."""
    lab = up(name, replace=replace, ttl_s=ttl_s, cgroup_root=cgroup_root, driver=driver,
             owned=True)
    try:
        yield lab
    finally:
        down()


def probes_of(sc: Scenario) -> Sequence[Probe]:
    return [*([sc.probe] if sc.probe else []), *sc.controls]
