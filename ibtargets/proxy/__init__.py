"""IB-aware TCP fault proxy: forwards TWS API traffic unchanged and injects transport faults on command."""

from ibtargets.proxy.core import FaultProxy, ProxyConfig
from ibtargets.proxy.threaded import ThreadedProxy

__all__ = ["FaultProxy", "ProxyConfig", "ThreadedProxy"]
