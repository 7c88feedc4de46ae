/* SPDX-License-Identifier: GPL-2.0 */
/* Packet drops: skb:kfree_skb with the kernel's drop reason.
 *
 * Frees that are not drops are filtered here, not in Python: NOT_DROPPED_YET and
 * CONSUMED always; NOT_SPECIFIED unless DROP_KEEP_NOT_SPECIFIED is set, because the
 * kernel's plain kfree_skb() reports it for many frees that lose no traffic (see
 * docs/events.md).  Reason values come from the running kernel's BTF (-D REASON_*).
 */
#ifndef DROP_REPORT_NS
#define DROP_REPORT_NS 1000000000ULL
#endif

BPF_TABLE("lru_hash", struct drop_key, struct drop_val, drop_seen, 8192);

/* --- Storms ------------------------------------------------------------------------
 * A record per flow is exact until every packet is a new flow (a scan, a retry storm
 * of many pods, random source ports): then the ring buffer and user space pay per
 * packet.  So each drop point (netns, reason, location) has a budget of new flows per
 * DROP_BUDGET_NS; past DROP_FLOW_BUDGET, its new flows are folded for DROP_AGG_HOLD_NS
 * by (netns, ifindex, daddr, dport, proto, reason): exact drop counts, distinct
 * sources and flows as HyperLogLog sketches (exact when there is one source), one
 * record per key per DROP_REPORT_NS.  When the hold ends the point is judged again
 * (at most DROP_FLOW_BUDGET per-flow records a hold).  Flows seen before the switch
 * keep their drop_seen entry and their records.  DROP_FLOW_BUDGET 0: never fold.
 *
 * A CPU folds a run of drops of one key in its drop_pending slot first (an array
 * element, no hash, no atomics) and adds it to drop_agg every DROP_PENDING_MAX drops,
 * on another key, or DROP_REPORT_NS after its last add; at exit user space adds what
 * is still pending (tracer/kernel/loader.py: unreported_drop_aggs). */
#define DROP_FLOW_BUDGET STORM_FLOW_BUDGET
#define DROP_BUDGET_NS STORM_BUDGET_NS
#define DROP_AGG_HOLD_NS STORM_HOLD_NS
#ifndef DROP_PENDING_MAX
#define DROP_PENDING_MAX 64
#endif

BPF_TABLE("lru_hash", struct drop_point_key, struct drop_point_val, drop_point, 1024);
/* not LRU: an evicted key would take its unreported drops with it; when full, a
 * flush becomes a record of its own instead (drop_agg_flush) */
BPF_HASH(drop_agg, struct drop_agg_key, struct drop_agg_val, 4096);
BPF_PERCPU_ARRAY(drop_pending, struct drop_pending, 1);

static __always_inline int agg_key_eq(const struct drop_agg_key *a,
				      const struct drop_agg_key *b)
{
	const u32 *x = (const u32 *)a;
	const u32 *y = (const u32 *)b;

#pragma unroll
	for (int i = 0; i < (int)(sizeof(struct drop_agg_key) / 4); i++)
		if (x[i] != y[i])
			return 0;
	return 1;
}

/* One aggregated record: `count` drops of key `k` since `since_ns`. */
static __always_inline void drop_agg_emit(const struct drop_agg_key *k, u64 location,
					  const u8 *src_first, u32 src_multi,
					  const u8 *src_regs, const u8 *flow_regs,
					  const char *ifname, u64 count, u64 total,
					  u64 since_ns, u64 now)
{
	struct ev_drop *e = ev_reserve(sizeof(struct ev_drop), EV_DROP, k->netns_ino, now);
	if (!e)
		return;
	__builtin_memcpy(e->tuple.saddr, src_first, 16);
	__builtin_memcpy(e->tuple.daddr, k->daddr, 16);
	e->tuple.dport = k->dport;
	e->tuple.family = k->family;
	e->tuple.proto = k->proto;
	e->location = location;
	e->reason_raw = k->reason;
	e->ifindex = k->ifindex;
	__builtin_memcpy(e->ifname, ifname, 16);
	e->count = (u32)count;
	e->agg = DROP_AGG_DST;
	e->src_multi = src_multi ? 1 : 0;
	e->window_ms = (u32)((now - since_ns) / 1000000);
	e->agg_packets = total;
	__builtin_memcpy(e->src_regs, src_regs, DROP_SKETCH_REGS);
	__builtin_memcpy(e->flow_regs, flow_regs, DROP_SKETCH_REGS);
	events.ringbuf_submit(e, RB_FLAGS);
}

