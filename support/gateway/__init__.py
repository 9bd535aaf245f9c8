"""IB Gateway simulator: the TWS socket protocol with protocol faults and a JSON control API."""

from .config import ConfigError, GatewayConfig
from .gateway import Gateway
from .threaded import ThreadedGateway

__all__ = ["ConfigError", "Gateway", "GatewayConfig", "ThreadedGateway"]
