"""A Jepsen-style nemesis for IB connection resilience: generator, fault injector, client, one history, checkers.

``schedule`` draws seeded fault schedules; ``injector`` applies them on both planes; ``workload`` is the client;
both record into the run's one history (:mod:`support.run_history`); ``record`` holds what only the nemesis knows
beside it; ``judge`` takes the verdicts of :mod:`support.checks` over the run's window; ``shrink`` reduces a failing
schedule; ``plot`` draws the timeline; ``runner`` ties one run together into an ``outcome``; ``spec`` runs it for
the behave feature. ``ib-resilience nemesis`` is :mod:`ibresilience.nemesis_cmd`.
"""