/* Add what `p` folded to its key's entry; report the key if one is due. */
static __always_inline void drop_agg_flush(struct drop_pending *p, u64 now)
{
	struct drop_agg_val *v = drop_agg.lookup(&p->key);
	char noname[16] = {};

	if (!v) {
		/* the table is full: these drops become a record of their own */
		drop_agg_emit(&p->key, p->location, p->src_first, p->src_multi, p->src_regs,
			      p->flow_regs, noname, p->packets, p->packets, p->flushed_ns, now);
	} else {
		__sync_fetch_and_add(&v->packets, p->packets);
		__sync_fetch_and_add(&v->unreported, p->packets);
		if (p->last_ns > v->last_ns)
			v->last_ns = p->last_ns;
		if (!v->src_multi && (p->src_multi || !addr_eq(v->src_first, p->src_first)))
			v->src_multi = 1;
#pragma unroll
		for (int i = 0; i < DROP_SKETCH_REGS; i++) {
			if (v->src_regs[i] < p->src_regs[i])
				v->src_regs[i] = p->src_regs[i];
			if (v->flow_regs[i] < p->flow_regs[i])
				v->flow_regs[i] = p->flow_regs[i];
		}
		u64 last = v->reported_ns;
		/* one CPU wins the report; the drops it reads leave `unreported` atomically,
		 * so a drop another CPU adds meanwhile stays for the next record */
		if (now - last >= DROP_REPORT_NS &&
		    __sync_val_compare_and_swap(&v->reported_ns, last, now) == last) {
			u64 n = v->unreported;
			if (n) {
				__sync_fetch_and_add(&v->unreported, -n);
				drop_agg_emit(&p->key, v->location, v->src_first, v->src_multi,
					      v->src_regs, v->flow_regs, v->ifname, n, v->packets,
					      last, now);
			}
		}
	}
	p->packets = 0;
	p->src_multi = 0;
	p->flushed_ns = now;
	__builtin_memset(p->src_regs, 0, DROP_SKETCH_REGS);
	__builtin_memset(p->flow_regs, 0, DROP_SKETCH_REGS);
}

/* Count one drop into `p` (armed for its key). */
static __always_inline void drop_fold(struct drop_pending *p, const struct ev_tuple *t,
				      u64 now)
{
	u32 sh = addr_hash(t->saddr);

	if (!p->packets)
		__builtin_memcpy(p->src_first, t->saddr, 16);
	else if (!p->src_multi && !addr_eq(p->src_first, t->saddr))
		p->src_multi = 1;
	sketch_add(p->src_regs, sh);
	sketch_add(p->flow_regs, mix32(sh ^ ((u32)t->sport << 8) ^ t->proto));
	p->packets++;
	p->last_ns = now;
	if (p->packets >= DROP_PENDING_MAX || now - p->flushed_ns >= DROP_REPORT_NS)
		drop_agg_flush(p, now);
}

static __always_inline void drop_agg_key_of(const struct drop_key *key,
					    struct drop_agg_key *ak)
{
	__builtin_memcpy(ak->daddr, key->tuple.daddr, 16);
	ak->netns_ino = key->netns_ino;
	ak->reason = key->reason;
	ak->ifindex = key->ifindex;
	ak->dport = (key->tuple.proto == NT_IPPROTO_TCP || key->tuple.proto == NT_IPPROTO_UDP)
		    ? key->tuple.dport : 0;
	ak->family = key->tuple.family;
	ak->proto = key->tuple.proto;
}

/* A new flow at its drop point: 1 when the point is folding (the drop is then
 * counted in `p`), 0 to report it per flow. */
static __always_inline int drop_budget_fold(struct drop_pending *p,
					    const struct drop_key *key,
					    struct drop_agg_key *ak, u64 location,
					    const void *dev, u64 now)
{
	if (DROP_FLOW_BUDGET == 0 || !p)
		return 0;
	struct drop_point_key pk = {};
	pk.location = location;
	pk.netns_ino = key->netns_ino;
	pk.reason = key->reason;
	struct drop_point_val *pv = drop_point.lookup(&pk);
	if (!pv) {
		struct drop_point_val fresh = {};
		fresh.window_start_ns = now;
		fresh.new_flows = 1;
		drop_point.update(&pk, &fresh);
		return 0;
	}
	if (now >= pv->agg_until_ns) {
		if (now - pv->window_start_ns >= DROP_BUDGET_NS) {
			pv->window_start_ns = now;
			pv->new_flows = 0;
		}
		if (__sync_fetch_and_add(&pv->new_flows, 1) < DROP_FLOW_BUDGET)
			return 0;
		pv->agg_until_ns = now + DROP_AGG_HOLD_NS;
	}

	/* folding: this CPU's slot moves to this key */
	if (p->armed && p->packets)
		drop_agg_flush(p, now);
	__builtin_memcpy(&p->key, ak, sizeof(*ak));
	p->location = location;
	p->agg_until_ns = pv->agg_until_ns;
	p->armed = 1;
	p->flushed_ns = now;
	if (!drop_agg.lookup(ak)) {
		/* the key's first drop is its first record: the switch shows at once */
		struct drop_agg_val fresh = {};
		fresh.first_ns = now;
		fresh.last_ns = now;
		fresh.reported_ns = now;
		fresh.packets = 1;
		fresh.location = location;
		__builtin_memcpy(fresh.src_first, key->tuple.saddr, 16);
		if (dev)
			bpf_probe_read_kernel_str(fresh.ifname, sizeof(fresh.ifname),
						  (const char *)dev + OFF_DEV_NAME);
		u32 sh = addr_hash(key->tuple.saddr);
		sketch_add(fresh.src_regs, sh);
		sketch_add(fresh.flow_regs,
			   mix32(sh ^ ((u32)key->tuple.sport << 8) ^ key->tuple.proto));
		if (drop_agg.insert(ak, &fresh) == 0) {
			drop_agg_emit(ak, location, fresh.src_first, 0, fresh.src_regs,
				      fresh.flow_regs, fresh.ifname, 1, 1, now, now);
			return 1;
		}
	}
	drop_fold(p, &key->tuple, now);
	return 1;
}

