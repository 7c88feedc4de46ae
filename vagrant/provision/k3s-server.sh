#!/usr/bin/env bash
# The k3s server: pinned version, fixed join token, flannel on the private interface with
# the backend the Vagrantfile chose, and a static admin token (tokens.csv) so every node
# can build its own kubeconfig (kubeconfig.sh). Idempotent.
set -euo pipefail
: "${K3S_VERSION:?}" "${K3S_TOKEN:?}" "${ADMIN_TOKEN:?}" "${NODE_IP:?}" "${FLANNEL_BACKEND:?}"
# shellcheck source=/dev/null
. /etc/nodetrace/cluster.env

install -d -m 0700 /etc/rancher/k3s
umask 077
printf '%s,nodetrace-admin,nodetrace-admin,"system:masters"\n' "$ADMIN_TOKEN" \
  > /etc/nodetrace/tokens.csv
cat > /etc/rancher/k3s/config.yaml <<CONFIG
node-ip: $NODE_IP
advertise-address: $NODE_IP
flannel-iface: $NODE_IFACE
flannel-backend: $FLANNEL_BACKEND
token: $K3S_TOKEN
write-kubeconfig-mode: "0600"
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

if [ "$(k3s --version 2>/dev/null | awk 'NR==1 {print $3}')" != "$K3S_VERSION" ]; then
  curl -sfL https://get.k3s.io | INSTALL_K3S_VERSION="$K3S_VERSION" sh -s - server
else
  systemctl restart k3s
fi
