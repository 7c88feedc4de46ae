/* SPDX-License-Identifier: GPL-2.0 */
/* ICMP errors the node sends: icmp:icmp_send (kernel >= 6.9), traced once the error
 * passed the kernel's own ICMP rate limit, so the rate here is bounded by it.  The
 * offending packet's 5-tuple is parsed from the skb (the tracepoint's own ports are
 * UDP-only), so a REJECTed TCP SYN to a Service VIP shows VIP and port.
 * IPv4 only: ICMPv6 errors have no tracepoint and are seen by the tc programs
 * (bpf/tc.c), which in turn never report IPv4 ICMP, so no error is reported twice.
 */
static __always_inline int on_icmp_send(const void *skb, int type, int code)
{
	const void *dev = NULL;
	u32 ino = skb_netns(skb, &dev);
	if (!netns_in_scope(ino))
		return 0;

	struct ev_icmp *e = ev_reserve(sizeof(struct ev_icmp), EV_ICMP, ino, bpf_ktime_get_ns());
	if (!e)
		return 0;
	const unsigned char *head = (const unsigned char *)rd_u64(skb, OFF_SKB_HEAD);
	u16 nh_off = rd_u16(skb, OFF_SKB_NETWORK_HEADER);
	if (head && nh_off != 0xffff)
		parse_ip(head + nh_off, NT_ETH_P_IP, &e->inner);
	e->type = (u8)type;
	e->code = (u8)code;
	e->skb_len = rd_u32(skb, OFF_SKB_LEN);
	e->count = 1;	/* via ICMP_VIA_ICMP_SEND (0): the kernel's rate limit, not ours */
	if (dev) {
		e->ifindex = rd_u32(dev, OFF_DEV_IFINDEX);
		bpf_probe_read_kernel_str(e->ifname, sizeof(e->ifname),
					  (const char *)dev + OFF_DEV_NAME);
	}
	events.ringbuf_submit(e, RB_FLAGS);
	return 0;
}
