/* SPDX-License-Identifier: GPL-2.0 */
/* Per-interface flows on pod veths (host side) and node uplinks, tc ingress+egress.
 *
 * Observe only: every path returns TC_ACT_UNSPEC (== TCX_NEXT), so the filters and
 * programs after ours (a CNI's) still run, and no byte is written.  Packets are
 * aggregated per flow in a bounded LRU table; an event is emitted only for a new
 * flow, for each TCP SYN/FIN/RST (never aggregated away), and at most once per
 * FLOW_UPDATE_NS per flow while it is active.  ICMPv6 errors are also reported as
 * `icmp` records (tc_icmp6_error).  Only UAPI layouts are read here (__sk_buff and the
 * packet bytes), so no BTF offsets are needed.
 */
#include <uapi/linux/pkt_cls.h>

#ifndef FLOW_TABLE_SIZE
#define FLOW_TABLE_SIZE 16384
#endif
#ifndef FLOW_UPDATE_NS
#define FLOW_UPDATE_NS 1000000000ULL
#endif

#define TCP_CONTROL_FLAGS 0x07	/* FIN | SYN | RST */

BPF_TABLE("lru_hash", struct flow_key, struct flow_val, flows, FLOW_TABLE_SIZE);

/* A run of packets of one flow on one CPU (a TCP stream's segments, a UDP burst) is
 * counted here first, per CPU and direction, and added to the flow's entry once every
 * FLOW_PENDING_MAX packets or when another flow comes: the shared entry (hash bucket,
 * element, two atomics) costs several cache misses a packet in the datapath, this
 * slot one.  Control packets (SYN/FIN/RST) and a flow's first packet always take the
 * entry, so every report stays as before; counts in `update` records lag by at most
 * FLOW_PENDING_MAX - 1 packets a CPU, and the final records at exit add what is still
 * pending (tracer/kernel/loader.py: unreported_flows). */
#ifndef FLOW_PENDING_MAX
#define FLOW_PENDING_MAX 64
#endif
BPF_PERCPU_ARRAY(flow_pending, struct flow_pending, 2);	/* by enum flow_direction */

/* Parse Ethernet / IPv4 / IPv6 / TCP / UDP / ICMP with direct packet access.
 * Returns 0 with `key` and `*flags` filled, -1 for anything else (not traced). */
static __always_inline int tc_parse(struct __sk_buff *skb, struct flow_key *key, u8 *flags)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	unsigned char *nh = (unsigned char *)data + 14;
	unsigned char *l4;
	u16 eth_proto;

	if (nh > (unsigned char *)data_end)
		return -1;
	eth_proto = *(u16 *)((unsigned char *)data + 12);

	if (eth_proto == bpf_htons(NT_ETH_P_IP)) {
		if (nh + 20 > (unsigned char *)data_end)
			return -1;
		u8 ihl = (nh[0] & 0x0f) * 4;
		if (ihl < 20)
			return -1;
		key->family = 4;
		key->proto = nh[9];
		__builtin_memcpy(key->saddr, nh + 12, 4);
		__builtin_memcpy(key->daddr, nh + 16, 4);
		if (*(u16 *)(nh + 6) & bpf_htons(0x1fff))
			return 0;	/* later fragment: no L4 header */
		l4 = nh + ihl;
	} else if (eth_proto == bpf_htons(NT_ETH_P_IPV6)) {
		if (nh + 40 > (unsigned char *)data_end)
			return -1;
		key->family = 6;
		key->proto = nh[6];
		__builtin_memcpy(key->saddr, nh + 8, 16);
		__builtin_memcpy(key->daddr, nh + 24, 16);
		l4 = nh + 40;
	} else {
		return -1;
	}

	if (key->proto == NT_IPPROTO_TCP) {
		if (l4 + 14 > (unsigned char *)data_end)
			return 0;
		key->sport = bpf_ntohs(*(u16 *)l4);
		key->dport = bpf_ntohs(*(u16 *)(l4 + 2));
		*flags = l4[13];
	} else if (key->proto == NT_IPPROTO_UDP) {
		if (l4 + 4 > (unsigned char *)data_end)
			return 0;
		key->sport = bpf_ntohs(*(u16 *)l4);
		key->dport = bpf_ntohs(*(u16 *)(l4 + 2));
	} else if (key->proto == NT_IPPROTO_ICMP || key->proto == NT_IPPROTO_ICMPV6) {
		if (l4 + 2 > (unsigned char *)data_end)
			return 0;
		key->sport = l4[0];
		key->dport = l4[1];
	}
	return 0;
}

