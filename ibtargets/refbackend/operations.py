"""Long-running operations (async data loads): start, poll, cancel; a bounded registry."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ibtargets.common.events import wall_iso
from ibtargets.refbackend.errors import OperationNotCancellable, OperationNotFound

log = logging.getLogger(__name__)

PENDING, RUNNING, COMPLETED, FAILED, CANCELLED = "pending", "running", "completed", "failed", "cancelled"
FINISHED = (COMPLETED, FAILED, CANCELLED)


@dataclass(eq=False)
class Operation:
    """One operation; ``progress`` and ``result`` are filled in by the work as it goes."""

    operation_id: str
    operation_type: str
    metadata: dict[str, Any]
    status: str = PENDING
    created_at: str = field(default_factory=wall_iso)
    started_at: str | None = None
    completed_at: str | None = None
    progress: dict[str, Any] = field(default_factory=lambda: {"percentage": 0.0, "current_step": "pending"})
    error_message: str | None = None
    result: dict[str, Any] | None = None
    task: asyncio.Task[None] | None = None
    #: The error that ended the work (not serialized; the sync endpoint answers with it).
    error: Exception | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``data`` of ``GET /operations/{id}``."""
        summary = None
        if self.result is not None:
            summary = {"status": self.result.get("status"), "fetched_bars": self.result.get("fetched_bars", 0),
                       "execution_time_seconds": self.result.get("execution_time_seconds"),
                       "mode": self.metadata.get("mode"), "symbol": self.metadata.get("symbol"),
                       "timeframe": self.metadata.get("timeframe"),
                       "ib_requests_made": self.result.get("ib_requests_made", 0),
                       "segments_fetched": self.result.get("segments_fetched", 0),
                       "cached_before": self.result.get("cached_before"),
                       "merged_file": self.result.get("merged_file")}
        return {"operation_id": self.operation_id, "operation_type": self.operation_type, "status": self.status,
                "created_at": self.created_at, "started_at": self.started_at, "completed_at": self.completed_at,
                "progress": dict(self.progress), "metadata": dict(self.metadata),
                "error_message": self.error_message, "result_summary": summary}


#: The work of an operation: gets the operation, returns its result (``status`` success|partial|failed).
#: Work that can be cancelled keeps ``op.result`` up to date itself, so a cancelled operation
#: reports exactly what it got.
Work = Callable[[Operation], Awaitable[dict[str, Any]]]


class OperationManager:
    """Runs operations as tasks on the server's loop and keeps the newest ``max_kept`` of them.

    Args:
        max_kept: finished operations beyond this many are forgotten, oldest first.
    """

    def __init__(self, max_kept: int = 500):
        self.max_kept = max_kept
        self._ops: collections.OrderedDict[str, Operation] = collections.OrderedDict()

    def start(self, operation_type: str, metadata: dict[str, Any], work: Work) -> Operation:
        """Register an operation and start its task."""
        op = Operation(operation_id=f"op_{operation_type}_{uuid.uuid4().hex[:12]}",
                       operation_type=operation_type, metadata=metadata)
        self._ops[op.operation_id] = op
        self._trim()
        op.task = asyncio.ensure_future(self._run(op, work))
        return op

    async def _run(self, op: Operation, work: Work) -> None:
        op.status, op.started_at = RUNNING, wall_iso()
        op.progress["current_step"] = "running"
        try:
            op.result = await work(op)
        except asyncio.CancelledError:
            op.status = CANCELLED
            op.error_message = op.error_message or "cancelled"
        except Exception as exc:  # the work reports its own errors; this is the last net
            log.exception("operation %s crashed", op.operation_id)
            op.status, op.error_message = FAILED, f"internal error: {exc}"
        else:
            failed = op.result.get("status") == "failed"
            op.status = FAILED if failed else COMPLETED
            op.error_message = op.result.get("error_message")
        op.completed_at = wall_iso()
        if op.status == COMPLETED:
            op.progress["percentage"] = 100.0
        op.progress["current_step"] = op.status

    def get(self, operation_id: str) -> Operation:
        """The operation with that ID.

        Raises:
            OperationNotFound: unknown (or long forgotten) ID.
        """
        op = self._ops.get(operation_id)
        if op is None:
            raise OperationNotFound(f"no operation {operation_id!r}")
        return op

    async def cancel(self, operation_id: str, wait_s: float = 3.0) -> Operation:
        """Cancel a pending or running operation and wait (bounded) until it has stopped.

        Raises:
            OperationNotFound: unknown ID.
            OperationNotCancellable: it already finished.
        """
        op = self.get(operation_id)
        if op.status in FINISHED:
            raise OperationNotCancellable(f"operation {operation_id} already {op.status}",
                                          {"status": op.status})
        op.error_message = "cancelled by request"
        if op.task is not None:
            op.task.cancel()
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(op.task), wait_s)
        return op

    async def shutdown(self) -> None:
        """Cancel every unfinished operation (server shutdown)."""
        tasks = [op.task for op in self._ops.values() if op.task is not None and not op.task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)

    def _trim(self) -> None:
        while len(self._ops) > self.max_kept:
            oldest = next((k for k, op in self._ops.items() if op.status in FINISHED), None)
            if oldest is None:
                return
            del self._ops[oldest]
