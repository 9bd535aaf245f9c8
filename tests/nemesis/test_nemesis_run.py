"""A short seeded schedule against the clean reference backend fails no verdict, replaying a written schedule file
runs exactly that schedule, everything it did is in the run's one history, and the written history is judged again
to the same verdicts (embedded targets, about 50 s)."""

import json
from pathlib import Path

import pytest

from ibresilience import nemesis_cmd as cli
from support.nemesis.record import read_history
from support.nemesis.runner import judge_again
from support.nemesis.schedule import Schedule, generate
from support.run_history import HistoryWindow

#: Seed 6 over 38 s: a squatter holds a client ID, then every request goes unanswered for 9 s (an outage
#: overlapping it), with a slow gateway and a refusal that cuts the open connections inside it; then the healthy
#: tail, the recovery and the final cleanup.
SEED, SECONDS = 6, 38


@pytest.mark.timeout(150)
def test_a_short_schedule_passes_on_the_clean_reference_and_its_file_replays(tmp_path: Path):
    schedule = generate(SEED, SECONDS)
    kinds = {f.kind for f in schedule.faults}
    assert "squatter" in kinds and any(f.outage for f in schedule.faults)
    written = schedule.write(tmp_path / "schedule.json")
    code = cli.main(["--replay", str(written), "--out", str(tmp_path / "out"), "--no-shrink"])
    run = tmp_path / "out" / f"replay-seed-{SEED}"
    report = (tmp_path / "out" / "report.md").read_text() if (tmp_path / "out" / "report.md").exists() else ""
    verdicts = json.loads((run / "verdicts.json").read_text())
    failed = {family: v for family, v in verdicts.items() if v["status"] == "fail"}
    assert code == 0 and not failed, f"{json.dumps(failed, indent=1)[:3000]}\n{report[:2000]}"
    assert Schedule.read(run / "schedule.json") == schedule, "the run did not replay the file's schedule"
    assert verdicts["bounds"]["exercised"] > 50 and verdicts["recovery"]["status"] == "pass"
    assert verdicts["cleanup"]["exercised"] >= 1, "the final cleanup was not judged"
    assert verdicts["output"]["status"] == "pass" and "line(s) of the backend's output" in verdicts["output"]["message"]
    assert verdicts["liveness"]["status"] == "pass", "the observer's liveness samples are not in the history"
    window, nemesis, _ = read_history(run / "history.json")
    assert isinstance(window, HistoryWindow) and nemesis.schedule == schedule
    applied = {nemesis.spec(n.fault_id).kind for n in nemesis.faults if not n.error}
    assert applied == kinds, nemesis.notes
    # One history: the plane faults are fault windows of it, the squatter one of the suite's own connections, the
    # cleanups exchanges or CLI runs, and the workload's requests its exchanges.
    planes = {f.id for f in schedule.faults if f.plane in ("gateway", "proxy") and f.kind != "pacing"}
    assert {int(w.fault.name.split("-")[1]) for w in window.faults if w.fault.name.startswith("nemesis-")} == planes
    assert any(c.own and c.client_id is not None and c.client_id < 900 for c in window.connections)
    assert any(r.path == "/ib/cleanup" for r in window.exchanges) and len(window.exchanges) > 50
    again = judge_again(run)
    assert {f: v["status"] for f, v in verdicts.items()} == {f: v.status for f, v in again.verdicts.items()}
    assert (run / "timeline.png").stat().st_size > 10_000
    assert cli.main(["--judge", str(run)]) == 0
    assert cli._schedule_of(run / "history.json") == schedule, "--replay of a history file runs another schedule"


@pytest.mark.parametrize("argv", [["--minutes", "0"], ["--seeds", "0"], ["--replay", "/nonexistent.json"],
                                  ["-D", "no_such_setting=1"], ["-D", "target=external"],
                                  ["--judge", "/nonexistent-run"]])
def test_bad_options_exit_2_with_one_line(argv, capsys):
    with pytest.raises(SystemExit) as stopped:
        code = cli.main(argv)
        raise SystemExit(code)
    assert stopped.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