/* --- ICMPv6 errors --------------------------------------------------------------
 * ICMPv6 has no tracepoint (icmp:icmp_send is IPv4's), so its errors are read off the
 * wire here: an `icmp` record (via ICMP_VIA_TC) per error type, code, offending tuple
 * and hook, at once the first time, then at most once per ICMP6_REPORT_NS with the
 * count since.  The kernel's icmpv6 rate limit bounds what this node sends, not what
 * crosses its interfaces; this bounds both.  Per hook, like flows: an error crossing
 * the node (in on one pod's veth, out on another's) is reported at both. */
#ifndef ICMP6_REPORT_NS
#define ICMP6_REPORT_NS 1000000000ULL
#endif
#define ICMP6_ERROR_MAX 4	/* types 1..4: unreachable, too big, time exceeded, param */

BPF_TABLE("lru_hash", struct icmp6_key, struct drop_val, icmp6_seen, 4096);

/* The packet is IPv6 without extension headers (tc_parse found next header 58). */
static __always_inline void tc_icmp6_error(struct __sk_buff *skb, u8 direction)
{
	unsigned char *data = (unsigned char *)(long)skb->data;
	unsigned char *end = (unsigned char *)(long)skb->data_end;
	unsigned char *icmp = data + 14 + 40;
	unsigned char *in = icmp + 8;	/* RFC 4443: the offending packet, as much as fits */
	struct icmp6_key key = {};
	u32 mtu = 0;

	if (in > end)
		return;
	key.type = icmp[0];
	key.code = icmp[1];
	key.ifindex = skb->ifindex;
	key.direction = direction;
	if (key.type == 2)
		mtu = bpf_ntohl(*(u32 *)(icmp + 4));
	if (in + 40 <= end && (in[0] >> 4) == 6) {
		unsigned char *l4 = in + 40;
		key.inner.family = 6;
		key.inner.proto = in[6];
		__builtin_memcpy(key.inner.saddr, in + 8, 16);
		__builtin_memcpy(key.inner.daddr, in + 24, 16);
		if (key.inner.proto == NT_IPPROTO_TCP || key.inner.proto == NT_IPPROTO_UDP) {
			if (l4 + 4 <= end) {
				key.inner.sport = bpf_ntohs(*(u16 *)l4);
				key.inner.dport = bpf_ntohs(*(u16 *)(l4 + 2));
			}
			if (key.inner.proto == NT_IPPROTO_TCP && l4 + 14 <= end)
				key.inner.tcp_flags = l4[13];
		} else if (key.inner.proto == NT_IPPROTO_ICMPV6 && l4 + 2 <= end) {
			key.inner.sport = l4[0];
			key.inner.dport = l4[1];
		}
	}

	u64 now = bpf_ktime_get_ns();	/* exact: the record is ordered among others */
	u32 count = 1;
	struct drop_val *v = icmp6_seen.lookup(&key);
	if (!v) {
		struct drop_val fresh = {};
		fresh.reported_ns = now;
		icmp6_seen.update(&key, &fresh);
	} else if (!storm_should_report(v, now, ICMP6_REPORT_NS, &count)) {
		return;
	}
	int zero = 0;
	struct nt_config *cfg = config.lookup(&zero);
	struct ev_icmp *e = ev_reserve(sizeof(struct ev_icmp), EV_ICMP,
				       cfg ? cfg->node_netns : 0, now);
	if (!e)
		return;
	__builtin_memcpy(&e->inner, &key.inner, sizeof(e->inner));
	e->type = key.type;
	e->code = key.code;
	e->via = ICMP_VIA_TC;
	e->direction = direction;
	e->ifindex = key.ifindex;
	e->skb_len = skb->len;
	e->mtu = mtu;
	e->count = count;
	events.ringbuf_submit(e, RB_FLAGS);
}

