"""The one seam to the IB client library: ib_insync 0.9.86 (default) or its maintained successor ib_async 2.x.

The library is chosen by the environment variable ``IB_RESILIENCE_IB_LIBRARY`` (``ib_insync`` or ``ib_async``);
the suite sets it from its ``ib_library`` setting before its IB driver makes a client, and hands it to the
embedded reference backend. Everything in ``support/`` that talks to IB takes the library's names from here::

    from ibtargets.common.ibclient import IB, Contract, RequestError   # resolved now (the backend: its own process)
    from support import ibclient; ib = ibclient.IB()           # resolved at the call (the suite's driver)

The names are looked up when they are asked for, so importing this module imports neither library.
What differs between the two, and is bridged here:

- ``IB.connectAsync``: ib_async 2.x only logs a startup synchronisation request that timed out and reports
  success (unless ``raiseSyncErrors=True``), where ib_insync fails the connect; :func:`connect` asks ib_async
  to raise, so "connected" means the same on both (the sync completed within the timeout).
- logger names: ``ib_insync.*`` vs ``ib_async.*`` (:func:`logger_name`).
- ``IB.disconnect`` returns a status text in ib_async, and an ib_async ``IB`` also disconnects when it is
  garbage-collected; nothing here relies on either.

The rest of what the suite and the reference backend use is the same in both: ``RequestError`` (top level and
``.wrapper``, with ``code`` and ``message``), ``errorEvent`` (reqId, code, message, contract),
``client.apiError`` (message), ``client.conn.transport``, ``wrapper.connectionClosed()``,
``RaiseRequestErrors``, ``reqCurrentTimeAsync``, ``reqContractDetailsAsync``, ``reqHistoricalDataAsync``
(with ``timeout``), ``managedAccounts()``, ``client.serverVersion()``, ``disconnectedEvent``.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any

#: The environment variable naming the library.
ENV_VAR = "IB_RESILIENCE_IB_LIBRARY"
#: The libraries the seam knows, the default first.
LIBRARIES = ("ib_insync", "ib_async")
DEFAULT = LIBRARIES[0]
#: The library's names this module hands out (``from ibtargets.common.ibclient import IB``).
EXPORTS = ("IB", "Contract", "ContractDetails", "Stock", "Forex", "Index", "BarData", "RequestError", "util")

__all__ = ["ENV_VAR", "LIBRARIES", "DEFAULT", "EXPORTS", "check_library", "library_name", "library", "version",
           "logger_name", "use", "connect", *EXPORTS]

#: The library this process has loaded through the seam (one per process: never two mixed).
_loaded: str | None = None


class LibraryError(ValueError):
    """An IB library name that is neither of :data:`LIBRARIES`."""


def check_library(name: str, what: str = ENV_VAR) -> str:
    """``name`` stripped, if it is one of :data:`LIBRARIES`.

    Args:
        what: the setting or variable the value came from (named in the error).

    Raises:
        LibraryError: any other value.
    """
    text = str(name).strip()
    if text not in LIBRARIES:
        choices = " or ".join(repr(lib) for lib in LIBRARIES)
        raise LibraryError(f"{what} must be {choices}, not {name!r}")
    return text


def library_name() -> str:
    """The chosen library: ``IB_RESILIENCE_IB_LIBRARY``, ``ib_insync`` when unset or empty.

    Raises:
        LibraryError: the variable holds another value.
    """
    raw = os.environ.get(ENV_VAR, "")
    return check_library(raw) if raw.strip() else DEFAULT


def library() -> ModuleType:
    """The chosen library's module (imported on first use).

    Raises:
        LibraryError: the variable holds an unknown value.
        RuntimeError: the variable names another library than the one this process already loaded.
    """
    global _loaded
    name = library_name()
    if _loaded is not None and name != _loaded:
        raise RuntimeError(f"{ENV_VAR}={name} but this process already uses {_loaded}; the IB library is "
                           f"chosen once per process, before the first IB client is made")
    module = importlib.import_module(name)
    _loaded = name
    return module


def version() -> str:
    """The chosen library's version."""
    return str(library().__version__)


def logger_name() -> str:
    """The root logger of the chosen library (``ib_insync`` or ``ib_async``)."""
    return library_name()


def use(name: str) -> str:
    """Choose the library for this process and its children (sets ``IB_RESILIENCE_IB_LIBRARY``).

    Call it before the first IB client is made; the suite does in behave's ``before_all``.

    Raises:
        LibraryError: ``name`` is not a known library.
        RuntimeError: this process already loaded the other library.
    """
    name = check_library(name, "ib_library")
    if _loaded is not None and name != _loaded:
        raise RuntimeError(f"cannot switch the IB library to {name}: this process already uses {_loaded}")
    os.environ[ENV_VAR] = name
    return name


async def connect(ib: Any, host: str, port: int, client_id: int, timeout_s: float, readonly: bool = True) -> Any:
    """``ib.connectAsync`` with the same meaning on both libraries: it returns once the API handshake and the
    startup synchronisation completed, and fails when any of it is unanswered within ``timeout_s``.

    Raises:
        ConnectionError, OSError: refused, reset or closed (ib_async: also a sync request that timed out).
        asyncio.TimeoutError: the handshake (or, ib_insync, a sync request) timed out.
    """
    extra = {"raiseSyncErrors": True} if type(ib).__module__.split(".", 1)[0] == "ib_async" else {}
    return await ib.connectAsync(host, port, clientId=client_id, timeout=timeout_s, readonly=readonly, **extra)


def __getattr__(name: str) -> Any:
    if name in EXPORTS:
        return getattr(library(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(EXPORTS))
