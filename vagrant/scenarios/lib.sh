# shellcheck shell=bash
# Shared by every scenario's break and repair script (sourced, never run).
#
# A scenario lives in vagrant/scenarios/NAME/: manifest.yaml (its namespace nt-NAME and
# workloads, traffic included), any other *.yaml its break applies, `expect` (the node it
# breaks and the finding nodetrace must report there) and the two scripts. Both run as
# root on that node; break applies the manifests, waits for the workload, then breaks
# the node or the cluster the way the field report found it; repair undoes exactly that
# and leaves the workload running (`scenarios/clean` deletes every scenario namespace).
#
# Everything a break changes on a node is recorded under $STATE so repair restores what
# was there, and every iptables rule it adds carries the comment "nodetrace-scenario:NAME".

# shellcheck disable=SC2034  # used by the scenario scripts
OTHER_NODE=nt-agent2
# shellcheck disable=SC2034  # the addresses behind the rp-filter-drop scenario's vpn-gw pod
VPN_RANGE=172.16.0.0/24

say() { printf '%s: %s\n' "${SCENARIO:-scenario}" "$*" >&2; }
die() { say "$*"; exit 1; }

# scenario_init DIR: load the cluster's facts and the scenario's expectations, and refuse
# to run anywhere but on the node the scenario breaks.
scenario_init() {
  SCENARIO_DIR=$(cd "$1" && pwd)
  SCENARIO=$(basename "$SCENARIO_DIR")
  NS="nt-$SCENARIO"
  STATE="/run/nodetrace-scenarios/$SCENARIO"
  [ "$(id -u)" -eq 0 ] || die "run as root (sudo): it changes this node's network"
  [ -r /etc/nodetrace/cluster.env ] || die "not a node of the vagrant/ cluster (/etc/nodetrace/cluster.env)"
  # shellcheck source=/dev/null
  . /etc/nodetrace/cluster.env
  export KUBECONFIG
  EXPECT_NODE=$(expect_value node)
  # shellcheck disable=SC2034  # read by the scenario scripts
  EXPECT_FINDING=$(expect_value finding)
  [ "$NODE_NAME" = "$EXPECT_NODE" ] \
    || die "runs on $EXPECT_NODE (vagrant ssh $EXPECT_NODE), not on $NODE_NAME"
  mkdir -p "$STATE"
}

expect_value() {  # KEY -> the value of KEY=... in the scenario's expect file
  sed -n "s/^$1=//p" "$SCENARIO_DIR/expect"
}

# apply_manifest FILE [nowait]: apply FILE (of the scenario's folder) and wait until every
# pod of the namespace is Ready (hostport-conflict waits for its own condition instead).
apply_manifest() {
  kubectl apply -f "$SCENARIO_DIR/$1" >/dev/null
  if [ "${2:-}" != nowait ]; then
    kubectl -n "$NS" rollout status deployment --timeout=300s >/dev/null 2>&1 || true
    kubectl -n "$NS" wait --for=condition=Ready pod --all --timeout=300s >/dev/null
  fi
}

node_pod_cidr() {  # NODE -> its podCIDR
  kubectl get node "$1" -o jsonpath='{.spec.podCIDR}'
}

# save_state KEY VALUE / load_state KEY: what a break replaced, for repair.
save_state() { [ -e "$STATE/$1" ] || printf '%s\n' "$2" > "$STATE/$1"; }
load_state() { cat "$STATE/$1" 2>/dev/null || true; }
drop_state() { rm -f "$STATE/$1"; }

