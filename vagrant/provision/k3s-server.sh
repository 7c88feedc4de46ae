#!/usr/bin/env bash
# The k3s server: the pinned version, the fixed join token, flannel on the private
# interface with the backend the Vagrantfile chose (NODETRACE_FLANNEL_BACKEND), kube-proxy
# in iptables mode, and a static admin token (tokens.csv) so every node can build its own
# kubeconfig (kubeconfig.sh). Idempotent: a second run rewrites the config and restarts.
set -euo pipefail
: "${INSTALL_K3S_VERSION:?}" "${K3S_TOKEN:?}" "${ADMIN_TOKEN:?}" "${NODE_IP:?}"
: "${FLANNEL_BACKEND:?}" "${CLUSTER_CIDR:?}" "${SERVICE_CIDR:?}" "${CLUSTER_DNS:?}"
# shellcheck source=/dev/null
. /etc/nodetrace/cluster.env   # NODE_IFACE: the interface that holds NODE_IP (node.sh)

install -d -m 0700 /etc/rancher/k3s
umask 077
printf '%s,nodetrace-admin,nodetrace-admin,"system:masters"\n' "$ADMIN_TOKEN" \
  > /etc/nodetrace/tokens.csv
cat > /etc/rancher/k3s/config.yaml <<CONFIG
token: $K3S_TOKEN
node-ip: $NODE_IP
advertise-address: $NODE_IP
tls-san:
  - $NODE_IP
flannel-iface: $NODE_IFACE
flannel-backend: $FLANNEL_BACKEND
cluster-cidr: $CLUSTER_CIDR
service-cidr: $SERVICE_CIDR
cluster-dns: $CLUSTER_DNS
write-kubeconfig-mode: "0600"
# the scenarios break kube-proxy's iptables rules (KUBE-SERVICES, KUBE-NODEPORTS...)
kube-proxy-arg:
  - proxy-mode=iptables
# laptop-sized, and nothing that binds node ports the scenarios use (traefik's
# svclb takes hostPort 80 on every node)
disable:
  - traefik
  - servicelb
  - metrics-server
  - local-storage
kube-apiserver-arg:
  - token-auth-file=/etc/nodetrace/tokens.csv
CONFIG
umask 022

installed=$(k3s --version 2>/dev/null | awk 'NR == 1 {print $3}' || true)
if [ "$installed" != "$INSTALL_K3S_VERSION" ]; then
  # the installer reads INSTALL_K3S_VERSION (pinned) from the environment
  curl -sfL https://get.k3s.io | sh -s - server
else
  systemctl restart k3s
fi
