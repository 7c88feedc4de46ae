"""Kernel struct field offsets for the BPF programs, resolved from BTF at load time.

Every non-UAPI field a program in bpf/ reads is listed here once, as the -D macro it
becomes and the BTF path it comes from.  The distro header tree may describe another
kernel (6.1 headers put sk_buff->head at 200; 6.18 has it at 192), so no program may
take a layout from headers.
"""

from __future__ import annotations

from tracer.kernel.btf import Btf

# macro -> dotted BTF path
FIELDS: dict[str, str] = {
    "OFF_SKB_HEAD": "sk_buff.head",
    "OFF_SKB_DATA": "sk_buff.data",
    "OFF_SKB_LEN": "sk_buff.len",
    "OFF_SKB_NETWORK_HEADER": "sk_buff.network_header",
    "OFF_SKB_TRANSPORT_HEADER": "sk_buff.transport_header",
    "OFF_SKB_DEV": "sk_buff.dev",
    "OFF_SKB_SK": "sk_buff.sk",
    "OFF_SKB_PROTOCOL": "sk_buff.protocol",
    "OFF_DEV_IFINDEX": "net_device.ifindex",
    "OFF_DEV_NAME": "net_device.name",
    "OFF_DEV_NET": "net_device.nd_net.net",
    "OFF_SK_NET": "sock.__sk_common.skc_net.net",
    "OFF_NET_INUM": "net.ns.inum",
    # --- the route, neigh, tcp and sock families ---
    # the calling task's namespace (syscalls, output route lookups)
    "OFF_TASK_NSPROXY": "task_struct.nsproxy",
    "OFF_NSPROXY_NET": "nsproxy.net_ns",
    # a socket's tuple, state and error (sock_common is shared by request and
    # timewait sockets, which tcp_send_reset may hand over)
    "OFF_SK_STATE": "sock.__sk_common.skc_state",
    "OFF_SK_FAMILY": "sock.__sk_common.skc_family",
    "OFF_SK_RCV_SADDR": "sock.__sk_common.skc_rcv_saddr",
    "OFF_SK_DADDR": "sock.__sk_common.skc_daddr",
    "OFF_SK_NUM": "sock.__sk_common.skc_num",
    "OFF_SK_DPORT": "sock.__sk_common.skc_dport",
    "OFF_SK_V6_RCV_SADDR": "sock.__sk_common.skc_v6_rcv_saddr",
    "OFF_SK_V6_DADDR": "sock.__sk_common.skc_v6_daddr",
    "OFF_SK_ERR": "sock.sk_err",
    "OFF_SK_ERR_SOFT": "sock.sk_err_soft",
    "OFF_SK_PROTOCOL": "sock.sk_protocol",
    # the flow a fib_table_lookup raw tracepoint hands over (struct flowi4)
    "OFF_FL4_OIF": "flowi4.__fl_common.flowic_oif",
    "OFF_FL4_IIF": "flowi4.__fl_common.flowic_iif",
    "OFF_FL4_PROTO": "flowi4.__fl_common.flowic_proto",
    "OFF_FL4_SADDR": "flowi4.saddr",
    "OFF_FL4_DADDR": "flowi4.daddr",
    "OFF_FL4_SPORT": "flowi4.uli.ports.sport",
    "OFF_FL4_DPORT": "flowi4.uli.ports.dport",
    # the next hop a neighbour entry resolves
    "OFF_NEIGH_DEV": "neighbour.dev",
    "OFF_NEIGH_TBL": "neighbour.tbl",
    "OFF_NEIGH_STATE": "neighbour.nud_state",
    "OFF_NEIGH_PROBES": "neighbour.probes",
    "OFF_NEIGH_KEY": "neighbour.primary_key",
    "OFF_NTBL_FAMILY": "neigh_table.family",
}

# Only for the kprobe NAT family (bpf/nat.c): nf_conn and its tuples.
NAT_FIELDS: dict[str, str] = {
    "OFF_CT_TUPLEHASH": "nf_conn.tuplehash",
    "OFF_CT_STATUS": "nf_conn.status",
    "OFF_CT_NET": "nf_conn.ct_net.net",
    "OFF_CTH_TUPLE": "nf_conntrack_tuple_hash.tuple",
    "OFF_CTT_SRC_U3": "nf_conntrack_tuple.src.u3",
    "OFF_CTT_SRC_U_ALL": "nf_conntrack_tuple.src.u.all",
    "OFF_CTT_SRC_L3NUM": "nf_conntrack_tuple.src.l3num",
    "OFF_CTT_DST_U3": "nf_conntrack_tuple.dst.u3",
    "OFF_CTT_DST_U_ALL": "nf_conntrack_tuple.dst.u.all",
    "OFF_CTT_DST_PROTONUM": "nf_conntrack_tuple.dst.protonum",
}
# struct sizes the NAT family needs (array strides)
NAT_SIZES: dict[str, str] = {"SIZEOF_CT_TUPLE_HASH": "nf_conntrack_tuple_hash"}

# Drop reasons the drop program must recognise by value (names are stable; values
# are not: NETFILTER_DROP is 6, 7 or 12 depending on the kernel).
REASON_MACROS: dict[str, str] = {
    "REASON_NOT_DROPPED_YET": "SKB_NOT_DROPPED_YET",
    "REASON_CONSUMED": "SKB_CONSUMED",
    "REASON_NOT_SPECIFIED": "SKB_DROP_REASON_NOT_SPECIFIED",
    "REASON_QUEUE_PURGE": "SKB_DROP_REASON_QUEUE_PURGE",
}


def resolve(btf: Btf, families: frozenset[str] = frozenset()) -> dict[str, int]:
    out = {macro: btf.offset_of(path) for macro, path in FIELDS.items()}
    if "nat" in families:
        out.update({macro: btf.offset_of(path) for macro, path in NAT_FIELDS.items()})
        out.update({macro: btf.size_of(struct) for macro, struct in NAT_SIZES.items()})
    return out


def reason_defines(reasons: dict[str, int]) -> dict[str, int]:
    """-D values for the REASON_* macros; a name this kernel lacks gets -1 (never matches)."""
    return {macro: reasons.get(name, -1) for macro, name in REASON_MACROS.items()}
