"""The lab's containers and clients: small bounded programs, standard library only,
run as `python -m tracer.lab.workloads ...` inside a pod's namespace and cgroup.

    idle                               a container that only exists (a pause process)
    serve http|tcp|dns --port P        an HTTP responder, a TCP echo, a DNS responder
    probe tcp|http|dns|ping HOST [PORT] one connection attempt; prints a JSON outcome
    supervise --status F -- CMD...     kubelet's restart loop, with back-off

Every server stops after --ttl seconds; every probe after --timeout; the supervisor
after --ttl or --max-restarts.  A probe prints {"outcome": ..., "detail": ...} where
outcome is ok, timeout, refused, unreachable or error, and exits 0 only when ok.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from tracer.lab.cluster import build_cluster

DNS_DOMAIN = "svc.cluster.local"


# --- servers --------------------------------------------------------------------------

def _listen(kind: str, host: str, port: int) -> socket.socket:
    stype = socket.SOCK_DGRAM if kind == "dns" else socket.SOCK_STREAM
    s = socket.socket(socket.AF_INET, stype)
    try:
        s.bind((host, port))
    except OSError as exc:
        s.close()
        # the message kubelet would show in the container's last state
        print(f"listen {'udp' if kind == 'dns' else 'tcp'} {host}:{port}: bind: "
              f"{os.strerror(exc.errno or 0).lower()}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    if stype == socket.SOCK_STREAM:
        s.listen(64)
    return s


def _http_reply(conn: socket.socket, name: str) -> None:
    conn.settimeout(2)
    data = b""
    with contextlib.suppress(OSError):
        while b"\r\n\r\n" not in data and len(data) < 65536:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
    body = f"{name}\n".encode()
    with contextlib.suppress(OSError):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))


def _echo(conn: socket.socket) -> None:
    conn.settimeout(2)
    with contextlib.suppress(OSError):
        while chunk := conn.recv(65536):
            conn.sendall(chunk)


def dns_records() -> dict[str, str]:
    """Every lab Service's A record, as the cluster DNS would serve it."""
    return {f"{s.name}.{s.namespace}.{DNS_DOMAIN}": s.cluster_ip
            for s in build_cluster().services}


def dns_query(name: str, qid: int) -> bytes:
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.strip(".").split(".")) + b"\0"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", 1, 1)


def _dns_name(packet: bytes, off: int) -> tuple[str, int]:
    labels = []
    while off < len(packet) and packet[off]:
        n = packet[off]
        labels.append(packet[off + 1: off + 1 + n].decode(errors="replace"))
        off += 1 + n
    return ".".join(labels), off + 1


def dns_answer(query: bytes, records: dict[str, str]) -> bytes | None:
    """A response to a one-question A query (NXDOMAIN when unknown); None if malformed."""
    if len(query) < 17:
        return None
    qid, _flags, qd = struct.unpack("!HHH", query[:6])
    if qd != 1:
        return None
    name, end = _dns_name(query, 12)
    question = query[12:end + 4]
    ip = records.get(name.lower().rstrip("."))
    flags = 0x8180 if ip else 0x8183
    head = struct.pack("!HHHHHH", qid, flags, 1, 1 if ip else 0, 0, 0)
    if not ip:
        return head + question
    answer = struct.pack("!HHHLH", 0xC00C, 1, 1, 30, 4) + socket.inet_aton(ip)
    return head + question + answer


def dns_parse_answer(response: bytes) -> str | None:
    if len(response) < 12:
        return None
    _qid, flags, _qd, an = struct.unpack("!HHHH", response[:8])
    if flags & 0xF or not an:
        return None
    _name, off = _dns_name(response, 12)
    # past qtype/qclass, then the answer's name pointer, type, class, ttl and rdlength
    rdata = off + 4 + 12
    return socket.inet_ntoa(response[rdata:rdata + 4]) if len(response) >= rdata + 4 else None


