/* SPDX-License-Identifier: GPL-2.0 */
/* The one BCC module nodetrace compiles per run.  Program families live in their own
 * files and are switched on with -D WITH_<FAMILY>; all share the ring buffer, loss
 * counters and scope maps of common.h.
 *
 * The hook entry points are here and nowhere else: BCC generates the `args` struct of
 * a TRACEPOINT_PROBE only in the main file, so each entry point unpacks `args` and
 * calls its family's handler. */
#include "common.h"

#ifdef WITH_DROPS
#include <net/dropreason.h>
#include "drops.c"

/* kfree_skb(struct sk_buff *skb, void *location, enum skb_drop_reason reason[, rx_sk]),
 * raw: in a flood every packet is a drop, and the reasons filtered first (most of
 * what the hook sees) then cost no record fill. */
RAW_TRACEPOINT_PROBE(kfree_skb)
{
	const void *skb = (const void *)ctx->args[0];
	u32 reason = (u32)ctx->args[2];
	if (drop_filtered(reason))
		return 0;
	return on_kfree_skb(skb, (const void *)ctx->args[1],
			    bpf_ntohs(rd_u16(skb, OFF_SKB_PROTOCOL)), reason);
}
#endif

#ifdef WITH_TC
#include "tc.c"

/* Loaded as BPF_PROG_TYPE_SCHED_CLS; attached with tcx links (kernel >= 6.6) or as
 * legacy cls_bpf filters.  Both return TC_ACT_UNSPEC (== TCX_NEXT) on every path. */
int tc_ingress(struct __sk_buff *skb)
{
	return tc_observe(skb, FLOW_INGRESS);
}

int tc_egress(struct __sk_buff *skb)
{
	return tc_observe(skb, FLOW_EGRESS);
}
#endif

#ifdef WITH_NAT
#include <uapi/linux/ptrace.h>	/* struct pt_regs: the x86-64 register frame (ABI) */
#include "nat.c"

/* nf_nat_manip_pkt(struct sk_buff *skb, struct nf_conn *ct,
 *                  enum nf_nat_manip_type mtype, enum ip_conntrack_dir dir) */
int kp_nf_nat_manip_pkt(struct pt_regs *ctx)
{
	return on_nat_manip((const void *)PT_REGS_PARM2(ctx), (u32)PT_REGS_PARM3(ctx),
			    (u32)PT_REGS_PARM4(ctx));
}

/* The same hook as fentry, where the kernel loads fentry programs (cheaper than a
 * kprobe: a trampoline call instead of a breakpoint).  The trampoline hands over the
 * arguments as an array of u64; the Python side loads this function as
 * BPF_PROG_TYPE_TRACING on nf_nat_manip_pkt (tracer/kernel/fentry.py). */
int fe_nf_nat_manip_pkt(u64 *ctx)
{
	return on_nat_manip((const void *)ctx[1], (u32)ctx[2], (u32)ctx[3]);
}
#endif

/* --- failures that are not drops ---------------------------------------------------
 * Tracepoint args are read only where every targeted kernel has the field (the
 * formats of tcp_send_reset and the fib events changed over time); where a format
 * lacks what is needed (a namespace, a socket), a raw tracepoint hands over the
 * kernel object itself. */
#ifdef WITH_ROUTE
#include "route.c"

/* fib_table_lookup(u32 tb_id, const struct flowi4 *flp, const struct fib_nh_common *nhc,
 *                  int err), raw: it runs for every IPv4 route lookup (each forwarded
 * packet), and a successful one must cost no more than this first comparison; the
 * formatted tracepoint would fill its whole record first.  A failed lookup has no
 * next hop, so no gateway. */