static __always_inline void emit_flow(const struct flow_key *key, const struct flow_val *v,
				      u8 flags, u8 report)
{
	struct ev_flow *e = events.ringbuf_reserve(sizeof(struct ev_flow));
	if (!e) {
		count_loss(LOSS_RINGBUF_RESERVE);
		return;
	}
	int zero = 0;
	struct nt_config *cfg = config.lookup(&zero);
	e->hdr.ts_ns = bpf_ktime_get_ns();	/* exact, to order it among other records */
	e->hdr.netns_ino = cfg ? cfg->node_netns : 0;
	e->hdr.kind = EV_FLOW;
	e->hdr.len = sizeof(struct ev_flow);
	__builtin_memcpy(e->tuple.saddr, key->saddr, 16);
	__builtin_memcpy(e->tuple.daddr, key->daddr, 16);
	e->tuple.sport = key->sport;
	e->tuple.dport = key->dport;
	e->tuple.family = key->family;
	e->tuple.proto = key->proto;
	e->tuple.tcp_flags = flags;
	e->tuple._pad = 0;
	e->first_ns = v->first_ns;
	e->last_ns = v->last_ns;
	e->packets = v->packets;
	e->bytes = v->bytes;
	e->ifindex = key->ifindex;
	e->direction = key->direction;
	e->report = report;
	e->tcp_flags_seen = (u8)v->tcp_flags_seen;
	e->_pad = 0;
	events.ringbuf_submit(e, RB_FLAGS);
}

/* --- Storms (common.h) ------------------------------------------------------------
 * A hook (interface, direction) that sees more than STORM_FLOW_BUDGET new flows in
 * STORM_BUDGET_NS folds its new flows for STORM_HOLD_NS by (interface, direction,
 * daddr, dport, proto): one entry in flow_agg instead of one in `flows` and a record
 * each, which is what a scan or a storm of one-packet flows would cost.  Flows that
 * have an entry keep it and their records.  A CPU folds a run of one key in its
 * flow_agg_pending slot first, added to flow_agg every FLOW_PENDING_MAX packets, on
 * another key, or FLOW_UPDATE_NS after its last add; an entry is reported as
 * FLOW_AGGREGATED when it begins and at most once per FLOW_UPDATE_NS after, with
 * its totals since it began (as a flow's update), and at exit (final). */
BPF_TABLE("lru_hash", struct flow_hook_key, struct storm_budget, flow_storm_budget, 4096);
/* not LRU: an evicted key would take its unreported packets with it; when full,
 * what a flush would add is counted as flow_map_full loss */
BPF_HASH(flow_agg, struct flow_agg_key, struct flow_agg_val, 4096);
BPF_PERCPU_ARRAY(flow_agg_pending, struct flow_agg_pending, 2);	/* by direction */

