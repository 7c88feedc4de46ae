"""Path marks on recorded-shape events: each mark's positive case and its near miss."""

from __future__ import annotations

import dataclasses
import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.recording_support import model_strategy
from tracer.events.model import DropEvent, Endpoint, FlowEvent, NatEvent
from tracer.pipeline import path
from tracer.pipeline.path import (
    DNAT_ENDPOINT_DROPPED,
    SYN_RETRANSMITS,
    UNTRANSLATED_POD_SOURCE,
    PathMarker,
)

PODS = [ipaddress.ip_network("10.42.0.0/16")]
SERVICES = [ipaddress.ip_network("10.43.0.0/16")]


def flow(src: str, dst: str, *, role: str = "uplink", direction: str = "egress",
         flags_seen: int = 0x02, packets: int = 1, sport: int = 40000, dport: int = 5432,
         flags: int = 0x02, proto: int = 6) -> FlowEvent:
    return FlowEvent(ts_ns=1, wall_ns=1, netns=1, ifindex=2, ifname="eth0", direction=direction,
                     report="new", family=4, proto=proto, src=Endpoint(src, sport),
                     dst=Endpoint(dst, dport), tcp_flags=flags, tcp_flags_seen=flags_seen,
                     icmp_type=None, icmp_code=None, packets=packets, bytes=60 * packets,
                     first_wall_ns=1, last_wall_ns=1, role=role)


def marks(ev: object) -> tuple[str, ...]:
    return getattr(ev, "marks", ())


def test_pod_source_leaving_an_uplink_to_outside_is_marked() -> None:
    [out] = PathMarker(PODS, SERVICES).process([flow("10.42.0.5", "192.168.2.10")])
    assert UNTRANSLATED_POD_SOURCE in marks(out)


def test_masqueraded_source_is_not_marked() -> None:
    [out] = PathMarker(PODS, SERVICES).process([flow("192.168.1.11", "192.168.2.10")])
    assert UNTRANSLATED_POD_SOURCE not in marks(out)


def test_pod_to_pod_across_nodes_and_pod_veths_are_not_marked() -> None:
    m = PathMarker(PODS, SERVICES)
    cases = [flow("10.42.0.5", "10.42.1.7"),                       # host-gw to a pod
             flow("10.42.0.5", "10.43.0.10"),                      # a Service VIP
             flow("10.42.0.5", "192.168.2.10", role="pod"),        # still on the pod side
             flow("10.42.0.5", "192.168.2.10", direction="ingress")]
    assert all(UNTRANSLATED_POD_SOURCE not in marks(e) for e in m.process(cases))


def test_a_pod_replying_to_a_client_outside_is_not_marked() -> None:
    # a NodePort on another node, SNATed there: the pod answers 192.168.1.12 directly
    m = PathMarker(PODS, SERVICES)
    _, reply, udp_reply, syn_ack_only, opened = m.process([
        flow("192.168.1.12", "10.42.0.11", sport=59032, dport=8080, direction="ingress"),
        flow("10.42.0.11", "192.168.1.12", sport=8080, dport=59032, flags=0x12),
        flow("10.42.0.11", "192.168.2.10", sport=53, dport=41000, proto=17, flags=0),
        flow("10.42.0.11", "192.168.1.13", sport=8080, dport=50000, flags=0x12),
        flow("10.42.0.11", "192.168.1.12", sport=41000, dport=59032)])
    assert UNTRANSLATED_POD_SOURCE not in marks(reply)
    assert UNTRANSLATED_POD_SOURCE not in marks(syn_ack_only)
    # no inbound UDP flow was seen: an unsolicited datagram is the pod's own
    assert UNTRANSLATED_POD_SOURCE in marks(udp_reply)
    assert UNTRANSLATED_POD_SOURCE in marks(opened)


def test_repeated_syns_without_answer_are_marked_one_syn_is_not() -> None:
    m = PathMarker(PODS)
    retried, single, answered = m.process([
        flow("192.168.1.11", "192.168.2.10", packets=3),
        flow("192.168.1.11", "192.168.2.10", packets=1),
        flow("192.168.1.11", "192.168.2.10", packets=3, flags_seen=0x12)])
    assert SYN_RETRANSMITS in marks(retried)
    assert SYN_RETRANSMITS not in marks(single) and SYN_RETRANSMITS not in marks(answered)


def _drop(dst: str, port: int, wall_ns: int) -> DropEvent:
    return DropEvent(ts_ns=wall_ns, wall_ns=wall_ns, netns=1, ifindex=3, ifname="eth0",
                     reason="NETFILTER_DROP", reason_raw=12, location="nft_do_chain+0x1",
                     location_raw=1, family=4, proto=6, src=Endpoint("192.168.1.11", 40000),
                     dst=Endpoint(dst, port), tcp_flags=2, icmp_type=None, icmp_code=None,
                     length=60, l3_proto=0x800)


def test_drop_of_a_dnat_chosen_endpoint_is_marked_others_are_not() -> None:
    nat = NatEvent(ts_ns=1, wall_ns=1_000, netns=1, family=4, proto=6,
                   orig_src=Endpoint("10.42.0.5", 40000), orig_dst=Endpoint("10.43.0.10", 80),
                   reply_src=Endpoint("10.42.1.7", 8080),
                   reply_dst=Endpoint("192.168.1.11", 40000), status=0x20, origin="conntrack",
                   manip=None, ct_event="new")
    _, hit, other, late = PathMarker(PODS).process([
        nat, _drop("10.42.1.7", 8080, 2_000), _drop("10.42.1.7", 9090, 2_000),
        _drop("10.42.1.7", 8080, 1_000 + 121 * 1_000_000_000)])
    assert DNAT_ENDPOINT_DROPPED in marks(hit)
    assert not marks(other) and not marks(late)
    # the endpoint's socket purging its queues on close: it was reached
    closed = dataclasses.replace(_drop("10.42.1.7", 8080, 3_000), reason="QUEUE_PURGE")
    [purged] = PathMarker(PODS).process([nat, closed])[1:]
    assert not marks(purged)


def test_table_shows_the_connection_across_nat() -> None:
    import io

    from tracer.sinks.table import TableSink

    nat = NatEvent(ts_ns=1, wall_ns=1_000, netns=1, family=4, proto=6,
                   orig_src=Endpoint("10.42.0.5", 40000), orig_dst=Endpoint("10.43.0.10", 80),
                   reply_src=Endpoint("10.42.1.7", 8080),
                   reply_dst=Endpoint("10.42.0.5", 40000), status=0x20, origin="conntrack",
                   manip=None, ct_event="new")
    out = io.StringIO()
    TableSink(out).write([nat, *PathMarker(PODS).process([flow("10.42.0.5", "192.168.2.10")])])
    text = out.getvalue()
    assert "tcp 10.42.0.5:40000 → 10.43.0.10:80 ⇒ 10.42.1.7:8080 [dnat]  no reply yet" in text
    assert "eth0 egress (uplink)" in text and "!untranslated-pod-source" in text


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_marks_copy_is_dataclasses_replace(data: st.DataObject) -> None:
    """The generated copy (path._marks_replacer) keeps every other field as it was."""
    cls = data.draw(st.sampled_from([FlowEvent, DropEvent]))
    ev = data.draw(model_strategy(cls))
    marks = data.draw(st.lists(st.sampled_from([SYN_RETRANSMITS, "x"]), max_size=2)
                      .map(tuple))
    copy = path._with_marks(ev, marks)
    assert type(copy) is cls
    assert copy == dataclasses.replace(ev, marks=marks)
