"""A Jepsen-style nemesis for IB connection resilience: generator, fault injector, client, one history, checkers.

``schedule`` draws seeded fault schedules; ``injector`` applies them on both planes; ``workload`` is the client;
``record`` is the one history, everything on one clock; ``invariants`` are the checkers over it; ``shrink``
reduces a failing schedule; ``plot`` draws the timeline; ``runner`` ties one run together into an ``outcome``;
``spec`` runs it for the behave feature. ``ib-resilience nemesis`` is :mod:`ibresilience.nemesis_cmd`.
"""
