"""A small file-backed key/value HTTP service, the split backend's store: ``store.py --port P --dir D``.

``GET /health`` → 200 ``{"status": "ok"}``; ``PUT /kv/<key>`` stores the body (a file in ``--dir``), ``GET /kv/<key>``
gives it back (404 when absent). Keys are 1–128 of ``A-Z a-z 0-9 . _ -``; a value is at most 64 KiB. Anything
else is a 400 (or 404/405) and breaks nothing. Standard library only; SIGTERM/SIGINT end it cleanly (exit 0).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

KEY_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
#: Largest value the store keeps.
MAX_VALUE_BYTES = 64 * 1024
#: A client that sends nothing for this long loses its connection (no thread waits forever on a socket).
SOCKET_TIMEOUT_S = 5.0


class StoreHandler(BaseHTTPRequestHandler):
    """One request; the data directory is ``self.server.data_dir``."""

    server_version = "split-store/1"
    protocol_version = "HTTP/1.0"  # one request per connection: no idle keep-alive threads
    timeout = SOCKET_TIMEOUT_S

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass  # one line per request would drown the backend's log; errors are answered, not logged

    def _answer(self, status: int, body: object, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _key(self) -> str | None:
        """The key of a ``/kv/<key>`` path (None when the path is not one; 400 already answered when malformed)."""
        path = self.path.split("?", 1)[0]
        if not path.startswith("/kv/"):
            self._answer(404, {"error": f"no such path: {path[:200]}"})
            return None
        key = path[len("/kv/"):]
        if not KEY_RE.match(key):
            self._answer(400, {"error": "a key is 1-128 of A-Z a-z 0-9 . _ -"})
            return None
        return key

    def do_GET(self) -> None:  # noqa: N802 - the base class's name
        if self.path.split("?", 1)[0] == "/health":
            self._answer(200, {"status": "ok"})
            return
        key = self._key()
        if key is None:
            return
        try:
            value = (self.server.data_dir / key).read_bytes()  # type: ignore[attr-defined]
        except FileNotFoundError:
            self._answer(404, {"error": f"no key {key}"})
            return
        self._answer(200, value, "application/octet-stream")

    def do_PUT(self) -> None:  # noqa: N802
        key = self._key()
        if key is None:
            return
        length_text = self.headers.get("Content-Length")
        if length_text is None or not length_text.isdigit():
            self.close_connection = True
            self._answer(400, {"error": "PUT needs a Content-Length"})
            return
        length = int(length_text)
        if length > MAX_VALUE_BYTES:
            self.close_connection = True
            self._answer(400, {"error": f"a value is at most {MAX_VALUE_BYTES} bytes"})
            return
        value = self.rfile.read(length)
        if len(value) != length:
            self.close_connection = True
            self._answer(400, {"error": "the body ended early"})
            return
        data_dir: Path = self.server.data_dir  # type: ignore[attr-defined]
        fd, tmp = tempfile.mkstemp(dir=data_dir, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(value)
        os.replace(tmp, data_dir / key)  # a reader sees the old value or the new one, never half of one
        self._answer(200, {"stored": key, "bytes": length})

    def _not_allowed(self) -> None:
        self.close_connection = True
        self._answer(405, {"error": f"{self.command} is not allowed"})

    do_POST = do_DELETE = do_PATCH = _not_allowed  # noqa: N815


class StoreServer(ThreadingHTTPServer):
    """The server; a broken client costs one line on stderr, never a traceback or another client's answer."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the default 5 drops connections in the suite's bursts of concurrent calls

    def __init__(self, port: int, data_dir: Path):
        self.data_dir = data_dir
        super().__init__(("127.0.0.1", port), StoreHandler)

    def handle_error(self, request: object, client_address: tuple[str, int]) -> None:
        exc = sys.exc_info()[1]
        if not isinstance(exc, (ConnectionError, TimeoutError)):
            print(f"store: request from {client_address[0]}:{client_address[1]} failed: {exc!r}",
                  file=sys.stderr, flush=True)


def serve_until_signalled(server: ThreadingHTTPServer, role: str) -> int:
    """Serve until SIGTERM/SIGINT, then close the listener; return 0."""
    def stop(signum: int, _frame: object) -> None:
        # shutdown() waits for serve_forever to return, so it cannot run on the thread serving.
        threading.Thread(target=server.shutdown, name=f"{role}-stop", daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = server.server_address[:2]
    print(f"READY {role} host={host} port={port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    print(f"{role}: stopped", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--dir", type=Path, required=True, help="data directory (created when missing)")
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    try:
        server = StoreServer(args.port, args.dir)
    except OSError as exc:
        print(f"store: cannot listen on 127.0.0.1:{args.port}: {exc}", file=sys.stderr)
        return 1
    return serve_until_signalled(server, "store")


if __name__ == "__main__":
    sys.exit(main())
