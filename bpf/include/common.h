/* SPDX-License-Identifier: GPL-2.0 */
/* Maps and helpers shared by every program family of one nodetrace module.
 *
 * Kernel struct fields are read only through the OFF_* constants, which the loader
 * resolves from the running kernel's BTF (tracer/kernel/offsets.py) and passes as -D:
 * the header tree BCC compiles against may be another kernel's, and its layouts lie.
 */
#ifndef NODETRACE_COMMON_H
#define NODETRACE_COMMON_H

#include "events.h"

#ifndef RINGBUF_PAGES
#define RINGBUF_PAGES 256
#endif
/* One ring buffer for every event kind. */
BPF_RINGBUF_OUTPUT(events, RINGBUF_PAGES);

/* Wake-ups.  A record is submitted without waking the reader (a wake-up per record is
 * an interrupt per record, dearer than the record), except every RB_WAKE_EVERY-th
 * record of a CPU: a burst wakes a reader asleep in poll() long before the buffer
 * fills (2 CPUs x 64 records of ~130 bytes: 16 KiB of a 1 MiB buffer), and a trickle
 * waits for the reader's own timer.  RB_FLAGS=0 (-D) is the kernel's default instead:
 * a wake-up whenever the reader has caught up. */
#ifndef RB_WAKE_EVERY
#define RB_WAKE_EVERY 64
#endif
BPF_PERCPU_ARRAY(rb_unwoken, u32, 1);
static __always_inline u64 rb_flags(void)
{
	int zero = 0;
	u32 *n = rb_unwoken.lookup(&zero);

	if (n && ++*n >= RB_WAKE_EVERY) {
		*n = 0;
		return BPF_RB_FORCE_WAKEUP;
	}
	return BPF_RB_NO_WAKEUP;
}
#ifndef RB_FLAGS
#define RB_FLAGS rb_flags()
#endif
/* Ring buffers do not count failed reserves; we do, per CPU, by enum loss_slot. */
BPF_PERCPU_ARRAY(loss, u64, LOSS_SLOTS);

/* Runtime configuration written by user space (slot 0). */
struct nt_config {
	u32 scope_all;		/* 1: every network namespace; 0: only those in scope_netns */
	u32 node_netns;		/* inode of the namespace nodetrace traces as "the node" */
};
BPF_ARRAY(config, struct nt_config, 1);
/* Network namespaces in scope: the node's own and its pods' (inode -> 1). */
BPF_HASH(scope_netns, u32, u8, 4096);

#if defined(WITH_ROUTE) && defined(WITH_TC)
/* The packet tc ingress saw last on this CPU, on one of the node's interfaces.  The fib
 * tracepoints carry no namespace, and an input lookup runs in the softirq that ran tc
 * ingress for the same packet a few microseconds earlier (ip_rcv follows the ingress
 * hook without leaving the CPU), so interface + source + time name the namespace.
 * An ifindex alone would not: ifindexes are per namespace, and a lookup in any other
 * namespace (the next router) can carry the same one.  A mark names one lookup only. */
struct ingress_mark {
	u64 ts_ns;
	u32 ifindex;
	u32 _pad;
	u8 saddr[16];
};
BPF_PERCPU_ARRAY(ingress_mark, struct ingress_mark, 1);
/* A bridge port's packets are routed as input of its bridge (a pod veth on cni0 ->
 * iif cni0): port ifindex -> bridge ifindex, the node's, written by user space. */
BPF_HASH(bridge_port, u32, u32, 4096);
/* on the coarse clock (tc's): the lookup follows within microseconds, but the clock
 * moves a tick (4 ms at HZ=250) at a time */
#define INGRESS_MARK_NS 10000000ULL
#endif

static __always_inline void count_loss(int slot)
{
	u64 *n = loss.lookup(&slot);
	if (n)
		__sync_fetch_and_add(n, 1);
}

static __always_inline void count_loss_n(int slot, u64 n)
{
	u64 *c = loss.lookup(&slot);
	if (c)
		__sync_fetch_and_add(c, n);
}

