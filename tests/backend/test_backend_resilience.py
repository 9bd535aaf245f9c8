"""The resilience score is honest: high with a healthy gateway, low within 5 s of trouble, back within 10 s."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import ib_insync
from backend_helpers import HOST, Api, BackendProcess, events, free_port, run

from ibtargets.common.faults import Restart, Silent
from ibtargets.gateway import ThreadedGateway
from ibtargets.proxy import ThreadedProxy
from support.waiting import Deadline

HEALTHY_MIN = 75.0
DETECT_WITHIN_S = 5.0
RECOVER_WITHIN_S = 10.0
ANSWER_WITHIN_S = 5.0


def watch_score(api: Api, below: bool, within_s: float) -> tuple[float, list[float]]:
    """Poll the score until it is below 75 (or at least 75); return when, and every answer's duration.

    Raises:
        AssertionError: the score never crossed within ``within_s``.
    """
    deadline = Deadline(within_s)
    durations: list[float] = []
    seen: list[float] = []
    while True:
        answer = api.get("/ib/resilience")
        durations.append(answer.elapsed_s)
        score = answer.data["overall_resilience_score"]
        seen.append(score)
        if (score < HEALTHY_MIN) == below:
            return deadline.elapsed_s, durations
        assert not deadline.expired, f"score never went {'below' if below else 'back to'} 75: {seen}"
        time.sleep(0.2)  # pacing the poll


def test_a_healthy_gateway_scores_at_least_75_from_live_evidence(backend: BackendProcess,
                                                                 gateway: ThreadedGateway) -> None:
    answer = backend.api.get("/ib/resilience")
    data = answer.data
    assert data["overall_resilience_score"] == 100.0
    assert all(data[k]["status"] == "working" for k in data if k.startswith("phase_"))
    assert data["phase_3_client_id_preference"]["client_ids_in_use"] == [1]
    assert events(gateway, "request", type="reqCurrentTime"), "phase 1 must rest on a real round-trip"
    assert answer.elapsed_s < ANSWER_WITHIN_S


def test_the_score_drops_when_the_gateway_goes_silent_and_returns(proxied_backend: BackendProcess,
                                                                  proxy: ThreadedProxy) -> None:
    api = proxied_backend.api
    assert api.score() >= HEALTHY_MIN
    proxy.apply(Silent())
    detected_s, durations = watch_score(api, below=True, within_s=DETECT_WITHIN_S)
    assert detected_s <= DETECT_WITHIN_S
    low = api.get("/ib/resilience")
    assert low.data["phase_1_systematic_validation"]["status"] != "working"
    durations.append(low.elapsed_s)
    proxy.heal("silent")
    recovered_s, more = watch_score(api, below=False, within_s=RECOVER_WITHIN_S)
    assert recovered_s <= RECOVER_WITHIN_S
    assert max(durations + more) < ANSWER_WITHIN_S, "the endpoint must answer within 5 s in every state"


def test_the_score_drops_while_the_gateway_is_down_and_returns(backend: BackendProcess,
                                                               gateway: ThreadedGateway) -> None:
    api = backend.api
    assert api.score() >= HEALTHY_MIN
    gateway.apply(Restart(down_s=4.0))
    down_at = time.monotonic()
    detected_s, durations = watch_score(api, below=True, within_s=DETECT_WITHIN_S)
    assert detected_s <= DETECT_WITHIN_S
    low = api.get("/ib/resilience").data
    assert low["overall_resilience_score"] < 65, "no gateway at all is infrastructure trouble"
    back_in_s = max(0.0, 4.0 - (time.monotonic() - down_at))
    recovered_s, more = watch_score(api, below=False, within_s=back_in_s + RECOVER_WITHIN_S)
    assert recovered_s - back_in_s <= RECOVER_WITHIN_S
    assert max(durations + more) < ANSWER_WITHIN_S


def test_no_gateway_at_all_never_scores_75(make_backend: Callable[..., BackendProcess]) -> None:
    api = make_backend(free_port()).api
    answer = api.get("/ib/resilience")
    data = answer.data
    assert data["overall_resilience_score"] < 65
    assert data["phase_1_systematic_validation"]["status"] != "working"
    assert data["phase_3_client_id_preference"]["client_ids_in_use"] == []
    assert answer.elapsed_s < ANSWER_WITHIN_S


def test_phase_3_reports_the_ids_the_gateway_accepted(make_backend: Callable[..., BackendProcess],
                                                      gateway: ThreadedGateway) -> None:
    async def with_squatter() -> dict:
        ib = ib_insync.IB()
        await ib.connectAsync(HOST, gateway.port, clientId=1, timeout=4)
        try:
            loop = asyncio.get_running_loop()
            api = make_backend(gateway.port).api
            answer = await loop.run_in_executor(None, api.get, "/ib/resilience")
            return answer.data
        finally:
            ib.disconnect()

    data = run(with_squatter())
    phase = data["phase_3_client_id_preference"]
    assert phase["client_ids_in_use"] == [2] and phase["lowest_client_id_used"] == 2
    assert phase["using_client_id_1"] is False and phase["status"] == "working"
    assert phase["client_ids_refused_326"] == [1]
    assert [e["client_id"] for e in events(gateway, "error_sent", code=326)] == [1]
    assert data["overall_resilience_score"] == 100.0


def test_phase_2_counts_what_the_gc_loop_really_closed(make_backend: Callable[..., BackendProcess],
                                                       gateway: ThreadedGateway) -> None:
    api = make_backend(gateway.port, REFBACKEND_MAX_IDLE_S="1.0").api
    api.post("/ib/symbols/discover", json={"symbol": "AAPL"})
    deadline = Deadline(5.0)
    while not gateway.connections()[0]["disconnected_mono"]:
        assert not deadline.expired, "the idle connection was not collected"
        time.sleep(0.1)  # pacing the poll
    phase = api.get("/ib/resilience").data["phase_2_garbage_collection"]
    assert phase["status"] == "working" and phase["max_idle_time_seconds"] == 1.0
    assert phase["health_check_interval"] == 0.5 and phase["idle_connections_closed"] >= 1
