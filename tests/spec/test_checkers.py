"""Checkers judge histories correctly: each verdict is shown both ways on hand-made histories."""

from support.checks import timing, wire
from support.drivers.api import ApiResponse
from support.drivers.history import IbEvent, normalise


def call(start: float, end: float) -> ApiResponse:
    return ApiResponse("POST", "/ib/symbols/discover", {}, 200, {"success": True}, end - start, start)


def req(t, conn, kind, req_id=None):
    return IbEvent("request", t, conn, 1, kind, req_id)


def resp(t, conn, kind, req_id=None):
    return IbEvent("response", t, conn, 1, kind, req_id)


def test_handoff_validated_when_time_request_answered_first():
    events = [req(1.0, 7, "reqCurrentTime"), resp(1.1, 7, "reqCurrentTime"), req(1.2, 7, "reqContractDetails", 5)]
    assert wire.handoffs_validated(events, [call(0.9, 1.5)])


def test_handoff_without_validation_is_caught():
    events = [req(1.0, 7, "reqCurrentTime"), resp(1.1, 7, "reqCurrentTime"), req(1.2, 7, "reqContractDetails", 5),
              req(2.2, 7, "reqContractDetails", 6)]
    verdict = wire.handoffs_validated(events, [call(0.9, 1.5), call(2.0, 2.5)])
    assert not verdict and "connection 7" in verdict.message


def test_validation_answered_after_use_does_not_count():
    events = [req(1.0, 7, "reqCurrentTime"), req(1.2, 7, "reqContractDetails", 5), resp(1.3, 7, "reqCurrentTime")]
    assert not wire.handoffs_validated(events, [call(0.9, 1.5)])


def test_no_data_request_is_not_a_pass():
    assert not wire.handoffs_validated([req(1.0, 7, "reqCurrentTime")], [call(0.9, 1.5)])


def test_failed_validation_then_use_is_caught():
    events = [req(1.0, 3, "reqCurrentTime"), req(4.0, 3, "reqContractDetails", 9)]
    assert not wire.failed_validations_never_used(events)
    assert wire.failed_validations_never_used([req(1.0, 3, "reqCurrentTime"), req(4.0, 4, "reqCurrentTime"),
                                                   resp(4.1, 4, "reqCurrentTime"), req(4.2, 4, "reqContractDetails", 9)])


def test_overlapping_requests_on_one_connection_are_caught():
    shared = [req(1.0, 2, "reqContractDetails", 1), req(1.1, 2, "reqContractDetails", 2),
              resp(1.3, 2, "reqContractDetails", 1), resp(1.4, 2, "reqContractDetails", 2)]
    apart = [req(1.0, 2, "reqContractDetails", 1), req(1.1, 3, "reqContractDetails", 2),
             resp(1.3, 2, "reqContractDetails", 1), resp(1.4, 3, "reqContractDetails", 2)]
    assert not wire.connections_never_shared(shared)
    assert wire.connections_never_shared(apart)


def test_client_ids_accepted_and_rejected_in_order():
    events = [IbEvent("start_api", 1.0, 1, 1), IbEvent("rejected", 1.01, 1, 1, code=326),
              IbEvent("start_api", 1.1, 2, 2)]
    assert wire.accepted_client_ids(events) == [2]
    assert wire.rejected_client_ids(events) == [1]


def test_backoff_after_pacing_error():
    error = IbEvent("error", 2.0, 1, 1, code=162, req_id=4)
    hasty = [req(1.9, 1, "reqHistoricalData", 4), error, req(2.2, 1, "reqHistoricalData", 5)]
    patient = [req(1.9, 1, "reqHistoricalData", 4), error, req(4.1, 1, "reqHistoricalData", 5)]
    assert not wire.retried_after_backoff(hasty, 162, 1.0)
    assert wire.retried_after_backoff(patient, 162, 1.0)
    assert not wire.retried_after_backoff([req(1.0, 1, "reqHistoricalData", 4)], 162, 1.0)


def test_proxy_records_normalise_like_the_gateway_records():
    assert normalise({"kind": "response", "error_code": 326, "conn_id": 1, "mono": 1.0}, "proxy").kind == "rejected"
    assert normalise({"kind": "response", "forwarded": False, "conn_id": 1, "mono": 1.0}, "proxy") is None
    assert normalise({"kind": "reject", "code": 326, "conn_id": 1, "mono": 1.0}, "gateway").kind == "rejected"


def test_growth_and_percentiles():
    class S:
        def __init__(self, v):
            self.v = v
    assert timing.growth([S(v) for v in (10, 10, 11, 10, 30, 31, 30, 30)], "v") == 20
    assert timing.percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 95) == 10