static __always_inline int netns_in_scope(u32 ino)
{
	int zero = 0;
	struct nt_config *cfg = config.lookup(&zero);
	if (cfg && cfg->scope_all)
		return 1;
	return scope_netns.lookup(&ino) != NULL;
}

static __always_inline u64 rd_u64(const void *base, int off)
{
	u64 v = 0;
	bpf_probe_read_kernel(&v, sizeof(v), (const char *)base + off);
	return v;
}

static __always_inline u32 rd_u32(const void *base, int off)
{
	u32 v = 0;
	bpf_probe_read_kernel(&v, sizeof(v), (const char *)base + off);
	return v;
}

static __always_inline u16 rd_u16(const void *base, int off)
{
	u16 v = 0;
	bpf_probe_read_kernel(&v, sizeof(v), (const char *)base + off);
	return v;
}

/* A zeroed record of `size` bytes with its header filled, or NULL (loss counted).
 * `size` is a constant at every (inlined) call, as bpf_ringbuf_reserve requires. */
static __always_inline void *ev_reserve(u32 size, u8 kind, u32 netns_ino, u64 ts_ns)
{
	struct ev_hdr *h = events.ringbuf_reserve(size);
	if (!h) {
		count_loss(LOSS_RINGBUF_RESERVE);
		return NULL;
	}
	__builtin_memset(h, 0, size);
	h->ts_ns = ts_ns;
	h->netns_ino = netns_ino;
	h->kind = kind;
	h->len = size;
	return h;
}

/* --- Storms (drops.c, tc.c) ---------------------------------------------------------
 * A drop point or a tc hook that sees more than STORM_FLOW_BUDGET new flows in
 * STORM_BUDGET_NS folds its new flows by destination for STORM_HOLD_NS (then it is
 * judged again).  STORM_FLOW_BUDGET 0: never fold (nodetrace trace --storm-flows). */
#ifndef STORM_FLOW_BUDGET
#define STORM_FLOW_BUDGET 64
#endif
#ifndef STORM_BUDGET_NS
#define STORM_BUDGET_NS 1000000000ULL
#endif
#ifndef STORM_HOLD_NS
#define STORM_HOLD_NS 5000000000ULL
#endif

static __always_inline u32 mix32(u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6bU;
	h ^= h >> 13;
	h *= 0xc2b2ae35U;
	h ^= h >> 16;
	return h;
}

static __always_inline u32 addr_hash(const u8 *a)
{
	u32 w[4];
	__builtin_memcpy(w, a, 16);
	return mix32(w[0] ^ mix32(w[1] ^ mix32(w[2] ^ mix32(w[3] ^ 0x9e3779b9U))));
}

/* HyperLogLog with STORM_SKETCH_REGS (32) registers: the low 5 bits pick one, the
 * register keeps the largest 1 + trailing zeros of the other 27 (tracer/events/storm.py
 * turns them into an estimate). */
static __always_inline void sketch_add(u8 *regs, u32 h)
{
	u32 idx = h & (STORM_SKETCH_REGS - 1);
	u32 x = h >> 5;
	u8 rho = 1;

	if (!x) {
		rho = 28;
	} else {
		if (!(x & 0xffff)) { rho += 16; x >>= 16; }
		if (!(x & 0xff)) { rho += 8; x >>= 8; }
		if (!(x & 0xf)) { rho += 4; x >>= 4; }
		if (!(x & 0x3)) { rho += 2; x >>= 2; }
		if (!(x & 0x1)) rho += 1;
	}
	if (regs[idx] < rho)
		regs[idx] = rho;
}

static __always_inline int addr_eq(const u8 *a, const u8 *b)
{
	const u32 *x = (const u32 *)a;
	const u32 *y = (const u32 *)b;
	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3];
}

/* Storm aggregation of an entry seen before: 1 to report now with *count occurrences
 * (this one and those counted since the last report), 0 when only counted. */
