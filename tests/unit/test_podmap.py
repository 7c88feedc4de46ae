"""Process -> pod from cgroup paths as each runtime and cgroup driver writes them
(captured from real nodes: kubeadm/containerd, OpenShift/cri-o, docker-shim, k3s, kind)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tracer.node.podmap import CgroupIndex, PodMap, _cgroup2_mounts, parse_cgroup_path

UID = "2c2a3d6e-8b4f-4f0e-9d1a-3b5c7e9f1a2b"
CID = "8f3c2a1b4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8"

CASES = [
    # cgroupfs driver (containerd, docker): the runtime is not named in the path
    (f"/kubepods/besteffort/pod{UID}/{CID}", UID, CID, None, "besteffort"),
    (f"/kubepods/burstable/pod{UID}/{CID}", UID, CID, None, "burstable"),
    (f"/kubepods/pod{UID}/{CID}", UID, CID, None, "guaranteed"),
    # systemd driver, containerd
    ("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod"
     f"{UID.replace('-', '_')}.slice/cri-containerd-{CID}.scope", UID, CID, "containerd",
     "besteffort"),
    ("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
     f"{UID.replace('-', '_')}.slice/cri-containerd-{CID}.scope", UID, CID, "containerd",
     "burstable"),
    (f"/kubepods.slice/kubepods-pod{UID.replace('-', '_')}.slice/cri-containerd-{CID}.scope",
     UID, CID, "containerd", "guaranteed"),
    # cri-o: systemd (with its nested "container" cgroup) and cgroupfs
    ("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
     f"{UID.replace('-', '_')}.slice/crio-{CID}.scope/container", UID, CID, "crio",
     "burstable"),
    ("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
     f"{UID.replace('-', '_')}.slice/crio-conmon-{CID}.scope", UID, CID, "crio", "burstable"),
    (f"/kubepods/burstable/pod{UID}/crio-{CID}", UID, CID, "crio", "burstable"),
    # docker (dockershim / cri-dockerd), systemd driver
    ("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod"
     f"{UID.replace('-', '_')}.slice/docker-{CID}.scope", UID, CID, "docker", "besteffort"),
    # kind / nested nodes: kubelet's tree below the node container's own cgroup
    (f"/system.slice/docker-abc.scope/kubelet.slice/kubelet-kubepods.slice/"
     f"kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod"
     f"{UID.replace('-', '_')}.slice/cri-containerd-{CID}.scope", None, None, None, None),
    # the pod's own cgroup (pause sandbox accounting), no container yet
    (f"/kubepods/besteffort/pod{UID}", UID, None, None, "besteffort"),
    # /proc/PID/cgroup lines: cgroup2 and cgroup v1
    (f"0::/kubepods/besteffort/pod{UID}/{CID}", UID, CID, None, "besteffort"),
    (f"4:memory:/kubepods/burstable/pod{UID}/{CID}", UID, CID, None, "burstable"),
]


@pytest.mark.parametrize(("path", "uid", "cid", "runtime", "qos"), CASES)
def test_every_runtime_form(path: str, uid: str | None, cid: str | None,
                            runtime: str | None, qos: str | None) -> None:
    pod = parse_cgroup_path(path)
    if uid is None:
        # kind's kubelet-kubepods-…-pod<uid> segments are not kubelet's own names
        assert pod is None or pod.uid == UID
        return
    assert pod is not None
    assert (pod.uid, pod.container_id, pod.runtime, pod.qos) == (uid, cid, runtime, qos)
    assert pod.cgroup.startswith("/") and ":" not in pod.cgroup


@pytest.mark.parametrize("path", [
    "/", "/system.slice/containerd.service", "/user.slice/user-0.slice/session-3.scope",
    "/kubepods", "/kubepods.slice/kubepods-besteffort.slice", "/nodetrace-lab",
    "0::/init.scope",
])
def test_cgroups_that_are_not_pods(path: str) -> None:
    assert parse_cgroup_path(path) is None


def test_index_maps_inodes_to_paths_and_pods(tmp_path: Path) -> None:
    leaf = tmp_path / "kubepods" / "besteffort" / f"pod{UID}" / CID
    leaf.mkdir(parents=True)
    pods = PodMap(CgroupIndex(tmp_path, rescan_s=0))
    pod = pods.pod_of_cgroup_id(os.stat(leaf).st_ino)
    assert pod is not None and (pod.uid, pod.container_id) == (UID, CID)
    assert pods.pod_of_cgroup_id(os.stat(tmp_path).st_ino) is None  # the root: no pod
    # a cgroup created later is found by the next walk
    later = tmp_path / "kubepods" / "burstable" / f"pod{UID}"
    later.mkdir(parents=True)
    assert pods.index.path_of(os.stat(later).st_ino) == f"/kubepods/burstable/pod{UID}"


def test_index_walks_at_most_once_per_interval_for_unknown_ids(tmp_path: Path) -> None:
    index = CgroupIndex(tmp_path, rescan_s=3600)
    assert index.path_of(123456789) is None
    (tmp_path / "new").mkdir()
    assert index.path_of(os.stat(tmp_path / "new").st_ino) is None  # not walked again yet


def test_cgroup2_mount_points_from_mountinfo() -> None:
    text = ("25 30 0:22 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755\n"
            "26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw\n"
            "27 25 0:24 / /sys/fs/cgroup/memory rw shared:11 - cgroup cgroup rw,memory\n")
    assert _cgroup2_mounts(text) == ["/sys/fs/cgroup/unified"]
