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

/* 1: report this drop now (with *count drops), 0: counted, reported later. */
static __always_inline int drop_should_report(struct drop_key *key, u64 now, u32 *count)
{
	*count = 1;
	if (key->tuple.proto == NT_IPPROTO_TCP && (key->tuple.tcp_flags & 0x07))
		return 1;	/* SYN/FIN/RST: never aggregated away */
	struct drop_val *v = drop_seen.lookup(key);
	if (!v) {
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
	if (!drop_should_report(&key, now, &count))
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