static __always_inline void emit_flow_agg(const struct flow_agg_key *k,
					  const struct flow_agg_val *v, u64 since_ns, u64 now)
{
	struct ev_flow *e = events.ringbuf_reserve(sizeof(struct ev_flow));
	if (!e) {
		count_loss(LOSS_RINGBUF_RESERVE);
		return;
	}
	int zero = 0;
	struct nt_config *cfg = config.lookup(&zero);
	__builtin_memset(e, 0, sizeof(*e));
	e->hdr.ts_ns = bpf_ktime_get_ns();
	e->hdr.netns_ino = cfg ? cfg->node_netns : 0;
	e->hdr.kind = EV_FLOW;
	e->hdr.len = sizeof(struct ev_flow);
	__builtin_memcpy(e->tuple.saddr, v->src_first, 16);
	__builtin_memcpy(e->tuple.daddr, k->daddr, 16);
	e->tuple.dport = k->dport;
	e->tuple.family = k->family;
	e->tuple.proto = k->proto;
	e->first_ns = v->first_ns;
	e->last_ns = v->last_ns;
	e->packets = v->packets;
	e->bytes = v->bytes;
	e->ifindex = k->ifindex;
	e->direction = k->direction;
	e->report = FLOW_AGGREGATED;
	e->window_ms = (u32)((now - since_ns) / 1000000);
	e->src_multi = v->src_multi ? 1 : 0;
	__builtin_memcpy(e->src_regs, v->src_regs, STORM_SKETCH_REGS);
	__builtin_memcpy(e->flow_regs, v->flow_regs, STORM_SKETCH_REGS);
	events.ringbuf_submit(e, RB_FLAGS);
}

static __always_inline void flow_agg_flush(struct flow_agg_pending *p, u64 now)
{
	struct flow_agg_val *v = flow_agg.lookup(&p->key);

	if (!v) {
		count_loss_n(LOSS_FLOW_MAP_FULL, p->packets);
	} else {
		__sync_fetch_and_add(&v->packets, p->packets);
		__sync_fetch_and_add(&v->bytes, p->bytes);
		if (p->last_ns > v->last_ns)
			v->last_ns = p->last_ns;
		if (!v->src_multi && (p->src_multi || !addr_eq(v->src_first, p->src_first)))
			v->src_multi = 1;
#pragma unroll
		for (int i = 0; i < STORM_SKETCH_REGS; i++) {
			if (v->src_regs[i] < p->src_regs[i])
				v->src_regs[i] = p->src_regs[i];
			if (v->flow_regs[i] < p->flow_regs[i])
				v->flow_regs[i] = p->flow_regs[i];
		}
		u64 last = v->reported_ns;
		if (now - last >= FLOW_UPDATE_NS) {
			v->reported_ns = now;
			v->reported_packets = v->packets;
			emit_flow_agg(&p->key, v, last, now);
		}
	}
	p->packets = 0;
	p->bytes = 0;
	p->src_multi = 0;
	p->flushed_ns = now;
	__builtin_memset(p->src_regs, 0, STORM_SKETCH_REGS);
	__builtin_memset(p->flow_regs, 0, STORM_SKETCH_REGS);
}

static __always_inline int flow_agg_key_eq(const struct flow_agg_key *a,
					   const struct flow_agg_key *b)
{
	const u32 *x = (const u32 *)a;
	const u32 *y = (const u32 *)b;

#pragma unroll
	for (int i = 0; i < (int)(sizeof(struct flow_agg_key) / 4); i++)
		if (x[i] != y[i])
			return 0;
	return 1;
}

/* A packet of a flow without an entry: 1 when its hook is folding (the packet is
 * then counted), 0 to give the flow its entry as ever. */
