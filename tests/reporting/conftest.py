"""Fixtures of the reporting tests: one real small run with --report, embedded targets for the monitor."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from reporting_helpers import ResultsDir, run_bounded

from ibreport.summary import ALLURE_CLI
from support.settings import ROOT, EmbeddedTuning, Settings
from support.targets import EmbeddedTargets, Targets

#: Every reporting test is bounded even if it forgets to be.
DEFAULT_TEST_TIMEOUT_S = 120
#: The scenarios of the real run: passing ones, a CLI one, one with a resource plot, one with a recovery,
#: and one that fails for sure because the run tightens its bound below the backend's 3 s validation timeout.
RUN_SCENARIOS = ("A healthy gateway scores at least 75", '"ib test" passes against a healthy gateway',
                 "Resources stay flat over 150 requests", "Every connection is reset",
                 "A silent gateway drives the score below 75", "The gateway stops answering after the handshake")
RUN_DEFINES = ("silent_detection_s=0.5",)
RUN_TIMEOUT_S = 300.0
#: The runner's last line (its level's scenarios, from the run's record), else behave's summary.
_SUMMARY = re.compile(r"^(?:ib-resilience: level \w+: )?\d+ scenarios? passed, .*$", re.M)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/reporting/" in str(item.fspath).replace("\\", "/") and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(DEFAULT_TEST_TIMEOUT_S))


@dataclass(frozen=True)
class RealRun:
    """A finished ``ib-resilience run --report`` and what behave itself said about it."""

    reports_dir: Path
    exit_code: int
    output: str
    passed: int
    failed: int          # failed or errors
    skipped: int         # skipped because the target lacks a capability (behave: every skipped scenario)

    @property
    def markdown(self) -> Path:
        """The one Markdown summary the run wrote."""
        found = sorted(self.reports_dir.glob("resilience_test_report_*.md"))
        assert len(found) == 1, f"expected one Markdown summary in {self.reports_dir}, found {found}"
        return found[0]


@pytest.fixture
def results(tmp_path: Path) -> ResultsDir:
    """An empty Allure results folder in a reports folder, for hand-made results."""
    return ResultsDir(tmp_path / "reports" / "allure-results")


@pytest.fixture(scope="session")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> RealRun:
    """A real run of a few scenarios (one failing on purpose) with ``--report``, in its own reports dir."""
    assert ALLURE_CLI.exists(), f"the Allure CLI is missing at {ALLURE_CLI}: run `make install` (npm install)"
    reports_dir = tmp_path_factory.mktemp("run") / "reports"
    command = [str(Path(sys.executable).with_name("ib-resilience")), "run", "--level", "standard", "--report",
               "--reports-dir", str(reports_dir)]
    for name in RUN_SCENARIOS:
        command += ["--name", re.escape(name)]
    for define in RUN_DEFINES:
        command += ["-D", define]
    done = run_bounded(command, RUN_TIMEOUT_S, cwd=ROOT)
    summary = _SUMMARY.search(done.stdout)
    assert summary, f"the run printed no scenario summary (exit {done.returncode}):\n{done.stdout[-3000:]}"
    counts = {name: int(n) for n, name in re.findall(r"(\d+) (?:scenarios? )?(\w+)",
                                                     summary.group(0).split(" in ", 1)[0])}
    failed = counts.get("failed", 0) + counts.get("errors", 0)
    return RealRun(reports_dir, done.returncode, done.stdout, counts["passed"], failed, counts.get("skipped", 0))


@pytest.fixture(scope="module")
def embedded_targets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Targets]:
    """Simulator, fault proxy and reference backend as real processes (idle timeout long enough to stay healthy)."""
    settings = Settings(tuning=EmbeddedTuning(max_idle_s=300.0, health_interval_s=0.5))
    targets = EmbeddedTargets(settings, tmp_path_factory.mktemp("monitor") / "logs")
    try:
        yield targets.start()
    finally:
        targets.stop()
