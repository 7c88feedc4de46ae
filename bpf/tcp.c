/* SPDX-License-Identifier: GPL-2.0 */
/* TCP handshakes, resets and socket errors.
 *
 * An active open is followed by socket: sock:inet_sock_set_state CLOSE -> SYN_SENT
 * (in connect(), so the caller's pid, comm and cgroup are known) starts an entry in
 * tcp_handshakes; tcp:tcp_retransmit_skb in SYN_SENT counts SYN retransmits into it;
 * SYN_SENT -> ESTABLISHED or -> CLOSE ends it with the duration and, for CLOSE,
 * sk->sk_err (ECONNREFUSED after a RST, ETIMEDOUT after the last SYN retransmit).
 * The kernel sets sk_err before it moves the socket to CLOSE (tcp_done_with_error).
 *
 * inet_sk_error_report follows right after on the same CPU for the same socket;
 * errors already told (a failed handshake, a received reset) are marked per CPU in
 * tcp_explained and not told twice.  Resets sent are rate-limited per CPU: a scan of
 * closed ports is a reset per SYN; suppressed ones are counted (LOSS_RATE_LIMITED).
 */
#ifndef TCP_HANDSHAKES
#define TCP_HANDSHAKES 16384
#endif
#ifndef RESETS_PER_SEC_PER_CPU
#define RESETS_PER_SEC_PER_CPU 1000
#endif
#define NT_TCP_ESTABLISHED 1
#define NT_TCP_SYN_SENT 2
#define NT_TCP_CLOSE 7
#define NT_AF_INET 2
#define NT_AF_INET6 10

BPF_TABLE("lru_hash", u64, struct tcp_handshake, tcp_handshakes, TCP_HANDSHAKES);
BPF_PERCPU_ARRAY(tcp_explained, u64, 1);

struct reset_budget {
	u64 window_ns;
	u64 used;
};
BPF_PERCPU_ARRAY(reset_budget, struct reset_budget, 1);

static __always_inline u32 sk_netns(const void *sk)
{
	return sk ? net_inum((const void *)rd_u64(sk, OFF_SK_NET)) : 0;
}

static __always_inline u8 sk_state(const void *sk)
{
	u8 s = 0;
	bpf_probe_read_kernel(&s, 1, (const char *)sk + OFF_SK_STATE);
	return s;
}

/* This socket's end as saddr/sport, the peer as daddr/dport. */
static __always_inline void sk_tuple(const void *sk, struct ev_tuple *t)
{
	u16 family = rd_u16(sk, OFF_SK_FAMILY);
	if (family == NT_AF_INET) {
		t->family = 4;
		bpf_probe_read_kernel(t->saddr, 4, (const char *)sk + OFF_SK_RCV_SADDR);
		bpf_probe_read_kernel(t->daddr, 4, (const char *)sk + OFF_SK_DADDR);
	} else if (family == NT_AF_INET6) {
		t->family = 6;
		bpf_probe_read_kernel(t->saddr, 16, (const char *)sk + OFF_SK_V6_RCV_SADDR);
		bpf_probe_read_kernel(t->daddr, 16, (const char *)sk + OFF_SK_V6_DADDR);
	} else {
		return;
	}
	t->proto = NT_IPPROTO_TCP;
	t->sport = rd_u16(sk, OFF_SK_NUM);
	t->dport = bpf_ntohs(rd_u16(sk, OFF_SK_DPORT));
}

/* sk_err, else sk_err_soft: an ICMP error that arrives while connect() still holds
 * the socket lock is kept as the soft error (tcp_v4_err) */
static __always_inline u32 sk_error(const void *sk)
{
	u32 err = rd_u32(sk, OFF_SK_ERR);
	return err ? err : rd_u32(sk, OFF_SK_ERR_SOFT);
}

static __always_inline void tcp_mark_explained(const void *sk)
{
	int zero = 0;
	u64 *slot = tcp_explained.lookup(&zero);
	if (slot)
		*slot = (u64)sk;
}

static __always_inline struct ev_tcp *tcp_reserve(u32 ino, u8 event)
{
	struct ev_tcp *e = ev_reserve(sizeof(struct ev_tcp), EV_TCP, ino, bpf_ktime_get_ns());
	if (e)
		e->event = event;
	return e;
}

static __always_inline void tcp_from_handshake(struct ev_tcp *e, struct tcp_handshake *h)
{
	e->duration_ns = e->hdr.ts_ns - h->start_ns;
	e->cgroup_id = h->cgroup_id;
	e->pid = h->pid;
	e->syn_retransmits = h->syn_retransmits > 255 ? 255 : (u8)h->syn_retransmits;
	__builtin_memcpy(e->comm, h->comm, sizeof(e->comm));
}

