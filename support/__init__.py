"""ib-resilience: drivers, targets (gateway simulator, fault proxy, reference backend) and runner."""

__version__ = "0.1.0"
