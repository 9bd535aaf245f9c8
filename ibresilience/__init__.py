"""The tools on top: the ``ib-resilience`` command (:mod:`.main`) and what it runs: the runner of levels,
workers and shards (:mod:`.runner`, :mod:`.parallel`), the merge of
shard reports, the resource monitor and the nemesis command."""

from ibresilience import spec_home

# Before any tool imports ``support``: an installed wheel carries it inside this package (ibresilience.spec_home).
spec_home.install()
