/* SPDX-License-Identifier: GPL-2.0 */
/* Neighbour resolution failures: which next hop on which interface got no answer.
 *
 * Raw tracepoints, because the formatted neigh:* events carry neither the namespace
 * nor anything that leads to it, and neigh_timer_handler runs in a timer, where the
 * current task says nothing: the `struct neighbour *` does (n->dev->nd_net).  Only
 * transitions into NUD_FAILED and sends through dead entries are reported; a healthy
 * resolution never leaves the first comparison.
 */
#define NT_NUD_FAILED 0x20

static __always_inline int neigh_emit(const void *n, u8 event, u8 old_state)
{
	const void *dev = (const void *)rd_u64(n, OFF_NEIGH_DEV);
	u32 ino = dev ? net_inum((const void *)rd_u64(dev, OFF_DEV_NET)) : 0;
	if (!netns_in_scope(ino))
		return 0;
	const void *tbl = (const void *)rd_u64(n, OFF_NEIGH_TBL);
	u32 fam = tbl ? rd_u32(tbl, OFF_NTBL_FAMILY) : 0;

	struct ev_neigh *e = ev_reserve(sizeof(struct ev_neigh), EV_NEIGH, ino, bpf_ktime_get_ns());
	if (!e)
		return 0;
	if (fam == 2) {		/* AF_INET */
		e->family = 4;
		bpf_probe_read_kernel(e->addr, 4, (const char *)n + OFF_NEIGH_KEY);
	} else if (fam == 10) {	/* AF_INET6 */
		e->family = 6;
		bpf_probe_read_kernel(e->addr, 16, (const char *)n + OFF_NEIGH_KEY);
	}
	bpf_probe_read_kernel(&e->nud_state, 1, (const char *)n + OFF_NEIGH_STATE);
	e->old_state = old_state;
	e->event = event;
	e->probes = rd_u32(n, OFF_NEIGH_PROBES);
	if (dev) {
		e->ifindex = rd_u32(dev, OFF_DEV_IFINDEX);
		bpf_probe_read_kernel_str(e->ifname, sizeof(e->ifname),
					  (const char *)dev + OFF_DEV_NAME);
	}
	events.ringbuf_submit(e, RB_FLAGS);
	return 0;
}

static __always_inline u8 neigh_state(const void *n)
{
	u8 s = 0;
	bpf_probe_read_kernel(&s, 1, (const char *)n + OFF_NEIGH_STATE);
	return s;
}

/* neigh_timer_handler(struct neighbour *n, int err): traced after the state change */
static __always_inline int on_neigh_timer(const void *n)
{
	if (neigh_state(n) != NT_NUD_FAILED)
		return 0;
	return neigh_emit(n, NEIGH_EV_FAILED, 0);
}

/* neigh_update(n, lladdr, new, flags, nlmsg_pid): traced before the state change */
static __always_inline int on_neigh_update(const void *n, u8 new_state)
{
	if (new_state != NT_NUD_FAILED)
		return 0;
	u8 old = neigh_state(n);
	if (old == NT_NUD_FAILED)
		return 0;
	return neigh_emit(n, NEIGH_EV_UPDATE_FAILED, old);
}

static __always_inline int on_neigh_send_dead(const void *n)
{
	return neigh_emit(n, NEIGH_EV_SEND_DEAD, 0);
}