static __always_inline int flow_storm_fold(const struct flow_key *key, u32 len, u64 now)
{
	if (STORM_FLOW_BUDGET == 0)
		return 0;
	int slot = key->direction;
	struct flow_agg_pending *p = flow_agg_pending.lookup(&slot);
	if (!p)
		return 0;
	struct flow_agg_key ak = {};
	__builtin_memcpy(ak.daddr, key->daddr, 16);
	ak.ifindex = key->ifindex;
	if (key->proto == NT_IPPROTO_TCP || key->proto == NT_IPPROTO_UDP)
		ak.dport = key->dport;
	ak.family = key->family;
	ak.proto = key->proto;
	ak.direction = key->direction;

	if (!(p->armed && now < p->agg_until_ns && flow_agg_key_eq(&p->key, &ak))) {
		struct flow_hook_key hk = {};
		hk.ifindex = key->ifindex;
		hk.direction = key->direction;
		struct storm_budget *b = flow_storm_budget.lookup(&hk);
		if (!b) {
			struct storm_budget fresh = {};
			fresh.window_start_ns = now;
			fresh.new_flows = 1;
			flow_storm_budget.update(&hk, &fresh);
			return 0;
		}
		if (now >= b->agg_until_ns) {
			if (now - b->window_start_ns >= STORM_BUDGET_NS) {
				b->window_start_ns = now;
				b->new_flows = 0;
			}
			if (__sync_fetch_and_add(&b->new_flows, 1) < STORM_FLOW_BUDGET)
				return 0;
			b->agg_until_ns = now + STORM_HOLD_NS;
		}
		if (p->armed && p->packets)
			flow_agg_flush(p, now);
		__builtin_memcpy(&p->key, &ak, sizeof(ak));
		p->agg_until_ns = b->agg_until_ns;
		p->armed = 1;
		p->flushed_ns = now;
		if (!flow_agg.lookup(&ak)) {
			/* the key's first packet is its first record: the switch shows at once */
			struct flow_agg_val fresh = {};
			fresh.first_ns = now;
			fresh.last_ns = now;
			fresh.reported_ns = now;
			fresh.packets = 1;
			fresh.bytes = len;
			fresh.reported_packets = 1;
			__builtin_memcpy(fresh.src_first, key->saddr, 16);
			u32 sh = addr_hash(key->saddr);
			sketch_add(fresh.src_regs, sh);
			sketch_add(fresh.flow_regs, mix32(sh ^ ((u32)key->sport << 8) ^ key->proto));
			if (flow_agg.insert(&ak, &fresh) == 0) {
				emit_flow_agg(&ak, &fresh, now, now);
				return 1;
			}
		}
	}
	u32 sh = addr_hash(key->saddr);
	if (!p->packets)
		__builtin_memcpy(p->src_first, key->saddr, 16);
	else if (!p->src_multi && !addr_eq(p->src_first, key->saddr))
		p->src_multi = 1;
	sketch_add(p->src_regs, sh);
	sketch_add(p->flow_regs, mix32(sh ^ ((u32)key->sport << 8) ^ key->proto));
	p->packets++;
	p->bytes += len;
	p->last_ns = now;
	if (p->packets >= FLOW_PENDING_MAX || now - p->flushed_ns >= FLOW_UPDATE_NS)
		flow_agg_flush(p, now);
	return 1;
}

static __always_inline int flow_key_eq(const struct flow_key *a, const struct flow_key *b)
{
	const u32 *x = (const u32 *)a;
	const u32 *y = (const u32 *)b;

#pragma unroll
	for (int i = 0; i < (int)(sizeof(struct flow_key) / 4); i++)
		if (x[i] != y[i])
			return 0;
	return 1;
}

/* The next packets of `key` on this CPU are counted in `p` (its entry exists). */
static __always_inline void flow_arm(struct flow_pending *p, const struct flow_key *key)
{
	if (p)
		__builtin_memcpy(&p->key, key, sizeof(*key));
}

/* Add what `p` counted to its flow's entry; report an update if one is due. */
static __always_inline void flow_flush(struct flow_pending *p, u64 now)
{
	struct flow_val *v = flows.lookup(&p->key);

	if (!v) {
		/* evicted since (the table is full): these packets cannot be told; the
		 * flow's next packet takes the slow path and enters it again */
		count_loss(LOSS_FLOW_MAP_FULL);
		p->key.family = 0;
	} else {
		__sync_fetch_and_add(&v->packets, p->packets);
		__sync_fetch_and_add(&v->bytes, p->bytes);
		if ((v->tcp_flags_seen & p->tcp_flags) != p->tcp_flags)
			__sync_fetch_and_or(&v->tcp_flags_seen, p->tcp_flags);
		if (p->last_ns > v->last_ns)
			v->last_ns = p->last_ns;
		if (now - v->reported_ns >= FLOW_UPDATE_NS) {
			v->reported_ns = now;
			v->reported_packets = v->packets;
			emit_flow(&p->key, v, 0, FLOW_UPDATE);
		}
	}
	p->packets = 0;
	p->bytes = 0;
	p->tcp_flags = 0;
}

