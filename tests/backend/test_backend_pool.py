"""Each connection-pool rule, in process, against the gateway simulator (observed from its history)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import ib_insync
import pytest
from backend_helpers import HOST, events, open_connections, run

from ibtargets.common.faults import DropClients, NoHandshake, Restart, Unanswered
from ibtargets.gateway import ThreadedGateway
from ibtargets.refbackend.errors import ClientIdsExhausted, GatewaySilent, GatewayUnavailable, PoolExhausted
from ibtargets.refbackend.pool import ConnectionPool
from ibtargets.refbackend.settings import Settings
from support.waiting import Bound, eventually

AAPL = ib_insync.Stock("AAPL", "SMART", "USD")
MARKED = ("reqCurrentTime", "reqContractDetails")


def make_pool(gateway: ThreadedGateway, tmp_path: Path, **overrides: object) -> ConnectionPool:
    """A pool on ``gateway`` with test-sized bounds (validation 1 s, connect 3 s, no GC unless asked)."""
    values = {"ib_port": gateway.port, "validation_timeout_s": 1.0, "connect_timeout_s": 3.0,
              "health_interval_s": 60.0, "max_idle_s": 60.0, "acquire_timeout_s": 3.0, "data_dir": tmp_path,
              **overrides}
    return ConnectionPool(Settings(**values))  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def running(pool: ConnectionPool) -> AsyncIterator[ConnectionPool]:
    """Start the pool; close it (every connection) whatever happens."""
    await pool.start()
    try:
        yield pool
    finally:
        await pool.close()


@contextlib.asynccontextmanager
async def squatter(port: int, client_id: int) -> AsyncIterator[ib_insync.IB]:
    """Someone else's ib_insync client holding ``client_id`` on the gateway."""
    ib = ib_insync.IB()
    try:
        await ib.connectAsync(HOST, port, clientId=client_id, timeout=4)
        yield ib
    finally:
        ib.disconnect()


async def until(condition, within_s: float = 5.0, what: str = "condition") -> None:
    """Poll ``condition`` on the loop (without blocking it) until true, bounded."""
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true within {within_s} s")
        await asyncio.sleep(0.02)


def test_every_handoff_is_preceded_by_a_validation_round_trip(gateway: ThreadedGateway, tmp_path: Path) -> None:
    async def body() -> int:
        async with running(make_pool(gateway, tmp_path, pool_size=3)) as pool:
            async def use_once() -> None:
                async with pool.connection() as conn:
                    await asyncio.wait_for(conn.ib.reqContractDetailsAsync(AAPL), 5)

            for _ in range(4):
                await use_once()
            await asyncio.gather(*(use_once() for _ in range(6)))
            return pool.metrics.handoffs

    handoffs = run(body())
    assert handoffs == 10
    requests = [e for e in events(gateway, "request") if e["type"] in MARKED]
    by_conn: dict[int, list[str]] = {}
    for event in requests:
        by_conn.setdefault(event["conn_id"], []).append(event["type"])
    for conn_id, types in by_conn.items():
        assert types == ["reqCurrentTime", "reqContractDetails"] * (len(types) // 2), (
            f"connection {conn_id}: a handoff without a reqCurrentTime right before it: {types}")
    assert sum(t.count("reqCurrentTime") for t in by_conn.values()) == handoffs


def test_a_silent_connection_is_discarded_never_handed_out(gateway: ThreadedGateway, tmp_path: Path) -> None:
    async def body() -> tuple[float, list[int], bool]:
        async with running(make_pool(gateway, tmp_path)) as pool:
            first = await pool.acquire()
            pool.release(first)
            gateway.apply(Unanswered(request_types=("reqCurrentTime",)))
            started = time.monotonic()
            with pytest.raises(GatewaySilent, match="reqCurrentTime"):
                await pool.acquire()
            elapsed = time.monotonic() - started
            left = pool.client_ids_in_use()
            gateway.heal("unanswered")
            second = await pool.acquire()
            fresh = second is not first and second.serial != first.serial
            pool.release(second)
            return elapsed, left, fresh

    elapsed_s, left, fresh = run(body())
    assert 1.0 <= elapsed_s < 2.5, f"validation must give up after its 1 s bound, took {elapsed_s:.2f} s"
    assert left == [], "the silent connection must leave the pool"
    assert fresh, "after the gateway answers again, a new connection is opened and validated"
    eventually(lambda: gateway.connections()[0]["disconnected_mono"] is not None, within=Bound.exactly(2.0),
               describe="the gateway sees the silent connection closed")


