"""The proxy's reading of TWS traffic: message types, reqIds, which request an answer belongs to."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ibtargets.common.wire import MAX_FRAME_BYTES, ProtocolError, encode_fields, encode_hello
from ibtargets.proxy.observe import ConnectionObserver, Handshake, ServerMessage


def observer() -> ConnectionObserver:
    return ConnectionObserver(MAX_FRAME_BYTES)


def started(version: int = 176) -> ConnectionObserver:
    """An observer past the hello, startApi and handshake."""
    obs = observer()
    obs.feed_client(encode_hello(157, 176) + encode_fields(71, 2, 7, ""))
    obs.feed_server(encode_fields(version, "20240102 10:00:00 EST"))
    return obs


def answers(obs: ConnectionObserver, *frames: bytes) -> list[ServerMessage]:
    out = [parsed for _, parsed in obs.feed_server(b"".join(frames))]
    assert all(isinstance(p, ServerMessage) for p in out)
    return out  # type: ignore[return-value]


def test_hello_and_start_api_give_the_client_id():
    obs = observer()
    messages = obs.feed_client(encode_hello(157, 176) + encode_fields(71, 2, 7, ""))
    assert [(m.type, m.client_id) for m in messages] == [("startApi", 7)]
    assert obs.client_id == 7


def test_handshake_reply_gives_the_version():
    obs = observer()
    [(_, parsed)] = obs.feed_server(encode_fields(176, "20240102 10:00:00 EST"))
    assert parsed == Handshake(176)


def test_current_time_answers_req_current_time():
    obs = started()
    [request] = obs.feed_client(encode_fields(49, 1))
    assert (request.type, request.req_id) == ("reqCurrentTime", None)
    [answer] = answers(obs, encode_fields(49, 1, 1700000000))
    assert (answer.type, answer.answers, answer.req_id) == ("currentTime", "reqCurrentTime", None)


@pytest.mark.parametrize("version, data_frame", [
    (176, encode_fields(10, 42, "AAPL", "STK")),          # no version field from 164 on
    (157, encode_fields(10, 8, 42, "AAPL", "STK")),       # ibapi 9.81: version field
])
def test_contract_details_answers_carry_the_req_id(version: int, data_frame: bytes):
    obs = started(version)
    [request] = obs.feed_client(encode_fields(9, 8, 42, 0, "AAPL", "STK"))
    assert (request.type, request.req_id) == ("reqContractDetails", 42)
    got = answers(obs, data_frame, encode_fields(52, 1, 42), encode_fields(4, 2, 42, 200, "No security", ""))
    assert [(a.type, a.req_id, a.answers) for a in got] == [
        ("contractData", 42, "reqContractDetails"), ("contractDataEnd", 42, "reqContractDetails"),
        ("error", 42, "reqContractDetails")]
    assert got[2].error_code == 200


def test_historical_data_and_head_timestamp_map_by_req_id():
    obs = started()
    obs.feed_client(encode_fields(20, 5, 265598, "AAPL") + encode_fields(87, 6, 265598, "AAPL"))
    got = answers(obs, encode_fields(88, 6, "19801212-14:30:00"), encode_fields(17, 5, "a", "b", 0))
    assert [(a.type, a.answers) for a in got] == [("headTimestamp", "reqHeadTimeStamp"),
                                                   ("historicalData", "reqHistoricalData")]


def test_notices_and_unknown_req_ids_are_unsolicited():
    obs = started()
    got = answers(obs, encode_fields(4, 2, -1, 2104, "farm OK", ""), encode_fields(55, 1, 999))
    assert [a.answers for a in got] == [None, None]
    assert got[0].error_code == 2104


def test_next_valid_id_answers_the_latest_of_start_api_and_req_ids():
    obs = started()
    assert answers(obs, encode_fields(9, 1, 1))[0].answers == "startApi"
    obs.feed_client(encode_fields(8, 1, 1))
    assert answers(obs, encode_fields(9, 1, 2))[0].answers == "reqIds"


def test_not_tws_from_the_client_is_a_protocol_error():
    with pytest.raises(ProtocolError):
        observer().feed_client(b"GET / HTTP/1.1\r\n\r\n")


def test_oversize_frame_from_the_gateway_is_a_protocol_error():
    obs = ConnectionObserver(max_frame_bytes=1000)
    with pytest.raises(ProtocolError):
        obs.feed_server(b"\x00\x01\x00\x00")


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=30))
def test_any_chunking_gives_the_same_messages(cuts: list[int]):
    stream = encode_fields(176, "t") + encode_fields(49, 1, 1) + encode_fields(4, 2, -1, 2104, "x", "") + \
        encode_fields(17, 5, "a", "b", 0) * 3
    whole = [(p, type(m).__name__, getattr(m, "type", None)) for p, m in observer().feed_server(stream)]
    obs, pieces, at = observer(), [], 0
    for cut in cuts:
        pieces.append(stream[at:at + cut])
        at += cut
    pieces.append(stream[at:])
    chunked = [(p, type(m).__name__, getattr(m, "type", None))
               for piece in pieces for p, m in obs.feed_server(piece)]
    assert chunked == whole