static __always_inline int on_tcp_set_state(const void *sk, int oldstate, int newstate,
					    u16 protocol)
{
	if (protocol != NT_IPPROTO_TCP)
		return 0;
	u64 key = (u64)sk;
	if (oldstate == NT_TCP_CLOSE && newstate == NT_TCP_SYN_SENT) {
		u32 ino = sk_netns(sk);
		if (!netns_in_scope(ino))
			return 0;
		struct tcp_handshake h = {};
		h.start_ns = bpf_ktime_get_ns();
		h.cgroup_id = bpf_get_current_cgroup_id();
		h.pid = bpf_get_current_pid_tgid() >> 32;
		bpf_get_current_comm(h.comm, sizeof(h.comm));
		tcp_handshakes.update(&key, &h);
		struct ev_tcp *e = tcp_reserve(ino, TCP_EV_CONNECT);
		if (!e)
			return 0;
		sk_tuple(sk, &e->tuple);
		tcp_from_handshake(e, &h);
		e->duration_ns = 0;
		e->state = (u8)newstate;
		e->old_state = (u8)oldstate;
		events.ringbuf_submit(e, RB_FLAGS);
		return 0;
	}
	if (oldstate != NT_TCP_SYN_SENT)
		return 0;
	struct tcp_handshake *h = tcp_handshakes.lookup(&key);
	if (!h)
		return 0;	/* began before tracing, or outside the scope */
	u8 event = newstate == NT_TCP_ESTABLISHED ? TCP_EV_ESTABLISHED : TCP_EV_FAILED;
	struct ev_tcp *e = tcp_reserve(sk_netns(sk), event);
	if (e) {
		sk_tuple(sk, &e->tuple);
		tcp_from_handshake(e, h);
		e->state = (u8)newstate;
		e->old_state = (u8)oldstate;
		if (event == TCP_EV_FAILED) {
			e->err = sk_error(sk);
			tcp_mark_explained(sk);
		}
		events.ringbuf_submit(e, RB_FLAGS);
	}
	tcp_handshakes.delete(&key);
	return 0;
}

static __always_inline int on_tcp_retransmit(const void *sk, int state)
{
	if (state != NT_TCP_SYN_SENT)
		return 0;
	u64 key = (u64)sk;
	struct tcp_handshake *h = tcp_handshakes.lookup(&key);
	if (h)
		__sync_fetch_and_add(&h->syn_retransmits, 1);
	return 0;
}

static __always_inline int reset_allowed(u64 now)
{
	int zero = 0;
	struct reset_budget *b = reset_budget.lookup(&zero);
	if (!b)
		return 0;
	if (now - b->window_ns >= 1000000000ULL) {
		b->window_ns = now;
		b->used = 0;
	}
	if (b->used >= RESETS_PER_SEC_PER_CPU) {
		count_loss(LOSS_RATE_LIMITED);
		return 0;
	}
	b->used++;
	return 1;
}

/* tcp_send_reset(sk, skb, ...): sk may be NULL (no socket: the reset answers skb), a
 * request or timewait socket (sock_common fields only), or a full socket. */
static __always_inline int on_tcp_send_reset(const void *sk, const void *skb)
{
	const void *dev = NULL;
	u32 ino = sk ? sk_netns(sk) : (skb ? skb_netns(skb, &dev) : 0);
	if (!netns_in_scope(ino))
		return 0;
	if (!reset_allowed(bpf_ktime_get_ns()))
		return 0;
	struct ev_tcp *e = tcp_reserve(ino, TCP_EV_RESET_SENT);
	if (!e)
		return 0;
	if (sk) {
		sk_tuple(sk, &e->tuple);
		e->state = sk_state(sk);
	} else if (skb) {
		/* the packet being answered: swap so saddr is our end, as for sockets */
		struct ev_tuple in = {};
		const unsigned char *head = (const unsigned char *)rd_u64(skb, OFF_SKB_HEAD);
		u16 nh_off = rd_u16(skb, OFF_SKB_NETWORK_HEADER);
		if (head && nh_off != 0xffff)
			parse_ip(head + nh_off, 0, &in);
		__builtin_memcpy(e->tuple.saddr, in.daddr, 16);
		__builtin_memcpy(e->tuple.daddr, in.saddr, 16);
		e->tuple.sport = in.dport;
		e->tuple.dport = in.sport;
		e->tuple.family = in.family;
		e->tuple.proto = in.proto;
		e->tuple.tcp_flags = in.tcp_flags;
	}
	events.ringbuf_submit(e, RB_FLAGS);
	return 0;
}

static __always_inline int on_tcp_receive_reset(const void *sk)
{
	u8 state = sk_state(sk);
	if (state == NT_TCP_SYN_SENT)
		return 0;	/* the handshake's FAILED record says ECONNREFUSED */
	u32 ino = sk_netns(sk);
	if (!netns_in_scope(ino))
		return 0;
	struct ev_tcp *e = tcp_reserve(ino, TCP_EV_RESET_RECEIVED);
	if (!e)
		return 0;
	sk_tuple(sk, &e->tuple);
	e->state = state;
	tcp_mark_explained(sk);
	events.ringbuf_submit(e, RB_FLAGS);
	return 0;
}

/* inet_sk_error_report(sk) (raw): only TCP errors nothing above explained already */
static __always_inline int on_sk_error_report(const void *sk)
{
	if (rd_u16(sk, OFF_SK_PROTOCOL) != NT_IPPROTO_TCP)
		return 0;
	int zero = 0;
	u64 *slot = tcp_explained.lookup(&zero);
	if (slot && *slot == (u64)sk) {
		*slot = 0;
		return 0;
	}
	u32 ino = sk_netns(sk);
	if (!netns_in_scope(ino))
		return 0;
	struct ev_tcp *e = tcp_reserve(ino, TCP_EV_ERROR);
	if (!e)
		return 0;
	sk_tuple(sk, &e->tuple);
	e->state = sk_state(sk);
	e->err = sk_error(sk);
	events.ringbuf_submit(e, RB_FLAGS);
	return 0;
}
