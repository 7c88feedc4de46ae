#!/usr/bin/env bash
# A k3s agent: pinned version, joins the server with the fixed token; flannel on the
# private interface (the backend is the server's choice). Idempotent.
set -euo pipefail
: "${K3S_VERSION:?}" "${K3S_TOKEN:?}" "${NODE_IP:?}" "${SERVER_IP:?}"
# shellcheck source=/dev/null
. /etc/nodetrace/cluster.env

install -d -m 0700 /etc/rancher/k3s
umask 077
cat > /etc/rancher/k3s/config.yaml <<CONFIG
server: https://$SERVER_IP:6443
token: $K3S_TOKEN
node-ip: $NODE_IP
flannel-iface: $NODE_IFACE
CONFIG
umask 022

if [ "$(k3s --version 2>/dev/null | awk 'NR==1 {print $3}')" != "$K3S_VERSION" ]; then
  curl -sfL https://get.k3s.io | INSTALL_K3S_VERSION="$K3S_VERSION" sh -s - agent
else
  systemctl restart k3s-agent
fi
