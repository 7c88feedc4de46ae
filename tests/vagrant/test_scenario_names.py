"""The cluster's scenarios are the lab's: same names (`nodetrace lab list`), minus exactly
the lab scenarios vagrant/README.md lists as having no cluster equivalent; each expects
the finding that lab scenario is built to produce, and the README's table says the same."""

from __future__ import annotations

import re

import yaml

from tests.cluster.support import cluster_scenarios
from tests.vagrant.support import VAGRANT_DIR, lab_scenarios, scenario_dirs, section, table

README = VAGRANT_DIR / "README.md"
NO_EQUIVALENT = "Lab scenarios without a cluster equivalent"

# The contract: lab scenario -> the finding kind `nodetrace diagnose` must report
# ("" for none). Stable names: they are the JSON contract of diagnose.
EXPECTED_FINDING = {
    "healthy": "",
    "masquerade-missing": "masquerade-missing",
    "ip-forward-disabled": "ip-forward-disabled",
    "no-route": "no-route",
    "hostport-conflict": "hostport-conflict",
    "externalip-untranslated": "externalip-untranslated",
    "service-no-endpoints": "service-no-endpoints",
    "dns-unreachable": "dns-unreachable",
    "nodeport-remote-endpoint": "pod-network-unreachable",
    "nexthop-not-adjacent": "nexthop-unreachable",
    "policy-drop": "netfilter-drop",
    "connection-refused": "connection-refused",
    "rp-filter-drop": "rp-filter-drop",
}


def documented_exceptions() -> set[str]:
    """`- \\`name\\`: why` bullets of the README's no-equivalent section; none says "None"."""
    text = section(README.read_text(), NO_EQUIVALENT)
    names = set(re.findall(r"^\s*[-*] `([a-z0-9-]+)`", text, re.M))
    assert names or text.strip().startswith("None"), \
        f"'{NO_EQUIVALENT}' lists no scenario and does not say None"
    return names


def test_names_match_the_lab() -> None:
    lab = set(lab_scenarios())
    cluster = {d.name for d in scenario_dirs()}
    missing = documented_exceptions()
    assert not cluster - lab, f"cluster scenarios the lab does not have: {cluster - lab}"
    assert not missing - lab, f"README lists scenarios the lab does not have: {missing - lab}"
    assert not missing & cluster, f"README says these have no cluster twin, yet they do: " \
                                  f"{missing & cluster}"
    assert lab - cluster == missing, (
        f"lab scenarios with no cluster twin and not in README's '{NO_EQUIVALENT}': "
        f"{lab - cluster - missing}")


def test_every_lab_scenario_has_an_expected_finding() -> None:
    # a new lab scenario must be given its finding here (a kind of docs/findings.md) first
    assert set(lab_scenarios()) == set(EXPECTED_FINDING)


def test_each_scenario_expects_issue_8s_finding() -> None:
    for sc in cluster_scenarios():
        assert sc.finding == EXPECTED_FINDING[sc.name], f"{sc.name}/expect: {sc.finding!r}"
        assert sc.node.startswith("nt-agent"), f"{sc.name}: breaks {sc.node}"


def test_readme_table_matches_the_expect_files() -> None:
    rows = table(section(README.read_text(), "Scenarios"))
    documented = {}
    for row in rows:
        name = row["scenario"].strip("`")
        finding = row["expected finding"].strip("`")
        documented[name] = "" if finding == "none" else finding
    assert documented == {sc.name: sc.finding for sc in cluster_scenarios()}


def test_each_scenarios_client_is_a_pod_of_its_manifest() -> None:
    """tests/cluster reads the client's log to tell a scenario that did not break from a
    diagnosis that missed it: the pod must exist, and only a crash loop has none."""
    for sc in cluster_scenarios():
        docs = yaml.safe_load_all((sc.path / "manifest.yaml").read_text())
        pods = {d["metadata"]["name"] for d in docs if d and d["kind"] == "Pod"}
        if sc.client:
            assert sc.client in pods, f"{sc.name}/expect: client {sc.client!r} is not in {pods}"
        else:
            assert sc.finding == "hostport-conflict", f"{sc.name}/expect: no client"
