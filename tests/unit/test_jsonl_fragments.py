"""-o jsonl from cached fragments (tracer/sinks/fragments.py) writes the canonical
lines (records.py + names.py), which are what the json module writes, byte for byte."""

from __future__ import annotations

import dataclasses
import io
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.recording_support import ANY_EVENT, model_strategy
from tracer.events.model import DropEvent, Endpoint, Event, FlowEvent, PodRef, Process, TcpEvent
from tracer.events.records import event_record
from tracer.metadata.names import (
    SCOPE_EXTERNAL,
    SCOPE_POD,
    SCOPE_SERVICE,
    EndpointName,
    PodName,
    ServiceName,
)
from tracer.pipeline.enrich import NAMED_FIELDS, NamedBatch
from tracer.sinks import fragments
from tracer.sinks.fragments import canonical_line, jsonl_line
from tracer.sinks.jsonl import JsonlSink
from tracer.sinks.naming import add_names

_TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=6) \
    | st.sampled_from(["\x7f", "é", "web-a", '"q"'])
_OPT_TEXT = st.none() | _TEXT
_PODS = st.builds(PodName, _OPT_TEXT, _OPT_TEXT, _TEXT, st.booleans(), _OPT_TEXT)
_SERVICES = st.builds(ServiceName, _TEXT, _TEXT, st.none() | st.integers(0, 2**65),
                      _OPT_TEXT, st.none() | st.integers(0, 65535))
_ENDPOINT_NAMES = st.builds(EndpointName, st.sampled_from([SCOPE_POD, SCOPE_SERVICE,
                                                           SCOPE_EXTERNAL]),
                            st.none() | _PODS, st.none() | _SERVICES, _OPT_TEXT,
                            st.lists(_SERVICES, max_size=3).map(tuple))


def _names(ev: Event) -> st.SearchStrategy[Any]:
    """What the enrich stage gives: endpoint names for endpoints, a pod for "@pod"."""
    fields = NAMED_FIELDS.get(type(ev))
    if fields is None:
        return st.none()
    return st.tuples(*(st.none() | (_PODS if f.startswith("@") else _ENDPOINT_NAMES)
                       for f in fields))


def _json(rec: Any) -> bytes:
    return json.dumps(rec, separators=(",", ":")).encode()


@settings(max_examples=1500, deadline=None)
@given(st.data())
def test_any_event_with_any_names_is_the_canonical_line(data: st.DataObject) -> None:
    ev = data.draw(ANY_EVENT | model_strategy(FlowEvent) | model_strategy(DropEvent)
                   | model_strategy(TcpEvent))
    names = data.draw(_names(ev))
    want = _json(add_names(event_record(ev), ev, names))
    assert canonical_line(ev, names) == want
    assert jsonl_line(ev, names) == want
    assert jsonl_line(ev, names) == want     # again: from the caches this time


def test_a_cached_endpoint_takes_each_name_object_it_comes_with() -> None:
    """The endpoint cache is keyed by the name's identity: an endpoint renamed (the
    index rebuilt) is written with its new name, the old entry notwithstanding."""
    ev = FlowEvent(1, 2, 3, 4, "eth0", "egress", "new", 4, 6, Endpoint("10.42.0.5", 80),
                   Endpoint("10.43.0.1", 443), 2, 2, None, None, 1, 60, 2, 2, "uplink")
    a = EndpointName(SCOPE_POD, pod=PodName("default", "web-a", "u1", False, "n1"))
    b = dataclasses.replace(a, pod=PodName("default", "web-b", "u1", False, "n1"))
    for names in [(a, None), (b, None), (a, None), (None, a)]:
        assert jsonl_line(ev, names) == _json(add_names(event_record(ev), ev, names))


def test_full_caches_are_cleared_and_refilled(monkeypatch: Any) -> None:
    monkeypatch.setattr(fragments._ENDS, "limit", 3)
    evs = [FlowEvent(1, 2, 3, 4, "eth0", "egress", "new", 4, 6, Endpoint("10.0.0.1", p),
                     Endpoint("10.0.0.2", 80), 2, 2, None, None, 1, 60, 2, 2)
           for p in range(10)]
    for ev in evs * 2:
        assert jsonl_line(ev, None) == _json(event_record(ev))
    assert len(fragments._ENDS) <= 3


def test_sink_writes_a_named_batch_line_by_line() -> None:
    evs = [FlowEvent(1, 2, 3, 4, "veth1", "ingress", "new", 4, 17,
                     Endpoint("10.42.0.5", 53), Endpoint("10.43.0.10", 53), 0, 0, None,
                     None, 1, 60, 2, 2, "pod", ("syn-retransmits",))] * 2
    name = EndpointName(SCOPE_SERVICE, service=ServiceName("kube-system", "dns", 53))
    out = io.StringIO()
    JsonlSink(out).write(NamedBatch(evs, [(None, name), None]))
    lines = out.getvalue().splitlines()
    assert [json.loads(line)["dst"].get("service") for line in lines] == \
        [{"namespace": "kube-system", "name": "dns", "port": 53}, None]


def test_a_cached_pod_takes_each_name_object_it_comes_with() -> None:
    """The same PodRef and Process objects (the reader interns them) with another pod
    name: the identity caches give each name its own line."""
    ref = PodRef("u1", "c" * 64, "containerd", "burstable", "/kubepods/x")
    ev = TcpEvent(1, 2_000_000_001, 3, "connect", 4, Endpoint("10.42.0.5", 0),
                  Endpoint("10.43.0.1", 443), "SYN_SENT", "CLOSE", None, 0, None, 0,
                  Process(7, "curl", 9), ref)
    a = PodName("default", "web-a", "u1", False, "n1")
    b = PodName("default", "web-b", "u1", False, "n1")
    for names in [(None, None, a), (None, None, b), (None, None, a), (None, None, None)]:
        assert jsonl_line(ev, names) == _json(add_names(event_record(ev), ev, names))


def test_full_identity_caches_are_cleared_and_refilled(monkeypatch: Any) -> None:
    for memo in (fragments._END_TEXTS, fragments._PROCESS_TEXTS, fragments._POD_TEXTS):
        monkeypatch.setattr(memo, "limit", 3)
    evs = [TcpEvent(1, 2, 3, "connect", 4, Endpoint("10.0.0.1", p), Endpoint("10.0.0.2", 80),
                    "SYN_SENT", "CLOSE", None, 0, None, 0, Process(p, "c", 1),
                    PodRef(f"u{p}", None, None, None, "/x"))
           for p in range(10)]
    for ev in evs * 2:
        assert jsonl_line(ev, None) == _json(event_record(ev))
    assert len(fragments._END_TEXTS) <= 3 and len(fragments._PROCESS_TEXTS) <= 3
    assert len(fragments._POD_TEXTS) <= 3
