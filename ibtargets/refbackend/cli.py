"""The ``refbackend`` console script: ``serve``, and KTRDR's ``ib`` and ``data`` commands over HTTP.

Each command's behaviour is a module-level function (``ib_test``, ``ib_status``, ``ib_cleanup``,
``data_load``, ``data_show``) returning the exit code, so a test can replace exactly one.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import typer

from ibtargets.refbackend.client import DEFAULT_API_URL, ApiClient, ApiError, ApiResponse

API_URL_ENV = "KTRDR_API_URL"
#: Bound on ``data load`` waiting for its operation (seconds; env REFBACKEND_CLI_LOAD_TIMEOUT_S).
LOAD_TIMEOUT_ENV = "REFBACKEND_CLI_LOAD_TIMEOUT_S"
DEFAULT_LOAD_TIMEOUT_S = 600.0
#: ``ib status`` with its labels capitalised, without colons, padded to this many characters (env
#: REFBACKEND_CLI_LABEL_WIDTH): another layout a correct CLI may print, for proving the suite reads by meaning.
LABEL_WIDTH_ENV = "REFBACKEND_CLI_LABEL_WIDTH"
POLL_INTERVAL_S = 0.25
FINISHED = ("completed", "failed", "cancelled")



class OutputFormat(str, enum.Enum):
    """``--format``."""

    table = "table"
    json = "json"


#: KTRDR's timeframes, as a choice for ``-t``.
Timeframe = enum.Enum("Timeframe", {t: t for t in ("1m", "5m", "15m", "30m", "1h", "2h", "4h", "1d", "1w", "1M")},
                      type=str)


class Mode(str, enum.Enum):
    """``data load --mode``."""

    tail = "tail"
    backfill = "backfill"
    full = "full"


app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Reference backend of the KTRDR IB contract: server and CLI.")
ib_app = typer.Typer(no_args_is_help=True, help="IB connection commands (through the API).")
data_app = typer.Typer(no_args_is_help=True, help="Market data commands (through the API).")
app.add_typer(ib_app, name="ib")
app.add_typer(data_app, name="data")


def out(text: str = "") -> None:
    """A line on stdout, flushed (progress must show up under pexpect at once)."""
    print(text, flush=True)


def err(text: str) -> None:
    """A line on stderr."""
    print(text, file=sys.stderr, flush=True)


def _api(ctx: typer.Context, timeout_s: float = 30.0) -> ApiClient:
    return ApiClient(ctx.obj["api_url"], timeout_s=timeout_s)


@app.callback()
def _root(ctx: typer.Context,
          api_url: str = typer.Option(DEFAULT_API_URL, "--api-url", envvar=API_URL_ENV,
                                      help="Address of the backend API.")) -> None:
    ctx.obj = {"api_url": api_url}


# --------------------------------------------------------------------------- serve


@app.command("serve")
def _serve(host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind."),
           port: int = typer.Option(8000, "--port", min=0, max=65535, help="TCP port (0 = a free one).")) -> None:
    """Run the API server (settings from the environment; see docs/contributors.md)."""
    from ibtargets.refbackend.settings import Settings, SettingsError

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        err(f"refbackend: {exc}")
        raise typer.Exit(2) from None
    from ibtargets.refbackend.server import (
        run,  # imports the IB library IB_RESILIENCE_IB_LIBRARY names, checked just above
    )

    raise typer.Exit(run(host, port, settings))


# --------------------------------------------------------------------------- ib


def ib_test(api: ApiClient, symbol: str, verbose: bool) -> int:
    """Ask IB for real: the health probe, then a forced symbol discovery. 0 only if IB answered both."""
    out(f"Testing IB through the API at {api.base_url} ...")
    health = api.call("GET", "/ib/health")
    data = health.data or {}
    if health.status != 200 or not data.get("healthy"):
        err(f"FAIL: IB is not answering: {data.get('error_message') or health.error_message}")
        return 1
    out("OK   IB health probe: connection validated, reqCurrentTime answered")
    found = api.call("POST", "/ib/symbols/discover", json={"symbol": symbol, "force_refresh": True})
    if found.status != 200:
        err(f"FAIL: symbol discovery for {symbol} failed: {found.error_message}")
        return 1
    info = (found.data or {}).get("symbol_info")
    if info is None:
        err(f"FAIL: IB answered, but has no security definition for {symbol}")
        return 1
    out(f"OK   {info['symbol']}: {info['description']} ({info['instrument_type']}, {info['exchange']}, "
        f"{info['currency']}) in {found.data['discovery_time_ms']:.0f} ms")
    if verbose:
        out(json.dumps({"health": data, "symbol_info": info}, indent=2))
    out("IB connection test passed")
    return 0


@ib_app.command("test")
def _ib_test(ctx: typer.Context,
             symbol: str = typer.Option("AAPL", "--symbol", "-s", help="Symbol to discover."),
             timeout: float = typer.Option(30.0, "--timeout", "-t", min=0.1, help="Bound on each API call (s)."),
             verbose: bool = typer.Option(False, "--verbose", "-v")) -> None:
    """Test the IB connection through the API (health probe plus symbol discovery)."""
    raise typer.Exit(ib_test(_api(ctx, timeout), symbol, verbose))


def _score_line(resilience: ApiResponse) -> str:
    data = resilience.data or {}
    if resilience.status != 200 or "overall_resilience_score" not in data:
        return f"unavailable ({resilience.error_message})"
    phases = {k.split("_")[1]: v.get("status") for k, v in data.items() if k.startswith("phase_")}
    detail = ", ".join(f"phase {k}: {v}" for k, v in sorted(phases.items()))
    return f"{data['overall_resilience_score']:.0f}/100 ({detail})"


def _label_width() -> int | None:
    try:
        return max(0, int(os.environ[LABEL_WIDTH_ENV]))
    except (KeyError, ValueError):
        return None


def _status_row(label_width: int | None) -> Callable[[str, str], None]:
    """How ``ib status`` prints a label and its value: ``  label:   value`` (labels with a colon, padded to 20),
    or, with a label width, ``  Label   value`` (capitalised, no colon, padded to that width, one space at least)."""
    def row(label: str, value: str) -> None:
        if label_width is None:
            out(f"  {label + ':':<20}{value}")
        else:
            out(f"  {label[0].upper() + label[1:]:<{label_width}} {value}")
    return row


def ib_status(api: ApiClient, output_format: str, verbose: bool) -> int:
    """Print the live ``/ib/status`` and the resilience score."""
    status = api.call("GET", "/ib/status")
    if status.status != 200:
        err(f"Error: {status.error_message}")
        return 1
    resilience = api.call("GET", "/ib/resilience")
    if output_format == "json":
        out(json.dumps({"status": status.data, "resilience": resilience.data}, indent=2))
        return 0
    data = status.data
    conn, cm, dm = data["connection"], data["connection_metrics"], data["data_metrics"]
    row = _status_row(_label_width())
    out("IB connection status")
    row("connected", f"{conn['connected']}  ({conn['host']}:{conn['port']}, client ID {conn['client_id']})")
    row("IB available", f"{data['ib_available']}")
    row("pool", f"{data['pool']['total_connections']} open, {data['pool']['active_connections']} in use, "
        f"client IDs {data['pool']['client_ids_in_use']}")
    row("connections", f"{cm['total_connections']} opened, {cm['failed_connections']} failed")
    row("data requests", f"{dm['total_requests']} ({dm['successful_requests']} ok, "
        f"{dm['failed_requests']} failed), {dm['total_bars_fetched']} bars")
    row("resilience score", _score_line(resilience))
    if verbose:
        out(json.dumps(data, indent=2))
    return 0


@ib_app.command("status")
def _ib_status(ctx: typer.Context,
               output_format: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f"),
               verbose: bool = typer.Option(False, "--verbose", "-v")) -> None:
    """Show the live IB connection status and resilience score."""
    raise typer.Exit(ib_status(_api(ctx), output_format.value, verbose))


def ib_cleanup(api: ApiClient, force: bool, verbose: bool) -> int:
    """``POST /ib/cleanup`` and print how many connections the backend really closed."""
    answer = api.call("POST", "/ib/cleanup", params={"force": "true"} if force else None)
    if answer.status != 200:
        err(f"Error: cleanup failed: {answer.error_message}")
        return 1
    data = answer.data
    out(f"Closed {data['connections_closed']} IB connection(s). {data['message']}")
    if verbose:
        out(json.dumps({"before": data["pool_stats_before"], "after": data["pool_stats_after"]}, indent=2))
    return 0


@ib_app.command("cleanup")
def _ib_cleanup(ctx: typer.Context,
                force: bool = typer.Option(False, "--force", "-f", help="Also close connections in use."),
                verbose: bool = typer.Option(False, "--verbose", "-v")) -> None:
    """Close every pooled IB connection."""
    raise typer.Exit(ib_cleanup(_api(ctx), force, verbose))


# --------------------------------------------------------------------------- data


def _poll(probe: Any, within_s: float, interval_s: float) -> Any:
    """``probe()`` until it returns something truthy, for at most ``within_s``; None when the bound passes."""
    deadline = time.monotonic() + within_s
    while True:
        value = probe()
        if value:
            return value
        remaining_s = deadline - time.monotonic()
        if remaining_s <= 0:
            return None
        time.sleep(min(interval_s, remaining_s))  # pacing the poll; the bound is the deadline


def _load_timeout_s() -> float:
    try:
        return float(os.environ.get(LOAD_TIMEOUT_ENV, DEFAULT_LOAD_TIMEOUT_S))
    except ValueError:
        return DEFAULT_LOAD_TIMEOUT_S


def _print_result(result: dict[str, Any], output_format: str) -> None:
    if output_format == "json":
        out(json.dumps(result, indent=2))
        return
    for key in ("status", "fetched_bars", "cached_before", "segments_fetched", "ib_requests_made",
                "execution_time_seconds", "merged_file"):
        if key in result:
            out(f"  {key:<24}{result[key]}")


def data_load(api: ApiClient, symbol: str, timeframe: str, mode: str, start: str | None, end: str | None,
              output_format: str, progress: bool) -> int:
    """Start an async load, follow its operation, cancel it on Ctrl-C (exit 130)."""
    with _ctrl_c_as_flag() as interrupted:
        return _follow_load(api, symbol, timeframe, mode, start, end, output_format, progress, interrupted)


@contextlib.contextmanager
def _ctrl_c_as_flag() -> Iterator[threading.Event]:
    """Turn Ctrl-C into a flag for the duration of a load, so that it can never strike between
    "the operation started" and "we know its ID" (it would leave the load running)."""
    interrupted = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.set())
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


def _follow_load(api: ApiClient, symbol: str, timeframe: str, mode: str, start: str | None, end: str | None,
                 output_format: str, progress: bool, interrupted: threading.Event) -> int:
    body = {"symbol": symbol, "timeframe": timeframe, "mode": mode, "start_date": start, "end_date": end}
    started = api.call("POST", "/data/load", json=body, params={"async_mode": "true"})
    if started.status != 200 or not started.data:
        err(f"Error: could not start the load: {started.error_message}")
        return 130 if interrupted.is_set() else 1
    op_id = started.data["operation_id"]
    if progress:
        out(f"Loading {symbol.upper()} {timeframe} ({mode}), operation {op_id}")
    seen: list[str] = []

    def finished() -> dict[str, Any] | None:
        if interrupted.is_set():
            raise KeyboardInterrupt
        answer = api.call("GET", f"/operations/{op_id}")
        if answer.status != 200:
            raise ApiError(f"operation {op_id}: {answer.error_message}")
        op = answer.data
        line = f"  [{op['progress'].get('percentage', 0.0):5.1f}%] {op['progress'].get('current_step', '')}"
        if progress and (not seen or seen[-1] != line):
            seen.append(line)
            out(line)
        return op if op["status"] in FINISHED else None

    try:
        op = _poll(finished, within_s=_load_timeout_s(), interval_s=POLL_INTERVAL_S)
    except KeyboardInterrupt:
        return _cancel(api, op_id, "interrupted")
    if op is None:
        err(f"Error: operation {op_id} still running after {_load_timeout_s():g} s")
        return _cancel(api, op_id, "timed out", exit_code=1)
    summary = op.get("result_summary") or {}
    shown = summary if output_format == "table" else op
    if op["status"] != "completed" or summary.get("status") != "success":
        err(f"Error: load {op['status']}: {op.get('error_message') or summary.get('status')}")
        _print_result(shown, output_format)
        return 1
    out(f"Loaded {symbol.upper()} {timeframe}: {summary.get('fetched_bars', 0)} bars fetched "
        f"with {summary.get('ib_requests_made', 0)} IB request(s)")
    if output_format == "json":
        _print_result(shown, output_format)
    return 0


def _cancel(api: ApiClient, op_id: str, why: str, exit_code: int = 130) -> int:
    """DELETE the operation and say so; never raise (the user asked to stop)."""
    err(f"{why.capitalize()}: cancelling operation {op_id} ...")
    try:
        answer = api.call("DELETE", f"/operations/{op_id}", timeout_s=10.0)
    except (ApiError, KeyboardInterrupt) as exc:
        err(f"Could not cancel operation {op_id}: {exc or 'interrupted again'}")
        return exit_code
    if answer.status == 200:
        data = answer.data
        err(f"Operation {op_id} {data['status']}; "
            f"{(data.get('result_summary') or {}).get('fetched_bars', 0)} bars were fetched before it stopped")
    else:
        err(f"Operation {op_id} not cancelled: {answer.error_message}")
    return exit_code


@data_app.command("load")
def _data_load(ctx: typer.Context,
               symbol: str = typer.Argument(..., help="Symbol, e.g. AAPL."),
               timeframe: Timeframe = typer.Option("1d", "--timeframe", "-t"),
               mode: Mode = typer.Option(Mode.tail, "--mode", "-m"),
               start: str | None = typer.Option(None, "--start", help="Start date (ISO 8601)."),
               end: str | None = typer.Option(None, "--end", help="End date (ISO 8601)."),
               output_format: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f"),
               progress: bool = typer.Option(True, "--progress/--no-progress")) -> None:
    """Load bars from IB into the backend's cache (async operation, Ctrl-C cancels it)."""
    raise typer.Exit(data_load(_api(ctx), symbol, timeframe.value, mode.value, start, end, output_format.value, progress))


