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

TRACEPOINT_PROBE(skb, kfree_skb)
{
	return on_kfree_skb(args->skbaddr, args->location, args->protocol, args->reason);
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
#endif
