"""The CLI's output is read as a person reads it: a label and its value in any layout, never another line's number."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from cli_samples import TABULATE_COLUMNS, TABULATE_LABELS, TABULATE_LABELS_WITH_HEADER
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from ibtargets.refbackend import cli as refcli
from ibtargets.refbackend.client import ApiResponse
from support import cli_claims
from support.cli_reading import number_in, number_of, plain, readings, value_of, words_of

SCORE = ("resilience", "score")


def _reads_the_three_facts(output: str, words_too: bool = True) -> None:
    """Connected True, resilience score 75, pool size 3; a word after a label and a single space is not read
    (``Connected True`` could be a sentence), so ``words_too=False`` skips it for such layouts."""
    assert number_of(output, SCORE) == 75.0, readings(output)
    assert value_of(output, "connected") == ("True" if words_too else value_of(output, "connected")), readings(output)
    assert number_of(output, ("pool", "size")) == 3.0, readings(output)
    assert value_of(output, ("latency",)) is None
    assert number_of(output, ("resilience", "threshold")) is None


def _reads_the_columns(output: str) -> None:
    assert number_of(output, SCORE) == 75.0, readings(output)
    assert value_of(output, "connected") == "True", readings(output)
    assert value_of(output, "host") == "127.0.0.1", readings(output)
    assert number_of(output, "port") == 4002.0, readings(output)
    assert number_of(output, "host") is None   # an address is not a number
    assert value_of(output, "latency") is None


# --------------------------------------------------------------------------- labels by their words


@pytest.mark.parametrize("label", ["Resilience score", "resilience_score", "RESILIENCE SCORE:", "resilience-score",
                                   "ResilienceScore", "overall_resilience_score", "Overall resilience score"])
def test_a_label_is_matched_by_its_words_whatever_its_spelling(label):
    assert number_of(f"Pool size: 3\n{label} 75\nUptime: 12 s\n", SCORE) == 75.0
    assert number_of(json.dumps({"pool": 3, label: 75.0, "uptime": 12}), SCORE) == 75.0


def test_words_of_a_label():
    assert words_of("overall_resilience_score") == ("overall", "resilience", "score")
    assert words_of("overallResilienceScore") == ("overall", "resilience", "score")
    assert words_of("IB connection(s) closed") == ("ib", "connection", "closed")
    assert words_of(("Connections", "closed")) == words_of("connections_closed")


def test_the_label_with_fewest_other_words_wins_then_the_first_printed():
    text = "Resilience score threshold: 75\nResilience score: 40\nResilience score: 35\n"
    assert number_of(text, SCORE) == 40.0
    assert number_of("Overall resilience score: 65\nresilience_score = 70\n", SCORE) == 70.0


# --------------------------------------------------------------------------- plain lines (print, click, typer)


@pytest.mark.parametrize("line", [
    "Resilience score: 75", "Resilience score = 75", "resilience_score=75", "Resilience score -> 75",
    "Resilience score → 75", "Resilience score ........ 75", "Resilience score.....75", "- Resilience score: 75",
    "  • Resilience score: 75.0 (healthy)", "✅ Resilience score: 75/100", "Resilience score: 75.0 %",
    "Resilience score\t75", "[INFO] Resilience score: 75", "INFO: Resilience score: 75",
    "2026-12-07 06:00:00,120 INFO Resilience score: 75", "resilience score: 75, pool size: 3",
    "Resilience score (0..100): 75", "Resilience score (%)   75", "Resilience score 75/100 (phase 1: working)",
])
def test_plain_lines(line):
    assert number_of(f"IB status\n{line}\nConnected: True\n", SCORE) == 75.0


def test_click_and_typer_echo_with_colours():
    @click.command()
    def status():
        click.echo("IB connection status")
        click.secho("  Connected: ", nl=False, bold=True)
        click.secho("True", fg="green")
        click.echo(f"  {click.style('Resilience score', fg='cyan')}:   {click.style('75.0', fg='yellow', bold=True)}")
        click.echo("  Pool size = 3")

    output = CliRunner().invoke(status, color=True).output
    assert "\x1b[" in output   # the colour codes were printed, and are read past
    _reads_the_three_facts(output)


def test_rich_markup_printed_with_colours():
    rich_console = pytest.importorskip("rich.console")
    buffer = io.StringIO()
    console = rich_console.Console(file=buffer, force_terminal=True, color_system="truecolor", width=100)
    console.print("[bold]Connected:[/] [green]True[/]")
    console.print("[bold]Resilience score:[/] [bold yellow]75.0[/] / 100")
    console.print("[dim]Pool size[/]   3")
    assert "\x1b[" in buffer.getvalue()
    _reads_the_three_facts(buffer.getvalue())


@pytest.mark.parametrize("width", range(1, 41))
@pytest.mark.parametrize("layout, pad_needed", [
    ("{label:<{w}} {value}", 1), ("{label:<{w}}: {value}", 0), ("{colon:<{w}} {value}", 0),
    ("  {label:.<{w}} {value}", 2), ("{label:<{w}} = {value}", 0), ("| {label:<{w}} | {value} |", 0)])
def test_a_table_padded_to_any_width(width, layout, pad_needed):
    """Numbers are read at every width; a word (``True``) once the padding, or a mark, sets it apart from its
    label: ``Connected True`` and ``Connected. True`` could be sentences."""
    rows = [("Connected", "True"), ("Resilience score", "75.0"), ("Pool size", "3"), ("Uptime", "12.5 s")]
    output = "\n".join(layout.format(label=label, colon=f"{label}:", value=value, w=width) for label, value in rows)
    _reads_the_three_facts(output, words_too=width - len("Connected") >= pad_needed)
    assert number_of(output, "uptime") == 12.5


# --------------------------------------------------------------------------- box-drawing and ASCII tables


@pytest.mark.parametrize("tablefmt", sorted(TABULATE_LABELS))
def test_tabulate_labels_and_values(tablefmt):
    _reads_the_three_facts(TABULATE_LABELS[tablefmt])
    _reads_the_three_facts(TABULATE_LABELS_WITH_HEADER[tablefmt])


@pytest.mark.parametrize("tablefmt", sorted(TABULATE_COLUMNS))
def test_tabulate_a_row_under_headers(tablefmt):
    _reads_the_columns(TABULATE_COLUMNS[tablefmt])


def _rich_boxes() -> list[str]:
    try:
        from rich import box
    except ImportError:
        return []
    return sorted(name for name in dir(box) if name.isupper() and isinstance(getattr(box, name), box.Box))


def _rich(renderable) -> str:
    from rich.console import Console
    buffer = io.StringIO()
    Console(file=buffer, force_terminal=True, color_system="truecolor", width=120).print(renderable)
    return buffer.getvalue()


@pytest.mark.parametrize("box_name", _rich_boxes())
@pytest.mark.parametrize("show_lines", [False, True])
def test_rich_tables_in_every_box(box_name, show_lines):
    from rich import box
    from rich.table import Table
    for show_header in (True, False):
        table = Table(box=getattr(box, box_name), show_lines=show_lines, show_header=show_header, title="IB status")
        table.add_column("Field", style="cyan")
        table.add_column("Value", justify="right", style="bold green")
        for label, value in (("Connected", "True"), ("Resilience score", "75.0"), ("Pool size", "3")):
            table.add_row(label, value)
        _reads_the_three_facts(_rich(table))
    wide = Table(box=getattr(box, box_name), show_lines=show_lines)
    for header in ("Connected", "Host", "Port", "Resilience score"):
        wide.add_column(header)
    wide.add_row("True", "127.0.0.1", "4002", "75.0")
    _reads_the_columns(_rich(wide))


def test_rich_grid_and_panel():
    pytest.importorskip("rich")
    from rich.panel import Panel
    from rich.table import Table
    grid = Table.grid(padding=(0, 3))
    grid.add_column(style="bold")
    grid.add_column()
    for label, value in (("Connected", "True"), ("Resilience score", "75.0"), ("Pool size", "3")):
        grid.add_row(label, value)
    _reads_the_three_facts(_rich(grid))
    _reads_the_three_facts(_rich(Panel("Connected: True\nResilience score: 75.0\nPool size: 3", title="IB")))


def test_hand_written_rich_table_without_the_library():
    """rich's default box (HEAVY_HEAD) with its colour codes, as a terminal receives it."""
    output = ("\x1b[3m    IB connection status    \x1b[0m\n"
              "┏━━━━━━━━━━━━━━━━━━┳━━━━━━━┓\n"
              "┃\x1b[1m \x1b[0m\x1b[1mField           \x1b[0m\x1b[1m \x1b[0m┃\x1b[1m \x1b[0m\x1b[1mValue\x1b[0m\x1b[1m \x1b[0m┃\n"
              "┡━━━━━━━━━━━━━━━━━━╇━━━━━━━┩\n"
              "│ Connected        │  True │\n"
              "│ Resilience score │ \x1b[1;32m75.0\x1b[0m  │\n"
              "│ Pool size        │     3 │\n"
              "└──────────────────┴───────┘\n")
    _reads_the_three_facts(output)


