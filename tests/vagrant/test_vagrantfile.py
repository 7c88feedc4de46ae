"""vagrant/Vagrantfile: valid Ruby, and the cluster vagrant/README.md describes when
Vagrant loads it (with a stand-in for Vagrant: no VM, no provider, no network)."""

from __future__ import annotations

import ipaddress
import re
import subprocess

import pytest

from tests.vagrant.support import (
    PROVISION_DIR,
    VAGRANT_DIR,
    VAGRANTFILE,
    Machine,
    VagrantConfig,
    load_vagrantfile,
    run_vagrantfile,
    tool,
)

K3S_STEPS = ("node", "k3s", "kubeconfig", "nodetrace")
LAPTOP_MEMORY_MIB = 8 * 1024     # every VM together
LAPTOP_CPUS_PER_VM = 2


@pytest.fixture(scope="module")
def cfg() -> VagrantConfig:
    return load_vagrantfile()


def k3s_nodes(cfg: VagrantConfig) -> list[Machine]:
    return [m for m in cfg.machines.values() if m.provisioners and
            m.provisioners[0].get("env", {}).get("NODE_ROLE") in ("server", "agent")]


def env(m: Machine) -> dict[str, str]:
    return dict(m.provisioners[0]["env"])


def test_ruby_syntax() -> None:
    proc = subprocess.run([tool("ruby"), "-c", str(VAGRANTFILE)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0 and "Syntax OK" in proc.stdout, proc.stderr


def test_one_server_two_agents_and_the_legacy_vm(cfg: VagrantConfig) -> None:
    roles = sorted(env(m)["NODE_ROLE"] for m in k3s_nodes(cfg))
    assert roles == ["agent", "agent", "server"]
    others = [m.name for m in cfg.machines.values() if m not in k3s_nodes(cfg)]
    assert others == ["nt-legacy"]
    for m in cfg.machines.values():
        assert m.settings.get("hostname") == m.name


def test_a_maintained_ubuntu_lts_box(cfg: VagrantConfig) -> None:
    box = cfg.settings.get("box", "")
    m = re.fullmatch(r"bento/ubuntu-(\d\d)\.04", box)
    assert m and int(m.group(1)) % 2 == 0, f"{box!r}: not a bento Ubuntu LTS box"
    assert cfg.settings.get("box_version"), "no box_version constraint"
    assert not any("box" in m.settings for m in cfg.machines.values()), "one box for all"


def test_both_providers_sized_for_a_laptop(cfg: VagrantConfig) -> None:
    total = 0
    for m in cfg.machines.values():
        assert set(m.providers) >= {"virtualbox", "libvirt"}, m.name
        sizes = {(p["memory"], p["cpus"]) for p in m.providers.values()}
        assert len(sizes) == 1, f"{m.name}: providers sized differently: {sizes}"
        memory, cpus = sizes.pop()
        assert cpus <= LAPTOP_CPUS_PER_VM, m.name
        total += memory
    assert total <= LAPTOP_MEMORY_MIB, f"{total} MiB for the whole cluster"


def test_private_networks_and_the_static_route(cfg: VagrantConfig) -> None:
    legacy = cfg.machines["nt-legacy"]
    assert [n["type"] for n in legacy.networks] == ["private_network"] * 2
    via, db = (ipaddress.ip_address(n["ip"]) for n in legacy.networks)
    assert legacy.networks[1].get("virtualbox__intnet"), "the legacy network must be internal"
    node_ips = []
    for m in k3s_nodes(cfg):
        assert [n["type"] for n in m.networks] == ["private_network"], m.name
        ip = ipaddress.ip_address(m.networks[0]["ip"])
        assert ip == ipaddress.ip_address(env(m)["NODE_IP"])
        node_ips.append(ip)
        legacy_net = ipaddress.ip_network(env(m)["LEGACY_NET"])
        # reachable from the nodes only by their static route via the legacy VM
        assert db in legacy_net and ip not in legacy_net
        assert ipaddress.ip_address(env(m)["LEGACY_VIA"]) == via
        assert str(legacy_net) == "192.168.2.0/24", "the K3s report's database subnet"
    node_net = ipaddress.ip_network(f"{node_ips[0]}/24", strict=False)
    assert all(ip in node_net for ip in node_ips) and via in node_net
    assert len(set(node_ips)) == len(node_ips)


def test_every_k3s_node_is_provisioned_alike(cfg: VagrantConfig) -> None:
    versions = set()
    for m in k3s_nodes(cfg):
        e = env(m)
        steps = [p["name"] for p in m.provisioners]
        assert steps == list(K3S_STEPS), f"{m.name}: {steps}"
        for p in m.provisioners:
            assert p["type"] == "shell" and p.get("privileged", True), f"{m.name}/{p['name']}"
            assert (VAGRANT_DIR / p["path"]).is_file(), p["path"]
            assert p["env"] == e, f"{m.name}/{p['name']}: another environment"
        assert m.provisioners[1]["path"] == f"provision/k3s-{e['NODE_ROLE']}.sh"
        assert m.provisioners[3]["path"] == "provision/nodetrace.sh"
        assert e["K3S_TOKEN"], "no join token"
        versions.add(e["INSTALL_K3S_VERSION"])
        # the project root is synced to where nodetrace.sh installs from
        folders = {f["dest"]: f for f in m.synced_folders}
        src = folders[e["NODETRACE_SRC"]]
        assert src["src"] == ".." and ".venv/" in src.get("rsync__exclude", [])
    assert len(versions) == 1 and re.fullmatch(r"v\d+\.\d+\.\d+\+k3s\d+", versions.pop())


@pytest.mark.parametrize("backend", ["host-gw", "vxlan"])
def test_flannel_backend_from_the_environment(backend: str) -> None:
    cfg = load_vagrantfile(env={"NODETRACE_FLANNEL_BACKEND": backend})
    assert {env(m)["FLANNEL_BACKEND"] for m in k3s_nodes(cfg)} == {backend}


def test_flannel_backend_default_is_vxlan(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NODETRACE_FLANNEL_BACKEND", raising=False)
    cfg = load_vagrantfile()
    assert {env(m)["FLANNEL_BACKEND"] for m in k3s_nodes(cfg)} == {"vxlan"}


def test_an_unknown_flannel_backend_is_refused() -> None:
    proc = run_vagrantfile(env={"NODETRACE_FLANNEL_BACKEND": "wireguard"})
    assert proc.returncode != 0 and "NODETRACE_FLANNEL_BACKEND=wireguard" in proc.stderr


def test_k3s_scripts_use_what_the_vagrantfile_passes() -> None:
    server = (PROVISION_DIR / "k3s-server.sh").read_text()
    agent = (PROVISION_DIR / "k3s-agent.sh").read_text()
    for text in (server, agent):
        assert re.search(r"^flannel-iface: \$NODE_IFACE$", text, re.M)
        assert re.search(r"^token: \$K3S_TOKEN$", text, re.M)
        assert re.search(r"^node-ip: \$NODE_IP$", text, re.M)
        assert "INSTALL_K3S_VERSION" in text and "INSTALL_K3S_CHANNEL" not in text
        assert re.search(r"^\s+- proxy-mode=iptables$", text, re.M)
    assert re.search(r"^flannel-backend: \$FLANNEL_BACKEND$", server, re.M)
    assert re.search(r"^server: https://\$SERVER_IP:6443$", agent, re.M)


def test_the_kubeconfig_is_copied_out() -> None:
    text = VAGRANTFILE.read_text()
    assert re.search(r'trigger\.after \[:up, :provision\]', text)
    assert 'File.write(File.join(__dir__, "kubeconfig")' in text
