"""The resilience report: three phases judged from live pool evidence, and the score built from them."""

from __future__ import annotations

import time
from typing import Any

from ibtargets.common.events import wall_iso
from ibtargets.refbackend.pool import ConnectionPool

WORKING = "working"
NOT_WORKING = "not_working"

#: Score weights from the contract.
PHASE_1_POINTS = 35.0
PHASE_2_POINTS = 30.0
PHASE_3_POINTS = 35.0
LOW_CLIENT_ID_BONUS = 5.0
LOW_CLIENT_ID_LIMIT = 10


async def phase_1(pool: ConnectionPool) -> dict[str, Any]:
    """Systematic validation: working only on a recent successful round-trip (probing now if stale)."""
    probed = False
    if pool.running and not pool.evidence_fresh():
        await pool.probe_until_evidence()
        probed = True
    working = pool.running and pool.evidence_fresh()
    m = pool.metrics
    if working:
        age = time.monotonic() - (m.last_validation_ok_mono or 0.0)
        description = (f"reqCurrentTime validation answered {age:.1f} s ago"
                       + (" (probe made for this request)" if probed else ""))
    elif not pool.running:
        description = "connection pool is not running"
    else:
        description = f"IB did not pass validation: {m.last_failure_reason or 'no successful round-trip yet'}"
    return {"status": WORKING if working else NOT_WORKING, "validation_enabled": True,
            "validation_method_exists": callable(getattr(pool, "validate", None)),
            "pool_running": pool.running, "validation_timeout_seconds": pool.settings.validation_timeout_s,
            "validations_passed": m.validations_ok, "validations_failed": m.validations_failed,
            "description": description}


def phase_2(pool: ConnectionPool) -> dict[str, Any]:
    """Garbage collection: working only if the health/GC loop ran within two intervals."""
    now = time.monotonic()
    interval = pool.settings.health_interval_s
    last = pool.metrics.last_gc_run_mono
    ran_recently = last is not None and now - last <= 2 * interval
    working = pool.running and ran_recently
    conns = pool.connections()
    idle = [c for c in conns if not c.in_use]
    ready = sum(1 for c in idle if now - c.last_used_mono > pool.settings.max_idle_s)
    if working:
        description = f"health/GC loop last ran {now - (last or now):.1f} s ago (every {interval:g} s)"
    elif last is None:
        description = "health/GC loop has not run"
    else:
        description = f"health/GC loop last ran {now - last:.1f} s ago, more than two intervals"
    return {"status": WORKING if working else NOT_WORKING, "max_idle_time_seconds": pool.settings.max_idle_s,
            "idle_connections_count": len(idle), "active_connections_count": len(conns) - len(idle),
            "connections_ready_for_cleanup": ready, "health_check_interval": interval,
            "gc_runs": pool.metrics.gc_runs, "idle_connections_closed": pool.metrics.idle_closed,
            "description": description}


def phase_3(pool: ConnectionPool) -> dict[str, Any]:
    """Client-ID preference, judged from the IDs the gateway accepted: each open connection's ID was the
    lowest of the range not held by us, not being connected and not refused (326) when it was chosen."""
    conns = pool.connections()
    ids = [c.client_id for c in conns]
    lowest = min(ids) if ids else None
    sequential = bool(conns) and all(c.preference_kept for c in conns)
    working = sequential
    if working:
        description = f"gateway accepted client IDs {ids}; preferred first ID is {pool.client_id_min}"
    elif not ids:
        description = "no connection accepted by the gateway is open"
    else:
        skipped = [c.client_id for c in conns if not c.preference_kept]
        description = f"client IDs {skipped} were taken while a lower ID from {pool.client_id_min} was free"
    return {"status": WORKING if working else NOT_WORKING, "client_ids_in_use": ids,
            "using_client_id_1": 1 in ids, "lowest_client_id_used": lowest,
            "sequential_preference_detected": sequential, "total_active_connections": len(ids),
            "preferred_client_id": pool.client_id_min,
            "client_ids_refused_326": sorted(pool.metrics.refused_ids), "description": description}


def compute_score(p1: dict[str, Any], p2: dict[str, Any], p3: dict[str, Any]) -> float:
    """The contract's score: 35 + 30 + 35 for working phases, +5 for a low client ID, capped at 100."""
    score = 0.0
    if p1["status"] == WORKING:
        score += PHASE_1_POINTS
    if p2["status"] == WORKING:
        score += PHASE_2_POINTS
    if p3["status"] == WORKING:
        score += PHASE_3_POINTS
        if any(i <= LOW_CLIENT_ID_LIMIT for i in p3["client_ids_in_use"]):
            score += LOW_CLIENT_ID_BONUS
    return min(score, 100.0)


async def resilience_report(pool: ConnectionPool) -> dict[str, Any]:
    """The ``data`` of ``GET /ib/resilience``."""
    p1 = await phase_1(pool)
    p2 = phase_2(pool)
    p3 = phase_3(pool)
    conns = pool.connections()
    healthy = sum(1 for c in conns if c.is_connected() and c.last_validation_ok)
    return {"phase_1_systematic_validation": p1, "phase_2_garbage_collection": p2,
            "phase_3_client_id_preference": p3, "overall_resilience_score": compute_score(p1, p2, p3),
            "connection_pool_health": {
                "total_connections": len(conns), "healthy_connections": healthy,
                "active_connections": sum(1 for c in conns if c.in_use),
                "pool_uptime_seconds": round(time.monotonic() - pool.metrics.started_mono, 3)},
            "timestamp": wall_iso()}
