"""Bounded TCP servers run inside test namespaces (each stops by itself)."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import cast

from tracer.lab.netns import Netns

# Accepts connections until `seconds` pass; echoes the sha256 of what each sent.
_SERVER = r"""
import hashlib, socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(16); s.settimeout(0.2)
print("listening", flush=True)
end = time.monotonic() + float(sys.argv[3])
while time.monotonic() < end:
    try:
        c, _ = s.accept()
    except socket.timeout:
        continue
    c.settimeout(5); h = hashlib.sha256()
    try:
        while True:
            b = c.recv(65536)
            if not b:
                break
            h.update(b)
        c.sendall(h.hexdigest().encode())
    except OSError:
        pass
    c.close()
"""

_CLIENT = r"""
import hashlib, os, socket, sys
data = os.urandom(int(sys.argv[3]))
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
c.sendall(data); c.shutdown(socket.SHUT_WR)
got = b""
while True:
    b = c.recv(100)
    if not b:
        break
    got += b
print(hashlib.sha256(data).hexdigest(), got.decode())
"""


def start_server(ns: Netns, host: str, port: int, seconds: float) -> subprocess.Popen[str]:
    proc = cast("subprocess.Popen[str]",
                ns.popen(sys.executable, "-c", _SERVER, host, str(port), str(seconds),
                         stdout=subprocess.PIPE, text=True))
    assert proc.stdout is not None
    deadline = time.monotonic() + 10
    line = proc.stdout.readline()
    assert line.startswith("listening") and time.monotonic() < deadline, line
    return proc


def send_and_check(ns: Netns, host: str, port: int, size: int) -> tuple[str, str]:
    """(sha256 sent, sha256 the server received)."""
    out = ns.exec(sys.executable, "-c", _CLIENT, host, str(port), str(size),
                  timeout=30).stdout.split()
    return out[0], out[1]