def test_a_dead_connection_is_replaced_in_the_same_acquire(gateway: ThreadedGateway, tmp_path: Path) -> None:
    async def body() -> tuple[int, int]:
        async with running(make_pool(gateway, tmp_path)) as pool:
            first = await pool.acquire()
            pool.release(first)
            gateway.apply(DropClients())
            await until(lambda: not first.is_connected(), what="ib_insync noticing the drop")
            second = await pool.acquire()
            pool.release(second)
            return second.serial - first.serial, second.client_id

    serial_step, client_id = run(body())
    assert serial_step == 1 and client_id == 1, "a new connection, reusing the freed client ID 1"
    assert len(gateway.connections()) == 2
    eventually(lambda: not open_connections(gateway), within=Bound.exactly(2.0), describe="the gateway sees both closed")


def test_error_326_moves_to_the_next_id_at_once(gateway: ThreadedGateway, tmp_path: Path) -> None:
    async def body() -> tuple[int, float, list[int]]:
        async with squatter(gateway.port, 1):
            async with running(make_pool(gateway, tmp_path)) as pool:
                started = time.monotonic()
                conn = await pool.acquire()
                elapsed = time.monotonic() - started
                pool.release(conn)
                return conn.client_id, elapsed, sorted(pool.metrics.refused_ids)

    client_id, elapsed_s, refused = run(body())
    assert client_id == 2 and refused == [1]
    assert elapsed_s < 1.5, f"326 must abort the attempt at once, not after ib_insync's timeout ({elapsed_s:.2f} s)"
    accepted = events(gateway, "start_api")
    refusals = events(gateway, "error_sent", code=326)
    assert [e["client_id"] for e in accepted] == [1, 2], "the squatter on 1, then ours on 2"
    assert [e["client_id"] for e in refusals] == [1], "326 on ID 1 once: the same ID is never retried"
    assert refusals[0]["seq"] < accepted[1]["seq"]


def test_freed_ids_are_reused_lowest_first(gateway: ThreadedGateway, tmp_path: Path) -> None:
    async def body() -> list[int]:
        async with running(make_pool(gateway, tmp_path)) as pool:
            held = [await pool.acquire() for _ in range(3)]
            gateway.apply(DropClients(client_id=2))
            await until(lambda: not held[1].is_connected(), what="client ID 2 dropped")
            pool.release(held[1])
            replacement = await pool.acquire()
            ids = [held[0].client_id, held[2].client_id, replacement.client_id]
            for conn in (held[0], held[2], replacement):
                pool.release(conn)
            return ids

    assert run(body()) == [1, 3, 2]


def test_client_id_exhaustion_is_a_quick_clear_error(gateway: ThreadedGateway, tmp_path: Path) -> None:
    async def body() -> float:
        async with squatter(gateway.port, 1), squatter(gateway.port, 2):
            async with running(make_pool(gateway, tmp_path, client_id_max=2)) as pool:
                started = time.monotonic()
                with pytest.raises(ClientIdsExhausted, match=r"1\.\.2"):
                    await pool.acquire()
                return time.monotonic() - started

    assert run(body()) < 2.0


def test_callers_wait_a_bounded_time_for_a_busy_pool(gateway: ThreadedGateway, tmp_path: Path) -> None:
    async def body() -> tuple[float, bool]:
        async with running(make_pool(gateway, tmp_path, pool_size=2, acquire_timeout_s=0.5)) as pool:
            held = [await pool.acquire(), await pool.acquire()]
            started = time.monotonic()
            with pytest.raises(PoolExhausted, match="busy"):
                await pool.acquire()
            waited = time.monotonic() - started
            waiter = asyncio.ensure_future(pool.acquire())
            await asyncio.sleep(0.1)
            pool.release(held[0])
            got = await asyncio.wait_for(waiter, 3)
            pool.release(got)
            pool.release(held[1])
            return waited, got is held[0]

    waited_s, reused = run(body())
    assert 0.5 <= waited_s < 2.0
    assert reused, "a released connection goes to the waiting caller"
    assert len(gateway.connections()) == 2, "the pool never opens more than pool_size connections"


