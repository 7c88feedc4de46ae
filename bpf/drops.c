/* SPDX-License-Identifier: GPL-2.0 */
/* Packet drops: skb:kfree_skb with the kernel's drop reason.
 *
 * Frees that are not drops are filtered here, not in Python: NOT_DROPPED_YET and
 * CONSUMED always; NOT_SPECIFIED unless DROP_KEEP_NOT_SPECIFIED is set, because the
 * kernel's plain kfree_skb() reports it for many frees that lose no traffic (see
 * docs/events.md).  Reason values come from the running kernel's BTF (-D REASON_*).
 */
static __always_inline int on_kfree_skb(const void *skb, const void *location,
					u16 l3_proto, u32 reason)
{
	if (reason == REASON_NOT_DROPPED_YET || reason == REASON_CONSUMED)
		return 0;
#ifndef DROP_KEEP_NOT_SPECIFIED
	if (reason == REASON_NOT_SPECIFIED)
		return 0;
#endif
	const void *dev = NULL;
	u32 ino = skb_netns(skb, &dev);
	if (!netns_in_scope(ino))
		return 0;

	struct ev_drop *e = events.ringbuf_reserve(sizeof(struct ev_drop));
	if (!e) {
		count_loss(LOSS_RINGBUF_RESERVE);
		return 0;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->hdr.ts_ns = bpf_ktime_get_ns();
	e->hdr.netns_ino = ino;
	e->hdr.kind = EV_DROP;
	e->hdr.len = sizeof(struct ev_drop);
	e->location = (u64)location;
	e->reason_raw = reason;
	e->l3_proto = l3_proto;
	e->skb_len = rd_u32(skb, OFF_SKB_LEN);
	if (dev) {
		e->ifindex = rd_u32(dev, OFF_DEV_IFINDEX);
		bpf_probe_read_kernel_str(e->ifname, sizeof(e->ifname),
					  (const char *)dev + OFF_DEV_NAME);
	}
	const unsigned char *head = (const unsigned char *)rd_u64(skb, OFF_SKB_HEAD);
	u16 nh_off = rd_u16(skb, OFF_SKB_NETWORK_HEADER);
	if (head && nh_off != 0xffff)
		parse_ip(head + nh_off, e->l3_proto, &e->tuple);
	events.ringbuf_submit(e, RB_FLAGS);
	return 0;
}
