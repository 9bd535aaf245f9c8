"""A pair's gateway → client path with silent switched on and off at arbitrary byte boundaries."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ibtargets.common.wire import FrameDecoder, encode_fields, encode_hello
from ibtargets.proxy import FaultProxy, ProxyConfig
from ibtargets.proxy.pair import CLIENT, UPSTREAM, Pair
from ibtargets.proxy.shaping import Shaping

ALL = frozenset({"*"})


class FakeTransport:
    """Records writes; enough of asyncio.Transport for the pair's synchronous path."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    abort = close

    def pause_reading(self) -> None:
        pass

    resume_reading = pause_reading

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


def wired_pair() -> tuple[Pair, FakeTransport, FakeTransport]:
    pair = Pair(FaultProxy(ProxyConfig()), 1)
    client, upstream = FakeTransport(), FakeTransport()
    pair.transports = {CLIENT: client, UPSTREAM: upstream}  # type: ignore[dict-item]
    pair.down.dest, pair.up.dest = client, upstream  # type: ignore[assignment]
    pair.data_received(CLIENT, encode_hello(157, 176) + encode_fields(71, 2, 5, ""))
    return pair, client, upstream


def frames_of(data: bytes) -> list[bytes]:
    decoder = FrameDecoder()
    frames = decoder.feed(data)
    assert decoder.buffered_bytes == 0, "the client got a cut frame"
    return frames


def server_frames(count: int) -> list[bytes]:
    frames = [encode_fields(176, "20240102 10:00:00 EST")]
    for index in range(count):
        frames.append(encode_fields(49, 1, 1700000000 + index) if index % 2 else
                      encode_fields(17, index, "x" * (index * 7 % 50), 0))
    return frames


def test_no_fault_forwards_the_very_same_chunks():
    pair, client, upstream = wired_pair()
    chunks = [b"".join(server_frames(3))[:7], b"".join(server_frames(3))[7:]]
    for chunk in chunks:
        pair.data_received(UPSTREAM, chunk)
    assert bytes(client.written) == b"".join(chunks)
    assert bytes(upstream.written) == encode_hello(157, 176) + encode_fields(71, 2, 5, "")


@settings(max_examples=150, deadline=None)
@given(count=st.integers(min_value=1, max_value=12),
       cuts=st.lists(st.tuples(st.integers(min_value=1, max_value=60), st.booleans()), min_size=1,
                     max_size=40))
def test_silent_toggled_anywhere_keeps_frames_whole_and_in_order(count: int,
                                                                 cuts: list[tuple[int, bool]]):
    frames = server_frames(count)
    stream = b"".join(frames)
    ends, total = [], 0
    for frame in frames:
        total += len(frame)
        ends.append(total)
    pair, client, _ = wired_pair()
    at = 0
    silent_at_byte = []  # whether silent was on when each byte arrived
    for size, silent in cuts + [(len(stream), False)]:
        pair.set_policy(ALL if silent else None, Shaping(), Shaping())
        chunk = stream[at:at + size]
        if not chunk:
            break
        pair.data_received(UPSTREAM, chunk)
        silent_at_byte += [silent] * len(chunk)
        at += len(chunk)
    received = frames_of(bytes(client.written))
    payloads = [frame[4:] for frame in frames]
    # Frames arrive whole, in order, each at most once.
    positions = [payloads.index(p) for p in received]
    assert positions == sorted(set(positions))
    for index, frame in enumerate(frames):
        start = ends[index] - len(frame)
        flags = silent_at_byte[start:ends[index]]
        if index == 0 or not any(flags):
            assert index in positions, f"frame {index} passed with silent off, yet was dropped"
        elif all(flags):
            assert index not in positions, f"frame {index} came entirely while silent, yet reached the client"
    if not any(silent_at_byte):
        assert bytes(client.written) == stream
