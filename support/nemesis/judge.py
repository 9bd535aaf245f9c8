"""The nemesis's verdicts: the checkers of :mod:`support.checks` over its run's window — every run-wide invariant
(:mod:`support.checks.run_wide`) and three claims only a nemesis run gives a chance to test (a cleanup under
overlapping faults, the final cache read, service after the final heal). The nemesis never judges by itself: the
report, the shrinker and the feature read these verdicts.

====================  ==========================================================================================
``bounds``            every request answered within its bound (:func:`support.checks.timing.requests_bounded`)
``reports_fall``      the score and the IB health fall in every outage (:func:`support.checks.reports.fall_during_outages`)
``reports_recover``   … and are healthy once nothing disturbs the gateway (:func:`support.checks.reports.healthy_when_quiet`)
``pool_limit``        never more IB connections than the pool allows (:func:`support.checks.pool.pool_limit`)
``cleanup``           no client ID held after a cleanup (:func:`support.checks.cleanup.cleanup_closes_pool`)
``cached_bars``       every cached bar is a bar IB served (:func:`support.checks.cache.cached_bars_true`)
``output``            nothing complains (:func:`support.checks.output.nothing_complained`)
``recovery``          service back within the recovery bound of the last heal
                      (:func:`support.checks.recovery.served_after_heal`)
the rest              liveness, validated_kept, one_caller, idle, client_ids, cancels (:mod:`support.checks.run_wide`)
====================  ==========================================================================================
"""

from __future__ import annotations

from support.checks import cache, cleanup, recovery, run_wide
from support.checks.limits import Limits
from support.nemesis.record import NemesisRun
from support.run_history import HistoryWindow
from support.verdict import Verdict

#: The claims only a nemesis run judges: key → title.
OWN = {
    "cleanup": "No client ID stays held after a cleanup",
    "cached_bars": "Every cached bar is a bar IB served",
    "recovery": "The backend serves again within the recovery bound of the last heal",
}
#: Every family in report order: the nemesis's seven claims first (``score`` is ``reports_fall`` and
#: ``reports_recover``), then the other run-wide invariants.
FAMILIES: tuple[str, ...] = ("bounds", "reports_fall", "reports_recover", "pool_limit", "cleanup", "cached_bars",
                             "output", "recovery",
                             *(i.key for i in run_wide.INVARIANTS
                               if i.key not in ("bounds", "reports_fall", "reports_recover", "pool_limit", "output")))


def title(key: str) -> str:
    """A family's requirement in the user's words."""
    return OWN.get(key) or run_wide.BY_KEY[key].title


def judge(window: HistoryWindow, run: NemesisRun, limits: Limits) -> dict[str, Verdict]:
    """Every family's verdict over the run's window, in :data:`FAMILIES` order."""
    verdicts = {judged.invariant.key: judged.verdict for judged in run_wide.judge(window, limits)}
    verdicts["cleanup"] = cleanup.cleanup_closes_pool(window, limits)
    verdicts["cached_bars"] = cache.cached_bars_true(run.cache, run.reads_mono or window.end_mono)
    verdicts["recovery"] = recovery.served_after_heal(window, limits, run.final_heal_mono or window.end_mono)
    return {key: verdicts[key] for key in FAMILIES}
