"""IB-aware TCP fault proxy: forwards TWS API traffic unchanged and injects transport faults on command."""

from .core import FaultProxy, ProxyConfig
from .threaded import ThreadedProxy

__all__ = ["FaultProxy", "ProxyConfig", "ThreadedProxy"]
