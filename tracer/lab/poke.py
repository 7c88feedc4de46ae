"""One bounded probe packet (or connection attempt), run inside a lab namespace:
`python -m tracer.lab.poke tcp|udp HOST PORT [--timeout S]`.  Prints the outcome
("connected", "refused", "timeout", "sent", "error: ...") and always exits 0."""

from __future__ import annotations

import argparse
import socket


def _bind(s: socket.socket, family: int, sport: int) -> None:
    if sport:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", sport))


def tcp(host: str, port: int, timeout: float, sport: int = 0) -> str:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        _bind(s, family, sport)
        try:
            s.connect((host, port))
        except ConnectionRefusedError:
            return "refused"
        except TimeoutError:
            return "timeout"
        except OSError as exc:
            return f"error: {exc.strerror or exc}"
        return "connected"


def udp(host: str, port: int, sport: int = 0, payload: bytes = b"nodetrace",
        count: int = 1, vary_sport: bool = False) -> str:
    """`vary_sport`: datagram i comes from source port sport + i (distinct flows)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if vary_sport:
        for i in range(count):
            result = udp(host, port, sport + i, payload)
            if result != "sent":
                return result
        return "sent"
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        _bind(s, family, sport)
        try:
            for _ in range(count):
                s.sendto(payload, (host, port))
        except OSError as exc:
            return f"error: {exc.strerror or exc}"
        return "sent"


def main() -> None:
    p = argparse.ArgumentParser(prog="poke")
    p.add_argument("proto", choices=("tcp", "udp"))
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--timeout", type=float, default=1.0)
    p.add_argument("--sport", type=int, default=0, help="source port (0: any)")
    p.add_argument("--count", type=int, default=1, help="UDP: datagrams to send (bounded)")
    p.add_argument("--vary-sport", action="store_true",
                   help="UDP: each datagram from the next source port")
    a = p.parse_args()
    print(tcp(a.host, a.port, a.timeout, a.sport) if a.proto == "tcp"
          else udp(a.host, a.port, a.sport, count=min(a.count, 100_000),
                   vary_sport=a.vary_sport), flush=True)


if __name__ == "__main__":
    main()
