"""Regenerate the diagnosis fixtures from real lab runs, as root:

    sudo .venv/bin/python tests/data/diagnosis/capture.py [SCENARIO ...]

For each scenario (default: all): the lab comes up, `nodetrace trace -o jsonl` runs in
the scenario's node (as `lab run` runs it), the scenario's probes are driven once the
tracer is attached, and three files are written here:

    SCENARIO.jsonl         what the tracer printed (docs/events.md)
    SCENARIO.objects.json  the lab's Kubernetes objects (a kubectl List)
    SCENARIO.node.json     the node's state (tracer/recording/nodestate.py's snapshot)

The unit tests (tests/unit/test_diagnosis_rules.py) load them through the decoded-event
model and run the rules on them without root.  Takes the kernel tests' lab lock.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(ROOT))

from tracer.lab import lifecycle  # noqa: E402
from tracer.lab.lifecycle import Lab, probes_of  # noqa: E402
from tracer.lab.runner import start_tracer, tracer_argv, wait_for_file  # noqa: E402
from tracer.lab.scenarios import SCENARIOS, Probe  # noqa: E402

TEST_LOCK = "/run/nodetrace-lab.test-lock"

# another shape of a scenario: name -> (scenario, probes driven first).  With the
# vpn-gw pod's neighbour entry for its gateway fresh (a connection from its own pod
# address), its SYN from 172.16.0.5 reaches node1 and rp_filter drops it there
# (IP_RPFILTER); from a cold start, node1 ignores the pod's ARP requests from that
# address instead and the SYN never leaves the pod.
WARM_VPN = Probe("vpn-gw", "http", "10.42.1.11", 8080, what="from the pod's own address")
VARIANTS: dict[str, tuple[str, tuple[Probe, ...]]] = {
    "rp-filter-drop-arp-cached": ("rp-filter-drop", (WARM_VPN,)),
}
SETTLE_S = 2.0       # after the last probe: late conntrack and retransmit records
HOSTPORT_WAIT_S = 9.0


def node_state(lab: Lab, node: str) -> dict[str, object]:
    code = ("import json\nfrom tracer.recording.nodestate import snapshot\n"
            "print(json.dumps(snapshot()))\n")
    out = subprocess.run(["ip", "netns", "exec", lab.node(node).netns, sys.executable, "-c",
                          code], capture_output=True, text=True, check=True, cwd=ROOT,
                         timeout=60).stdout
    state: dict[str, object] = json.loads(out)
    state["node"] = node
    return state


def drive(lab: Lab, first: tuple[Probe, ...] = ()) -> None:
    sc = lab.scenario
    for probe in (*first, *probes_of(sc)):
        print(f"  {probe.describe()}: {lab.probe(probe)['outcome']}", file=sys.stderr)
    if sc.crashloop_pod:
        time.sleep(HOSTPORT_WAIT_S)   # at least one restart of the crash-looping replica


def capture(name: str) -> None:
    print(f"{name}:", file=sys.stderr)
    scenario, first = VARIANTS.get(name, (name, ()))
    with lifecycle.lab_running(scenario, ttl_s=300) as lab, \
            tempfile.TemporaryDirectory(prefix="nt-diag-capture-") as tmp:
        node = lab.scenario.trace_node
        ready = Path(tmp) / "ready"
        argv = tracer_argv("jsonl", 600, ready)
        out = (HERE / f"{name}.jsonl").open("wb")
        tracer = start_tracer(lab, node, argv, stdout=out, cwd=ROOT)
        try:
            wait_for_file(ready, tracer, 180)
            drive(lab, first)
            time.sleep(SETTLE_S)
        finally:
            tracer.send_signal(signal.SIGINT)
            tracer.wait(timeout=30)
            out.close()
        lab.refresh_objects()
        shutil.copyfile(lab.state.objects_file, HERE / f"{name}.objects.json")
        (HERE / f"{name}.node.json").write_text(
            json.dumps(node_state(lab, node), indent=1) + "\n")


def main(names: list[str]) -> int:
    for name in names or [*SCENARIOS, *VARIANTS]:
        if name not in SCENARIOS and name not in VARIANTS:
            print(f"unknown scenario {name!r}", file=sys.stderr)
            return 2
    with open(TEST_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for name in names or [*SCENARIOS, *VARIANTS]:
            capture(name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