static __always_inline int storm_should_report(struct drop_val *v, u64 now, u64 window_ns,
					       u32 *count)
{
	if (now - v->reported_ns < window_ns) {
		__sync_fetch_and_add(&v->unreported, 1);
		return 0;
	}
	*count = (u32)v->unreported + 1;
	v->unreported = 0;
	v->reported_ns = now;
	return 1;
}

static __always_inline u8 rd_u8(const void *base, int off)
{
	u8 v = 0;
	bpf_probe_read_kernel(&v, sizeof(v), (const char *)base + off);
	return v;
}

/* netns inode of a struct net *, 0 when unknown. */
static __always_inline u32 net_inum(const void *net)
{
	return net ? rd_u32(net, OFF_NET_INUM) : 0;
}

/* The namespace an skb belongs to: its device's, else its socket's. */
static __always_inline u32 skb_netns(const void *skb, const void **dev_out)
{
	const void *dev = (const void *)rd_u64(skb, OFF_SKB_DEV);
	*dev_out = dev;
	if (dev)
		return net_inum((const void *)rd_u64(dev, OFF_DEV_NET));
	const void *sk = (const void *)rd_u64(skb, OFF_SKB_SK);
	if (sk)
		return net_inum((const void *)rd_u64(sk, OFF_SK_NET));
	return 0;
}

#define NT_ETH_P_IP 0x0800
#define NT_ETH_P_IPV6 0x86DD
#define NT_IPPROTO_TCP 6
#define NT_IPPROTO_UDP 17
#define NT_IPPROTO_ICMP 1
#define NT_IPPROTO_ICMPV6 58

/* Parse the IP header at `nh` (a kernel address) into t.  `l3` is the ETH_P_* of
 * the skb when known; otherwise the IP version nibble decides.  For ICMP, sport
 * carries the type and dport the code. */
static __always_inline void parse_ip(const unsigned char *nh, u16 l3, struct ev_tuple *t)
{
	/* one read a header, not one a field: each bpf_probe_read_kernel is a helper
	 * call, and on a drop flood these are most of the hook's cost per packet */
	u8 h[20] = {};
	bpf_probe_read_kernel(h, sizeof(h), nh);
	u8 version = h[0] >> 4;
	const unsigned char *l4;
	u8 proto;

	if (l3 == NT_ETH_P_IP || (l3 != NT_ETH_P_IPV6 && version == 4)) {
		if (version != 4)
			return;
		u8 ihl = (h[0] & 0x0f) * 4;
		if (ihl < 20)
			return;
		proto = h[9];
		__builtin_memcpy(t->saddr, h + 12, 4);
		__builtin_memcpy(t->daddr, h + 16, 4);
		t->family = 4;
		t->proto = proto;
		/* Only the first fragment carries the L4 header. */
		if (*(u16 *)(h + 6) & bpf_htons(0x1fff))
			return;
		l4 = nh + ihl;
	} else if (l3 == NT_ETH_P_IPV6 || version == 6) {
		if (version != 6)
			return;
		proto = h[6];
		__builtin_memcpy(t->saddr, h + 8, 12);
		bpf_probe_read_kernel(t->saddr + 12, 20, nh + 20);	/* saddr's end, daddr */
		t->family = 6;
		t->proto = proto;
		l4 = nh + 40;
	} else {
		return;
	}

	if (proto == NT_IPPROTO_TCP) {
		u8 th[14] = {};
		bpf_probe_read_kernel(th, sizeof(th), l4);
		t->sport = ((u16)th[0] << 8) | th[1];
		t->dport = ((u16)th[2] << 8) | th[3];
		t->tcp_flags = th[13];
	} else if (proto == NT_IPPROTO_UDP) {
		u8 uh[4] = {};
		bpf_probe_read_kernel(uh, sizeof(uh), l4);
		t->sport = ((u16)uh[0] << 8) | uh[1];
		t->dport = ((u16)uh[2] << 8) | uh[3];
	} else if (proto == NT_IPPROTO_ICMP || proto == NT_IPPROTO_ICMPV6) {
		u8 tc[2] = {};
		bpf_probe_read_kernel(tc, sizeof(tc), l4);
		t->sport = tc[0];
		t->dport = tc[1];
	}
}

#endif