/* 1: report this drop now (with *count drops), 0: counted, reported later. */
static __always_inline int drop_should_report(struct drop_key *key, u64 location,
					      const void *dev, u64 now, u32 *count)
{
	*count = 1;
	int zero = 0;
	struct drop_pending *p = drop_pending.lookup(&zero);
	struct drop_agg_key ak = {};
	drop_agg_key_of(key, &ak);
	/* the steady state of a storm: this CPU is folding this key already */
	if (p && p->armed && now < p->agg_until_ns && p->location == location &&
	    agg_key_eq(&p->key, &ak)) {
		drop_fold(p, &key->tuple, now);
		return 0;
	}
	if (key->tuple.proto == NT_IPPROTO_TCP && (key->tuple.tcp_flags & 0x07)) {
		/* SYN/FIN/RST: reported one by one, unless a storm of them is folded */
		return !drop_budget_fold(p, key, &ak, location, dev, now);
	}
	struct drop_val *v = drop_seen.lookup(key);
	if (!v) {
		if (drop_budget_fold(p, key, &ak, location, dev, now))
			return 0;
		struct drop_val fresh = {};
		fresh.reported_ns = now;
		drop_seen.update(key, &fresh);
		return 1;
	}
	return storm_should_report(v, now, DROP_REPORT_NS, count);
}

/* Not drops: a freed skb that was never dropped, and (unless asked for) plain
 * kfree_skb() without a reason and the queues a socket purges as it is destroyed
 * (unread data, a FIN nobody read: every close of a connection its peer ended). */
static __always_inline int drop_filtered(u32 reason)
{
	if (reason == REASON_NOT_DROPPED_YET || reason == REASON_CONSUMED)
		return 1;
#ifndef DROP_KEEP_NOT_SPECIFIED
	if (reason == REASON_NOT_SPECIFIED)
		return 1;
#endif
#ifndef DROP_KEEP_QUEUE_PURGE
	if (reason == REASON_QUEUE_PURGE)
		return 1;
#endif
	return 0;
}

static __always_inline int on_kfree_skb(const void *skb, const void *location,
					u16 l3_proto, u32 reason)
{
	const void *dev = NULL;
	u32 ino = skb_netns(skb, &dev);
	if (!netns_in_scope(ino))
		return 0;

	struct drop_key key = {};
	key.netns_ino = ino;
	key.reason = reason;
	if (dev)
		key.ifindex = rd_u32(dev, OFF_DEV_IFINDEX);
	const unsigned char *head = (const unsigned char *)rd_u64(skb, OFF_SKB_HEAD);
	u16 nh_off = rd_u16(skb, OFF_SKB_NETWORK_HEADER);
	if (head && nh_off != 0xffff)
		parse_ip(head + nh_off, l3_proto, &key.tuple);

	u64 now = bpf_ktime_get_ns();
	u32 count;
	if (!drop_should_report(&key, (u64)location, dev, now, &count))
		return 0;

	struct ev_drop *e = ev_reserve(sizeof(struct ev_drop), EV_DROP, ino, now);
	if (!e)
		return 0;
	__builtin_memcpy(&e->tuple, &key.tuple, sizeof(e->tuple));
	e->location = (u64)location;
	e->reason_raw = reason;
	e->l3_proto = l3_proto;
	e->skb_len = rd_u32(skb, OFF_SKB_LEN);
	e->ifindex = key.ifindex;
	e->count = count;
	if (dev)
		bpf_probe_read_kernel_str(e->ifname, sizeof(e->ifname),
					  (const char *)dev + OFF_DEV_NAME);
	events.ringbuf_submit(e, RB_FLAGS);
	return 0;
}
