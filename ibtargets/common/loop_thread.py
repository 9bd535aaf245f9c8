"""An asyncio event loop on a daemon thread, for synchronous callers; and the blocking wrapper of a target on one.

:class:`LoopThread` is the plumbing: start a loop on its own thread, run a coroutine (or a plain function) on it
and wait for the result with a bound, stop it and join the thread with a bound. :class:`ThreadedTarget` is what
:class:`ibtargets.gateway.ThreadedGateway` and :class:`ibtargets.proxy.ThreadedProxy` share on top of it: the
lifecycle, the context manager and the blocking fault and observation calls.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Generic, Protocol, Self, TypeVar

from ibtargets.common.control import control_url
from ibtargets.common.control_server import FaultTarget
from ibtargets.common.events import History
from ibtargets.common.faults import Fault

T = TypeVar("T")


class LoopThread:
    """An asyncio event loop running forever on a daemon thread; every wait on it is bounded.

    The loop is the thread's current event loop (:func:`asyncio.get_event_loop` finds it there). A stopped
    ``LoopThread`` can be started again, on a fresh loop and thread.

    Args:
        name: the thread's name (shown in thread dumps and in error messages).

    Example::

        loops = LoopThread("my-server").start()
        try:
            port = loops.call(server.start(), timeout_s=5.0)
        finally:
            loops.stop(timeout_s=5.0)
    """

    def __init__(self, name: str = "loop-thread"):
        self.name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._thread is not None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop.

        Raises:
            RuntimeError: not running.
        """
        loop = self._loop
        if loop is None or self._thread is None:
            raise RuntimeError(f"loop thread {self.name!r} is not running")
        return loop

    def start(self) -> LoopThread:
        """Start a new event loop on a new daemon thread (no-op when running); return self."""
        with self._lock:
            if self._thread is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=self._serve, args=(loop,), name=self.name, daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
        return self

    @staticmethod
    def _serve(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        loop.run_forever()

    def stop(self, timeout_s: float) -> bool:
        """Stop the loop and join its thread, waiting at most ``timeout_s`` (no-op when not running).

        The loop is closed only when its thread has ended; either way this object no longer runs and may be
        started again. Tasks still pending on the loop are left as they are.

        Returns:
            True when the thread ended within the bound (or nothing was running), False otherwise.
        """
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop, self._thread = None, None
        if loop is None or thread is None:
            return True
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout_s)
        if thread.is_alive():
            return False
        loop.close()
        return True

    def call(self, coro: Coroutine[Any, Any, T], timeout_s: float) -> T:
        """Run ``coro`` on the loop and return its result (or raise its exception), waiting at most ``timeout_s``.

        Args:
            coro: the coroutine; closed unawaited when the loop is not running.
            timeout_s: the bound on the wait.

        Raises:
            TimeoutError: ``coro`` did not finish within ``timeout_s``; it is cancelled on the loop.
            RuntimeError: the loop is not running, or this is the loop's own thread (the wait could never end).
        """
        try:
            loop = self.loop
            if threading.current_thread() is self._thread:
                raise RuntimeError(f"call() on loop thread {self.name!r} itself would wait for itself")
        except RuntimeError:
            coro.close()
            raise
        what = getattr(coro, "__qualname__", type(coro).__name__)
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        done, _ = concurrent.futures.wait([future], timeout=timeout_s)
        if not done:
            future.cancel()
            raise TimeoutError(f"{what} did not finish within {timeout_s:g} s on loop thread {self.name!r}")
        return future.result()

    def call_sync(self, fn: Callable[..., T], *args: Any, timeout_s: float) -> T:
        """Call the plain function ``fn(*args)`` on the loop's thread and return its result, as :meth:`call` does."""
        async def run() -> T:
            return fn(*args)
        return self.call(run(), timeout_s)


