"""Every mode's pipeline comes from tracer/modes/build.py, and replay's stages are
live's after its recording tee: so a stage added to live and not to replay (or the
other way round) fails here, before a replay can disagree with the session it
replays.  And the one loop, drive(), keeps the loss ledger for every mode."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from tracer.diagnosis.engine import Diagnoser
from tracer.diagnosis.names import NoNames
from tracer.diagnosis.nodefacts import NodeFacts
from tracer.events.model import Endpoint, FlowEvent
from tracer.metadata.index import MetadataIndex
from tracer.modes import build
from tracer.modes.drive import EventSource, drive
from tracer.node.sysctls import ForwardingSysctls
from tracer.pipeline.stage import Pipeline
from tracer.recording.live import LiveRecording
from tracer.recording.reader import RecordingReader
from tracer.recording.writer import SessionFacts
from tracer.sources.stats import SourceStats

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden.ntrec"


def live_pipeline(diagnoser: Diagnoser | None) -> Pipeline:
    index = MetadataIndex(rebuild_interval_s=0.0)
    recording = LiveRecording(SessionFacts(kernel_release="test", attached=[],
                                           unavailable={}, drop_reasons={},
                                           mono_to_wall_ns=0, netns=1),
                              index, SourceStats, snapshot=None)
    return build.live(node_netns=1, sysctls=ForwardingSysctls(), recording=recording,
                      index=index, pod_networks=[], service_networks=[], selected=None,
                      diagnoser=diagnoser)


def test_replay_modes_run_the_live_stages_after_the_recording_tee() -> None:
    live = live_pipeline(Diagnoser(NoNames(), NodeFacts()))
    assert live.names == ("local-names", "recording-tee", "path-marks", "kubernetes-names",
                          "pod-filter", "diagnosis")
    after_tee = tuple(n for n in live.names if n not in build.KERNEL_STAGES)
    with RecordingReader(GOLDEN) as reader:
        assert build.replay(reader).pipeline.names == after_tee
        assert build.replay_feed(reader).pipeline.names == after_tee
        assert build.diagnose_recording(reader).pipeline.names == after_tee
        worker = build.replay_lines(reader).pipeline.names
    assert build.diagnose_events([]).pipeline.names == after_tee
    assert worker == tuple(n for n in after_tee if n != "diagnosis")


def test_a_session_without_findings_has_no_diagnosis_and_no_heartbeat() -> None:
    live = live_pipeline(None)
    assert live.names[-1] == "pod-filter" and live.heartbeat_s is None
    assert live_pipeline(Diagnoser(NoNames(), NodeFacts())).heartbeat_s


class LossySource(EventSource):
    def stats(self) -> SourceStats:
        stats = super().stats()
        stats.lost = {"ringbuf": 3, "decode": 0}
        return stats


def test_drive_keeps_the_loss_ledger_and_says_it_once(
        caplog: pytest.LogCaptureFixture) -> None:
    flows = [FlowEvent(ts_ns=i, wall_ns=i, netns=1, ifindex=2, ifname="eth0",
                       direction="egress", report="new", family=4, proto=6,
                       src=Endpoint("10.0.0.1", 1000 + i), dst=Endpoint("192.0.2.1", 80),
                       tcp_flags=0x10, tcp_flags_seen=0x10, icmp_type=None, icmp_code=None,
                       packets=1, bytes=60, first_wall_ns=i, last_wall_ns=i, role="uplink")
             for i in range(100)]
    run = build.diagnose_events(flows)
    written: list[int] = []

    class Count:
        def write(self, batch: object) -> None:
            written.append(len(batch))  # type: ignore[arg-type]

        def close(self) -> None:
            written.append(-1)

    run = build.EventsRun(LossySource(flows, batch=64), run.pipeline, run.diagnoser)
    with caplog.at_level(logging.WARNING):
        stats = drive(run.source, run.pipeline, [Count()], threading.Event(),
                      more_losses=lambda: {"recording": 2})
    assert written[:2] == [64, 36] and written[-1] == -1
    assert stats.lost == {"ringbuf": 3, "decode": 0, "recording": 2}
    assert run.diagnoser.coverage.lost == {"ringbuf": 3, "recording": 2}
    assert [r.getMessage() for r in caplog.records] == ["events lost: ringbuf 3, recording 2"]


def pod(name: str, ip: str, uid: str) -> dict[str, object]:
    return {"kind": "Pod", "metadata": {"name": name, "namespace": "shop", "uid": uid},
            "spec": {"nodeName": "worker-a"}, "status": {"podIPs": [{"ip": ip}]}}


def test_diagnosis_names_follow_the_index_they_are_given() -> None:
    """Findings are named from the index the events are named from, as it is now:
    a pod added or deleted there is known or gone at the next look-up."""
    from tracer.diagnosis.names import IndexNames, ObjRef

    index = MetadataIndex(rebuild_interval_s=0.0, grace_s=0.0)
    names = IndexNames(index)
    assert names.pod_by_ip("10.42.0.7") is None
    index.apply("Pod", "added", pod("web-1", "10.42.0.7", "u1"))
    assert names.pod_by_ip("10.42.0.7") == ObjRef("Pod", "shop", "web-1", "worker-a")
    assert names.pod_by_uid("u1") == names.pod_by_ip("10.42.0.7")
    index.apply("Pod", "deleted", pod("web-1", "10.42.0.7", "u1"))
    assert names.pod_by_ip("10.42.0.7") is None