def serve(kind: str, host: str, port: int, ttl: float, name: str) -> int:
    sock = _listen(kind, host, port)
    print(f"serving {kind} on {host}:{port} for {ttl:.0f} s", file=sys.stderr, flush=True)
    records = dns_records() if kind == "dns" else {}
    end = time.monotonic() + ttl
    while (left := end - time.monotonic()) > 0:
        ready, _, _ = select.select([sock], [], [], min(left, 0.5))
        if not ready:
            continue
        if kind == "dns":
            with contextlib.suppress(OSError):
                query, peer = sock.recvfrom(4096)
                reply = dns_answer(query, records)
                if reply is not None:
                    sock.sendto(reply, peer)
            continue
        try:
            conn, _ = sock.accept()
        except OSError:
            continue
        with conn:
            _http_reply(conn, name) if kind == "http" else _echo(conn)
    sock.close()
    return 0


def idle(ttl: float) -> int:
    signal.sigtimedwait([signal.SIGTERM, signal.SIGINT], ttl)
    return 0


# --- probes ---------------------------------------------------------------------------

def _error_outcome(exc: OSError) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if exc.errno == errno.ECONNREFUSED:
        return "refused"
    if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "unreachable"
    return "error"


def probe(kind: str, host: str, port: int, timeout: float, source: str | None) -> dict[str, str]:
    started = time.monotonic()
    try:
        detail = _probe(kind, host, port, timeout, source)
        outcome = "ok"
    except OSError as exc:
        outcome, detail = _error_outcome(exc), os.strerror(exc.errno) if exc.errno \
            else str(exc) or type(exc).__name__
    return {"outcome": outcome, "detail": detail, "kind": kind,
            "target": f"{host}:{port}" if kind != "ping" else host,
            "seconds": f"{time.monotonic() - started:.2f}"}


def _probe(kind: str, host: str, port: int, timeout: float, source: str | None) -> str:
    if kind == "ping":
        return _ping(host, timeout, source)
    stype = socket.SOCK_DGRAM if kind == "dns" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, stype) as s:
        s.settimeout(timeout)
        if source:
            s.bind((source, 0))
        s.connect((host, port))
        if kind == "tcp":
            s.sendall(b"nodetrace\n")
            got = s.recv(64)
            if got != b"nodetrace\n":
                raise OSError(errno.EPROTO, "echo mismatch")
            return "echoed"
        if kind == "http":
            s.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(4096):
                data += chunk
            status = data.split(b"\r\n", 1)[0].decode(errors="replace")
            body = data.split(b"\r\n\r\n", 1)[-1].decode(errors="replace").strip()
            if " 200 " not in status:
                raise OSError(errno.EPROTO, status or "no HTTP response")
            return f"{status} from {body}"
        name = f"web.default.{DNS_DOMAIN}"
        s.send(dns_query(name, os.getpid() & 0xFFFF))
        answer = dns_parse_answer(s.recv(4096))
        if answer is None:
            raise OSError(errno.EPROTO, f"no A record for {name}")
        return f"{name} A {answer}"


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _ping(host: str, timeout: float, source: str | None) -> str:
    ident = os.getpid() & 0xFFFF
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as s:
        if source:
            s.bind((source, 0))
        body = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + b"nodetrace"
        packet = body[:2] + struct.pack("!H", _checksum(body)) + body[4:]
        s.sendto(packet, (host, 0))
        end = time.monotonic() + timeout
        while (left := end - time.monotonic()) > 0:
            s.settimeout(left)
            data, _ = s.recvfrom(2048)
            ihl = (data[0] & 0xF) * 4
            icmp_type, code = data[ihl], data[ihl + 1]
            if icmp_type == 0 and struct.unpack("!H", data[ihl + 4: ihl + 6])[0] == ident:
                return "echo reply"
            inner = ihl + 8 + (data[ihl + 8] & 0xF) * 4 if len(data) > ihl + 8 else len(data)
            if icmp_type == 3 and data[inner + 4: inner + 6] == struct.pack("!H", ident):
                raise OSError(errno.EHOSTUNREACH, f"ICMP unreachable code {code}")
        raise TimeoutError


