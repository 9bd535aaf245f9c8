"""Small recorded histories for the checkers' tests: a simulator's record written by hand, and the limits."""

from __future__ import annotations

import itertools

from support.checks.limits import Limits
from support.drivers.api import ApiResponse
from support.run_history import HistoryWindow, RunHistory
from support.waiting import Bound

LIMITS = Limits(api_response=Bound.exactly(5.0, "the API bound"), cli_command=Bound.exactly(30.0, "the CLI bound"),
                load=Bound.exactly(90.0, "the load bound"), validation=Bound.exactly(3.0, "the validation bound"),
                silent_detection=Bound.exactly(5.0, "the detection bound"),
                recovery=Bound.exactly(10.0, "the recovery bound"), connect=Bound.exactly(5.0, "a connect"),
                score_min=75.0, pool_limit=2, preferred_client_id=1, client_id_max=10)


class Gateway:
    """Writes a simulator's record for a test: connections, requests and answers, at given times."""

    def __init__(self, idle_timeout_s: float = 2.0) -> None:
        self.run = RunHistory(started_mono=0.0)
        self.run._records["gateway"] = None  # noqa: SLF001 - the record is fed by hand
        self.run.sync = lambda: None
        self.run.life_began(0.0, 0.5, idle_timeout_s=idle_timeout_s, health_interval_s=0.5)
        self._seq = itertools.count(1)
        self._conn = itertools.count(1)

    def _event(self, kind: str, mono: float, **fields) -> None:
        self.run.add_raw("gateway", [{"seq": next(self._seq), "kind": kind, "mono": mono, **fields}])

    def connect(self, at: float, client_id: int, port: int = 40000, accepted: bool = True) -> int:
        conn_id = next(self._conn)
        self._event("connect", at, conn_id=conn_id, peer=f"127.0.0.1:{port + conn_id}")
        if accepted:
            self._event("start_api", at + 0.001, conn_id=conn_id, client_id=client_id)
        else:
            self._event("reject", at + 0.001, conn_id=conn_id, client_id=client_id, code=326)
            self._event("disconnect", at + 0.002, conn_id=conn_id, client_id=client_id, reason="duplicate client id")
        return conn_id

    def ask(self, conn_id: int, at: float, request_type: str, answered_at: float | None, req_id=None,
            read_at: float | None = None) -> None:
        self._event("request", at, conn_id=conn_id, type=request_type, req_id=req_id, answered=True,
                    read_mono=read_at if read_at is not None else at)
        if answered_at is not None:
            self._event("response", answered_at, conn_id=conn_id, type=request_type, req_id=req_id)

    def close(self, conn_id: int, at: float, reason: str = "client closed") -> None:
        self._event("disconnect", at, conn_id=conn_id, reason=reason)

    def window(self, end: float = 100.0) -> HistoryWindow:
        return self.run.window(0.0, end)


def answer(path: str, started: float, elapsed: float, status: int | None = 200, body=None, method: str = "GET",
           timed_out: bool = False) -> ApiResponse:
    return ApiResponse(method, path, None, status, body, elapsed, started, timed_out=timed_out)


def score(started: float, value: float) -> ApiResponse:
    return answer("/ib/resilience", started, 0.05, body={"success": True, "data": {"overall_resilience_score": value}})
