"""The split backend's API process: forwards ``/api/v1/...`` to the IB process, one endpoint removed.

``forwarder.py --api-port A --ib-side-port I --store-port S`` listens on ``127.0.0.1:A`` and forwards every
``/api/v1/...`` request (method, path, query, body, content headers) to the IB process on ``127.0.0.1:I``, giving
back its status, body and content type. Exceptions:

- the synchronous data load (``POST /api/v1/data/load`` without ``async_mode=true``) is removed: it answers what a
  framework answers for a route it does not have, 404 ``{"detail": "Not Found"}`` (the async load is forwarded);
- ``GET /api/v1/health`` answers 503 while the store on ``127.0.0.1:S`` is unreachable, else the IB process's own;
- each forwarded request is recorded in the store (key ``last-request``), off the request's path, never delaying it.

Standard library only; every connect and read is bounded; SIGTERM/SIGINT end it (exit 0).
"""

from __future__ import annotations

import argparse
import http.client
import json
import queue
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from store import serve_until_signalled

PREFIX = "/api/v1"
#: A framework's answer for a route it does not have (FastAPI's default body).
NO_ROUTE_BODY = {"detail": "Not Found"}
#: Bound on connecting to the IB process or the store (both on loopback).
CONNECT_TIMEOUT_S = 2.0
#: Bound on each read of the IB process's answer: longer than the suite's longest synchronous call (a synchronous
#: load's ``load_timeout_s``, 150 s at the standard level), so the caller's own bound is the one that shows.
FORWARD_TIMEOUT_S = 180.0
#: Bound on one store call (health check or record).
STORE_TIMEOUT_S = 1.0
#: A client that sends nothing for this long loses its connection.
SOCKET_TIMEOUT_S = 10.0
#: Largest request body forwarded.
MAX_BODY_BYTES = 1024 * 1024
#: Request headers passed on (the rest are hop-by-hop or describe this hop's connection).
FORWARDED_HEADERS = ("Content-Type", "Accept", "Accept-Encoding", "User-Agent", "Authorization")
#: Records waiting for the store; beyond this they are dropped (the store is slow or down), never waited for.
RECORD_QUEUE_MAX = 1000
TRUE_WORDS = ("1", "true", "yes", "on", "t", "y")


def is_removed(method: str, path: str, query: str) -> bool:
    """Whether the request asks for the removed endpoint: the synchronous data load."""
    if method != "POST" or path.rstrip("/") != PREFIX + "/data/load":
        return False
    async_mode = parse_qs(query).get("async_mode", ["false"])[-1].strip().lower()
    return async_mode not in TRUE_WORDS


class Store:
    """The store as the API process uses it: a bounded health check and records written by one thread."""

    def __init__(self, port: int):
        self.port = port
        self._records: queue.Queue[bytes] = queue.Queue(RECORD_QUEUE_MAX)
        self._was_reachable = True
        self._lock = threading.Lock()
        threading.Thread(target=self._write_records, name="store-recorder", daemon=True).start()

    def _call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=STORE_TIMEOUT_S)
        try:
            conn.request(method, path, body=body, headers={"Content-Type": "application/octet-stream"})
            answer = conn.getresponse()
            return answer.status, answer.read()
        finally:
            conn.close()

    def check(self) -> str:
        """'' when the store answers its health check, else why not (within about ``STORE_TIMEOUT_S``)."""
        try:
            status, _ = self._call("GET", "/health")
            problem = "" if status == 200 else f"store health answered {status}"
        except (OSError, http.client.HTTPException) as exc:
            problem = f"store unreachable on 127.0.0.1:{self.port}: {exc}"
        self._note(problem)
        return problem

    def record(self, method: str, path: str, status: int, seq: int) -> None:
        """Queue a record of one forwarded request (dropped when the queue is full)."""
        value = json.dumps({"seq": seq, "method": method, "path": path, "status": status}).encode()
        try:
            self._records.put_nowait(value)
        except queue.Full:
            pass

    def _write_records(self) -> None:
        while True:
            value = self._records.get()  # a daemon thread: it waits for work, the process does not wait for it
            try:
                status, _ = self._call("PUT", "/kv/last-request", value)
                self._note("" if status == 200 else f"store refused a record: {status}")
            except (OSError, http.client.HTTPException) as exc:
                self._note(f"store unreachable on 127.0.0.1:{self.port}: {exc}")

    def _note(self, problem: str) -> None:
        """One line when the store goes away or comes back, not one per request."""
        with self._lock:
            if bool(problem) == (not self._was_reachable):
                return
            self._was_reachable = not problem
        print(f"api: {problem}" if problem else "api: store reachable again", file=sys.stderr, flush=True)


