"""Pure parts of the reference backend: settings, chunk planning, the bar cache, the score table, the limiter."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from backend_helpers import run

from ibtargets.refbackend import market, resilience
from ibtargets.refbackend.errors import InvalidInput, PacingViolation
from ibtargets.refbackend.settings import ENV_VARS, Settings, SettingsError
from ibtargets.refbackend.store import Bar, BarStore

ROOT = Path(__file__).resolve().parents[2]
UTC = dt.UTC


def test_defaults_are_ktrdrs_numbers() -> None:
    settings = Settings.from_env({})
    assert (settings.validation_timeout_s, settings.max_idle_s, settings.health_interval_s,
            settings.pool_size, settings.client_id_min) == (3.0, 300.0, 60.0, 5, 1)
    assert settings.client_id_max == 50
    assert not str(settings.data_dir).startswith(str(ROOT)), "the bar cache must not default into the repo"


def test_environment_compresses_time() -> None:
    settings = Settings.from_env({"REFBACKEND_MAX_IDLE_S": "2", "REFBACKEND_HEALTH_INTERVAL_S": "0.5",
                                  "IB_CLIENT_ID": "11", "IB_PORT": "4003", "REFBACKEND_READONLY": "false"})
    assert (settings.max_idle_s, settings.health_interval_s, settings.ib_port) == (2.0, 0.5, 4003)
    assert (settings.client_id_min, settings.client_id_max, settings.readonly) == (11, 60, False)


@pytest.mark.parametrize("env, fragment", [
    ({"IB_PORT": "seventy"}, "IB_PORT"),
    ({"IB_PORT": "70000"}, "IB_PORT"),
    ({"REFBACKEND_POOL_SIZE": "0"}, "POOL_SIZE"),
    ({"IB_CLIENT_ID": "10", "REFBACKEND_CLIENT_ID_MAX": "5"}, "CLIENT_ID_MAX"),
    ({"REFBACKEND_READONLY": "maybe"}, "READONLY"),
    ({"REFBACKEND_VALIDATION_TIMEOUT_S": "-1"}, "VALIDATION_TIMEOUT"),
])
def test_bad_environment_is_refused_with_the_variable_named(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(SettingsError, match=fragment):
        Settings.from_env(env)


def test_every_variable_sets_a_field_and_is_in_the_contributors_page() -> None:
    fields = {f.name for f in dataclasses.fields(Settings)}
    page = (ROOT / "docs" / "contributors.md").read_text(encoding="utf-8")
    assert "## Reference backend" in page
    section = page.split("## Reference backend", 1)[1].split("\n## ", 1)[0]
    for var in ENV_VARS:
        assert var.field in fields, var
        assert f"`{var.name}`" in section, f"{var.name} is not documented in docs/contributors.md's backend section"


def test_chunks_cover_the_range_within_ibs_limits() -> None:
    start = dt.datetime(2024, 1, 1, tzinfo=UTC)
    for timeframe, days in (("1m", 3.5), ("5m", 20), ("1h", 95), ("1d", 800)):
        end = start + dt.timedelta(days=days)
        chunks = market.plan_chunks(start, end, timeframe)
        assert chunks[0][0] == start and chunks[-1][1] == end
        assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:], strict=False)), "chunks must be contiguous"
        assert all(e - s <= market.MAX_CHUNK[timeframe] for s, e in chunks)


def test_chunk_planning_refuses_inverted_and_huge_ranges() -> None:
    start = dt.datetime(2024, 1, 1, tzinfo=UTC)
    with pytest.raises(InvalidInput):
        market.plan_chunks(start, start, "1d")
    with pytest.raises(InvalidInput, match="IB requests"):
        market.plan_chunks(start, start + dt.timedelta(days=365), "1m")


def test_duration_strings_are_ib_syntax() -> None:
    assert market.duration_str(dt.timedelta(hours=2), "1m") == "7200 S"
    assert market.duration_str(dt.timedelta(days=1), "5m") == "86400 S"
    assert market.duration_str(dt.timedelta(days=6, hours=1), "5m") == "1 W"
    assert market.duration_str(dt.timedelta(days=28), "1h") == "4 W"
    assert market.duration_str(dt.timedelta(hours=5), "1d") == "1 W"
    assert market.duration_str(dt.timedelta(days=364), "1d") == "52 W"
    assert all(re.fullmatch(r"\d+ [SW]", market.duration_str(dt.timedelta(seconds=s), tf))
               for s, tf in itertools.product((1, 59, 3600, 86401, 10**7), market.BAR_SIZES))


def test_a_bar_belongs_to_a_range_when_it_covers_part_of_it() -> None:
    start, end = dt.datetime(2024, 1, 2, 10, tzinfo=UTC), dt.datetime(2024, 1, 5, tzinfo=UTC)
    assert market.bar_overlaps(dt.datetime(2024, 1, 2, tzinfo=UTC), "1d", start, end)
    assert not market.bar_overlaps(dt.datetime(2024, 1, 1, tzinfo=UTC), "1d", start, end)
    assert not market.bar_overlaps(dt.datetime(2024, 1, 2, 9, tzinfo=UTC), "1h", start, end)
    assert market.bar_overlaps(end, "5m", start, end)


def test_forex_pairs_are_tried_as_forex_first() -> None:
    assert [c.secType for c in market.candidate_contracts("EURUSD")] == ["CASH", "STK", "IND"]
    assert [c.secType for c in market.candidate_contracts("AAPL")] == ["STK", "IND"]


def test_bar_cache_round_trips_exact_values_and_merges_by_date(tmp_path: Path) -> None:
    store = BarStore(tmp_path)
    assert store.read("AAPL", "1d") is None
    first = [Bar("2024-01-02", 0.1 + 0.2, 2.5, 0.3, 1.0000000000000002, 123456789.0),
             Bar("2024-01-03", 1.0, 2.0, 0.5, 1.5, 10.0)]
    assert store.merge("AAPL", "1d", first) == 2
    assert store.read("AAPL", "1d") == first
    newer = Bar("2024-01-03", 9.0, 9.0, 9.0, 9.0, 9.0)
    assert store.merge("AAPL", "1d", [newer, Bar("2024-01-01", 1, 1, 1, 1, 1)]) == 3
    assert [b.date for b in store.read("AAPL", "1d")] == ["2024-01-01", "2024-01-02", "2024-01-03"]
    assert store.read("AAPL", "1d")[-1] == newer
    assert store.path("AAPL", "1M") != store.path("AAPL", "1m")
    assert ("AAPL", "1d") in store.cached_series()


@pytest.mark.parametrize("bad", ["", "../etc", "A" * 40, "AA PL", "ÄPPL"])
def test_bar_cache_refuses_unsafe_symbols(tmp_path: Path, bad: str) -> None:
    with pytest.raises(InvalidInput):
        BarStore(tmp_path).path(bad, "1d")


def _phase(status: str, ids: tuple[int, ...] = ()) -> dict:
    return {"status": status, "client_ids_in_use": list(ids)}


def test_score_follows_the_contract_table() -> None:
    seen = set()
    for w1, w2, w3, ids in itertools.product((True, False), (True, False), (True, False), ((1,), (11,), ())):
        score = resilience.compute_score(_phase("working" if w1 else "not_working"),
                                         _phase("working" if w2 else "not_working"),
                                         _phase("working" if w3 else "not_working", ids))
        expected = min(100.0, 35 * w1 + 30 * w2 + (35 + (5 if ids and ids[0] <= 10 else 0)) * w3)
        assert score == expected
        seen.add(score)
    assert seen <= {0, 30, 35, 40, 65, 70, 75, 100}
    assert {0, 30, 35, 40, 65, 70, 75, 100} <= seen


def test_rate_limiter_spaces_requests_and_refuses_long_waits() -> None:
    async def body() -> tuple[float, bool]:
        limiter = market.RateLimiter(max_requests=3, period_s=60.0, pacing_delay_s=0.05, max_wait_s=1.0)
        started = time.monotonic()
        for _ in range(3):
            await limiter.slot()
        spaced = time.monotonic() - started
        try:
            await limiter.slot()
        except PacingViolation:
            return spaced, True
        return spaced, False

    spaced_s, refused = run(body())
    assert spaced_s >= 0.09, "three requests with a 0.05 s pacing delay need two pauses"
    assert refused, "a fourth request in a 3-per-60-s window must be refused, not wait a minute"


def test_importing_the_backend_has_no_side_effects() -> None:
    code = ("import warnings; warnings.simplefilter('error');"
            "import ibtargets.refbackend.cli, ibtargets.refbackend.server, ibtargets.refbackend.pool;"
            "import threading; assert threading.active_count() == 1, threading.enumerate()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
