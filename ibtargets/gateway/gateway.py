"""The simulated IB Gateway: listener, client-ID registry, protocol faults and the control API."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from ibtargets.common.accounts import is_paper_account
from ibtargets.common.control_server import ControlServer, HttpError, Request, Response, check_control_bind
from ibtargets.common.events import History
from ibtargets.common.faults import GATEWAY, Fault, FaultError
from ibtargets.common.wire import encode_fields
from ibtargets.gateway.config import ConfigError, GatewayConfig
from ibtargets.gateway.messages import FARMS_BROKEN, FARMS_OK, encode_error, encode_notices, error_text
from ibtargets.gateway.pacing import Pacer
from ibtargets.gateway.responder import Answer, Deferred
from ibtargets.gateway.session import Session

log = logging.getLogger(__name__)

#: Closed connections kept for ``connections()``.
CLOSED_KEPT = 1000
#: How long a restart keeps trying to bind its port again before giving up (the port may be held briefly).
REBIND_S = 5.0
STOP_WAIT_S = 2.0
#: Answers being built off the loop at once (IB allows 50 open historical requests).
MAX_BUILDING = 50
BUSY_TEXT = "Error processing request.-'bQ' : cause - Maximum number of simultaneous historical requests exceeded"


class Gateway:
    """An asyncio IB Gateway simulator speaking the TWS socket protocol, with protocol faults.

    Implements :class:`ibtargets.common.control_server.FaultTarget`; ``start`` also serves the control API
    (with the extra routes ``GET /config`` and ``PUT /config``). What a fault does is its type's: the gateway
    asks each active fault (``holds_handshake``, ``ignores_start_api``, ``leaves_unanswered()``, ``delay_ms()``,
    ``ib_restored_code()``, ``refuses_new``) and lets it act once when applied (``on_apply``, through the
    primitives of :class:`ibtargets.common.faults.GatewayActions`).

    Args:
        config: the rules; defaults to :class:`GatewayConfig`'s.
    """

    plane = GATEWAY

    def __init__(self, config: GatewayConfig | None = None):
        self._config = config or GatewayConfig()
        #: Fixed at construction (``--allow-live-account``): a runtime update can never present a live account.
        self._live_allowed = self._config.allow_live_account
        self.history = History(self._config.history_max_events)
        self.pacer = Pacer()
        self.host = "127.0.0.1"
        self.port = 0
        self.control_port: int | None = None
        self._server: asyncio.base_events.Server | None = None
        self._control: ControlServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = False
        self._next_conn_id = 1
        self._sessions: dict[int, Session] = {}
        self._closed: collections.deque[Session] = collections.deque(maxlen=CLOSED_KEPT)
        self._clients: dict[int, Session] = {}
        self._released: dict[int, float] = {}
        self._faults: dict[str, Fault] = {}
        self._restart_timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._building = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def config(self) -> GatewayConfig:
        """The rules in force."""
        return self._config

    def update_config(self, changes: Mapping[str, Any]) -> GatewayConfig:
        """Change some rules at runtime; return the new config.

        Raises:
            ConfigError: unknown setting, wrong type or invalid value (nothing is changed), or a live
                account when the gateway was not started with ``allow_live_account``.
        """
        if not self._live_allowed and isinstance(changes, Mapping):
            account, allow = changes.get("account"), changes.get("allow_live_account", False)
            if allow is not False or (isinstance(account, str) and not is_paper_account(account)):
                raise ConfigError("a live (non-paper) account cannot be set at runtime: the gateway was started "
                                  "without --allow-live-account (paper accounts start with DU or DF)")
        self._config = self._config.updated(changes)
        self.history.record("config_changed", changes=dict(changes))
        return self._config

    async def start(self, host: str = "127.0.0.1", port: int = 0, control_port: int | None = 0,
                    control_host: str = "127.0.0.1", control_token: str | None = None) -> None:
        """Listen for API clients (and for control calls unless ``control_port`` is None).

        Args:
            host: API interface to bind (loopback by default).
            port: API port; 0 picks a free one (see :attr:`port`).
            control_port: control API port; 0 picks a free one, None serves no control API.
            control_host: control API interface (loopback by default; anything else needs a token).
            control_token: when set, every control request needs ``Authorization: Bearer <token>``.

        Raises:
            ControlBindError: a non-loopback ``control_host`` without a token (nothing is started).
            OSError: a port could not be bound.
        """
        if control_port is not None:
            check_control_bind(control_host, control_token)
        self._loop = asyncio.get_running_loop()
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="gateway-build")
        self.host = host
        self.port = port
        self._running = True
        await self._listen(retry_s=0)
        if control_port is not None:
            self._control = ControlServer(self, "gateway", extra_routes={
                ("GET", r"/config"): self._get_config_route,
                ("PUT", r"/config"): self._put_config_route,
            }, token=control_token)
            self.control_port = await self._control.start(control_host, control_port)
        log.info("gateway listening on %s:%d (control %s)", host, self.port, self.control_port)

    async def stop(self) -> None:
        """Close the listener, every client socket and the control API."""
        self._running = False
        if self._restart_timer is not None:
            self._restart_timer.cancel()
            self._restart_timer = None
        await self._unlisten()
        for session in list(self._sessions.values()):
            session.close("gateway stopped", abort=True)
        if self._control is not None:
            await self._control.stop()
            self._control = None
        deadline = time.monotonic() + STOP_WAIT_S
        while self._sessions and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # let connection_lost callbacks run (bounded)
        for task in list(self._tasks):
            task.cancel()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def _listen(self, retry_s: float) -> None:
        assert self._loop is not None
        deadline = time.monotonic() + retry_s
        while True:
            try:
                self._server = await self._loop.create_server(self._new_session, self.host, self.port,
                                                              reuse_address=True)
                break
            except OSError as exc:
                if time.monotonic() >= deadline:
                    if retry_s == 0:
                        raise
                    log.error("gateway could not listen on %s:%d again: %s", self.host, self.port, exc)
                    self.history.record("listener_error", port=self.port, error=str(exc))
                    return
                await asyncio.sleep(0.05)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _unlisten(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)

    def _new_session(self) -> Session:
        conn_id = self._next_conn_id
        self._next_conn_id += 1
        return Session(self, conn_id)

    # ------------------------------------------------------------------ connections and client IDs

    def admit(self, session: Session) -> bool:
        """Register a new socket; refuse it when the flood guard is hit."""
        self.history.record("connect", conn_id=session.conn_id, peer=session.peer)
        if len(self._sessions) >= self._config.max_connections:
            reason = f"more than {self._config.max_connections} sockets open"
            log.warning("gateway: refusing conn %d from %s: %s", session.conn_id, session.peer, reason)
            session.state = "rejected"
            self.history.record("reject", conn_id=session.conn_id, client_id=None, code="max-connections",
                                reason=reason)
            session.close("max connections", abort=True)
            return False
        self._sessions[session.conn_id] = session
        return True

    def forget(self, session: Session) -> None:
        """A socket closed: release its client ID (after ``id_release_delay_s``) and record it."""
        self._sessions.pop(session.conn_id, None)
        if session.client_id is not None and self._clients.get(session.client_id) is session:
            del self._clients[session.client_id]
            if self._config.id_release_delay_s > 0:
                self._released[session.client_id] = time.monotonic() + self._config.id_release_delay_s
        self._closed.append(session)
        self.history.record("disconnect", conn_id=session.conn_id, client_id=session.client_id,
                            reason=session.close_reason)

    def _client_id_in_use(self, client_id: int) -> bool:
        if client_id in self._clients:
            return True
        until = self._released.get(client_id)
        if until is None:
            return False
        if time.monotonic() < until:
            return True
        del self._released[client_id]
        return False

    def start_api(self, session: Session, client_id: int) -> None:
        """startApi: check the client ID and the client limit, then send accounts, id and farm notices."""
        session.client_id = client_id
        ignoring = self._matching(lambda f: f.ignores_start_api, client_id)
        if ignoring is not None:
            self.history.record("request", conn_id=session.conn_id, client_id=client_id, type="startApi",
                                msg_id=71, req_id=None, answered=False, delay_ms=0, fault=ignoring.name)
            return
        if self._client_id_in_use(client_id):
            self._reject(session, 326, "client id already in use")
            session.write(encode_error(session.version, -1, 326, error_text(326)))
            self.history.record("error_sent", conn_id=session.conn_id, client_id=client_id, code=326,
                                req_id=-1)
            session.close("duplicate client id")
            return
        if len(self._clients) >= self._config.max_clients:
            self._reject(session, "max-clients", f"{self._config.max_clients} clients already connected")
            if self._config.max_clients_action == "close":
                session.close("max clients")
            return
        self._clients[client_id] = session
        session.state = "open"
        self.history.record("start_api", conn_id=session.conn_id, client_id=client_id)
        data = encode_fields(15, 1, self._config.account) + encode_fields(9, 1, session.next_order_id)
        restored_code = self._ib_cut(client_id)
        if restored_code is not None:
            session.lost, session.restored_code = True, restored_code
            data += encode_notices(session.version, ((1100, error_text(1100)), *FARMS_BROKEN))
        elif self._config.farm_notices:
            data += encode_notices(session.version, FARMS_OK)
        session.write(data)

    def _reject(self, session: Session, code: int | str, reason: str) -> None:
        session.state = "rejected"
        log.info("gateway: conn %d client %s rejected: %s", session.conn_id, session.client_id, reason)
        self.history.record("reject", conn_id=session.conn_id, client_id=session.client_id, code=code,
                            reason=reason)

    def build_off_loop(self, session: Session, deferred: Deferred, request_type: str, req_id: int | None) -> None:
        """Build a costly answer in a worker thread; deliver it on the loop (bounded number in flight)."""
        if self._building >= MAX_BUILDING:
            if req_id is not None:
                session.end_query(req_id)
                session.deliver(Answer(encode_error(session.version, req_id, 322, BUSY_TEXT), 322), request_type,
                                req_id)
            return
        assert self._loop is not None and self._executor is not None
        self._building += 1
        future = self._loop.run_in_executor(self._executor, deferred.build)

        def done(result: asyncio.Future[Answer]) -> None:
            self._building -= 1
            if result.cancelled():
                return
            error = result.exception()
            if error is not None:
                log.error("gateway: building %s failed: %r", request_type, error)
                session.fail(f"internal error: {error!r}")
                return
            session.deliver_built(deferred, result.result(), request_type, req_id)

        future.add_done_callback(done)

    def note_pacing(self, session: Session, req_id: int, rule: str) -> None:
        """Record which pacing rule refused a historical request."""
        self.history.record("pacing_violation", conn_id=session.conn_id, client_id=session.client_id,
                            req_id=req_id, rule=rule)

    def _open_sessions(self, fault: Fault | None = None) -> list[Session]:
        return [s for s in self._sessions.values()
                if s.state == "open" and not s.closed and (fault is None or fault.applies_to(s.client_id))]

    # ------------------------------------------------------------------ fault queries (hot path)

    @property
    def has_faults(self) -> bool:
        """Whether any fault is active (the hot path skips every fault check otherwise)."""
        return bool(self._faults)

    @property
    def holding_handshakes(self) -> bool:
        """Whether an active fault keeps the hello of new connections unanswered."""
        return any(f.holds_handshake for f in self._faults.values())

    @property
    def _refusing(self) -> bool:
        return any(f.refuses_new for f in self._faults.values())

    def _matching(self, does: Callable[[Fault], bool], client_id: int | None) -> Fault | None:
        for fault in self._faults.values():
            if does(fault) and fault.applies_to(client_id):
                return fault
        return None

    def _ib_cut(self, client_id: int | None) -> int | None:
        """The code to push when IB comes back, while an active fault cuts IB's link for ``client_id``."""
        for fault in self._faults.values():
            if fault.applies_to(client_id):
                restored_code = fault.ib_restored_code()
                if restored_code is not None:
                    return restored_code
        return None

    def swallowing_fault(self, session: Session, request_type: str) -> str | None:
        """Name of the fault that leaves this request unanswered, if any."""
        if not self._faults:
            return None
        for fault in self._faults.values():
            if fault.applies_to(session.client_id) and fault.leaves_unanswered(request_type):
                return fault.name
        return None

    def delay_for(self, session: Session, request_type: str) -> tuple[float, str | None]:
        """(seconds, fault name) by which this request's answer is delayed (the longest delay wins)."""
        if not self._faults:
            return 0.0, None
        best_ms, name = 0, None
        for fault in self._faults.values():
            if not fault.applies_to(session.client_id):
                continue
            latency_ms = fault.delay_ms(request_type)
            if latency_ms is not None and (latency_ms > best_ms or name is None):
                best_ms, name = latency_ms, fault.name
        return best_ms / 1000, name

    # ------------------------------------------------------------------ FaultTarget

    def active_faults(self) -> list[Fault]:
        """The faults in force (one-shot faults are never kept)."""
        return list(self._faults.values())

    async def apply(self, fault: Fault) -> None:
        """Apply ``fault`` (replacing an active one of the same name); idempotent.

        Raises:
            FaultError: ``fault`` belongs to another plane.
        """
        if fault.plane != GATEWAY:
            raise FaultError(f"{fault.kind} is a {fault.plane} fault, not a gateway fault")
        if fault.one_shot:
            self.history.record("fault_applied", fault=fault.to_json())
            await fault.on_apply(self)
            return
        old = self._faults.get(fault.name)
        if old == fault:
            return
        self._faults[fault.name] = fault
        self.history.record("fault_applied", fault=fault.to_json())
        log.info("gateway fault applied: %s", fault.to_json())
        await fault.on_apply(self)
        await self._reconcile()

    async def heal(self, name: str) -> None:
        """Heal the fault called ``name`` (no-op when it is not active)."""
        fault = self._faults.pop(name, None)
        if fault is None:
            return
        self.history.record("fault_healed", fault=fault.to_json(), auto=False)
        log.info("gateway fault healed: %s", name)
        if fault.refuses_new and not self._refusing and self._restart_timer is not None:
            self._restart_timer.cancel()
            self._restart_timer = None
        await self._reconcile()

    async def reset(self) -> None:
        """Heal every fault and forget the pacing history (each scenario starts clean)."""
        for name in list(self._faults):
            await self.heal(name)
        self.pacer.clear()

    def connections(self) -> list[dict[str, Any]]:
        """Every connection still remembered (the last closed ones and all open ones), oldest first."""
        sessions = {s.conn_id: s for s in self._closed}
        sessions.update(self._sessions)
        return [sessions[k].describe() for k in sorted(sessions)]

    def history_since(self, seq: int) -> tuple[list[dict[str, Any]], int]:
        """Events after ``seq`` and the newest sequence number."""
        return self.history.since(seq), self.history.last_seq

    # ------------------------------------------------------------------ fault effects

    def push_error(self, fault: Fault, code: int, req_id: int, message: str) -> None:
        """Send one IB error/notice to the open connections ``fault`` applies to (a fault's action)."""
        text = message or error_text(code, req_id)
        for session in self._open_sessions(fault):
            if session.write(encode_error(session.version, req_id, code, text)):
                self.history.record("error_sent", conn_id=session.conn_id, client_id=session.client_id,
                                    code=code, req_id=req_id)

    def drop_clients(self, fault: Fault) -> None:
        """Close (FIN) every socket, or the open ones of ``fault``'s client ID (a fault's action)."""
        for session in list(self._sessions.values()):
            if fault.client_id is None or (session.state == "open" and session.client_id == fault.client_id):
                session.close(fault.kind)

    async def go_down(self, fault: Fault, down_s: float) -> None:
        """Stop listening, drop every socket, come back after ``down_s`` (auto-heal; a fault's action)."""
        assert self._loop is not None
        if self._restart_timer is not None:
            self._restart_timer.cancel()
        self._restart_timer = self._loop.call_later(down_s, self._restart_elapsed, fault.name)
        await self._unlisten()
        for session in list(self._sessions.values()):
            session.close(fault.kind, abort=True)

    def _restart_elapsed(self, name: str) -> None:
        self._restart_timer = None
        fault = self._faults.get(name)
        if fault is not None and fault.refuses_new:
            del self._faults[name]
            self.history.record("fault_healed", fault=fault.to_json(), auto=True)
            log.info("gateway restart over: accepting again")
        task = asyncio.ensure_future(self._reconcile())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reconcile(self) -> None:
        """Bring sockets and the listener in line with the active faults after any change."""
        if not self.holding_handshakes:
            for session in list(self._sessions.values()):
                if session.handshake_held and not session.closed:
                    session.send_handshake()
        for session in self._open_sessions():
            restored_code = self._ib_cut(session.client_id)
            if restored_code is not None:
                if not session.lost:
                    self._push(session, ((1100, error_text(1100)), *FARMS_BROKEN))
                session.lost, session.restored_code = True, restored_code
            elif session.lost:
                session.lost = False
                self._push(session, ((session.restored_code, error_text(session.restored_code)), *FARMS_OK))
        if self._running and self._server is None and not self._refusing:
            await self._listen(retry_s=REBIND_S)

    def _push(self, session: Session, notices: tuple[tuple[int, str], ...]) -> None:
        if session.write(encode_notices(session.version, notices)):
            for code, _ in notices:
                self.history.record("error_sent", conn_id=session.conn_id, client_id=session.client_id,
                                    code=code, req_id=-1)

    # ------------------------------------------------------------------ control routes

    async def _get_config_route(self, request: Request, params: dict[str, str]) -> Response:
        return 200, self._config.to_json()

    async def _put_config_route(self, request: Request, params: dict[str, str]) -> Response:
        try:
            config = self.update_config(request.body if request.body is not None else {})
        except ConfigError as exc:
            raise HttpError(400, str(exc)) from None
        return 200, config.to_json()
