"""`python -m tracer.lab.apiserver`: serve the objects of a List file.

SIGHUP re-reads the file and applies the difference (watchers see ADDED, MODIFIED,
DELETED); SIGTERM or SIGINT stops cleanly with exit status 0.  The ready file is
JSON, rewritten atomically after start and after every reload:
{"url": ..., "pid": ..., "resourceVersion": ..., "reloads": N, "reloadError": null}.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path

from tracer.lab.apiserver.files import load_list, write_atomic, write_kubeconfig
from tracer.lab.apiserver.resources import BY_KIND, InvalidObjectError, Obj
from tracer.lab.apiserver.server import DEFAULT_BOOKMARK_INTERVAL_S, ApiServer
from tracer.lab.apiserver.store import ObjectStore

log = logging.getLogger("tracer.lab.apiserver")

_SIGNALS = {signal.SIGHUP, signal.SIGTERM, signal.SIGINT}


def _listen_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tracer.lab.apiserver",
        description="Serve Kubernetes objects from a List file over the Kubernetes API "
                    "(read-only, plain http). SIGHUP reloads the file, SIGTERM stops.",
        epilog="examples:\n"
               "  python -m tracer.lab.apiserver --objects lab.json --listen 127.0.0.1:0 \\\n"
               "      --kubeconfig lab.kubeconfig --ready-file ready.json\n"
               "  ip netns exec nt-node1 python -m tracer.lab.apiserver "
               "--objects lab.json --listen 127.0.0.1:6443",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", required=True, type=Path,
                        help="a kubectl `get -o json` style List file")
    parser.add_argument("--listen", type=_listen_address, default=("127.0.0.1", 0),
                        metavar="HOST:PORT", help="address to serve on (port 0: any free)")
    parser.add_argument("--kubeconfig", type=Path, help="write a kubeconfig for the server here")
    parser.add_argument("--ready-file", type=Path,
                        help="written (JSON) once serving, and again after every reload")
    parser.add_argument("--bookmark-interval", type=float, default=DEFAULT_BOOKMARK_INTERVAL_S,
                        metavar="SECONDS", help="seconds between watch bookmarks")
    parser.add_argument("--history", type=int, default=1000,
                        help="watch events kept; older resourceVersions get 410 Expired")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    return parser


def _served(objects: list[Obj]) -> list[Obj]:
    """Drops kinds the stand-in does not serve: `kubectl get all -o json` output has
    Deployments and ReplicaSets, which are no reason to refuse the rest."""
    skipped = sorted({str(o.get("kind")) for o in objects if o.get("kind") not in BY_KIND})
    if skipped:
        log.warning("not served, skipped: %s", ", ".join(skipped))
    return [o for o in objects if o.get("kind") in BY_KIND]


def _write_ready(path: Path | None, server: ApiServer, reloads: int,
                 error: str | None) -> None:
    if path is None:
        return
    doc = {"url": server.url, "pid": os.getpid(),
           "resourceVersion": server.store.resource_version, "reloads": reloads,
           "reloadError": error}
    write_atomic(path, json.dumps(doc).encode() + b"\n")


def _reload(store: ObjectStore, path: Path) -> str | None:
    """Applies the file's difference; on a bad file keeps serving the old objects
    and returns the reason."""
    try:
        result = store.sync(_served(load_list(path)))
    except InvalidObjectError as err:
        log.error("reload of %s failed, still serving the previous objects: %s",
                  path, err.message)
        return err.message
    log.info("reloaded %s: %d added, %d modified, %d deleted (resourceVersion %s)", path,
             result.added, result.modified, result.deleted, store.resource_version)
    return None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="lab-apiserver: %(message)s")
    # Blocked before any thread starts, so every thread inherits the mask and the
    # signals reach only the sigwait() below, never a handler in the middle of a lock.
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    store = ObjectStore(history=args.history)
    try:
        store.sync(_served(load_list(args.objects)))
        server = ApiServer(store, *args.listen, bookmark_interval_s=args.bookmark_interval)
    except InvalidObjectError as err:
        print(f"lab-apiserver: {err.message}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"lab-apiserver: cannot listen on {args.listen[0]}:{args.listen[1]}: {err}",
              file=sys.stderr)
        return 1
    with server:
        if args.kubeconfig:
            write_kubeconfig(args.kubeconfig, server.url)
        reloads = 0
        _write_ready(args.ready_file, server, reloads, None)
        log.info("serving %d objects from %s on %s (pid %d); SIGHUP reloads, "
                 "SIGTERM stops", len(store.objects()), args.objects, server.url, os.getpid())
        while (signum := signal.sigwait(_SIGNALS)) == signal.SIGHUP:
            error = _reload(store, args.objects)
            reloads += 1
            _write_ready(args.ready_file, server, reloads, error)
        log.info("stopping on %s", signal.Signals(signum).name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
