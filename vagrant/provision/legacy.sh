#!/usr/bin/env bash
# The legacy VM: the database host 192.168.2.10 of the field report on its own private
# network, serving TCP echo on DB_PORT (a stand-in for the database) and answering ping.
# It does not forward, and knows no route to the pod network: it accepts a pod's packet
# that reaches it unmasqueraded, and its reply goes nowhere. It is also the "gateway that
# knows no pod network" the scenario scripts send misrouted pod traffic to (lib.sh): with
# forwarding off, it drops what is not addressed to it, silently.
set -euo pipefail
: "${LEGACY_IP:?}" "${DB_PORT:?}" "${CLUSTER_CIDR:?}"

if ! ip -o -4 addr show | grep -q " $LEGACY_IP/"; then
  printf 'legacy.sh: no interface holds %s\n' "$LEGACY_IP" >&2; exit 1
fi
cat > /etc/sysctl.d/90-nodetrace-legacy.conf <<SYSCTL
net.ipv4.ip_forward = 0
# no reverse-path filtering: an unmasqueraded pod source is accepted, as on the report's
# database host (Ubuntu's default, 2, would drop it against the blackhole route below)
net.ipv4.conf.all.rp_filter = 0
net.ipv4.conf.default.rp_filter = 0
SYSCTL
sysctl -q --system
# interfaces that existed before the default changed keep their own value
for f in /proc/sys/net/ipv4/conf/*/rp_filter; do echo 0 > "$f"; done

# Replies to pod addresses are discarded here rather than sent out the default route: that
# is the provider's NAT, and would carry them to the laptop's own network.
cat > /etc/systemd/system/nodetrace-legacy-blackhole.service <<UNIT
[Unit]
Description=nodetrace lab: no way back to the pod network $CLUSTER_CIDR
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/ip route replace blackhole $CLUSTER_CIDR
ExecStop=-/usr/sbin/ip route del blackhole $CLUSTER_CIDR

[Install]
WantedBy=multi-user.target
UNIT

install -d -m 0755 /usr/local/lib/nodetrace
cat > /usr/local/lib/nodetrace/echo_server.py <<'PY'
"""TCP echo: a stand-in for the legacy database."""
import socketserver
import sys


class Echo(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        for line in self.rfile:
            self.wfile.write(line)


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


Server((sys.argv[1], int(sys.argv[2])), Echo).serve_forever()
PY
cat > /etc/systemd/system/nodetrace-legacy-db.service <<UNIT
[Unit]
Description=nodetrace lab: legacy database stand-in (TCP echo) on $LEGACY_IP:$DB_PORT
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=/usr/bin/python3 /usr/local/lib/nodetrace/echo_server.py $LEGACY_IP $DB_PORT
Restart=always
DynamicUser=yes

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
for unit in nodetrace-legacy-blackhole.service nodetrace-legacy-db.service; do
  systemctl enable "$unit" >/dev/null
  systemctl restart "$unit"
done
