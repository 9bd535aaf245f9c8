"""Named faults with typed attributes, for the gateway (protocol) and proxy (transport) planes.

A fault is a frozen value: ``kind`` says what it does, ``name`` identifies it in a
target's active set (defaults to the kind), ``client_id`` scopes it to one IB client
ID (``None`` = every connection) and the remaining fields are its attributes, with
units in their names. Applying a fault with a name already active replaces it;
healing a name that is not active is a no-op (both idempotent, as in Toxiproxy).
One-shot faults (``one_shot = True``) act once when applied and are not kept.

A fault's meaning lives in its type, as a toxic's does in Toxiproxy: its attributes, what the report needs to
know of it (:attr:`Fault.silences`, :attr:`Fault.disrupts`) and what a target asks of it (the hooks in
"what a target asks", and :meth:`Fault.on_apply` for what it does at once through the target's primitives,
:class:`GatewayActions` or :class:`ProxyActions`). The targets ask; they never branch on a fault's type.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from ibtargets.common.wire import OUTGOING

GATEWAY = "gateway"
PROXY = "proxy"
ALL_REQUESTS = "*"
DIRECTIONS = ("upstream", "downstream", "both")  # upstream = client → gateway
#: What ``request_types`` may name: the client → gateway message types of ``ibtargets.common.wire.OUTGOING``, or ``"*"``.
REQUEST_TYPES = frozenset(OUTGOING.values())

#: Allowed range (inclusive) of every numeric field of every fault, by field name. A value outside is a
#: :class:`FaultError` (400 from the control API) that names the range.
RANGES: dict[str, tuple[float, float]] = {
    "client_id": (0, 2**31 - 1),        # IB client IDs are 32-bit signed; negative ones are not used
    "latency_ms": (0, 600_000),         # up to 10 minutes
    "jitter_ms": (0, 600_000),
    "code": (100, 99_999),              # IB codes: errors 100..10xxx, system 1100..1300, warnings 2100..2200
    "req_id": (-1, 2**31 - 1),          # -1: not tied to a request
    "restored_code": (1101, 1102),
    "down_s": (0, 86_400),              # up to a day
    "rate_kbps": (1, 1_000_000),        # 1 kB/s .. 1 GB/s
    "max_chunk_bytes": (1, 16 * 1024 * 1024),
    "delay_us": (0, 10_000_000),        # up to 10 s between chunks
}


class FaultError(ValueError):
    """A fault description is invalid (unknown kind, wrong attribute type or value)."""


_REGISTRY: dict[tuple[str, str], type[Fault]] = {}


class GatewayActions(Protocol):
    """What a gateway-plane fault may do at once to the simulator (its primitives, see :meth:`Fault.on_apply`)."""

    def push_error(self, fault: Fault, code: int, req_id: int, message: str) -> None:
        """Send one IB error/notice to the open connections ``fault`` applies to (empty message: IB's text)."""

    def drop_clients(self, fault: Fault) -> None:
        """Close (FIN) the sockets ``fault`` applies to; the listener stays open."""

    async def go_down(self, fault: Fault, down_s: float) -> None:
        """Stop listening, abort every socket, and heal ``fault`` by itself after ``down_s``."""


class ProxyActions(Protocol):
    """What a proxy-plane fault may do at once to the proxy (its primitives, see :meth:`Fault.on_apply`)."""

    def close_connections(self, fault: Fault, reason: str, reset: bool) -> None:
        """Close the open connections ``fault`` applies to: both sockets, with a RST when ``reset``, else a FIN
        after the queued bytes."""


@dataclass(frozen=True)
class Fault:
    """Base of every fault. Subclasses declare ``kind``, ``plane``, typed attributes and what they do."""

    kind: ClassVar[str] = ""
    plane: ClassVar[str] = ""
    one_shot: ClassVar[bool] = False
    #: True when the fault acts at accept time, before any client ID is known.
    unscoped: ClassVar[bool] = False

    # ---- what the report needs to know (see also :meth:`silencing`, :meth:`disrupting`, :func:`kinds_where`)
    #: A backend facing this fault gets no answers and must notice (its silent-detection time is measured).
    silences: ClassVar[bool] = False
    #: The fault interrupts service (recovery time is measured after it heals); every silencing fault does.
    disrupts: ClassVar[bool] = False

    # ---- what a target asks of an active fault (the defaults: the fault does none of it)
    #: While active, the target's listener is closed: new connects are refused (proxy ``refuse``, gateway
    #: ``restart``).
    refuses_new: ClassVar[bool] = False
    #: While active, connections accepted are read and discarded for good, never forwarded (proxy ``blackhole``).
    swallows_new: ClassVar[bool] = False
    #: While active, the hello of a connection is never answered (gateway ``no_handshake``).
    holds_handshake: ClassVar[bool] = False
    #: startApi goes unanswered: no managedAccounts, no nextValidId (gateway ``ignore_start_api``).
    ignores_start_api: ClassVar[bool] = False
    #: The field of ``ibtargets.proxy.shaping.Shaping`` this fault fills ("" = it shapes no bytes).
    shaping_slot: ClassVar[str] = ""

    name: str = ""
    client_id: int | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            _REGISTRY[(cls.plane, cls.kind)] = cls

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.kind)
        if self.client_id is not None and self.unscoped:
            raise FaultError(f"{self.kind} acts before the client ID is known; it cannot be scoped")
        for name in _numeric_fields(type(self)):
            value = getattr(self, name)
            if value is not None:
                check_range(f"{self.kind}.{name}", value, RANGES[name])
        if "request_types" in {f.name for f in dataclasses.fields(self)}:
            _request_types(self)
        self.validate()

    def validate(self) -> None:
        """Check attribute values; raise :class:`FaultError` when one is out of range."""

    def applies_to(self, client_id: int | None) -> bool:
        """Whether this fault acts on a connection with ``client_id`` (None = not yet known)."""
        return self.client_id is None or self.client_id == client_id

    # ---- what the report needs to know, as this value is configured

    def silencing(self, probe: str) -> bool:
        """Whether this fault leaves a backend whose health probe is the request type ``probe`` without answers
        (a partial silence that spares the probe does not)."""
        return self.silences

    def disrupting(self, probe: str) -> bool:
        """Whether this fault interrupts the service of a backend probing with ``probe`` (a partial silence that
        spares the probe, or a refuse that keeps open connections, leaves a working path to IB)."""
        return self.disrupts

    def outage(self, probe: str) -> bool:
        """Whether, while this fault is on, no validation round-trip (``probe``) can succeed on any connection of
        any client, open or new: the gateway is silent or gone (the contract's score must fall below 75 within
        5 s). A fault that spares open connections (no handshake for new ones), one client or the probe is not
        one; a one-shot fault has no "while"."""
        return False

    def cuts_connections(self) -> bool:
        """Whether applying it closes the open connections (a reset, a restart, a drop, a refusal that cuts)."""
        return False

    # ---- what a target asks of an active fault

    def shapes(self, direction: str) -> bool:
        """Whether this fault shapes the bytes going ``direction`` (``upstream`` or ``downstream``)."""
        return False

    def dropped_answers(self) -> frozenset[str] | None:
        """The request types whose answers the proxy drops (``"*"``: every answer); None = it drops none."""
        return None

    def leaves_unanswered(self, request_type: str) -> bool:
        """Whether the gateway leaves a request of ``request_type`` unanswered while this fault is on."""
        return False

    def delay_ms(self, request_type: str) -> int | None:
        """How late the gateway answers a request of ``request_type``; None = this fault does not delay it."""
        return None

    def ib_restored_code(self) -> int | None:
        """IB's link is cut while this fault is on (1100 and broken farms); the code the gateway pushes when it
        comes back. None = the fault leaves IB's link alone."""
        return None

    async def on_apply(self, target: Any) -> None:
        """What the fault does at once when applied, through ``target``'s primitives (:class:`GatewayActions`
        or :class:`ProxyActions`, by plane); all a one-shot fault does. Most faults act only while active."""

    def attributes(self) -> dict[str, Any]:
        """The typed attributes (everything but name and client_id)."""
        out = {}
        for f in dataclasses.fields(self):
            if f.name in ("name", "client_id"):
                continue
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def to_json(self) -> dict[str, Any]:
        """The control-API representation."""
        return {"name": self.name, "kind": self.kind, "client_id": self.client_id,
                "attributes": self.attributes()}

    @staticmethod
    def from_json(plane: str, data: Any) -> Fault:
        """Build a fault of ``plane`` from its control-API representation.

        Raises:
            FaultError: unknown kind, unknown attribute or wrong type.
        """
        if not isinstance(data, dict):
            raise FaultError("a fault is a JSON object")
        kind = data.get("kind")
        cls = _REGISTRY.get((plane, kind))
        if cls is None:
            known = sorted(k for p, k in _REGISTRY if p == plane)
            raise FaultError(f"unknown {plane} fault kind {kind!r}; known: {', '.join(known)}")
        attributes = data.get("attributes") or {}
        if not isinstance(attributes, dict):
            raise FaultError("attributes must be a JSON object")
        name = data.get("name") or ""
        client_id = data.get("client_id")
        if not isinstance(name, str):
            raise FaultError("name must be a string")
        if client_id is not None and (not isinstance(client_id, int) or isinstance(client_id, bool)):
            raise FaultError("client_id must be an integer or null")
        hints = typing.get_type_hints(cls)
        kwargs: dict[str, Any] = {}
        for key, value in attributes.items():
            if key in ("name", "client_id") or key not in {f.name for f in dataclasses.fields(cls)}:
                raise FaultError(f"{kind} has no attribute {key!r}")
            kwargs[key] = _coerce(kind, key, hints[key], value)
        try:
            return cls(name=name, client_id=client_id, **kwargs)
        except TypeError as exc:
            raise FaultError(str(exc)) from None