# --------------------------------------------------------------------------- JSON anywhere in the output


def test_json_anywhere_nested_compact_or_indented():
    document = {"status": {"connected": True, "pool": {"size": 3}},
                "resilience": {"overall_resilience_score": 75.0, "phase_1": {"status": "working"}}}
    for text in (json.dumps(document), json.dumps(document, indent=2),
                 "Fetching status ...\n" + json.dumps(document, indent=4) + "\nDone.\n",
                 "2026-12-07 06:00:00 INFO answer " + json.dumps(document) + " (12 ms)",
                 json.dumps([{"name": "backend", **document}])):
        assert number_of(text, SCORE) == 75.0, text
        assert value_of(text, "connected") == "true"
        assert number_of(text, ("pool", "size")) == 3.0   # a nested key matched with the key above it
        assert value_of(text, ("phase", "1", "status")) == "working"
        assert value_of(text, "latency") is None


def test_json_printed_by_rich_with_colours_and_python_dicts():
    rich_console = pytest.importorskip("rich.console")
    buffer = io.StringIO()
    rich_console.Console(file=buffer, force_terminal=True, color_system="standard").print_json(
        data={"status": {"connected": True}, "resilience": {"overall_resilience_score": 75.0}})
    assert "\x1b[" in buffer.getvalue()
    assert number_of(buffer.getvalue(), SCORE) == 75.0
    assert number_of("{'overall_resilience_score': 75.0, 'connected': True, 'error': None}", SCORE) == 75.0
    printed = "{'ids': {1, 2}, 'raw': b'x', 'resilience': {'score': 75}}"
    assert number_of(printed, SCORE) == 75.0 and value_of(printed, "ids") == "{1, 2}"


