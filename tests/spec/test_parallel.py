"""Workers and shards: the partition, the merge, and whole runs at the basic level (docs/ci.md, "Workers and shards").

The runs here are the basic level only (each stack starts in seconds): one sequential run, one with
``--workers 2``, and shards 1/3, 2/3, 3/3 side by side merged with ``ib-resilience report --merge``; every one of
them must report exactly the sequential run's scenarios with the same outcomes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest
from process_checks import gone, listening, port_free

from ibreport.record import Invariants, Outcome, RunRecord
from ibreport.results import junit_counts, load_results
from ibresilience import parallel, runner
from ibresilience.parallel import Scenario
from support.waiting import Bound, eventually

#: One process runs this module under pytest-xdist (``--dist loadgroup``): its fixture is one expensive real run.
pytestmark = pytest.mark.xdist_group("parallel_runs")

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 240


def _scenarios(n: int, feature: str = "features/a.feature") -> list[Scenario]:
    return [Scenario(feature, 10 + i, f"s{i}", "A") for i in range(n)]


# ------------------------------------------------------------------------------------------- partition

def test_partition_is_longest_first_to_the_least_loaded_part_and_covers_everything_once():
    scenarios = _scenarios(6)
    durations = {s.key: d for s, d in zip(scenarios, [1, 9, 4, 4, 2, 8], strict=False)}
    parts = parallel.partition(scenarios, durations, 2)
    assert sorted((s for part in parts for s in part), key=lambda s: s.order) == scenarios
    loads = [sum(durations[s.key] for s in part) for part in parts]
    assert loads == [14, 14]                          # 9+4+1 | 8+4+2 (LPT)
    assert all(part == sorted(part, key=lambda s: s.order) for part in parts)  # each part in feature order


def test_partition_is_the_same_whatever_order_the_scenarios_come_in_and_ties_go_by_location():
    scenarios = _scenarios(9) + _scenarios(4, "features/b.feature")
    durations = {s.key: 3.0 for s in scenarios}       # all equal: only the location decides
    first = parallel.partition(scenarios, durations, 3)
    again = parallel.partition(list(reversed(scenarios)), dict(reversed(list(durations.items()))), 3)
    assert first == again


def test_without_durations_the_scenarios_are_dealt_out_in_feature_order():
    scenarios = _scenarios(7)
    parts = parallel.partition(scenarios, {}, 3)
    assert [[s.line for s in part] for part in parts] == [[10, 13, 16], [11, 14], [12, 15]]


def test_an_unknown_scenario_counts_as_the_median_of_the_known_ones():
    scenarios = _scenarios(4)
    durations = {scenarios[0].key: 2.0, scenarios[1].key: 4.0, scenarios[2].key: 100.0}
    assert parallel.expected_durations(scenarios, durations)[scenarios[3]] == 4.0


def test_a_together_feature_goes_to_one_part_whole():
    nemesis = [Scenario("features/n.feature", 10 + i, f"n{i}", "N", together=True) for i in range(4)]
    others = _scenarios(4)
    durations = {nemesis[0].key: 180.0, **{s.key: 0.1 for s in nemesis[1:]}, **{s.key: 60.0 for s in others}}
    parts = parallel.partition(others + nemesis, durations, 4)
    assert [p for p in parts if set(nemesis) & set(p)] == [nemesis]   # one part, alone (180 s ≥ 2 × 60 s)


def test_more_parts_than_scenarios_leaves_parts_empty():
    parts = parallel.partition(_scenarios(2), {}, 4)
    assert [len(p) for p in parts] == [1, 1, 0, 0]


@pytest.mark.parametrize("text", ["0/3", "4/3", "3", "a/b", "", "1/0"])
def test_a_bad_shard_is_refused(text):
    with pytest.raises(ValueError, match="I/N"):
        parallel.parse_shard(text)


def test_shard_parses():
    assert parallel.parse_shard("2/4") == (2, 4) and parallel.parse_shard(" 1 / 1 ") == (1, 1)


def test_selection_is_behaves_own_and_levels_nest():
    basic, standard = parallel.select("@basic"), parallel.select("@basic or @standard")
    assert basic and set(basic) < set(standard)
    assert all(s.location.startswith("features/") and s.location.endswith(f":{s.line}") for s in standard)
    assert len({s.key for s in standard}) == len(standard)    # keys identify scenarios (outline rows included)
    named = parallel.select("@basic", ["silent"])
    assert named and all("silent" in s.name for s in named)


# ------------------------------------------------------------------------------------------- durations, merge

def _junit(folder: Path, stem: str, cases: list[tuple[str, str, float]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    body = "".join(f'<testcase classname="{stem}.F" name="{n}" status="{st}" time="{t}"/>' for n, st, t in cases)
    failures = sum(st == "failed" for _, st, _ in cases)
    (folder / f"TESTS-{stem}.xml").write_text(
        f'<testsuite name="{stem}.F" tests="{len(cases)}" errors="0" failures="{failures}" skipped="0" '
        f'time="{sum(t for *_, t in cases)}">{body}</testsuite>', encoding="utf-8")


def test_durations_come_from_junit_and_allure_and_are_remembered_across_runs(tmp_path):
    _junit(tmp_path / "junit", "cli", [("one", "passed", 2.5), ("two", "untested", 0.0), ("three", "failed", 1.0)])
    results = tmp_path / "allure-results"
    results.mkdir()
    (results / "x-result.json").write_text(json.dumps({
        "name": "one", "status": "passed", "start": 1000, "stop": 4000,
        "labels": [{"name": "location", "value": "features/cli.feature:12"}]}), encoding="utf-8")
    found = parallel.read_durations(tmp_path)
    assert found == {"cli::one": 3.0, "cli::three": 1.0}   # Allure's time (hooks included) wins; untested is no time
    parallel.remember_durations(tmp_path, found)
    parallel.remember_durations(tmp_path, {"api::other": 7.0})
    assert parallel.read_durations(tmp_path / parallel.DURATIONS_FILE) == {**found, "api::other": 7.0}


def test_a_failed_scenario_only_raises_a_known_duration(tmp_path):
    _junit(tmp_path / "old", "gc", [("idle", "passed", 360.0), ("quick", "passed", 1.0)])
    _junit(tmp_path / "new", "gc", [("idle", "failed", 3.8), ("quick", "failed", 2.0), ("fresh", "failed", 4.0)])
    durations = parallel.load_durations(None, [tmp_path / "old", tmp_path / "new"])
    assert durations == {"gc::idle": 360.0, "gc::quick": 2.0, "gc::fresh": 4.0}


def test_junit_of_several_workers_merges_into_one_suite_per_feature(tmp_path):
    _junit(tmp_path / "w1", "cli", [("b", "passed", 1.0)])
    _junit(tmp_path / "w2", "cli", [("a", "failed", 2.0)])
    _junit(tmp_path / "w2", "api", [("c", "passed", 3.0)])
    order = [Scenario("features/cli.feature", 1, "a", "F"), Scenario("features/cli.feature", 5, "b", "F")]
    written = parallel.merge_junit([tmp_path / "w1", tmp_path / "w2"], tmp_path / "out", order)
    assert written == {"TESTS-api.xml": 1, "TESTS-cli.xml": 2}
    assert junit_counts(tmp_path / "out") == {"tests": 3, "failures": 1, "errors": 0, "skipped": 0}
    text = (tmp_path / "out" / "TESTS-cli.xml").read_text(encoding="utf-8")
    assert text.index('name="a"') < text.index('name="b"')   # feature order, not worker order


def test_properties_the_workers_disagree_on_are_kept_per_worker():
    merged = parallel.merge_properties([{"target": "embedded", "ib_port": "1"}, {"target": "embedded", "ib_port": "2"}])
    assert merged == {"target": "embedded", "ib_port": "1 | 2"}


def test_rerun_commands_leave_out_how_the_run_was_spread():
    argv = ["--level", "basic", "--workers", "4", "--shard=1/3", "--durations", "x", "--name", "y"]
    assert parallel.strip_options(argv) == ["--level", "basic", "--name", "y"]


# ------------------------------------------------------------------------------------------- refusals

def test_more_than_one_worker_is_refused_against_an_external_target(tmp_path, capsys):
    started = time.monotonic()
    code = runner.main(["--level", "basic", "--workers", "2", "--reports-dir", str(tmp_path), "--api-base-url",
                        "http://127.0.0.1:9", "--ib-host", "127.0.0.1", "--ib-port", "9", "--cli", "true"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and time.monotonic() - started < 5.0
    assert len(err.splitlines()) == 1 and "needs a target the suite starts, not external" in err
    assert "two workers must never share" in err


def test_managed_workers_are_refused_in_one_line_where_namespaces_are_not_allowed(tmp_path, capsys, monkeypatch):
    from ibresilience import isolate

    monkeypatch.setattr(isolate, "available", lambda: "unshare -m -n is not allowed here (Operation not permitted)")
    code = runner.main(["--level", "basic", "--workers", "2", "--reports-dir", str(tmp_path),
                        "--target", "managed", "--backend-command", "true", "--cli", "true"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "its own network namespace" in err and "Operation not permitted" in err


def test_a_bad_shard_or_worker_count_stops_the_run_with_one_line(tmp_path, capsys):
    assert runner.main(["--level", "basic", "--shard", "4/3", "--reports-dir", str(tmp_path)]) == 2
    assert runner.main(["--level", "basic", "--workers", "0", "--reports-dir", str(tmp_path)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 2


def test_the_summary_line_names_shard_and_workers():
    one = Outcome("s", "F", "a", "features/a.feature:3", "passed")
    line = RunRecord("basic", (one,), Invariants(held=1), 12.3, workers=4, shard="2/3").summary_line()
    assert line.startswith("ib-resilience: level basic (shard 2/3) on 4 workers: 1 scenarios passed")
    assert RunRecord("basic", (one,), Invariants(), 1.0).summary_line().startswith("ib-resilience: level basic: ")


# ------------------------------------------------------------------------------------------- whole runs

def _run(*args: str, timeout_s: float = RUN_TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ibresilience.main", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout_s)


def _outcomes(folder: Path) -> Counter:
    """(location, name, status) of every scenario result in a reports folder."""
    return Counter((s.label("location"), s.name, s.status) for s in load_results(folder / "allure-results").scenarios)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A sequential basic run, one with 2 workers, and three shards run side by side, then merged."""
    base = tmp_path_factory.mktemp("parallel")
    folders = {name: base / name for name in ("sequential", "workers", "s1", "s2", "s3", "merged")}
    done = {"sequential": _run("run", "--level", "basic", "--reports-dir", str(folders["sequential"])),
            "workers": _run("run", "--level", "basic", "--workers", "2", "--reports-dir", str(folders["workers"]))}
    shards = {f"s{i}": subprocess.Popen([sys.executable, "-m", "ibresilience.main", "run", "--level", "basic", "--shard",
                                         f"{i}/3", "--reports-dir", str(folders[f"s{i}"])], cwd=ROOT, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for i in (1, 2, 3)}
    for name, process in shards.items():
        out, _ = process.communicate(timeout=RUN_TIMEOUT_S)
        done[name] = subprocess.CompletedProcess(process.args, process.returncode, out, "")
    done["merged"] = _run("report", "--merge", *(str(folders[f"s{i}"]) for i in (1, 2, 3)),
                          "--out", str(folders["merged"]))
    for name, result in done.items():
        assert result.returncode == 0, (name, result.stdout[-3000:], result.stderr[-3000:])
    folders["_output"] = done  # type: ignore[assignment]
    return folders


def test_two_workers_run_exactly_the_sequential_runs_scenarios_with_the_same_outcomes(runs):
    sequential = _outcomes(runs["sequential"])
    assert {(loc, name) for loc, name, _ in sequential} == {(s.location, s.name) for s in parallel.select("@basic")}
    assert _outcomes(runs["workers"]) == sequential
    assert junit_counts(runs["workers"] / "junit") == junit_counts(runs["sequential"] / "junit")
    assert "on 2 workers: " in runs["_output"]["workers"].stdout


def test_each_worker_has_its_own_stack_and_logs(runs):
    workers = runs["workers"] / parallel.WORKERS_DIR
    for name in ("w1", "w2"):
        logs = workers / name / "logs" / "latest"
        assert (logs / "gateway.log").is_file() and (logs / "proxy.log").is_file() and (logs / "backend.log").is_file()
    properties = (runs["workers"] / "allure-results" / "environment.properties").read_text(encoding="utf-8")
    ports = next(line for line in properties.splitlines() if line.startswith("ib_port="))
    assert len(set(ports.removeprefix("ib_port=").split(" | "))) == 2, ports   # two gateways, two ports
    assert "run.workers=2" in properties


def test_three_shards_merged_give_exactly_the_unsharded_runs_scenarios_and_counts(runs):
    shards = [_outcomes(runs[f"s{i}"]) for i in (1, 2, 3)]
    assert all(shards)
    names = [{(loc, name) for loc, name, _ in shard} for shard in shards]
    assert not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])    # disjoint
    merged = _outcomes(runs["merged"])
    assert merged == sum(shards, Counter()) == _outcomes(runs["sequential"])
    assert junit_counts(runs["merged"] / "junit") == junit_counts(runs["sequential"] / "junit")
    assert (runs["merged"] / "allure-report" / "index.html").is_file()
    summary = next(runs["merged"].glob("resilience_test_report_*.md")).read_text(encoding="utf-8")
    assert "✅ PASSED" in summary and f"{sum(merged.values())} selected" in summary