# --- the restart loop -----------------------------------------------------------------

def _write_status(path: Path, doc: dict[str, object]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)


def _relay(proc: subprocess.Popen[str], lines: list[str]) -> None:
    assert proc.stderr is not None
    for line in proc.stderr:
        lines.append(line)
        sys.stderr.write(line)
        sys.stderr.flush()


def supervise(cmd: list[str], status: Path, ttl: float, max_restarts: int,
              cgroup: Path | None) -> int:
    """Runs CMD, restarting it when it exits, with kubelet's doubling back-off (scaled
    down: 0.5 s to 8 s instead of 10 s to 5 min).  The status file says what kubelet
    would report: restartCount, and CrashLoopBackOff while waiting to restart."""
    end = time.monotonic() + ttl
    restarts, backoff = 0, 0.5
    last: dict[str, object] | None = None

    def into_cgroup() -> None:
        if cgroup is not None:
            (cgroup / "cgroup.procs").write_text("0")

    stop = False

    def on_term(_sig: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    while not stop and time.monotonic() < end:
        started = time.time()
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, preexec_fn=into_cgroup)
        _write_status(status, {"state": "running", "restartCount": restarts, "pid": proc.pid,
                               "startedAt": started, "lastState": last})
        lines: list[str] = []
        # the container's stderr goes on to ours (the log), and its end into lastState
        reader = threading.Thread(target=_relay, args=(proc, lines), daemon=True)
        reader.start()
        try:
            proc.wait(timeout=max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait()
            break
        reader.join(timeout=1)
        last = {"exitCode": proc.returncode, "message": "".join(lines[-5:]).strip()[-400:],
                "startedAt": started, "finishedAt": time.time()}
        if stop or restarts >= max_restarts or time.monotonic() + backoff >= end:
            break
        _write_status(status, {"state": "waiting", "reason": "CrashLoopBackOff",
                               "restartCount": restarts, "lastState": last,
                               "backoffSeconds": backoff})
        time.sleep(backoff)
        restarts += 1
        backoff = min(backoff * 2, 8.0)
    _write_status(status, {"state": "terminated", "restartCount": restarts, "lastState": last})
    return 0


# --- command line ---------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tracer.lab.workloads", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    i = sub.add_parser("idle")
    i.add_argument("--ttl", type=float, default=600)
    s = sub.add_parser("serve")
    s.add_argument("kind", choices=("http", "tcp", "dns"))
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--host", default="0.0.0.0")
    s.add_argument("--ttl", type=float, default=600)
    s.add_argument("--name", default=socket.gethostname())
    pr = sub.add_parser("probe")
    pr.add_argument("kind", choices=("tcp", "http", "dns", "ping"))
    pr.add_argument("host")
    pr.add_argument("port", type=int, nargs="?", default=0)
    pr.add_argument("--timeout", type=float, default=3.0)
    pr.add_argument("--source", help="source address to bind")
    sv = sub.add_parser("supervise")
    sv.add_argument("--status", type=Path, required=True)
    sv.add_argument("--cgroup", type=Path, help="cgroup directory for every container run")
    sv.add_argument("--ttl", type=float, default=600)
    sv.add_argument("--max-restarts", type=int, default=50)
    sv.add_argument("command", nargs=argparse.REMAINDER)
    a = p.parse_args(argv)
    if a.cmd == "idle":
        return idle(a.ttl)
    if a.cmd == "serve":
        return serve(a.kind, a.host, a.port, a.ttl, a.name)
    if a.cmd == "probe":
        result = probe(a.kind, a.host, a.port, min(a.timeout, 60.0), a.source)
        print(json.dumps(result), flush=True)
        return 0 if result["outcome"] == "ok" else 1
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not cmd:
        p.error("supervise: no command")
    return supervise(cmd, a.status, a.ttl, a.max_restarts, a.cgroup)


if __name__ == "__main__":
    sys.exit(main())
