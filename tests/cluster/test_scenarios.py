"""Each scenario on the real cluster: break it, run `nodetrace diagnose` on the node it
broke, assert the expected finding, repair it, and assert the finding is gone.

Run on nt-agent1 (vagrant/README.md):
    cd /nodetrace && sudo .venv/bin/python -m pytest tests/cluster

`nodetrace diagnose -o json`'s contract (docs/findings.md): {"findings": [...], "coverage": {...}},
each finding with at least `kind`, `summary`, `evidence` and `fix`. A bare list of findings
is accepted too.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster.support import (
    ROOT,
    SCENARIOS_DIR,
    ClusterScenario,
    cluster_scenarios,
    kubeconfig,
    node_facts,
)

pytestmark = pytest.mark.cluster

DIAGNOSE_S = 20          # the client pods try every 2 s; the finding must come well within
SCRIPT_TIMEOUT_S = 600   # image pulls, rollouts
SETTLE_S = 60            # for the client's connection to fail after break, work after repair
WINDOW_S = 10            # of client log that must show only failures / only successes


def run_script(sc: ClusterScenario, script: str) -> None:
    proc = subprocess.run([str(sc.path / script)], capture_output=True, text=True,
                          timeout=SCRIPT_TIMEOUT_S, check=False)
    assert proc.returncode == 0, f"{sc.name}/{script} failed:\n{proc.stdout}\n{proc.stderr}"


def diagnose() -> list[dict[str, Any]]:
    argv = [str(ROOT / "bin" / "nodetrace"), "diagnose", "--duration", str(DIAGNOSE_S),
            "-o", "json", "--kubeconfig", str(kubeconfig()), "--node", socket.gethostname()]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=DIAGNOSE_S + 120,
                          check=False)
    assert proc.returncode == 0, f"nodetrace diagnose failed:\n{proc.stderr}"
    out = json.loads(proc.stdout)
    findings = out["findings"] if isinstance(out, dict) else out
    assert isinstance(findings, list), f"diagnose -o json: no list of findings: {out!r}"
    return [dict(f) for f in findings]


def client_log(sc: ClusterScenario, since_s: int) -> list[str]:
    argv = ["kubectl", "--kubeconfig", str(kubeconfig()), "-n", sc.namespace, "logs",
            sc.client, f"--since={since_s}s"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    return proc.stdout.splitlines() if proc.returncode == 0 else []


def wait_for_client(sc: ClusterScenario, failing: bool) -> None:
    """Before asking nodetrace, make sure the scenario does what it says: the client's last
    WINDOW_S of log are all failures (broken) or all successes (healthy, repaired). Tells a
    scenario that did not break apart from a diagnosis that missed it."""
    if not sc.client:
        return
    deadline = time.monotonic() + SETTLE_S
    lines: list[str] = []
    while time.monotonic() < deadline:
        lines = client_log(sc, WINDOW_S)
        fails = [ln for ln in lines if "FAIL" in ln]
        if lines and (len(fails) == len(lines) if failing else not fails):
            return
        time.sleep(2)
    state = "fail" if failing else "succeed"
    pytest.fail(f"{sc.name}: {sc.client}'s connection does not {state}; its log:\n"
                + "\n".join(lines[-10:]))


def kinds(findings: list[dict[str, Any]]) -> list[str]:
    return sorted({str(f["kind"]) for f in findings})


@pytest.fixture(scope="module", autouse=True)
def clean_namespaces() -> Iterator[None]:
    yield
    subprocess.run([str(SCENARIOS_DIR / "clean")], timeout=SCRIPT_TIMEOUT_S, check=False,
                   env={**os.environ, "KUBECONFIG": str(kubeconfig())})


@pytest.mark.timeout(2 * SCRIPT_TIMEOUT_S + 2 * SETTLE_S + 2 * (DIAGNOSE_S + 120))
@pytest.mark.parametrize("sc", cluster_scenarios(), ids=lambda sc: sc.name)
def test_scenario(sc: ClusterScenario) -> None:
    here = socket.gethostname()
    if here != sc.node:
        pytest.skip(f"{sc.name} breaks {sc.node}; this is {here} (run the tier there)")
    facts = node_facts()
    assert facts.get("NODE_NAME") == here, "/etc/nodetrace/cluster.env is for another node"

    run_script(sc, "break")
    try:
        wait_for_client(sc, failing=bool(sc.finding))
        found = diagnose()
        if sc.finding:
            assert sc.finding in kinds(found), (
                f"{sc.name}: expected a {sc.finding} finding on {here}, got {kinds(found)}")
            match = next(f for f in found if f["kind"] == sc.finding)
            for key in ("summary", "evidence", "fix"):
                assert match.get(key), f"{sc.name}: the {sc.finding} finding has no {key}"
        else:
            assert found == [], f"healthy cluster, yet findings: {kinds(found)}"
    finally:
        run_script(sc, "repair")
    if sc.finding:
        wait_for_client(sc, failing=False)
        after = diagnose()
        assert sc.finding not in kinds(after), f"{sc.name}: still {sc.finding} after repair"