def test_nothing_outlives_the_runs(runs):
    marker = str(runs["sequential"].parent)

    def left() -> list:
        found = []
        for process in psutil.process_iter(["pid", "cmdline", "environ"]):
            try:
                text = " ".join(process.info["cmdline"] or []) + " ".join((process.info["environ"] or {}).values())
            except (psutil.Error, TypeError):
                continue
            if marker in text and process.pid != os.getpid():
                found.append((process.pid, (process.info["cmdline"] or [])[:4]))
        assert not found, found
        return True

    eventually(left, Bound.exactly(10.0), "every process of the runs has ended", interval_s=0.2)


# ------------------------------------------------------------------------------------------- stopping

@pytest.mark.timeout(180)
def test_sigterm_stops_every_worker_and_frees_every_port_within_5_s(tmp_path):
    run = subprocess.Popen([sys.executable, "-m", "ibresilience.main", "run", "--level", "standard", "--workers", "2",
                            "--reports-dir", str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, start_new_session=True)
    deadline = time.monotonic() + 90.0
    tree: list[psutil.Process] = []
    while time.monotonic() < deadline:
        try:
            run.wait(0.5)
            pytest.fail(f"the run ended before it could be stopped: {run.communicate()}")
        except subprocess.TimeoutExpired:
            pass
        tree = psutil.Process(run.pid).children(recursive=True)
        if len(list((tmp_path / "allure-results").glob("*-result.json"))) >= 2 and len(tree) >= 8:
            break
    ports = {c.laddr.port for p in tree for c in listening(p)}
    assert len(tree) >= 8 and len(ports) >= 8, (tree, ports)   # 2 × (behave, gateway, proxy, backend)
    signalled = time.monotonic()
    run.send_signal(signal.SIGTERM)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 143, (out[-2000:], err[-2000:])
    assert time.monotonic() - signalled <= 5.0
    assert not [p for p in tree if not gone(p)] and not [p for p in ports if not port_free(p)]
    assert "Traceback" not in out + err and "stopped by SIGTERM" in err and "on 2 workers" in out


@pytest.mark.timeout(240)
@pytest.mark.skipif(bool(__import__("ibresilience.isolate", fromlist=["available"]).available()),
                    reason="this machine does not allow network and mount namespaces")
def test_managed_workers_share_a_fixed_port_and_never_write_the_backends_folder(tmp_path, capsys):
    """Two workers, each its own reference backend on the same fixed port (the CLI always calls localhost:8000),
    each writing its bar cache into the same relative folder of the same working directory."""
    from ibtargets.common.launch import venv_script

    home = tmp_path / "backend-home"
    home.mkdir()
    (home / "keep.txt").write_text("as it was")
    refbackend = venv_script("refbackend")
    profile = tmp_path / "fixed.toml"
    profile.write_text(f'target = "managed"\nbackend_command = "{refbackend} serve --host 127.0.0.1 --port {{api_port}}"\n'
                       f'backend_cwd = "{home}"\n'
                       'backend_env = "IB_HOST={ib_host},IB_PORT={ib_port},IB_CLIENT_ID=1,REFBACKEND_DATA_DIR=data"\n'
                       f'cli = "{refbackend}"\ncli_api = "fixed:http://localhost:8000"\n')
    reports = tmp_path / "reports"
    code = runner.main(["--level", "basic", "--profile", str(profile), "--workers", "2", "--reports-dir", str(reports),
                        "--name", "Discover, load|ib test|IB status names|preferred client ID"])
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0, captured.out + captured.err
    assert "on 2 workers" in out and " 0 failed" in out
    assert sorted(p.name for p in home.iterdir()) == ["keep.txt"], "a worker wrote into the backend's own folder"
    written = list((reports / "workers").glob("w*/isolated/overlay-1/upper/data"))
    assert written, "each worker's writes are kept in its own overlay"


def test_every_scenario_has_a_typical_duration():
    """A first --workers run (no durations of its own) is balanced by the shipped ones: none may be missing."""
    from ibresilience.runner import LEVELS
    typical = parallel.typical_durations()
    missing = [s.key for s in parallel.select(LEVELS["exhaustive"]) if s.key not in typical]
    assert not missing, f"no typical duration for {missing}: make typical-durations FROM=<a run's reports folder>"


def test_the_typical_durations_lie_under_a_run_s_own(tmp_path):
    remembered = {"cli::one": 9.0}
    parallel.remember_durations(tmp_path, remembered)
    durations = parallel.over_typical(parallel.load_durations(tmp_path))
    assert durations["cli::one"] == 9.0
    assert {k: v for k, v in durations.items() if k != "cli::one"} == parallel.typical_durations()