def test_json_null_and_strings_are_not_numbers():
    assert number_of('{"resilience_score": null}', SCORE) is None
    assert value_of('{"resilience_score": null}', SCORE) == "null"
    assert number_of('{"resilience_score": "unavailable"}', SCORE) is None


def test_yaml_and_indented_sections():
    yaml = "status:\n  connected: true\nresilience:\n  overall_score: 75.0\n  phase_1:\n    status: working\npool:\n  size: 3\n"
    assert number_of(yaml, SCORE) == 75.0
    assert number_of(yaml, ("pool", "size")) == 3.0
    assert value_of(yaml, ("phase", "1", "status")) == "working"
    assert number_of("Resilience:\n  Score: 75\n  Phases: 3 working\n", SCORE) == 75.0
    # a label with every word itself beats one its section completes; a section ends where its indent does
    assert number_of("Resilience:\n  score: 35\nResilience score: 100\n", SCORE) == 100.0
    assert number_of("Resilience:\n  status: ok\nScore: 9\n", SCORE) is None


# --------------------------------------------------------------------------- what must not be read


def test_an_absent_label_reads_as_none():
    for text in ("", "IB connection status\n  connected: True\n  pool: 3 open\n",
                 "Score: 75\nTest score = 80\n",        # other scores are not the resilience score
                 "resilience: ok\nscore card: 75\n"):   # the two words in two labels
        assert value_of(text, SCORE) is None, text
        assert number_of(text, SCORE) is None, text


def test_no_number_is_taken_from_another_line_or_label():
    assert number_of("Resilience score: unavailable (HTTP 503)\nPool size: 3\n", SCORE) is None
    assert number_of("Resilience score:\n  75\n", SCORE) is None
    assert number_of("Resilience score  n/a   Pool size  3\n", SCORE) is None
    assert number_of("The pool has 3 connections; resilience score unknown\n", SCORE) is None
    assert number_of("| Resilience score | unknown |\n| Pool size | 3 |\n", SCORE) is None


