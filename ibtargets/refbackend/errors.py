"""Errors of the reference backend: each carries the envelope's code, message and HTTP status."""

from __future__ import annotations

from typing import Any


class BackendError(Exception):
    """An error the API turns into ``{"success": false, "error": {...}}``.

    Args:
        message: what went wrong, for a human.
        details: extra facts for the envelope's ``error.details``.
    """

    code = "BACKEND-ERROR"
    status = 500

    def __init__(self, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details


class HttpStatusError(BackendError):
    """A plain HTTP error (unknown route, wrong method) in the envelope.

    Args:
        status: the HTTP status.
        message: what went wrong.
    """

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.code = {404: "NOT-FOUND", 405: "METHOD-NOT-ALLOWED"}.get(status, "HTTP-ERROR")


class InvalidInput(BackendError):
    """The request is well-formed JSON but asks for something impossible."""

    code = "INVALID-INPUT"
    status = 400


class NotFound(BackendError):
    """The named resource does not exist."""

    code = "NOT-FOUND"
    status = 404


class DataNotFound(NotFound):
    """No cached bars for that symbol and timeframe."""

    code = "DATA-NOT-FOUND"


class OperationNotFound(NotFound):
    """No operation with that ID."""

    code = "OPERATION-NOT-FOUND"


class OperationNotCancellable(BackendError):
    """The operation already finished."""

    code = "OPERATION-NOT-CANCELLABLE"
    status = 409


class OperationCancelled(BackendError):
    """The operation was cancelled before it finished."""

    code = "OPERATION-CANCELLED"
    status = 409


class IBError(BackendError):
    """IB Gateway trouble: every code starts with ``IB-`` and the status is 503."""

    code = "IB-ERROR"
    status = 503


class IBUnhealthy(IBError):
    """The health probe failed (``GET /ib/health``)."""

    code = "IB-UNHEALTHY"


class GatewayUnavailable(IBError):
    """The gateway refused, dropped or did not complete the connection."""

    code = "IB-UNAVAILABLE"


class GatewaySilent(IBError):
    """A connection stayed open but IB did not answer within the bound."""

    code = "IB-SILENT"


class ClientIdsExhausted(IBError):
    """Every client ID of the range is in use (by us or, per error 326, by someone else)."""

    code = "IB-CLIENT-IDS-EXHAUSTED"


class PoolExhausted(IBError):
    """Every pooled connection stayed busy for the whole acquire wait."""

    code = "IB-POOL-EXHAUSTED"


class PoolClosed(IBError):
    """The pool is shutting down."""

    code = "IB-POOL-CLOSED"


class RequestTimeout(IBError):
    """An IB data request got no answer within its bound."""

    code = "IB-REQUEST-TIMEOUT"


class PacingViolation(IBError):
    """IB kept answering error 162 (pacing) after every bounded retry."""

    code = "IB-PACING"


class IBRequestError(IBError):
    """IB answered a request with an error code (kept in ``details``)."""

    code = "IB-REQUEST-ERROR"


class ClientIdInUse(Exception):
    """The gateway answered error 326 for this client ID (internal: the pool tries the next ID)."""

    def __init__(self, client_id: int, message: str):
        super().__init__(f"client ID {client_id} in use: {message}")
        self.client_id = client_id