class Served(FaultTarget, Protocol):
    """What :class:`ThreadedTarget` runs: a :class:`FaultTarget` that stops and keeps a :class:`History`."""

    history: History

    async def stop(self) -> None: ...


S = TypeVar("S", bound=Served)


class ThreadedTarget(Generic[S]):
    """Base of the blocking wrappers that run a gateway or proxy on a :class:`LoopThread`; a context manager.

    A subclass names its thread and its bound (:attr:`bound_s`) and says how its target starts
    (:meth:`_start_target`); it may change what a failed start raises (:meth:`_start_failed`) and how the
    target stops (:meth:`_stop_target`).

    Args:
        target: the asyncio object that is run (started by :meth:`start`).
        thread_name: the loop thread's name.
        control_host: the address the target's control API listens on.
    """

    def __init__(self, target: S, thread_name: str, control_host: str):
        self._target = target
        self._loop_thread = LoopThread(thread_name)
        self.control_host = control_host

    @property
    def bound_s(self) -> float:
        """The bound on starting, stopping and every call (the subclass's own setting)."""
        raise NotImplementedError

    @property
    def control_port(self) -> int | None:
        """The control API's port (None when not served)."""
        raise NotImplementedError

    @property
    def control_url(self) -> str:
        """Base URL of the control API, e.g. ``http://127.0.0.1:40123`` (for a ``ControlClient``)."""
        return control_url(self.control_host, self.control_port)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        """Start the loop thread and the target (no-op when running); return self.

        Raises:
            TimeoutError: the target did not start within :attr:`bound_s`.
            OSError: a port could not be bound.
        """
        if self._loop_thread.running:
            return self
        self._loop_thread.start()
        try:
            self._call(self._start_target())
        except BaseException as exc:
            self._start_failed(exc)
            raise
        return self

    def stop(self) -> None:
        """Stop the target, its sockets and the loop thread (each step bounded; idempotent)."""
        if not self._loop_thread.running:
            return
        try:
            self._stop_target()
        finally:
            self._loop_thread.stop(self.bound_s)

    def _start_target(self) -> Coroutine[Any, Any, Any]:
        raise NotImplementedError

    def _start_failed(self, exc: BaseException) -> None:
        """Called when the start raised ``exc`` (re-raised after): by default, stop the loop thread."""
        self._loop_thread.stop(self.bound_s)

    def _stop_target(self) -> None:
        self._call(self._target.stop())

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _check_running(self) -> None:
        if not self._loop_thread.running:
            raise RuntimeError(f"{type(self).__name__} is not running")

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            self._check_running()
        except RuntimeError:
            coro.close()
            raise
        return self._loop_thread.call(coro, self.bound_s)

    def _call_sync(self, fn: Callable[..., T], *args: Any) -> T:
        self._check_running()
        return self._loop_thread.call_sync(fn, *args, timeout_s=self.bound_s)

    # ------------------------------------------------------------------ faults and observation

    def apply(self, fault: Fault) -> None:
        """Apply a fault (replaces an active one of the same name)."""
        self._call(self._target.apply(fault))

    def heal(self, fault: Fault | str) -> None:
        """Heal a fault by value or name (no-op if not active)."""
        self._call(self._target.heal(fault if isinstance(fault, str) else fault.name))

    def reset(self) -> None:
        """Heal every fault (the gateway also forgets pacing)."""
        self._call(self._target.reset())

    def faults(self) -> list[Fault]:
        """The active faults."""
        return self._call_sync(self._target.active_faults)

    def connections(self) -> list[dict[str, Any]]:
        """Every open connection and the recent closed ones (see the connection schema in docs/contributors.md)."""
        return self._call_sync(self._target.connections)

    def history(self, since: int = 0) -> list[dict[str, Any]]:
        """Events with a sequence number above ``since``."""
        return self._target.history.since(since)

    def last_seq(self) -> int:
        """Sequence number of the newest event (a bookmark for :meth:`history`)."""
        return self._target.history.last_seq