def test_a_value_starts_with_its_number():
    assert number_in("100/100 (phase 1: working)") == 100.0
    assert number_in("75.0 %") == 75.0
    assert number_in("$1,234.50") == 1234.5
    assert number_in("-3") == -3.0
    assert number_in("✅ 75") == 75.0
    for not_a_number in ("127.0.0.1", "2026-12-07", "12:30:00", "unavailable (HTTP 503)", "(503)", "n/a", "True"):
        assert number_in(not_a_number) is None, not_a_number


def test_plain_strips_colours_and_keeps_what_a_carriage_return_left():
    assert plain("\x1b[1;32mOK\x1b[0m \x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\") == "OK link"
    assert plain("[ 10%] loading\r[100%] done\r\n") == "[100%] done\n"


# --------------------------------------------------------------------------- the suite's own claims


@pytest.mark.parametrize("text, count", [
    ("Closed 3 IB connection(s). Pool emptied", 3), ("3 connections closed", 3), ("Connections closed: 3", 3),
    ("IB connection(s) closed: 3", 3),
    ('{"success": true, "connections_closed": 3, "message": "done"}', 3), ("| Closed connections | 3 |", 3),
    ("Cleanup done", None), ("Connections closed: none", None),
])
def test_the_closed_count(text, count):
    assert cli_claims.closed_count_in(text) == count


@pytest.mark.parametrize("text, operation_id", [
    ("Loading MSFT 1h (tail), operation op_5f2c9a1b\n  [ 10.0%] fetching", "op_5f2c9a1b"),
    ("Operation ID: 5f2c9a1b-77aa (running)", "5f2c9a1b-77aa"),
    ('{"operation_id": "5f2c9a1b-77aa", "status": "started"}', "5f2c9a1b-77aa"),
    ("│ Operation ID │ 5f2c9a1b-77aa │", "5f2c9a1b-77aa"),
    ("Loading MSFT 1h (tail)", None),
    ("⚡ Started operation: op_data_load_20261207_073500_10d4a095\n^C\n🛑 Cancellation requested... stopping operation",
     "op_data_load_20261207_073500_10d4a095"),   # KTRDR be94b8f4's own words
    ("Operation cancelled by the user", None),
])
def test_the_operation_id(text, operation_id):
    assert cli_claims.operation_id_in(text) == operation_id


def test_the_reported_case_a_wider_label_column():
    """Issue 23: a correct ``ib status`` printing ``Resilience score       100.0`` was read as "score None"."""
    assert cli_claims.score_in("IB status\n  Resilience score       100.0\n  Pool size              3\n") == 100.0


# --------------------------------------------------------------------------- the reference backend's own CLI


class _FakeApi:
    """The two answers ``ib status`` asks for."""

    base_url = "http://127.0.0.1:1"

    def __init__(self, score: float | None):
        self.score = score

    def call(self, method, path, json=None, params=None, timeout_s=None):
        if path == "/ib/status":
            return ApiResponse(200, {"success": True, "data": {
                "connection": {"connected": True, "host": "127.0.0.1", "port": 4002, "client_id": 1,
                               "connection_time": None},
                "connection_metrics": {"total_connections": 2, "failed_connections": 0},
                "data_metrics": {"total_requests": 7, "successful_requests": 7, "failed_requests": 0,
                                 "total_bars_fetched": 250, "success_rate": 1.0},
                "ib_available": True,
                "pool": {"total_connections": 2, "active_connections": 0, "client_ids_in_use": [1, 2]}}})
        if self.score is None:
            return ApiResponse(503, {"success": False, "data": None,
                                     "error": {"code": "IB-UNAVAILABLE", "message": "no gateway"}})
        phases = {f"phase_{n}_x": {"status": "working"} for n in (1, 2, 3)}
        return ApiResponse(200, {"success": True, "data": {**phases, "overall_resilience_score": self.score}})


def _ib_status(capsys, score: float | None, output_format: str = "table", verbose: bool = False) -> str:
    assert refcli.ib_status(_FakeApi(score), output_format, verbose) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("output_format, verbose", [("table", False), ("table", True), ("json", False)])
def test_the_reference_cli_reads_as_the_score_it_printed(capsys, output_format, verbose):
    for score in (100.0, 65.0, 0.0):
        output = _ib_status(capsys, score, output_format, verbose)
        assert cli_claims.score_in(output) == score, output
        assert number_of(output, ("total", "connections")) == 2.0 or output_format == "table"


def test_the_reference_cli_without_a_score_reads_as_none(capsys):
    output = _ib_status(capsys, None)
    assert "resilience score:   unavailable" in output   # the default layout is unchanged
    assert cli_claims.score_in(output) is None


@pytest.mark.parametrize("width", [0, 1, 10, 16, 17, 23, 30, 40])
def test_the_reference_cli_with_labels_padded_to_any_width(capsys, monkeypatch, width):
    monkeypatch.setenv(refcli.LABEL_WIDTH_ENV, str(width))
    output = _ib_status(capsys, 75.0)
    assert f"  {'Resilience score':<{width}} 75/100" in output
    assert cli_claims.score_in(output) == 75.0
    if width > len("IB available"):
        assert value_of(output, ("ib", "available")) == "True"
    assert cli_claims.score_in(_ib_status(capsys, None)) is None


def test_phrases_are_found_through_colour_codes():
    assert cli_claims.says_cannot_connect("\x1b[1;31mCould not\x1b[0m connect to the API at http://127.0.0.1:9")
    assert not cli_claims.says_cannot_connect("\x1b[32mConnected\x1b[0m to the API")


_WORDS = ("pool", "size", "resilience", "score", "uptime", "client", "id", "connections", "closed", "requests",
          "failed", "bars", "latency", "health", "rate")
_LAYOUTS = ("{label}: {value}", "{label} = {value}", "{label:<{w}} {value}", "  {label:.<{w}}. {value}",
            "│ {label:<{w}} │ {value:>8} │", "| {label:<{w}} | {value} |", "{key}={value}", "- {label}: {value}")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.sampled_from(_WORDS), min_size=1, max_size=3, unique=True), min_size=1, max_size=6,
                unique_by=frozenset),
       st.lists(st.decimals(min_value=-10_000, max_value=10_000, places=2, allow_nan=False), min_size=6, max_size=6),
       st.sampled_from(_LAYOUTS), st.integers(min_value=0, max_value=30), st.sampled_from(["", "json"]))
