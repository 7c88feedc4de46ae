#!/usr/bin/env bash
# A k3s agent: the pinned version, joins the server with the fixed token; flannel on the
# private interface (the backend is the server's choice), kube-proxy in iptables mode.
# Idempotent: a second run rewrites the config and restarts.
set -euo pipefail
: "${INSTALL_K3S_VERSION:?}" "${K3S_TOKEN:?}" "${NODE_IP:?}" "${SERVER_IP:?}"
# shellcheck source=/dev/null
. /etc/nodetrace/cluster.env   # NODE_IFACE: the interface that holds NODE_IP (node.sh)

install -d -m 0700 /etc/rancher/k3s
umask 077
cat > /etc/rancher/k3s/config.yaml <<CONFIG
server: https://$SERVER_IP:6443
token: $K3S_TOKEN
node-ip: $NODE_IP
flannel-iface: $NODE_IFACE
kube-proxy-arg:
  - proxy-mode=iptables
CONFIG
umask 022

installed=$(k3s --version 2>/dev/null | awk 'NR == 1 {print $3}' || true)
if [ "$installed" != "$INSTALL_K3S_VERSION" ]; then
  # the installer reads INSTALL_K3S_VERSION (pinned) from the environment
  curl -sfL https://get.k3s.io | sh -s - agent
else
  systemctl restart k3s-agent
fi
