"""A Jepsen-style nemesis for IB connection resilience: generator, nemesis, client, one history, checkers.

``schedule`` draws seeded fault schedules; ``nemesis`` applies them on both planes; ``workload`` is the client;
``history`` records everything on one clock; ``checkers`` judge invariants over it; ``shrink`` reduces a failing
schedule; ``plot`` draws the timeline; ``runner`` ties one run together; ``cli`` is ``ib-resilience nemesis``.
"""