static __always_inline int tc_observe(struct __sk_buff *skb, u8 direction)
{
	struct flow_key key = {};
	u8 flags = 0;

	if (tc_parse(skb, &key, &flags) < 0)
		return TC_ACT_UNSPEC;
	/* a packet that is no ICMPv6 error pays these comparisons and nothing more */
	if (key.proto == NT_IPPROTO_ICMPV6 && key.family == 6 && key.sport >= 1 &&
	    key.sport <= ICMP6_ERROR_MAX)
		tc_icmp6_error(skb, direction);
	key.ifindex = skb->ifindex;
	key.direction = direction;

	/* the tick's time (CLOCK_MONOTONIC_COARSE, a few ms): flows need no finer, and the
	 * exact clock is a third of this program's cost per packet (25 of 77 ns here) */
	u64 now = bpf_ktime_get_coarse_ns();
#ifdef WITH_ROUTE
	if (direction == FLOW_INGRESS) {
		int zero = 0;
		struct ingress_mark *m = ingress_mark.lookup(&zero);
		if (m) {
			m->ts_ns = now;
			m->ifindex = key.ifindex;
			__builtin_memcpy(m->saddr, key.saddr, 16);
		}
	}
#endif
	u32 len = skb->len;
	int slot = direction;
	struct flow_pending *p = flow_pending.lookup(&slot);
	if (p) {
		if (!(flags & TCP_CONTROL_FLAGS) && p->key.family && flow_key_eq(&p->key, &key)) {
			p->packets++;
			p->bytes += len;
			p->tcp_flags |= flags;
			p->last_ns = now;
			if (p->packets >= FLOW_PENDING_MAX)
				flow_flush(p, now);
			return TC_ACT_UNSPEC;
		}
		if (p->packets)
			flow_flush(p, now);
		p->key.family = 0;	/* armed again below, once this packet has its entry */
	}
	struct flow_val *v = flows.lookup(&key);
	if (!v) {
		if (flow_storm_fold(&key, len, now))
			return TC_ACT_UNSPEC;
		struct flow_val fresh = {};
		fresh.first_ns = now;
		fresh.last_ns = now;
		fresh.reported_ns = now;
		fresh.reported_packets = 1;
		fresh.packets = 1;
		fresh.bytes = len;
		fresh.tcp_flags_seen = flags;
		int err = flows.insert(&key, &fresh);
		if (err == 0) {
			emit_flow(&key, &fresh, flags, FLOW_NEW);
			flow_arm(p, &key);
			return TC_ACT_UNSPEC;
		}
		/* -EEXIST: another CPU created it first; anything else: no room */
		v = flows.lookup(&key);
		if (!v) {
			count_loss(LOSS_FLOW_MAP_FULL);
			if (flags & TCP_CONTROL_FLAGS)
				emit_flow(&key, &fresh, flags, FLOW_TCP_CONTROL);
			return TC_ACT_UNSPEC;
		}
	}
	__sync_fetch_and_add(&v->packets, 1);
	__sync_fetch_and_add(&v->bytes, len);
	if ((v->tcp_flags_seen & flags) != flags)
		__sync_fetch_and_or(&v->tcp_flags_seen, (u64)flags);
	v->last_ns = now;
	if (flags & TCP_CONTROL_FLAGS) {
		v->reported_ns = now;
		v->reported_packets = v->packets;
		emit_flow(&key, v, flags, FLOW_TCP_CONTROL);
	} else if (now - v->reported_ns >= FLOW_UPDATE_NS) {
		v->reported_ns = now;
		v->reported_packets = v->packets;
		emit_flow(&key, v, flags, FLOW_UPDATE);
	}
	flow_arm(p, &key);
	return TC_ACT_UNSPEC;
}
