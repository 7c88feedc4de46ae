/* SPDX-License-Identifier: GPL-2.0 */
/* Netfilter NAT decisions, per packet, where the kernel has kprobes:
 * nf_nat_manip_pkt(skb, ct, mtype, dir) rewrites one packet of a translated
 * connection.  One event per (connection, manip type, direction), not per packet:
 * an LRU set of what was already reported keeps the ring buffer for news.
 *
 * struct nf_conn and its tuples are read through BTF offsets (OFF_CT_*), never the
 * header tree's layout.  On kernels without kprobes this family is still compiled and
 * loaded through the verifier by the tests; conntrack events (tracer/conntrack.py)
 * report NAT there.
 */

struct nat_seen_key {
	u64 ct;
	u8 mtype;
	u8 dir;
	u8 _pad[6];
};
BPF_TABLE("lru_hash", struct nat_seen_key, u8, nat_seen, 16384);

static __always_inline void ct_tuple(const void *ct, int dir, struct ev_tuple *t)
{
	const unsigned char *tuple = (const unsigned char *)ct + OFF_CT_TUPLEHASH
				     + dir * SIZEOF_CT_TUPLE_HASH + OFF_CTH_TUPLE;
	u16 l3num = rd_u16(tuple, OFF_CTT_SRC_L3NUM);
	u8 proto = 0;
	bpf_probe_read_kernel(&proto, 1, tuple + OFF_CTT_DST_PROTONUM);
	t->family = l3num == 2 ? 4 : (l3num == 10 ? 6 : 0);
	t->proto = proto;
	bpf_probe_read_kernel(t->saddr, 16, tuple + OFF_CTT_SRC_U3);
	bpf_probe_read_kernel(t->daddr, 16, tuple + OFF_CTT_DST_U3);
	if (t->family == 4) {
		__builtin_memset(t->saddr + 4, 0, 12);
		__builtin_memset(t->daddr + 4, 0, 12);
	}
	t->sport = bpf_ntohs(rd_u16(tuple, OFF_CTT_SRC_U_ALL));
	t->dport = bpf_ntohs(rd_u16(tuple, OFF_CTT_DST_U_ALL));
}

static __always_inline int on_nat_manip(const void *ct, u32 mtype, u32 dir)
{
	struct nat_seen_key seen = {};
	seen.ct = (u64)ct;
	seen.mtype = mtype;
	seen.dir = dir;
	if (nat_seen.lookup(&seen))
		return 0;
	u8 one = 1;
	nat_seen.update(&seen, &one);

	u32 ino = net_inum((const void *)rd_u64(ct, OFF_CT_NET));
	if (!netns_in_scope(ino))
		return 0;
	struct ev_nat *e = ev_reserve(sizeof(struct ev_nat), EV_NAT, ino, bpf_ktime_get_ns());
	if (!e)
		return 0;
	ct_tuple(ct, 0, &e->orig);
	ct_tuple(ct, 1, &e->reply);
	e->status = (u32)rd_u64(ct, OFF_CT_STATUS);
	e->manip = mtype;
	e->dir = dir;
	events.ringbuf_submit(e, RB_FLAGS);
	return 0;
}
