"""The run-wide invariants: what must hold over the whole run, between and around scenarios too, at every level.

Each is one checker of this library applied to the whole history, from the first backend start to the last stop;
each is its own test case in JUnit and Allure and part of the run's exit code. They come from the contract and the
seed (each names its source), never from what the reference backend does, and each knows the fault windows, the
suite's own changes and the backend's restarts, so an expected failure is never blamed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from support.checks import client_ids, operations, output, pool, reports, timing, wire
from support.checks.limits import Limits
from support.run_history import HistoryWindow
from support.verdict import Verdict


@dataclass(frozen=True)
class Invariant:
    """One run-wide invariant: its key, the requirement in the user's words, where it comes from, its checker."""

    key: str
    title: str
    source: str
    check: Callable[[HistoryWindow, Limits], Verdict]


INVARIANTS: tuple[Invariant, ...] = (
    Invariant("output", "Nothing prints an un-awaited coroutine, a RuntimeWarning or a traceback",
              "seed: zero 'coroutine ... was never awaited'; contract: zero RuntimeWarning / tracebacks in every CLI "
              "path", output.nothing_complained),
    Invariant("bounds", "Every request is answered within its bound, whatever the gateway does",
              "contract: every API request within 5 s in every gateway state; CLI commands within 30 s",
              timing.requests_bounded),
    Invariant("liveness", "The backend stays responsive all run long",
              "contract: no request ever blocks other requests (the server stays responsive)", timing.stays_responsive),
    Invariant("reports_fall", "The score and the IB health fall while the gateway is silent or gone",
              "contract: with the gateway silent or down, the score falls below 75 within 5 s; seed: silent "
              "connections detected within 5 s", reports.fall_during_outages),
    Invariant("reports_recover", "The score and the IB health are healthy again once the gateway is",
              "contract: ≥ 75 with a healthy gateway, back within 10 s of recovery", reports.healthy_when_quiet),
    Invariant("validated_kept", "No connection is discarded after the gateway answered its validation in time",
              "contract: a connection that fails validation is discarded and replaced (only one that fails)",
              pool.validated_connections_kept),
    Invariant("one_caller", "No connection carries the requests of two callers at once",
              "contract: validation before every handoff; a connection handed to one caller at a time",
              wire.one_caller_at_a_time),
    Invariant("idle", "No connection sits unused past the idle timeout and one health-check interval",
              "contract: idle connections closed after 300 s unused, health checks every 60 s",
              pool.idle_connections_collected),
    Invariant("pool_limit", "Never more IB connections than the pool allows",
              "contract: a bounded pool (KTRDR's API pool holds 5); judged against the target profile's pool_limit",
              pool.pool_limit),
    Invariant("client_ids", "Client IDs: the preferred first, the next in order after 326, freed IDs again",
              "seed: client ID 1 preferred, sequential fallback on 326, IDs reused after cleanup",
              client_ids.client_id_rules),
    Invariant("cancels", "Every cancel is honoured within the API bound, and the CLI tells the truth about it",
              "contract: Ctrl-C cancels the operation (DELETE) and exits cleanly; every API request within 5 s",
              operations.cancels_honoured),
)
BY_KEY = {invariant.key: invariant for invariant in INVARIANTS}


#: What a report shows next to a verdict: figures measured over the same history, by invariant key.
FIGURES: dict[str, Callable[[HistoryWindow, Limits], dict[str, list[float]]]] = {
    "reports_fall": lambda w, lim: {"detection_s": [round(t, 3) for t in reports.detection_times(w, lim)]},
    "reports_recover": lambda w, lim: {"recovery_s": [round(t, 3) for t in reports.recovery_times(w, lim)]},
    "liveness": lambda w, lim: {"sample_s": sorted(round(s.elapsed_s, 3) for s in w.samples)[-5:]},
}


@dataclass(frozen=True)
class Judged:
    """One invariant's verdict over a run, and the figures a report shows beside it."""

    invariant: Invariant
    verdict: Verdict
    figures: dict[str, list[float]]


def judge(window: HistoryWindow, limits: Limits, keys: tuple[str, ...] | None = None) -> list[Judged]:
    """Every run-wide invariant (or those of ``keys``) over ``window``."""
    chosen = INVARIANTS if keys is None else tuple(BY_KEY[k] for k in keys)
    return [Judged(invariant, invariant.check(window, limits),
                   FIGURES[invariant.key](window, limits) if invariant.key in FIGURES else {})
            for invariant in chosen]
