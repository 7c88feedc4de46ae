/* SPDX-License-Identifier: GPL-2.0 */
/* bpf/include/events.h — the wire contract between the BPF programs and
 * tracer/events/: each struct below is mirrored as a table of fields in its family's
 * module (tracer/events/drop.py for struct ev_drop, ...; ev_hdr and ev_tuple in
 * wire.py).  tests/unit/test_schema_layout.py compiles this header with the host C
 * compiler and compares every offset, size and enum value, so a field changed on one
 * side fails a test on the other.  Documented in docs/events.md.
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
	EV_FLOW = 2,	/* tc flow reports */
	EV_NAT = 3,	/* netfilter NAT (kprobe/fentry) */
	EV_ROUTE = 4,	/* fib lookup failures */
	EV_NEIGH = 5,	/* neighbour resolution failures */
	EV_ICMP = 6,	/* ICMP errors: icmp_send, ICMPv6 via tc */
	EV_TCP = 7,	/* TCP handshakes, resets, errors */
	EV_SOCK = 8,	/* failed bind/connect/listen */
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

#define STORM_SKETCH_REGS 32	/* tracer/events/storm.py: SKETCH_REGS */
#define DROP_SKETCH_REGS STORM_SKETCH_REGS

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
	/* Storm aggregation (drops.c, "Storms"): 0 in a per-flow record.  Otherwise the
	 * record stands for `count` drops of every flow to (daddr, dport, proto, reason)
	 * since the previous one; tuple.saddr is the first source, sport 0. */
	__u8 agg;		/* enum drop_agg */
	__u8 src_multi;		/* 0: every folded drop came from tuple.saddr */
	__u16 _pad3;
	__u32 window_ms;	/* the time since this key's previous report */
	__u64 agg_packets;	/* drops folded into this key since it began, exact */
	__u8 src_regs[DROP_SKETCH_REGS];	/* HyperLogLog registers: distinct sources */
	__u8 flow_regs[DROP_SKETCH_REGS];	/* and distinct (source, sport) */
};

