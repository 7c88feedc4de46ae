"""Where the cluster tier runs: on a node of the vagrant/ k3s cluster, whose provisioning
writes /etc/nodetrace/cluster.env (NODETRACE_CLUSTER=1, this node's facts) and a
kubeconfig. Scenario folders and their `expect` files are read here and by tests/vagrant."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS_DIR = ROOT / "vagrant" / "scenarios"
CLUSTER_ENV = Path("/etc/nodetrace/cluster.env")
DEFAULT_KUBECONFIG = Path("/etc/nodetrace/kubeconfig")


@dataclass(frozen=True)
class ClusterScenario:
    name: str
    path: Path
    node: str           # the node break/repair run on and nodetrace diagnoses
    finding: str        # the finding kind nodetrace must report there; "" for none
    client: str         # the pod whose log shows the connection ("" for none)

    @property
    def namespace(self) -> str:
        return f"nt-{self.name}"


def read_key_values(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            if not sep:
                raise ValueError(f"{path}: not KEY=VALUE: {line!r}")
            values[key.strip()] = value.strip()
    return values


def cluster_scenarios() -> list[ClusterScenario]:
    out = []
    for d in sorted(p for p in SCENARIOS_DIR.iterdir() if p.is_dir()):
        exp = read_key_values(d / "expect")
        out.append(ClusterScenario(d.name, d, exp["node"], exp["finding"], exp["client"]))
    return out


def kubeconfig() -> Path:
    return Path(os.environ.get("KUBECONFIG") or node_facts().get("KUBECONFIG")
                or DEFAULT_KUBECONFIG)


def cluster_skip_reason() -> str | None:
    """None inside the cluster; otherwise why the cluster tier cannot run here."""
    if "1" not in (os.environ.get("NODETRACE_CLUSTER"), node_facts().get("NODETRACE_CLUSTER")):
        return ("cluster tier: runs only on a node of the vagrant/ k3s cluster "
                f"(no {CLUSTER_ENV} and NODETRACE_CLUSTER=1 is not set; see vagrant/README.md)")
    if not kubeconfig().is_file():
        return f"cluster tier: no kubeconfig at {kubeconfig()} (vagrant/provision/kubeconfig.sh)"
    if os.geteuid() != 0:
        return "cluster tier: needs root (break/repair change the node; tracing needs CAP_BPF)"
    return None


def node_facts() -> dict[str, str]:
    return read_key_values(CLUSTER_ENV) if CLUSTER_ENV.is_file() else {}
