"""The probe families coverage counts come from what the loader attached (and, for a
recording, from its header), never from how a hook label happens to be spelled."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.recording_support import FACTS, GOLDEN
from tracer.kernel.hooks import FAMILY_HOOKS, Kprobe
from tracer.recording.reader import RecordingReader, families_of, family_of
from tracer.recording.writer import RecordingWriter, RecordSpec

REPO = Path(__file__).resolve().parents[2]


def test_every_label_the_loader_gives_names_its_family() -> None:
    for family, hooks in FAMILY_HOOKS.items():
        for hook in hooks:
            assert family_of(hook.label) == family, hook
            if isinstance(hook, Kprobe) and hook.fentry_fn is not None:
                assert family_of(hook.fentry_label) == family, hook
    assert family_of("tc/tcx: eth0(uplink), veth1(pod)") == "tc"
    # the drop probe was a tracepoint before it became a raw tracepoint
    assert family_of("tracepoint/skb:kfree_skb") == "drops"
    assert family_of("kprobe/nothing_we_attach") is None
    assert families_of(["raw_tracepoint/kfree_skb", "tc/legacy: no interfaces yet"]) == \
        ["drops", "tc"]


def test_an_old_header_has_its_families_read_off_the_real_labels() -> None:
    with RecordingReader(GOLDEN) as r:
        assert "families" not in r.header.raw       # written before the header said
        assert set(r.header.families) == {"drops", "tc", "route", "neigh", "icmp", "tcp",
                                          "sock"}


def test_the_header_carries_the_families_the_loader_reported(tmp_path: Path) -> None:
    path = tmp_path / "r.ntrec"
    # labels that would say otherwise: the header's list is what counts
    facts = dataclasses.replace(FACTS, attached=["raw_tracepoint/kfree_skb"],
                                families=["neigh", "tc"])
    w = RecordingWriter(RecordSpec(path, argv=("nodetrace", "test")), facts)
    w.close()
    with RecordingReader(path) as r:
        assert r.header.families == ("neigh", "tc")


@pytest.mark.parametrize("recording", [GOLDEN, GOLDEN.with_name("golden-1.0.ntrec")],
                         ids=["2.x", "1.0"])
def test_diagnose_from_a_full_recording_is_blind_to_nothing(recording: Path) -> None:
    """The golden recordings attached every family (their labels as the loader spells
    them): `diagnose --from` must not call the drop rules partly blind."""
    done = subprocess.run([sys.executable, "-m", "tracer.cli.main", "diagnose", "--from",
                           str(recording), "-o", "json"],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr
    cov = json.loads(done.stdout)["coverage"]
    assert cov["partly_blind"] == {}, cov