enum drop_agg {
	DROP_AGG_NONE = 0,	/* a record per flow */
	DROP_AGG_DST = 1,	/* by (netns, daddr, dport, proto, reason) */
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

/* Storms (drops.c): a drop point (netns, reason, location) that sees more than
 * DROP_FLOW_BUDGET new flows in DROP_BUDGET_NS folds its drops by destination
 * for DROP_AGG_HOLD_NS: drop_point -> the budget, drop_agg -> the folded counts. */
struct drop_point_key {
	__u64 location;
	__u32 netns_ino;
	__u32 reason;
};

struct drop_point_val {
	__u64 window_start_ns;
	__u64 new_flows;	/* in the window starting at window_start_ns */
	__u64 agg_until_ns;	/* folding while now < this */
};

struct drop_agg_key {
	__u8 daddr[16];
	__u32 netns_ino;
	__u32 reason;
	__u32 ifindex;
	__u16 dport;		/* 0 when not TCP/UDP */
	__u8 family;
	__u8 proto;
};

struct drop_agg_val {
	__u64 first_ns;
	__u64 last_ns;
	__u64 reported_ns;
	__u64 packets;		/* every drop folded into this key, exact */
	__u64 unreported;	/* of which not yet in a record */
	__u64 location;		/* the drop point that began folding it */
	__u8 src_first[16];
	char ifname[16];
	__u32 src_multi;
	__u32 _pad;
	__u8 src_regs[DROP_SKETCH_REGS];
	__u8 flow_regs[DROP_SKETCH_REGS];
};

/* What one CPU folded for the key it saw last and has not yet added to drop_agg. */
struct drop_pending {
	struct drop_agg_key key;
	__u64 location;		/* the drop point this slot folds for */
	__u64 agg_until_ns;	/* the point's, when armed */
	__u64 packets;
	__u64 last_ns;
	__u64 flushed_ns;
	__u32 armed;		/* 0: nothing folded here */
	__u32 src_multi;
	__u8 src_first[16];
	__u8 src_regs[DROP_SKETCH_REGS];
	__u8 flow_regs[DROP_SKETCH_REGS];
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
	FLOW_AGGREGATED = 5,	/* a storm's new flows folded by destination (tc.c) */
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
	__u64 reported_packets;	/* `packets` when last reported: more since -> a final record */
};

/* What one CPU's tc hook of one direction counted for the flow it saw last and has not
 * yet added to that flow's entry in `flows` (tc.c: flow_pending). */
struct flow_pending {
	struct flow_key key;	/* family 0: nothing armed */
	__u32 _pad;
	__u64 packets;
	__u64 bytes;
	__u64 tcp_flags;
	__u64 last_ns;
};

/* Storms at a tc hook (tc.c): flow_storm_budget counts a hook's new flows; past the
 * budget they are folded into flow_agg, a CPU's run first in flow_agg_pending. */
struct flow_hook_key {
	__u32 ifindex;
	__u32 direction;	/* enum flow_direction */
};

struct storm_budget {
	__u64 window_start_ns;
	__u64 new_flows;	/* in the window starting at window_start_ns */
	__u64 agg_until_ns;	/* folding while now < this */
};

struct flow_agg_key {
	__u8 daddr[16];
	__u32 ifindex;
	__u16 dport;		/* 0 when not TCP/UDP */
	__u8 family;
	__u8 proto;
	__u8 direction;
	__u8 _pad[3];
};

struct flow_agg_val {
	__u64 first_ns;
	__u64 last_ns;
	__u64 reported_ns;
	__u64 packets;
	__u64 bytes;
	__u64 reported_packets;	/* `packets` when last reported: more since -> a final record */
	__u8 src_first[16];
	__u32 src_multi;
	__u32 _pad;
	__u8 src_regs[STORM_SKETCH_REGS];
	__u8 flow_regs[STORM_SKETCH_REGS];
};

struct flow_agg_pending {
	struct flow_agg_key key;
	__u32 armed;		/* 0: nothing folded here */
	__u64 agg_until_ns;	/* the hook's, when armed */
	__u64 packets;
	__u64 bytes;
	__u64 last_ns;
	__u64 flushed_ns;
	__u32 src_multi;
	__u32 _pad;
	__u8 src_first[16];
	__u8 src_regs[STORM_SKETCH_REGS];
	__u8 flow_regs[STORM_SKETCH_REGS];
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
	/* Storms (tc.c): set in FLOW_AGGREGATED records and the final records of folded
	 * keys, 0 otherwise.  tuple.saddr is then the first source, sport 0, and
	 * packets/bytes count every packet folded into the key since it began. */
	__u32 window_ms;	/* the time since this key's previous report */
	__u8 src_multi;		/* 0: every folded packet came from tuple.saddr */
	__u8 _pad2[3];
	__u8 src_regs[STORM_SKETCH_REGS];	/* HyperLogLog: distinct sources */
	__u8 flow_regs[STORM_SKETCH_REGS];	/* and distinct (source, sport) */
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


/* --- failures that are not drops (route, neigh, icmp, tcp, sock) --------------- */
/* Loss slot taken by this block: LOSS_RATE_LIMITED (2) counts tcp reset_sent
 * records suppressed by bpf/tcp.c's per-CPU rate limit. */

/* A failed FIB lookup (bpf/route.c): aggregated like drops, one record per
 * ROUTE_REPORT_NS per key with a count. */
struct ev_route {
	struct ev_hdr hdr;
	struct ev_tuple tuple;	/* the flow that was looked up (proto, ports when known) */
	__u8 gateway[16];	/* the tracepoint's gw4/gw6; zero when no nexthop was chosen */
	__u32 tb_id;		/* routing table */
	__s32 err;		/* the tracepoint's err: -ENETUNREACH, -EHOSTUNREACH, -EAGAIN (miss) */
	__u32 oif;
	__u32 iif;		/* > 1: input lookup (a received packet); 1 (lo) or 0: output */
	__u32 count;		/* failures of this key this record stands for (>= 1) */
	__u32 _pad;
};

struct route_key {
	__u32 netns_ino;
	__u32 tb_id;
	__s32 err;
	__u32 iif;
	__u8 saddr[16];
	__u8 daddr[16];
	__u8 family;
	__u8 _pad[3];
};

enum neigh_event {
	NEIGH_EV_FAILED = 1,	/* resolution gave up (timer: max probes) */
	NEIGH_EV_UPDATE_FAILED = 2,	/* set to FAILED by neigh_update (admin, netlink) */
	NEIGH_EV_SEND_DEAD = 3,	/* a packet was sent through a dead entry */
};

struct ev_neigh {
	struct ev_hdr hdr;
	__u8 addr[16];		/* the next hop that could not be resolved; network order */
	__u32 ifindex;
	__u8 family;		/* 4 or 6 */
	__u8 nud_state;		/* NUD_* now */
	__u8 old_state;		/* NUD_* before (neigh_update); 0 when unknown */
	__u8 event;		/* enum neigh_event */
	char ifname[16];
	__u32 probes;		/* probes sent (neighbour.probes) */
	__u32 _pad;
};

/* Where an ICMP error was seen.  0 is icmp_send so that a zeroed field (an older
 * record) means what it meant before the tc source existed. */
enum icmp_via {
	ICMP_VIA_ICMP_SEND = 0,	/* icmp:icmp_send (bpf/icmp.c): IPv4 errors this node sent */
	ICMP_VIA_TC = 1,	/* a tc hook (bpf/tc.c): ICMPv6 errors crossing an interface */
};

/* An ICMP error (bpf/icmp.c, bpf/tc.c): `inner` is the offending packet's tuple. */
struct ev_icmp {
	struct ev_hdr hdr;
	struct ev_tuple inner;
	__u8 type;
	__u8 code;
	__u8 via;		/* enum icmp_via */
	__u8 direction;		/* enum flow_direction; via tc only */
	__u32 ifindex;		/* icmp_send: the offending packet's device; tc: the hook's */
	char ifname[16];	/* icmp_send only: tc names its ifindex in user space */
	__u32 skb_len;		/* icmp_send: the offending packet's; tc: the error's */
	__u32 mtu;		/* ICMPv6 packet too big: the MTU it announces; else 0 */
	__u32 count;		/* errors of this key this record stands for (>= 1; tc) */
	__u32 _pad;
};

/* ICMPv6 error aggregation (bpf/tc.c, map icmp6_seen -> struct drop_val); user space
 * reads what is left unreported at exit. */
struct icmp6_key {
	struct ev_tuple inner;
	__u32 ifindex;
	__u8 direction;		/* enum flow_direction */
	__u8 type;
	__u8 code;
	__u8 _pad;
};

enum tcp_event {
	TCP_EV_CONNECT = 1,	/* CLOSE -> SYN_SENT */
	TCP_EV_ESTABLISHED = 2,	/* SYN_SENT -> ESTABLISHED */
	TCP_EV_FAILED = 3,	/* SYN_SENT -> CLOSE: err says why (ECONNREFUSED, ETIMEDOUT, ...) */
	TCP_EV_RESET_SENT = 4,	/* tcp:tcp_send_reset */
	TCP_EV_RESET_RECEIVED = 5,	/* tcp:tcp_receive_reset outside the handshake */
	TCP_EV_ERROR = 6,	/* sock:inet_sk_error_report not explained by the above */
};

/* What an active open looks like to the TCP family, by socket (bpf/tcp.c). */
struct tcp_handshake {
	__u64 start_ns;
	__u64 cgroup_id;
	__u32 pid;		/* tgid of the connect() caller */
	__u32 syn_retransmits;
	char comm[16];
};

struct ev_tcp {
	struct ev_hdr hdr;
	struct ev_tuple tuple;	/* saddr/sport: this socket's end; daddr/dport: the peer's */
	__u64 duration_ns;	/* since connect(); 0 when not a handshake record */
	__u64 cgroup_id;	/* connect() caller's cgroup2 inode; 0 when unknown */
	__u32 pid;		/* 0 when unknown (a socket opened before tracing, a reset) */
	__u32 err;		/* errno (positive); 0 when none */
	char comm[16];
	__u8 event;		/* enum tcp_event */
	__u8 state;		/* TCP state now (TCP_* of include/net/tcp_states.h) */
	__u8 old_state;
	__u8 syn_retransmits;
	__u32 _pad;
};

enum sock_op {
	SOCK_OP_BIND = 1,
	SOCK_OP_CONNECT = 2,
	SOCK_OP_LISTEN = 3,
	/* a non-blocking connect()'s outcome, as getsockopt(SO_ERROR) tells it (Go, Java
	 * NIO, Python with a timeout, every event loop connect this way) */
	SOCK_OP_CONNECT_ASYNC = 4,
};

/* A failed bind()/connect()/listen() on an AF_INET/AF_INET6 socket (bpf/sockets.c);
 * op SOCK_OP_CONNECT_ASYNC: a connect() that returned EINPROGRESS and then failed. */
struct ev_sock {
	struct ev_hdr hdr;
	__u8 addr[16];		/* the sockaddr passed in; zero for listen() */
	__u16 port;		/* host order */
	__u8 family;		/* 4, 6, or 0 (listen) */
	__u8 op;		/* enum sock_op */
	__u32 err;		/* errno (positive) */
	__u32 pid;		/* tgid */
	__u32 fd;
	__u64 cgroup_id;	/* bpf_get_current_cgroup_id() */
	char comm[16];
};

/* sys_enter_* -> sys_exit_* of one thread */
struct sock_call {
	__u64 uaddr;		/* user pointer to the sockaddr (SO_ERROR: to optval); 0 for listen() */
	__u32 fd;
	__u8 op;
	__u8 _pad[3];
};

#endif