def test_no_connection_is_handed_to_two_callers(gateway: ThreadedGateway, tmp_path: Path) -> None:
    async def body() -> int:
        holders: set[int] = set()
        clashes = 0
        async with running(make_pool(gateway, tmp_path, pool_size=3, acquire_timeout_s=20)) as pool:
            async def worker() -> None:
                nonlocal clashes
                async with pool.connection() as conn:
                    if conn.serial in holders:
                        clashes += 1
                    holders.add(conn.serial)
                    await asyncio.sleep(random.uniform(0, 0.02))
                    holders.discard(conn.serial)

            await asyncio.gather(*(worker() for _ in range(30)))
        return clashes

    assert run(body()) == 0
    assert len(gateway.connections()) <= 3


def test_idle_connections_are_collected_but_never_one_in_use(gateway: ThreadedGateway, tmp_path: Path) -> None:
    async def body() -> tuple[int, bool, int]:
        async with running(make_pool(gateway, tmp_path, max_idle_s=0.3, health_interval_s=0.1)) as pool:
            busy = await pool.acquire()
            idle = await pool.acquire()
            pool.release(idle)
            await until(lambda: idle.closed, what="the idle connection collected")
            await asyncio.sleep(0.5)  # the busy one is now "idle" far longer than max_idle, but in use
            alive = busy.is_connected() and not busy.closed
            pool.release(busy)
            return idle.client_id, alive, pool.metrics.idle_closed

    idle_id, busy_alive, collected = run(body())
    assert busy_alive, "a connection in use must never be collected"
    assert collected == 1
    closed = [c for c in gateway.connections() if c["client_id"] == idle_id]
    assert closed and closed[0]["disconnected_mono"] is not None, "the gateway must see the idle one close"


def test_dead_connections_are_removed_at_the_next_check(gateway: ThreadedGateway, tmp_path: Path) -> None:
    async def body() -> tuple[list[int], int]:
        async with running(make_pool(gateway, tmp_path, health_interval_s=0.2)) as pool:
            conn = await pool.acquire()
            pool.release(conn)
            gateway.apply(DropClients())
            await until(lambda: not pool.connections(), what="the dead connection removed by the health loop")
            return pool.client_ids_in_use(), pool.metrics.dead_removed

    assert run(body()) == ([], 1)


def test_reconnects_after_a_gateway_restart(gateway: ThreadedGateway, tmp_path: Path) -> None:
    async def body() -> tuple[float, int]:
        async with running(make_pool(gateway, tmp_path)) as pool:
            pool.release(await pool.acquire())
            gateway.apply(Restart(down_s=1.0))
            started = time.monotonic()
            with pytest.raises(GatewayUnavailable):
                await pool.acquire()
            refused_after = time.monotonic() - started
            deadline = time.monotonic() + 10
            while True:
                try:
                    conn = await pool.acquire()
                    break
                except GatewayUnavailable:
                    assert time.monotonic() < deadline, "no reconnect within 10 s of the restart"
                    await asyncio.sleep(0.1)
            pool.release(conn)
            return refused_after, conn.client_id

    refused_after_s, client_id = run(body())
    assert refused_after_s < 1.0, "while the gateway is down, a caller is told at once"
    assert client_id == 1
    eventually(lambda: not open_connections(gateway), within=Bound.exactly(2.0), describe="closed with the pool")


def test_close_closes_every_connection_in_use_or_idle(gateway: ThreadedGateway, tmp_path: Path) -> None:
    async def body() -> int:
        pool = make_pool(gateway, tmp_path)
        await pool.start()
        await pool.acquire()
        pool.release(await pool.acquire())
        return await pool.close()

    assert run(body()) == 2
    eventually(lambda: not open_connections(gateway), within=Bound.exactly(2.0), describe="the gateway sees both closed")


def test_a_probe_is_bounded_and_shared_by_concurrent_callers(gateway: ThreadedGateway, tmp_path: Path) -> None:
    gateway.apply(NoHandshake())

    async def body() -> tuple[float, list[bool]]:
        async with running(make_pool(gateway, tmp_path, probe_timeout_s=1.0)) as pool:
            started = time.monotonic()
            results = await asyncio.gather(*(pool.probe() for _ in range(5)))
            return time.monotonic() - started, [r.ok for r in results]

    elapsed_s, oks = run(body())
    assert oks == [False] * 5
    assert elapsed_s < 2.0
    assert len(events(gateway, "connect")) == 1, "five concurrent probes must share one attempt"