def data_show(api: ApiClient, symbol: str, timeframe: str, rows: int) -> int:
    """Print the last ``rows`` cached bars."""
    answer = api.call("GET", f"/data/{symbol.upper()}/{timeframe}")
    if answer.status != 200:
        err(f"Error: {answer.error_message}")
        return 1
    data = answer.data
    meta = data["metadata"]
    out(f"{meta['symbol']} {meta['timeframe']}: {meta['points']} bars from {meta['start']} to {meta['end']}")
    out(f"{'date':<26}{'open':>12}{'high':>12}{'low':>12}{'close':>12}{'volume':>14}")
    for date, (o, h, lo, c, v) in list(zip(data["dates"], data["ohlcv"], strict=False))[-rows:]:
        out(f"{date:<26}{o:>12.4f}{h:>12.4f}{lo:>12.4f}{c:>12.4f}{v:>14.0f}")
    return 0


@data_app.command("show")
def _data_show(ctx: typer.Context,
               symbol: str = typer.Argument(...),
               timeframe: Timeframe = typer.Option("1d", "--timeframe", "-t"),
               rows: int = typer.Option(10, "--rows", "-r", min=1, max=100000)) -> None:
    """Show cached bars."""
    raise typer.Exit(data_show(_api(ctx), symbol, timeframe.value, rows))


# --------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code (no traceback on any expected failure, Ctrl-C → 130)."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] in (["--version"], ["-V"]):
        from ibtargets import __version__
        print(f"refbackend {__version__}")
        return 0
    command = typer.main.get_command(app)
    try:
        command.main(args=args, prog_name="refbackend")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        err("Aborted.")
        return 130
    except ApiError as exc:
        err(f"Error: {exc}")
        return 1
    return 0