RAW_TRACEPOINT_PROBE(fib_table_lookup)
{
	int err = (int)ctx->args[3];
	if (err == 0)
		return 0;
	const char *flp = (const char *)ctx->args[1];
	u32 nogw = 0;
	return on_fib_lookup(4, (u32)ctx->args[0], err, (int)rd_u32(flp, OFF_FL4_OIF),
			     (int)rd_u32(flp, OFF_FL4_IIF), flp + OFF_FL4_SADDR,
			     flp + OFF_FL4_DADDR, &nogw, 4,
			     bpf_ntohs(rd_u16(flp, OFF_FL4_SPORT)),
			     bpf_ntohs(rd_u16(flp, OFF_FL4_DPORT)),
			     rd_u8(flp, OFF_FL4_PROTO));
}

TRACEPOINT_PROBE(fib6, fib6_table_lookup)
{
	return on_fib_lookup(6, args->tb_id, args->err, args->oif, args->iif, args->src,
			     args->dst, args->gw, 16, args->sport, args->dport, args->proto);
}
#endif

#ifdef WITH_NEIGH
#include "neigh.c"

RAW_TRACEPOINT_PROBE(neigh_timer_handler)
{
	return on_neigh_timer((const void *)ctx->args[0]);
}

/* neigh_update(struct neighbour *n, const u8 *lladdr, u8 new, u32 flags, u32 pid) */
RAW_TRACEPOINT_PROBE(neigh_update)
{
	return on_neigh_update((const void *)ctx->args[0], (u8)ctx->args[2]);
}

RAW_TRACEPOINT_PROBE(neigh_event_send_dead)
{
	return on_neigh_send_dead((const void *)ctx->args[0]);
}
#endif

#ifdef WITH_ICMP
#include "icmp.c"

TRACEPOINT_PROBE(icmp, icmp_send)
{
	return on_icmp_send(args->skbaddr, args->type, args->code);
}
#endif

#ifdef WITH_TCP
#include "tcp.c"

TRACEPOINT_PROBE(sock, inet_sock_set_state)
{
	return on_tcp_set_state(args->skaddr, args->oldstate, args->newstate, args->protocol);
}

TRACEPOINT_PROBE(tcp, tcp_retransmit_skb)
{
	return on_tcp_retransmit(args->skaddr, args->state);
}

/* raw: the 6.10+ format has an `enum sk_rst_reason` field that older header trees
 * cannot declare; the arguments (sk, skb, ...) are the same on every kernel */
RAW_TRACEPOINT_PROBE(tcp_send_reset)
{
	return on_tcp_send_reset((const void *)ctx->args[0], (const void *)ctx->args[1]);
}

TRACEPOINT_PROBE(tcp, tcp_receive_reset)
{
	return on_tcp_receive_reset(args->skaddr);
}

RAW_TRACEPOINT_PROBE(inet_sk_error_report)
{
	return on_sk_error_report((const void *)ctx->args[0]);
}
#endif

#ifdef WITH_SOCK
#include "sockets.c"

TRACEPOINT_PROBE(syscalls, sys_enter_bind)
{
	return on_sock_enter(SOCK_OP_BIND, (u32)args->fd, args->umyaddr);
}

TRACEPOINT_PROBE(syscalls, sys_enter_connect)
{
	return on_sock_enter(SOCK_OP_CONNECT, (u32)args->fd, args->uservaddr);
}

TRACEPOINT_PROBE(syscalls, sys_enter_listen)
{
	return on_sock_enter(SOCK_OP_LISTEN, (u32)args->fd, NULL);
}

TRACEPOINT_PROBE(syscalls, sys_exit_bind)
{
	return on_sock_exit(args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_exit_connect)
{
	return on_sock_exit(args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_exit_listen)
{
	return on_sock_exit(args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_enter_getsockopt)
{
	return on_getsockopt_enter((u32)args->fd, (int)args->level, (int)args->optname,
				   args->optval);
}

TRACEPOINT_PROBE(syscalls, sys_exit_getsockopt)
{
	return on_sock_exit(args->ret);
}
#endif
/* --- end of the failures that are not drops --- */