def check_range(label: str, value: float, bounds: tuple[float, float]) -> None:
    """Raise :class:`FaultError` naming ``bounds`` unless ``value`` lies within them (NaN never does)."""
    low, high = bounds
    if not (isinstance(value, (int, float)) and math.isfinite(value) and low <= value <= high):
        raise FaultError(f"{label} must be within {_number(low)}..{_number(high)} (got {_shown(value)})")


@functools.cache
def _numeric_fields(cls: type) -> tuple[str, ...]:
    """The fields of ``cls`` typed int or float (optional or not); each must have an entry in :data:`RANGES`."""
    names = []
    for name, hint in typing.get_type_hints(cls).items():
        if typing.get_origin(hint) is typing.ClassVar:
            continue
        args = set(typing.get_args(hint)) or {hint}
        if args & {int, float}:
            if name not in RANGES:
                raise TypeError(f"{cls.__name__}.{name} is numeric but has no range in ibtargets.common.faults.RANGES")
            names.append(name)
    return tuple(names)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _request_types(fault: Fault) -> None:
    types = fault.request_types
    if not types:
        raise FaultError(f"{fault.kind}.request_types must name at least one request type or '*'")
    unknown = [t for t in types if t != ALL_REQUESTS and t not in REQUEST_TYPES]
    if unknown:
        raise FaultError(f"{fault.kind}.request_types: unknown request type(s) {', '.join(map(repr, unknown))}; "
                         f"known: '*', {', '.join(sorted(REQUEST_TYPES))}")


