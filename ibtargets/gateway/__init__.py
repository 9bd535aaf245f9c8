"""IB Gateway simulator: the TWS socket protocol with protocol faults and a JSON control API."""

from ibtargets.gateway.config import ConfigError, GatewayConfig
from ibtargets.gateway.gateway import Gateway
from ibtargets.gateway.threaded import ThreadedGateway

__all__ = ["ConfigError", "Gateway", "GatewayConfig", "ThreadedGateway"]
