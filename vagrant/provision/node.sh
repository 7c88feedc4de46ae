#!/usr/bin/env bash
# Every k3s node, first: the cluster's facts in /etc/nodetrace/cluster.env (read by the
# scenario scripts and tests/cluster), and the static route to the legacy network.
# Idempotent. Environment: see node_env in ../Vagrantfile.
set -euo pipefail
: "${NODETRACE_SRC:?}" "${NODE_NAME:?}" "${NODE_IP:?}" "${NODE_ROLE:?}" "${SERVER_IP:?}"
: "${FLANNEL_BACKEND:?}" "${LEGACY_NET:?}" "${LEGACY_VIA:?}"
: "${CLUSTER_CIDR:?}" "${SERVICE_CIDR:?}" "${CLUSTER_DNS:?}"
say() { printf 'node.sh: %s\n' "$*" >&2; }

# The private interface is whichever holds NODE_IP: its name differs between providers
# (enp0s8 on VirtualBox, eth1/ens6 on libvirt).
iface=$(ip -o -4 addr show | awk -v ip="$NODE_IP" '{split($4, a, "/"); if (a[1] == ip) print $2}')
if [ -z "$iface" ]; then
  say "no interface holds $NODE_IP"; exit 1
fi

install -d -m 0755 /etc/nodetrace
cat > /etc/nodetrace/cluster.env <<ENV
NODETRACE_CLUSTER=1
NODETRACE_SRC=$NODETRACE_SRC
NODE_NAME=$NODE_NAME
NODE_IP=$NODE_IP
NODE_IFACE=$iface
NODE_ROLE=$NODE_ROLE
SERVER_IP=$SERVER_IP
FLANNEL_BACKEND=$FLANNEL_BACKEND
CLUSTER_CIDR=$CLUSTER_CIDR
SERVICE_CIDR=$SERVICE_CIDR
CLUSTER_DNS=$CLUSTER_DNS
LEGACY_NET=$LEGACY_NET
LEGACY_VIA=$LEGACY_VIA
KUBECONFIG=/etc/nodetrace/kubeconfig
ENV
# Login shells and sudo (pam_env) see the two variables tests/cluster looks for.
for kv in NODETRACE_CLUSTER=1 KUBECONFIG=/etc/nodetrace/kubeconfig; do
  grep -qx "$kv" /etc/environment || echo "$kv" >> /etc/environment
done

# The legacy database's subnet is reachable only through this static route, as in the
# field report. A unit rather than netplan: Vagrant rewrites its netplan file on reload.
cat > /etc/systemd/system/nodetrace-legacy-route.service <<UNIT
[Unit]
Description=nodetrace lab: static route to the legacy network $LEGACY_NET
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/ip route replace $LEGACY_NET via $LEGACY_VIA dev $iface
ExecStop=-/usr/sbin/ip route del $LEGACY_NET via $LEGACY_VIA dev $iface

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable nodetrace-legacy-route.service >/dev/null
systemctl restart nodetrace-legacy-route.service

# kube-proxy and NetworkPolicy need bridged pod traffic to traverse iptables.
modprobe br_netfilter
echo br_netfilter > /etc/modules-load.d/nodetrace.conf
cat > /etc/sysctl.d/90-nodetrace.conf <<SYSCTL
net.ipv4.ip_forward = 1
net.bridge.bridge-nf-call-iptables = 1
SYSCTL
sysctl -q --system

export DEBIAN_FRONTEND=noninteractive
command -v curl >/dev/null || { apt-get update -qq; apt-get install -y -qq curl >/dev/null; }
say "$NODE_NAME: $NODE_IP on $iface, route $LEGACY_NET via $LEGACY_VIA"
