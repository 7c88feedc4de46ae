#!/usr/bin/env bash
# The legacy VM: the database host 192.168.2.10 of the field report on its own private
# network, serving TCP echo on DB_PORT (a stand-in for the database) and answering ping.
# It does not forward and has no route to the pod network (10.42.0.0/16): a pod's packet
# that reaches it unmasqueraded gets its reply sent out the default route, never back.
set -euo pipefail
: "${LEGACY_IP:?}" "${DB_PORT:?}"

if ! ip -o -4 addr show | grep -q " $LEGACY_IP/"; then
  printf 'legacy.sh: no interface holds %s\n' "$LEGACY_IP" >&2; exit 1
fi
cat > /etc/sysctl.d/90-nodetrace-legacy.conf <<SYSCTL
net.ipv4.ip_forward = 0
# loose reverse-path filtering: an unmasqueraded pod source is accepted (and its reply
# lost on the default route), as on the report's database host
net.ipv4.conf.all.rp_filter = 2
net.ipv4.conf.default.rp_filter = 2
SYSCTL
sysctl -q --system

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
systemctl enable nodetrace-legacy-db.service >/dev/null
systemctl restart nodetrace-legacy-db.service