def test_every_label_reads_as_its_own_number_and_only_its_own(labels, values, layout, width, json_too):
    """Whatever the labels, layout and padding: each label reads as its own value, an absent one as None."""
    rows = [(" ".join(words).capitalize(), float(value)) for words, value in zip(labels, values, strict=False)]
    lines = [layout.format(label=label, key="_".join(label.split()), value=f"{value:g}", w=width)
             for label, value in rows]
    if json_too:
        lines.append(json.dumps({"details": {"_".join(label.split()) + "_x": value for label, value in rows}}))
    output = "\n".join(["IB status", *lines, "done"])
    for label, value in rows:
        assert number_of(output, label) == value, (label, output, readings(output))
    absent = next((w for w in _WORDS if not any(w in label.lower().split() for label, _ in rows)), None)
    if absent is not None:
        assert number_of(output, absent) is None, (absent, output)


@pytest.mark.timeout(300)
def test_a_cli_with_its_labels_padded_passes_the_ib_status_scenarios(tmp_path):
    """Issue 23's report, end to end: the reference CLI printing ``Resilience score`` padded to 30 characters (the
    old reader saw "score None" there and failed two of these four scenarios) passes the ``ib status`` scenarios."""
    run = subprocess.run(
        [sys.executable, "-m", "ibresilience.main", "run", "--level", "standard", "--name", '"ib status',
         "--reports-dir", str(tmp_path / "run")],
        cwd=Path(__file__).resolve().parents[2], env={**os.environ, refcli.LABEL_WIDTH_ENV: "30"},
        capture_output=True, text=True, timeout=280)
    assert run.returncode == 0 and "4 scenarios passed, 0 failed" in run.stdout, run.stdout[-4000:] + run.stderr[-2000:]
    printed = [p for p in (tmp_path / "run").rglob("*") if p.is_file() and p.suffix in ("", ".txt", ".json", ".log")
               and f"  {'Resilience score':<30} " in p.read_text(encoding="utf-8", errors="replace")]
    assert printed, "no CLI transcript shows the padded layout: the setting did not reach the CLI"
