"""LoopThread (a loop on a daemon thread, every wait bounded) and ThreadedTarget (the wrappers' shared base)."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest

from ibtargets.common.events import History
from ibtargets.common.faults import Fault, Silent
from ibtargets.common.loop_thread import LoopThread, ThreadedTarget

BOUND_S = 5.0


@pytest.fixture
def loops() -> Iterator[LoopThread]:
    running = LoopThread("test-loop").start()
    yield running
    running.stop(BOUND_S)


def _where() -> tuple[str, asyncio.AbstractEventLoop]:
    return threading.current_thread().name, asyncio.get_event_loop()


async def _where_async() -> tuple[str, asyncio.AbstractEventLoop]:
    return threading.current_thread().name, asyncio.get_running_loop()


# --------------------------------------------------------------------------- LoopThread


def test_a_started_loop_runs_on_its_named_daemon_thread(loops: LoopThread) -> None:
    assert loops.running
    name, loop = loops.call(_where_async(), BOUND_S)
    assert (name, loop) == ("test-loop", loops.loop)
    assert loop.is_running()
    daemon = loops.call_sync(lambda: threading.current_thread().daemon, timeout_s=BOUND_S)
    assert daemon is True


def test_call_sync_runs_a_plain_function_on_the_loop_thread_where_the_loop_is_current(loops: LoopThread) -> None:
    assert loops.call_sync(_where, timeout_s=BOUND_S) == ("test-loop", loops.loop)
    assert loops.call_sync(max, 3, 7, timeout_s=BOUND_S) == 7


def test_call_raises_the_coroutine_s_own_exception(loops: LoopThread) -> None:
    async def fail() -> None:
        raise ValueError("from the loop")

    with pytest.raises(ValueError, match="from the loop"):
        loops.call(fail(), BOUND_S)


def test_a_coroutine_s_own_timeout_error_is_not_mistaken_for_the_bound(loops: LoopThread) -> None:
    async def own_timeout() -> None:
        raise TimeoutError("its own")

    with pytest.raises(TimeoutError, match="its own"):
        loops.call(own_timeout(), BOUND_S)


def test_a_call_over_its_bound_raises_a_clear_timeout_and_is_cancelled_on_the_loop(loops: LoopThread) -> None:
    cancelled = threading.Event()

    async def hang() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(TimeoutError) as error:
        loops.call(hang(), 0.2)
    message = str(error.value)
    assert "hang" in message and "0.2 s" in message and "'test-loop'" in message
    assert cancelled.wait(BOUND_S), "the timed-out coroutine was not cancelled"
    assert loops.call(_where_async(), BOUND_S)[0] == "test-loop"   # the loop carries on


def test_call_when_not_running_raises_and_closes_the_coroutine() -> None:
    loops = LoopThread("never-started")
    coro = _where_async()
    with pytest.raises(RuntimeError, match="'never-started' is not running"):
        loops.call(coro, BOUND_S)
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED
    with pytest.raises(RuntimeError, match="is not running"):
        loops.call_sync(_where, timeout_s=BOUND_S)


def test_call_from_the_loop_s_own_thread_fails_at_once_instead_of_waiting_for_itself(loops: LoopThread) -> None:
    def reenter() -> None:
        loops.call(_where_async(), BOUND_S)

    with pytest.raises(RuntimeError, match="wait for itself"):
        loops.call_sync(reenter, timeout_s=BOUND_S)


def test_stop_joins_the_thread_and_closes_the_loop_and_a_second_stop_is_a_no_op() -> None:
    loops = LoopThread("stopping").start()
    loop = loops.loop
    thread = loops.call_sync(threading.current_thread, timeout_s=BOUND_S)
    assert loops.stop(BOUND_S) is True
    assert not thread.is_alive() and loop.is_closed() and not loops.running
    assert loops.stop(BOUND_S) is True
    with pytest.raises(RuntimeError, match="not running"):
        _ = loops.loop


def test_start_is_idempotent_and_a_stopped_loop_thread_starts_again_on_a_fresh_loop() -> None:
    loops = LoopThread("again").start()
    try:
        first = loops.loop
        assert loops.start().loop is first
        loops.stop(BOUND_S)
        loops.start()
        assert loops.loop is not first and loops.call(_where_async(), BOUND_S)[1] is loops.loop
    finally:
        loops.stop(BOUND_S)


def test_stop_is_bounded_when_the_loop_thread_is_stuck() -> None:
    loops = LoopThread("stuck").start()
    loop = loops.loop
    thread = loops.call_sync(threading.current_thread, timeout_s=BOUND_S)
    release = threading.Event()
    entered = threading.Event()

    def block() -> None:
        entered.set()
        release.wait(BOUND_S)

    loop.call_soon_threadsafe(block)
    assert entered.wait(BOUND_S)
    try:
        assert loops.stop(0.1) is False
        assert not loops.running and thread.is_alive() and not loop.is_closed()
    finally:
        release.set()
        thread.join(BOUND_S)
    assert not thread.is_alive()
    loop.close()


# --------------------------------------------------------------------------- ThreadedTarget


class _Target:
    """The smallest thing a ThreadedTarget runs."""

    plane = "test"

    def __init__(self, fail_start: BaseException | None = None) -> None:
        self.history = History(10)
        self.fail_start = fail_start
        self.faults: dict[str, Fault] = {}
        self.stopped = 0

    async def start(self) -> None:
        if self.fail_start is not None:
            raise self.fail_start
        self.history.record("started", thread=threading.current_thread().name)

    async def stop(self) -> None:
        self.stopped += 1

    def active_faults(self) -> list[Fault]:
        return list(self.faults.values())

    async def apply(self, fault: Fault) -> None:
        self.faults[fault.name] = fault

    async def heal(self, name: str) -> None:
        self.faults.pop(name, None)

    async def reset(self) -> None:
        self.faults.clear()

    def connections(self) -> list[dict[str, Any]]:
        return [{"thread": threading.current_thread().name}]

    def history_since(self, seq: int) -> tuple[list[dict[str, Any]], int]:
        return self.history.since(seq), self.history.last_seq


class _Threaded(ThreadedTarget[_Target]):
    def __init__(self, target: _Target) -> None:
        super().__init__(target, "target-loop", "127.0.0.1")

    @property
    def bound_s(self) -> float:
        return BOUND_S

    @property
    def control_port(self) -> int | None:
        return 4321

    def _start_target(self) -> Coroutine[Any, Any, None]:
        return self._target.start()


def test_a_threaded_target_runs_its_target_on_the_loop_thread_and_stops_it_once() -> None:
    target = _Target()
    with _Threaded(target) as threaded:
        assert threaded.start() is threaded
        assert threaded.control_url == "http://127.0.0.1:4321"
        assert [e["thread"] for e in threaded.history()] == ["target-loop"]
        assert threaded.last_seq() == 1
        assert threaded.connections() == [{"thread": "target-loop"}]
        threaded.apply(Silent())
        assert [f.name for f in threaded.faults()] == ["silent"]
        threaded.heal(Silent())
        assert threaded.faults() == []
        threaded.apply(Silent())
        threaded.reset()
        assert threaded.faults() == []
    assert target.stopped == 1
    threaded.stop()
    assert target.stopped == 1
    with pytest.raises(RuntimeError, match="_Threaded is not running"):
        threaded.faults()
    with pytest.raises(RuntimeError, match="_Threaded is not running"):
        threaded.apply(Silent())


def test_a_failed_start_stops_the_loop_thread_and_raises_the_target_s_error() -> None:
    threaded = _Threaded(_Target(fail_start=OSError("port taken")))
    with pytest.raises(OSError, match="port taken"):
        threaded.start()
    assert not threaded._loop_thread.running
    assert threaded._target.stopped == 0