# pod_route_break CIDR [VIA]: take away this node's route to another node's pod CIDR.
# Without VIA, the CIDR then goes where a node without that route sends it on a real LAN:
# to a gateway that knows no pod network. Here that gateway is the legacy VM (LEGACY_VIA),
# which does not forward and drops it silently, so nothing ever reaches the provider's NAT
# (the node's default route, which would carry pod traffic to the laptop's own network).
# The route stays in the table, pointing elsewhere, because flannel's host-gw backend
# re-adds a missing route every 10 s (and fails to add it over ours). With VIA, the route
# points at a next hop that is not adjacent (host-gw across L2 segments).
pod_route_break() {
  local cidr=$1 old
  old=$(ip -4 route show exact "$cidr" | head -n1)
  [ -n "$old" ] || die "no route to $cidr on $NODE_NAME: is the cluster healthy?"
  save_state "route-$(echo "$cidr" | tr / _)" "$old"
  if [ $# -ge 2 ]; then
    ip route replace "$cidr" via "$2" dev "$NODE_IFACE" onlink
  else
    ip route replace "$cidr" via "$LEGACY_VIA" dev "$NODE_IFACE"
  fi
}

pod_route_repair() {  # CIDR
  local key old
  key="route-$(echo "$1" | tr / _)"
  old=$(load_state "$key")
  if [ -n "$old" ]; then
    # shellcheck disable=SC2086  # the saved route, word by word
    ip route replace $old
  fi
  drop_state "$key"
}

# iptables_break TABLE CHAIN RULE...: insert RULE at the top of CHAIN, tagged.
iptables_break() {
  local table=$1 chain=$2
  shift 2
  iptables -t "$table" -C "$chain" "$@" -m comment --comment "nodetrace-scenario:$SCENARIO" \
    2>/dev/null && return 0
  iptables -t "$table" -I "$chain" 1 "$@" -m comment --comment "nodetrace-scenario:$SCENARIO"
}

iptables_repair() {  # TABLE: delete every rule this scenario added to TABLE
  local table=$1 rule
  while read -r rule; do
    [ -n "$rule" ] || continue
    # shellcheck disable=SC2086  # an iptables -S line, word by word
    eval "iptables -t $table ${rule/#-A /-D }"
  done < <(iptables -t "$table" -S | grep -F -- "nodetrace-scenario:$SCENARIO" || true)
}

# sysctl_break KEY VALUE / sysctl_repair KEY
sysctl_break() {
  save_state "sysctl-$1" "$(sysctl -n "$1")"
  sysctl -q -w "$1=$2"
}

sysctl_repair() {
  local old
  old=$(load_state "sysctl-$1")
  [ -z "$old" ] || sysctl -q -w "$1=$old"
  drop_state "sysctl-$1"
}

# forward_policy_break POLICY / forward_policy_repair: filter FORWARD's default policy.
forward_policy_break() {
  save_state forward-policy "$(iptables -S FORWARD | awk '$1 == "-P" {print $3; exit}')"
  iptables -P FORWARD "$1"
}

forward_policy_repair() {
  local old
  old=$(load_state forward-policy)
  [ -z "$old" ] || iptables -P FORWARD "$old"
  drop_state forward-policy
}

# no_route_break CIDR / no_route_repair: CIDR's traffic gets no route on this node unless
# a route more specific than the default one exists. A real node without its static route
# sends such traffic to its default gateway, which knows nothing of CIDR; here the default
# route is the provider's NAT, which would carry it to the laptop's own network. Two rules
# stand in for that gateway: look CIDR up in main ignoring the default route (prefix
# length 0), and else answer "network unreachable". The break itself is the missing route.
NO_ROUTE_PRIORITIES=(90 91)
no_route_break() {
  no_route_repair
  ip rule add priority "${NO_ROUTE_PRIORITIES[0]}" to "$1" lookup main suppress_prefixlength 0
  ip rule add priority "${NO_ROUTE_PRIORITIES[1]}" to "$1" unreachable
}

no_route_repair() {
  local prio
  for prio in "${NO_ROUTE_PRIORITIES[@]}"; do
    while ip rule show priority "$prio" | grep -q .; do ip rule del priority "$prio"; done
  done
}

done_msg() { say "$1 on $NODE_NAME; expected finding: ${EXPECT_FINDING:-none}"; }
