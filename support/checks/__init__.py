"""The one library of checkers: pure functions from a window of the run's history (or its typed parts) to one
:class:`~support.verdict.Verdict` — pass, fail with evidence, or not exercised — taking :class:`~support.waiting.Bound`
values. The scenario claims, the nemesis and the run-wide invariants all call these; the report shows their verdicts.

Families: :mod:`~support.checks.wire` (what each IB connection carried), :mod:`~support.checks.pool` (the pool's
limit, idle collection, cleanup), :mod:`~support.checks.client_ids`, :mod:`~support.checks.timing` (bounds,
liveness, load), :mod:`~support.checks.reports` (what the backend says about IB against what IB did),
:mod:`~support.checks.output` (what the backend and the CLI print), :mod:`~support.checks.operations` (cancels);
:mod:`~support.checks.run_wide` lists the invariants judged over the whole run.
"""
