/* SPDX-License-Identifier: GPL-2.0 */
/* bpf/include/events.h — the wire contract between the BPF programs and
 * tracer/schema.py.  tests/unit/test_schema_layout.py compiles this header with the
 * host C compiler and compares every offset and size with schema.py, so a field
 * changed on one side fails a test on the other.  Documented in docs/events.md.
 *
 * Rules: fixed-size records, explicit padding (no implicit holes), little-endian
 * host order except where a name says _be.  Never renumber enum ev_kind: recordings
 * store these values.
 */
#ifndef NODETRACE_EVENTS_H
#define NODETRACE_EVENTS_H

#ifndef __BPF__
#include <linux/types.h>
#endif

enum ev_kind {
	EV_DROP = 1,	/* skb:kfree_skb with a drop reason */
	EV_FLOW = 2,	/* reserved: tc flow aggregation */
	EV_NAT = 3,	/* reserved: netfilter NAT */
	EV_ROUTE = 4,	/* reserved: fib lookup failures */
	EV_NEIGH = 5,	/* reserved: neighbour resolution failures */
	EV_ICMP = 6,	/* reserved: icmp_send */
	EV_TCP = 7,	/* reserved: TCP state / handshake */
	EV_SOCK = 8,	/* reserved: failed bind/connect/listen */
};

/* Indices of the per-CPU loss counters (BPF_PERCPU_ARRAY "loss"). */
enum loss_slot {
	LOSS_RINGBUF_RESERVE = 0,	/* ring buffer full: event not written */
	LOSS_FLOW_MAP_FULL = 1,		/* tc: flow table full, packet not aggregated */
	LOSS_RATE_LIMITED = 2,		/* events suppressed by a per-CPU rate limit */
	LOSS_SLOTS = 8,
};

struct ev_hdr {
	__u64 ts_ns;		/* bpf_ktime_get_ns(), CLOCK_MONOTONIC */
	__u32 netns_ino;	/* network namespace inode; 0 when unknown */
	__u16 kind;		/* enum ev_kind */
	__u16 len;		/* whole record, header included */
};

struct ev_tuple {
	__u8 saddr[16];		/* IPv4: first 4 bytes; network order */
	__u8 daddr[16];
	__u16 sport;		/* host order; 0 when not TCP/UDP */
	__u16 dport;
	__u8 family;		/* 4, 6, or 0 when the packet was not parsed */
	__u8 proto;		/* IPPROTO_* */
	__u8 tcp_flags;		/* FIN 0x01 SYN 0x02 RST 0x04 PSH 0x08 ACK 0x10 */
	__u8 _pad;
};

struct ev_drop {
	struct ev_hdr hdr;
	struct ev_tuple tuple;
	__u64 location;		/* kernel text address that freed the skb */
	__u32 reason_raw;	/* enum skb_drop_reason of the running kernel */
	__u32 ifindex;		/* skb->dev, 0 when none */
	__u32 skb_len;
	__u16 l3_proto;		/* ETH_P_*, host order */
	__u16 _pad;
	char ifname[16];
	__u32 count;		/* drops of this tuple+reason this record stands for (>= 1) */
	__u32 _pad2;
};

/* Drop aggregation (bpf/drops.c): a storm of identical drops becomes one record per
 * DROP_REPORT_NS with a count, never an event per packet; TCP SYN/FIN/RST drops are
 * always reported one by one. */
struct drop_key {
	__u32 netns_ino;
	__u32 ifindex;
	__u32 reason;
	struct ev_tuple tuple;
};

struct drop_val {
	__u64 reported_ns;
	__u64 unreported;
};

/* --- tc flows (bpf/tc.c) -------------------------------------------------- */

enum flow_direction {
	FLOW_INGRESS = 0,
	FLOW_EGRESS = 1,
};

/* Why a flow record was emitted: flows are aggregated in the kernel, so a record
 * is a report on a flow, not a packet. */
enum flow_report {
	FLOW_NEW = 1,		/* first packet of the flow on this hook */
	FLOW_TCP_CONTROL = 2,	/* a SYN, FIN or RST packet: never aggregated away */
	FLOW_UPDATE = 3,	/* periodic: FLOW_UPDATE_NS since the last report */
	FLOW_FINAL = 4,		/* user space read the flow table at exit */
};

struct flow_key {
	__u32 ifindex;
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;		/* host order; ICMP: type */
	__u16 dport;		/* ICMP: code */
	__u8 family;
	__u8 proto;
	__u8 direction;		/* enum flow_direction */
	__u8 _pad;
};

struct flow_val {
	__u64 first_ns;
	__u64 last_ns;
	__u64 reported_ns;
	__u64 packets;
	__u64 bytes;
	__u64 tcp_flags_seen;	/* OR of every packet's flags (u64: BPF atomics are 64-bit) */
};

struct ev_flow {
	struct ev_hdr hdr;
	struct ev_tuple tuple;	/* tuple.tcp_flags: this packet's flags */
	__u64 first_ns;
	__u64 last_ns;
	__u64 packets;
	__u64 bytes;
	__u32 ifindex;
	__u8 direction;		/* enum flow_direction */
	__u8 report;		/* enum flow_report */
	__u8 tcp_flags_seen;
	__u8 _pad;
};

/* --- netfilter NAT (bpf/nat.c; kprobes, where the kernel has them) ---------- */

struct ev_nat {
	struct ev_hdr hdr;
	struct ev_tuple orig;	/* the connection as its first packet had it */
	struct ev_tuple reply;	/* as the reply is expected: differs where NAT applies */
	__u32 status;		/* enum ip_conntrack_status bits (IPS_*) */
	__u8 manip;		/* 0 SRC (SNAT/MASQUERADE), 1 DST (DNAT) */
	__u8 dir;		/* 0 original, 1 reply: which packet was rewritten */
	__u16 _pad;
};

#endif
