"""The tools on top: the ``ib-resilience`` command (:mod:`.main`) and what it runs: the runner of levels,
workers and shards (:mod:`.runner`, :mod:`.parallel`), the merge of
shard reports, the resource monitor and the nemesis command."""
