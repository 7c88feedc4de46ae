/* SPDX-License-Identifier: GPL-2.0 */
/* Routing failures: fib:fib_table_lookup and fib6:fib6_table_lookup.
 *
 * Both fire for every lookup, so a forwarded packet costs one program run even when
 * nothing is wrong: successful lookups leave on the first comparison.  What remains
 * is filtered further before any map work:
 *   - the local table (255) is only ever a first try (local addresses); its misses
 *     are how every non-local destination is looked up;
 *   - -EAGAIN is a table miss; it is final only in the main table (fib_lookup turns
 *     it into -ENETUNREACH there); elsewhere a policy rule goes on to the next table.
 * A failure storm (one unroutable destination, a packet each) is aggregated like
 * drops: the first failure of a key at once, then one record per ROUTE_REPORT_NS
 * with a count.
 *
 * Only input lookups (a received packet: iif > 1, forwarded traffic) are reported.
 * The tracepoints carry no namespace, and lookups run in softirq, where the current
 * task is unrelated (an ICMP error's route lookup runs in the context of whatever
 * task the packet interrupted); the lookup is the node's when tc ingress saw the same
 * packet (interface and source) on this CPU just before (ingress_mark, common.h).
 * Without the tc family nothing is attributed (only --all-netns reports, as netns 0).
 * An output lookup that fails in a process (connect() to an unroutable address) is
 * reported by the sock family, with the process, as the syscall's ENETUNREACH.
 */
#ifndef ROUTE_REPORT_NS
#define ROUTE_REPORT_NS 1000000000ULL
#endif
#define NT_RT_TABLE_MAIN 254
#define NT_RT_TABLE_LOCAL 255
#define NT_EAGAIN 11

BPF_TABLE("lru_hash", struct route_key, struct drop_val, route_seen, 4096);
/* `now`: the exact clock (tracing programs may not read the coarse one); the mark's
 * time is tc's coarse clock, never ahead of it. */
static __always_inline u32 route_netns(u32 iif, const void *src, int alen, u64 now)
{
#ifdef WITH_TC
	int zero = 0;
	struct ingress_mark *m = ingress_mark.lookup(&zero);
	if (!m || now - m->ts_ns > INGRESS_MARK_NS)
		return 0;
	u32 *bridge = bridge_port.lookup(&m->ifindex);
	if ((bridge ? *bridge : m->ifindex) != iif)
		return 0;
	u64 saddr[2] = {};
	bpf_probe_read_kernel(saddr, alen & 31, src);
	if (saddr[0] != *(u64 *)m->saddr || saddr[1] != *(u64 *)(m->saddr + 8))
		return 0;
	m->ts_ns = 0;
	struct nt_config *cfg = config.lookup(&zero);
	return cfg ? cfg->node_netns : 0;
#else
	return 0;
#endif
}

/* 1: report now with *count failures; 0: counted for a later record. */
static __always_inline int route_should_report(struct route_key *key, u64 now, u32 *count)
{
	*count = 1;
	struct drop_val *v = route_seen.lookup(key);
	if (!v) {
		struct drop_val fresh = {};
		fresh.reported_ns = now;
		route_seen.update(key, &fresh);
		return 1;
	}
	return storm_should_report(v, now, ROUTE_REPORT_NS, count);
}

static __always_inline int route_failed(u32 tb_id, int err, int iif)
{
	if (err == 0 || iif <= 1 || tb_id == NT_RT_TABLE_LOCAL)
		return 0;
	if (err == -NT_EAGAIN && tb_id != NT_RT_TABLE_MAIN)
		return 0;
	return 1;
}

/* `src`/`dst`/`gw` are tracepoint fields (4 or 16 bytes, per `alen`). */
static __always_inline int on_fib_lookup(u8 family, u32 tb_id, int err, int oif, int iif,
					 const void *src, const void *dst, const void *gw,
					 int alen, u16 sport, u16 dport, u8 proto)
{
	if (!route_failed(tb_id, err, iif))
		return 0;
	u64 now = bpf_ktime_get_ns();
	u32 ino = route_netns((u32)iif, src, alen, now);
	if (!ino) {
		int zero = 0;
		struct nt_config *cfg = config.lookup(&zero);
		if (!cfg || !cfg->scope_all)
			return 0;
	} else if (!netns_in_scope(ino)) {
		return 0;
	}

	struct route_key key = {};
	key.netns_ino = ino;
	key.tb_id = tb_id;
	key.err = err;
	key.iif = (u32)iif;
	key.family = family;
	bpf_probe_read_kernel(key.saddr, alen & 31, src);
	bpf_probe_read_kernel(key.daddr, alen & 31, dst);

	u32 count;
	if (!route_should_report(&key, now, &count))
		return 0;

	struct ev_route *e = ev_reserve(sizeof(struct ev_route), EV_ROUTE, ino, now);
	if (!e)
		return 0;
	__builtin_memcpy(e->tuple.saddr, key.saddr, 16);
	__builtin_memcpy(e->tuple.daddr, key.daddr, 16);
	e->tuple.sport = sport;
	e->tuple.dport = dport;
	e->tuple.family = family;
	e->tuple.proto = proto;
	bpf_probe_read_kernel(e->gateway, alen & 31, gw);
	e->tb_id = tb_id;
	e->err = err;
	e->oif = (u32)oif;
	e->iif = (u32)iif;
	e->count = count;
	events.ringbuf_submit(e, RB_FLAGS);
	return 0;
}
