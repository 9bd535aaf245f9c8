"""Byte-level helpers for the proxy tests: a minimal TWS gateway fake and a recording TCP tap."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from ibtargets.common.wire import FrameDecoder, ProtocolError, decode_fields, encode_fields, parse_hello

T = TypeVar("T")
ACCOUNT = "DU1234567"
GATEWAY_VERSION = 176
#: Bounds of the ib_insync clients in the tests.
CONNECT_TIMEOUT_S = 4.0
REQUEST_TIMEOUT_S = 1.0


class LoopThread:
    """An asyncio loop in a daemon thread; :meth:`call` runs a coroutine there with a bound."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="proxy-test-loop", daemon=True)
        self.thread.start()

    def call(self, coro: Coroutine[Any, Any, T], timeout_s: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5.0)
        if not self.thread.is_alive():
            self.loop.close()


class LoopServer:
    """A loopback asyncio server on a :class:`LoopThread`; subclasses define ``_serve``."""

    def __init__(self, loop_thread: LoopThread):
        self._lt = loop_thread
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    def start(self):
        async def _start() -> int:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
            return self._server.sockets[0].getsockname()[1]
        self.port = self._lt.call(_start())
        return self

    def stop(self) -> None:
        """Stop listening and close every connection."""
        async def _stop() -> None:
            if self._server is not None:
                self._server.close()
            for writer in list(self._writers):
                writer.close()
        self._lt.call(_stop())

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


class FakeGateway(LoopServer):
    """Answers the handshake, startApi, ib_insync's connect sync and reqCurrentTime; nothing else.

    ``garbage_client_ids``: after startApi from one of these client IDs it sends bytes that are not
    TWS framing instead of the usual answers. A bad hello closes the connection (as TWS does).
    """

    def __init__(self, loop_thread: LoopThread):
        super().__init__(loop_thread)
        self.client_ids: list[int] = []
        self.garbage_client_ids: set[int] = set()
        self.closed_by_bad_input = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        decoder = FrameDecoder(expect_prefix=True)
        hello_seen = False
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                for payload in decoder.feed(data):
                    if not hello_seen:
                        parse_hello(payload)
                        hello_seen = True
                        writer.write(encode_fields(GATEWAY_VERSION, "20240102 10:00:00 EST"))
                        continue
                    writer.write(self._answer(decode_fields(payload)))
                await writer.drain()
        except ProtocolError:
            self.closed_by_bad_input += 1
        except ConnectionError:
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def _answer(self, fields: list[str]) -> bytes:
        msg_id = int(fields[0])
        if msg_id == 71:
            client_id = int(fields[2])
            self.client_ids.append(client_id)
            if client_id in self.garbage_client_ids:
                return b"\xff\xff\xff\xffnot tws at all"
            return encode_fields(15, 1, ACCOUNT) + encode_fields(9, 1, 1)
        answers = {61: lambda: encode_fields(62, 1), 5: lambda: encode_fields(53, 1),
                   99: lambda: encode_fields(102), 6: lambda: encode_fields(54, 1, ACCOUNT),
                   76: lambda: encode_fields(74, 1, fields[2]), 7: lambda: encode_fields(55, 1, fields[2]),
                   49: lambda: encode_fields(49, 1, int(time.time()))}
        return answers[msg_id]() if msg_id in answers else b""


class Tap(LoopServer):
    """A raw TCP relay that records every byte in both directions, per connection."""

    def __init__(self, loop_thread: LoopThread, upstream_port: int):
        super().__init__(loop_thread)
        self.upstream_port = upstream_port
        #: per connection: bytes seen going to the upstream and coming back from it.
        self.to_upstream: list[bytearray] = []
        self.to_client: list[bytearray] = []

    def recorded(self) -> tuple[bytes, bytes]:
        """All bytes (to upstream, to client) over every connection, in connection order."""
        async def _get() -> tuple[bytes, bytes]:
            return b"".join(self.to_upstream), b"".join(self.to_client)
        return self._lt.call(_get())

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        up_log, down_log = bytearray(), bytearray()
        self.to_upstream.append(up_log)
        self.to_client.append(down_log)
        self._writers.update((writer, up_writer))

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, log: bytearray) -> None:
            try:
                while data := await src.read(65536):
                    log += data
                    dst.write(data)
                    await dst.drain()
            except ConnectionError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_writer, up_log), pump(up_reader, writer, down_log))
        self._writers.difference_update((writer, up_writer))


class Echo(LoopServer):
    """Sends every byte back: an upstream for throughput and slicing tests."""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
