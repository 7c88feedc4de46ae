#!/usr/bin/env bash
# Every k3s node: /etc/nodetrace/kubeconfig (the scenario scripts, tests/cluster,
# nodetrace --kubeconfig), ~root/.kube/config and ~vagrant/.kube/config (what kubectl and
# nodetrace find without flags), from the cluster CA every node holds after joining and
# the static admin token; then wait until this node is Ready.
set -euo pipefail
: "${SERVER_IP:?}" "${ADMIN_TOKEN:?}" "${NODE_NAME:?}"
say() { printf 'kubeconfig.sh: %s\n' "$*" >&2; }

ca=/var/lib/rancher/k3s/agent/server-ca.crt
for _ in $(seq 300); do
  [ -s "$ca" ] && break
  sleep 1
done
[ -s "$ca" ] || { say "k3s never wrote $ca"; exit 1; }

write_kubeconfig() {  # FILE
  umask 077
  cat > "$1" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: nodetrace-lab
  cluster:
    server: https://$SERVER_IP:6443
    certificate-authority-data: $(base64 -w0 "$ca")
users:
- name: nodetrace-admin
  user:
    token: $ADMIN_TOKEN
contexts:
- name: nodetrace-lab
  context:
    cluster: nodetrace-lab
    user: nodetrace-admin
current-context: nodetrace-lab
KUBECONFIG
  umask 022
}
write_kubeconfig /etc/nodetrace/kubeconfig
install -d -m 0700 /root/.kube
write_kubeconfig /root/.kube/config
install -d -m 0700 -o vagrant -g vagrant /home/vagrant/.kube
write_kubeconfig /home/vagrant/.kube/config
chown vagrant:vagrant /home/vagrant/.kube/config

# The API answers, then this node registers (kubectl wait fails at once on a node that
# does not exist yet), then it becomes Ready.
export KUBECONFIG=/etc/nodetrace/kubeconfig
for _ in $(seq 300); do
  kubectl get "node/$NODE_NAME" >/dev/null 2>&1 && break
  sleep 1
done
kubectl get "node/$NODE_NAME" >/dev/null || { say "$NODE_NAME never registered"; exit 1; }
kubectl wait --for=condition=Ready "node/$NODE_NAME" --timeout=300s
