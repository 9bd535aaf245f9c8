"""The FastAPI application: the KTRDR routes under ``/api/v1``, every answer in the contract's envelope."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ibtargets import __version__
from ibtargets.refbackend.errors import BackendError, HttpStatusError, IBUnhealthy
from ibtargets.refbackend.service import Backend, LoadRequest, load_error_status
from ibtargets.refbackend.settings import Settings

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
Timeframe = Literal["1m", "5m", "15m", "30m", "1h", "2h", "4h", "1d", "1w", "1M"]


def envelope(data: Any = None, error: BackendError | None = None, status: int | None = None) -> JSONResponse:
    """``{"success", "data", "error"}`` with the error's status (or 200)."""
    body = {"success": error is None, "data": data,
            "error": None if error is None else {"code": error.code, "message": error.message,
                                                 "details": error.details}}
    return JSONResponse(body, status_code=status or (error.status if error else 200))


class DiscoverBody(BaseModel):
    """``POST /ib/symbols/discover``."""

    symbol: str = Field(min_length=1, max_length=32)
    force_refresh: bool = False


class ConfigBody(BaseModel):
    """``PUT /ib/config``: only the given fields change."""

    host: str | None = Field(default=None, min_length=1, max_length=253)
    port: int | None = Field(default=None, ge=1, le=65535)
    client_id: int | None = Field(default=None, ge=0, le=2_000_000_000)


class LoadFilters(BaseModel):
    """KTRDR's load filters (accepted; the reference asks IB for all hours)."""

    trading_hours_only: bool = False
    include_extended: bool = False


class LoadBody(BaseModel):
    """``POST /data/load``."""

    symbol: str = Field(min_length=1, max_length=32)
    timeframe: Timeframe = "1d"
    mode: Literal["local", "tail", "backfill", "full"] = "local"
    start_date: str | None = Field(default=None, max_length=40)
    end_date: str | None = Field(default=None, max_length=40)
    filters: LoadFilters | None = None


def _backend(request: Request) -> Backend:
    return request.app.state.backend


def build_router() -> APIRouter:
    """Every ``/api/v1`` route."""
    router = APIRouter(prefix=PREFIX)

    @router.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__}

    @router.get("/ib/status")
    async def ib_status(request: Request) -> JSONResponse:
        return envelope(_backend(request).status())

    @router.get("/ib/health")
    async def ib_health(request: Request) -> JSONResponse:
        healthy, data = await _backend(request).health()
        if healthy:
            return envelope(data)
        return envelope(data, IBUnhealthy(f"IB is not healthy: {data['error_message']}"))

    @router.get("/ib/resilience")
    async def ib_resilience(request: Request) -> JSONResponse:
        return envelope(await _backend(request).resilience())

    @router.get("/ib/config")
    async def ib_config(request: Request) -> JSONResponse:
        return envelope(_backend(request).config())

    @router.put("/ib/config")
    async def ib_config_update(request: Request, body: ConfigBody) -> JSONResponse:
        return envelope(_backend(request).update_config(body.host, body.port, body.client_id))

    @router.post("/ib/cleanup")
    async def ib_cleanup(request: Request, force: bool = False) -> JSONResponse:
        return envelope(_backend(request).cleanup(force=force))

    @router.post("/ib/symbols/discover")
    async def discover(request: Request, body: DiscoverBody) -> JSONResponse:
        return envelope(await _backend(request).discover(body.symbol, body.force_refresh))

    @router.get("/ib/symbols/discovered")
    async def discovered(request: Request, instrument_type: str | None = None) -> JSONResponse:
        return envelope(_backend(request).discovered(instrument_type))

    @router.get("/symbols")
    async def symbols(request: Request) -> JSONResponse:
        return envelope(_backend(request).symbol_list())

    @router.post("/data/load")
    async def data_load(request: Request, body: LoadBody, async_mode: bool = False) -> JSONResponse:
        backend = _backend(request)
        load = LoadRequest(body.symbol, body.timeframe, body.mode, body.start_date, body.end_date)
        op = backend.start_load(load)
        if async_mode:
            return envelope({"status": "started", "operation_id": op.operation_id, "fetched_bars": 0,
                             "cached_before": None, "merged_file": None, "gaps_analyzed": 0,
                             "segments_fetched": 0, "ib_requests_made": 0, "execution_time_seconds": 0.0,
                             "error_message": None})
        assert op.task is not None
        await op.task
        error = load_error_status(op)
        return envelope(op.result, error)

    @router.get("/operations/{operation_id}")
    async def operation(request: Request, operation_id: str) -> JSONResponse:
        return envelope(_backend(request).operations.get(operation_id).to_json())

    @router.delete("/operations/{operation_id}")
    async def cancel_operation(request: Request, operation_id: str) -> JSONResponse:
        op = await _backend(request).operations.cancel(operation_id)
        return envelope(op.to_json())

    @router.get("/data/{symbol}/{timeframe}")
    async def data(request: Request, symbol: str, timeframe: Timeframe,
                   start_date: str | None = Query(default=None, max_length=40),
                   end_date: str | None = Query(default=None, max_length=40)) -> JSONResponse:
        return envelope(await _backend(request).bars(symbol, timeframe, start_date, end_date))

    return router


def create_app(settings: Settings, backend: Backend | None = None) -> FastAPI:
    """The application; the backend's pool starts with the app's lifespan and closes with it.

    Args:
        settings: server settings.
        backend: an already built backend (the server builds it to close it on a signal).
    """
    the_backend = backend or Backend(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await the_backend.start()
        try:
            yield
        finally:
            await the_backend.stop()

    app = FastAPI(title="ib-resilience reference backend", version=__version__, lifespan=lifespan)
    app.state.backend = the_backend
    app.include_router(build_router())

    @app.exception_handler(BackendError)
    async def backend_error(request: Request, exc: BackendError) -> JSONResponse:
        return envelope(None, exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return envelope(None, HttpStatusError(exc.status_code, str(exc.detail)))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return envelope(None, BackendError(f"internal error: {type(exc).__name__}: {exc}"))

    return app