class ForwardingHandler(BaseHTTPRequestHandler):
    """One request to the API process."""

    server_version = "split-api/1"
    protocol_version = "HTTP/1.0"  # one request per connection: no idle keep-alive threads
    timeout = SOCKET_TIMEOUT_S

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass  # the IB process logs what it does; one line per forwarded request would only double it

    def _answer(self, status: int, body: bytes | object, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, code: str, message: str) -> None:
        """An answer of the API process itself, in the contract's envelope."""
        self._answer(status, {"success": False, "data": None,
                              "error": {"code": code, "message": message, "details": None}})

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        path, method = parts.path, self.command
        removed = not self.server.keep_sync_load and is_removed(method, path, parts.query)  # type: ignore[attr-defined]
        if not (path == PREFIX or path.startswith(PREFIX + "/")) or removed:
            self._answer(404, NO_ROUTE_BODY)
            return
        body = self._body()
        if body is None:
            return
        if method == "GET" and path.rstrip("/") == PREFIX + "/health":
            problem = self.server.store.check()  # type: ignore[attr-defined]
            if problem:
                self._answer(503, {"status": "unavailable", "detail": problem})
                return
        self._forward(method, body)

    def _body(self) -> bytes | None:
        """The request's body (b'' when none); None when it was refused (answered already)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            self._error(411, "API-LENGTH-REQUIRED", "send the body with a Content-Length")
            return None
        length_text = self.headers.get("Content-Length", "0").strip() or "0"
        if not length_text.isdigit() or int(length_text) > MAX_BODY_BYTES:
            self.close_connection = True
            self._error(400, "API-BAD-REQUEST", f"Content-Length must be 0..{MAX_BODY_BYTES}")
            return None
        body = self.rfile.read(int(length_text))
        if len(body) != int(length_text):
            self.close_connection = True
            self._error(400, "API-BAD-REQUEST", "the body ended early")
            return None
        return body

    def _forward(self, method: str, body: bytes) -> None:
        server: ForwardingServer = self.server  # type: ignore[assignment]
        headers = {name: self.headers[name] for name in FORWARDED_HEADERS if self.headers.get(name)}
        if body or method in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = str(len(body))
        conn = http.client.HTTPConnection("127.0.0.1", server.ib_side_port, timeout=CONNECT_TIMEOUT_S)
        try:
            conn.connect()
            conn.sock.settimeout(FORWARD_TIMEOUT_S)
            conn.request(method, self.path, body=body or None, headers=headers)
            answer = conn.getresponse()
            data = answer.read()
            status, content_type = answer.status, answer.getheader("Content-Type", "application/octet-stream")
        except TimeoutError as exc:
            self._error(504, "API-UPSTREAM-TIMEOUT", f"the IB process did not answer within bounds: {exc}")
            return
        except (OSError, http.client.HTTPException) as exc:
            self._error(502, "API-UPSTREAM", f"the IB process on 127.0.0.1:{server.ib_side_port} failed: {exc}")
            return
        finally:
            conn.close()
        server.store.record(method, urlsplit(self.path).path, status, server.next_seq())
        self._answer(status, data, content_type)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle  # noqa: N815


class ForwardingServer(ThreadingHTTPServer):
    """The API process's server; a broken client costs at most one line on stderr, never a traceback."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the default 5 drops connections in the suite's bursts of concurrent calls

    def __init__(self, api_port: int, ib_side_port: int, store: Store, keep_sync_load: bool = False):
        self.ib_side_port, self.store, self.keep_sync_load = ib_side_port, store, keep_sync_load
        self._seq, self._seq_lock = 0, threading.Lock()
        super().__init__(("127.0.0.1", api_port), ForwardingHandler)

    def next_seq(self) -> int:
        with self._seq_lock:
            self._seq += 1
            return self._seq

    def handle_error(self, request: object, client_address: tuple[str, int]) -> None:
        exc = sys.exc_info()[1]
        if not isinstance(exc, (ConnectionError, TimeoutError)):  # a caller that gave up is not our error
            print(f"api: request from {client_address[0]}:{client_address[1]} failed: {exc!r}",
                  file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api-port", type=int, required=True, help="the API's port on 127.0.0.1")
    parser.add_argument("--ib-side-port", type=int, required=True, help="the IB process's API port")
    parser.add_argument("--store-port", type=int, required=True, help="the store's port")
    parser.add_argument("--keep-sync-load", action="store_true",
                        help="forward the synchronous load too (to judge the shape without the missing endpoint)")
    args = parser.parse_args(argv)
    try:
        server = ForwardingServer(args.api_port, args.ib_side_port, Store(args.store_port), args.keep_sync_load)
    except OSError as exc:
        print(f"api: cannot listen on 127.0.0.1:{args.api_port}: {exc}", file=sys.stderr)
        return 1
    return serve_until_signalled(server, "api")


if __name__ == "__main__":
    sys.exit(main())