def fault_kinds(plane: str) -> dict[str, type[Fault]]:
    """Every fault kind registered for ``plane``."""
    return {k: c for (p, k), c in _REGISTRY.items() if p == plane}


def kinds_where(fact: str, plane: str | None = None) -> frozenset[str]:
    """The kinds (of ``plane``, or of both) whose type declares ``fact`` true, e.g. ``kinds_where("silences")``.

    Raises:
        AttributeError: ``fact`` is not a fact a fault type declares.
    """
    if not isinstance(getattr(Fault, fact), bool):
        raise AttributeError(f"{fact!r} is not a fact of a fault type")
    return frozenset(k for (p, k), c in _REGISTRY.items() if (plane is None or p == plane) and getattr(c, fact))


def _coerce(kind: str, key: str, hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise FaultError(f"{kind}.{key} must be a list of strings")
        return tuple(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise FaultError(f"{kind}.{key} must be true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise FaultError(f"{kind}.{key} must be an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FaultError(f"{kind}.{key} must be a number")
        try:
            return float(value)
        except OverflowError:  # an integer beyond float: out of any range
            check_range(f"{kind}.{key}", math.inf, RANGES[key])
            raise
    if hint is str:
        if not isinstance(value, str):
            raise FaultError(f"{kind}.{key} must be a string")
        return value
    raise FaultError(f"{kind}.{key} has an unsupported type")


def _direction(fault: Fault) -> None:
    if fault.direction not in DIRECTIONS:
        raise FaultError(f"{fault.kind}.direction must be one of {', '.join(DIRECTIONS)}")


# --------------------------------------------------------------------------- gateway plane


@dataclass(frozen=True)
class NoHandshake(Fault):
    """Accept TCP but never answer the client's hello (new connections)."""

    kind: ClassVar[str] = "no_handshake"
    plane: ClassVar[str] = GATEWAY
    unscoped: ClassVar[bool] = True
    silences: ClassVar[bool] = True
    disrupts: ClassVar[bool] = True
    holds_handshake: ClassVar[bool] = True


@dataclass(frozen=True)
class IgnoreStartApi(Fault):
    """Answer the handshake, then ignore startApi: no managedAccounts, no nextValidId."""

    kind: ClassVar[str] = "ignore_start_api"
    plane: ClassVar[str] = GATEWAY
    silences: ClassVar[bool] = True
    disrupts: ClassVar[bool] = True
    ignores_start_api: ClassVar[bool] = True


@dataclass(frozen=True)
class Unanswered(Fault):
    """Leave the chosen request types unanswered (``"*"`` = every request): the silent connection."""

    kind: ClassVar[str] = "unanswered"
    plane: ClassVar[str] = GATEWAY
    silences: ClassVar[bool] = True
    disrupts: ClassVar[bool] = True
    request_types: tuple[str, ...] = (ALL_REQUESTS,)

    def covers(self, request_type: str) -> bool:
        """Whether a request of this type goes unanswered."""
        return ALL_REQUESTS in self.request_types or request_type in self.request_types

    def silencing(self, probe: str) -> bool:
        return self.covers(probe)

    def disrupting(self, probe: str) -> bool:
        return self.covers(probe)

    def outage(self, probe: str) -> bool:
        return self.client_id is None and self.covers(probe)

    def leaves_unanswered(self, request_type: str) -> bool:
        return self.covers(request_type)


@dataclass(frozen=True)
class Delay(Fault):
    """Answer the chosen request types ``latency_ms`` late."""

    kind: ClassVar[str] = "delay"
    plane: ClassVar[str] = GATEWAY
    latency_ms: int = 1000
    request_types: tuple[str, ...] = (ALL_REQUESTS,)

    def covers(self, request_type: str) -> bool:
        """Whether a request of this type is delayed."""
        return ALL_REQUESTS in self.request_types or request_type in self.request_types

    def delay_ms(self, request_type: str) -> int | None:
        return self.latency_ms if self.covers(request_type) else None


@dataclass(frozen=True)
class PushError(Fault):
    """Push one IB error/notice (1100, 1101, 1102, 2103, …) to the connected clients now."""

    kind: ClassVar[str] = "error"
    plane: ClassVar[str] = GATEWAY
    one_shot: ClassVar[bool] = True
    code: int = 1100
    message: str = ""  # empty = IB's standard text for the code
    req_id: int = -1

    async def on_apply(self, target: GatewayActions) -> None:
        target.push_error(self, self.code, self.req_id, self.message)


@dataclass(frozen=True)
class ConnectivityLost(Fault):
    """IB's nightly reset: push 1100 and answer nothing; on heal push ``restored_code`` (1101/1102)."""

    kind: ClassVar[str] = "connectivity_lost"
    plane: ClassVar[str] = GATEWAY
    silences: ClassVar[bool] = True
    disrupts: ClassVar[bool] = True
    restored_code: int = 1102

    def leaves_unanswered(self, request_type: str) -> bool:
        return True

    def outage(self, probe: str) -> bool:
        return self.client_id is None

    def ib_restored_code(self) -> int | None:
        return self.restored_code


@dataclass(frozen=True)
class Restart(Fault):
    """Drop every socket, refuse connections for ``down_s`` seconds, then accept again (auto-heals)."""

    kind: ClassVar[str] = "restart"
    plane: ClassVar[str] = GATEWAY
    unscoped: ClassVar[bool] = True
    disrupts: ClassVar[bool] = True
    refuses_new: ClassVar[bool] = True
    down_s: float = 5.0

    def outage(self, probe: str) -> bool:
        return True

    def cuts_connections(self) -> bool:
        return True

    async def on_apply(self, target: GatewayActions) -> None:
        await target.go_down(self, self.down_s)


@dataclass(frozen=True)
class DropClients(Fault):
    """Close the sockets of the connected clients now (FIN); the gateway keeps accepting."""

    kind: ClassVar[str] = "drop_clients"
    plane: ClassVar[str] = GATEWAY
    one_shot: ClassVar[bool] = True
    disrupts: ClassVar[bool] = True

    def cuts_connections(self) -> bool:
        return True

    async def on_apply(self, target: GatewayActions) -> None:
        target.drop_clients(self)


# --------------------------------------------------------------------------- proxy plane


@dataclass(frozen=True)
class Silent(Fault):
    """After the handshake, drop gateway → client traffic (or only answers to ``request_types``)."""

    kind: ClassVar[str] = "silent"
    plane: ClassVar[str] = PROXY
    silences: ClassVar[bool] = True
    disrupts: ClassVar[bool] = True
    request_types: tuple[str, ...] = (ALL_REQUESTS,)

    def covers(self, request_type: str) -> bool:
        """Whether answers to this request type are dropped."""
        return ALL_REQUESTS in self.request_types or request_type in self.request_types

    def silencing(self, probe: str) -> bool:
        return self.covers(probe)

    def disrupting(self, probe: str) -> bool:
        return self.covers(probe)

    def outage(self, probe: str) -> bool:
        return self.client_id is None and self.covers(probe)

    def dropped_answers(self) -> frozenset[str] | None:
        return frozenset(self.request_types)


@dataclass(frozen=True)
class Latency(Fault):
    """Hold every chunk ``latency_ms`` ± ``jitter_ms`` in the chosen direction."""

    kind: ClassVar[str] = "latency"
    plane: ClassVar[str] = PROXY
    shaping_slot: ClassVar[str] = "latency"
    latency_ms: int = 1000
    jitter_ms: int = 0
    direction: str = "downstream"

    def validate(self) -> None:
        _direction(self)

    def shapes(self, direction: str) -> bool:
        return self.direction in (direction, "both")


@dataclass(frozen=True)
class Blackhole(Fault):
    """Accept new connections and forward nothing, in either direction."""

    kind: ClassVar[str] = "blackhole"
    plane: ClassVar[str] = PROXY
    unscoped: ClassVar[bool] = True
    silences: ClassVar[bool] = True
    disrupts: ClassVar[bool] = True
    swallows_new: ClassVar[bool] = True


@dataclass(frozen=True)
class Reset(Fault):
    """Send RST on every open connection now."""

    kind: ClassVar[str] = "reset"
    plane: ClassVar[str] = PROXY
    one_shot: ClassVar[bool] = True
    disrupts: ClassVar[bool] = True

    def cuts_connections(self) -> bool:
        return True

    async def on_apply(self, target: ProxyActions) -> None:
        target.close_connections(self, "reset fault", reset=True)


@dataclass(frozen=True)
class Refuse(Fault):
    """Stop accepting connections; close the existing ones too unless ``keep_existing``."""

    kind: ClassVar[str] = "refuse"
    plane: ClassVar[str] = PROXY
    unscoped: ClassVar[bool] = True
    disrupts: ClassVar[bool] = True
    refuses_new: ClassVar[bool] = True
    keep_existing: bool = True

    def disrupting(self, probe: str) -> bool:
        return not self.keep_existing

    def outage(self, probe: str) -> bool:
        return not self.keep_existing

    def cuts_connections(self) -> bool:
        return not self.keep_existing

    async def on_apply(self, target: ProxyActions) -> None:
        if not self.keep_existing:
            target.close_connections(self, "refuse fault closes existing connections", reset=False)


@dataclass(frozen=True)
class Bandwidth(Fault):
    """Limit throughput to ``rate_kbps`` kilobytes per second in the chosen direction."""

    kind: ClassVar[str] = "bandwidth"
    plane: ClassVar[str] = PROXY
    shaping_slot: ClassVar[str] = "bandwidth"
    rate_kbps: int = 64
    direction: str = "downstream"

    def validate(self) -> None:
        _direction(self)

    def shapes(self, direction: str) -> bool:
        return self.direction in (direction, "both")


@dataclass(frozen=True)
class Slicer(Fault):
    """Split the byte stream into chunks of at most ``max_chunk_bytes``, ``delay_us`` apart."""

    kind: ClassVar[str] = "slicer"
    plane: ClassVar[str] = PROXY
    shaping_slot: ClassVar[str] = "slicer"
    max_chunk_bytes: int = 1
    delay_us: int = 0
    direction: str = "both"

    def validate(self) -> None:
        _direction(self)

    def shapes(self, direction: str) -> bool:
        return self.direction in (direction, "both")


__all__ = [name for name, obj in dict(globals()).items()
           if isinstance(obj, type) and issubclass(obj, (Fault, FaultError))] + [
    "GATEWAY", "PROXY", "ALL_REQUESTS", "DIRECTIONS", "REQUEST_TYPES", "RANGES", "check_range", "fault_kinds", "kinds_where",
    "GatewayActions", "ProxyActions"]
