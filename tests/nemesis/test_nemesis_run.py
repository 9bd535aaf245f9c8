"""A short seeded schedule against the clean reference backend passes every invariant, and replaying a
written schedule file runs exactly that schedule (embedded targets, about 50 s)."""

import json
from pathlib import Path

import pytest

from ibresilience import nemesis_cmd as cli
from support.nemesis.schedule import Schedule, generate

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
    failed = {family: v for family, v in verdicts.items() if not v["ok"]}
    assert code == 0 and not failed, f"{json.dumps(failed, indent=1)[:3000]}\n{report[:2000]}"
    assert Schedule.read(run / "schedule.json") == schedule, "the run did not replay the file's schedule"
    assert verdicts["bounds"]["exercised"] > 50 and verdicts["recovery"]["exercised"] == 1
    assert verdicts["cleanup"]["exercised"] >= 1, "the final cleanup was not judged"
    history = json.loads((run / "history.json").read_text())
    applied = {f["kind"] for f in history["faults"] if not f["error"]}
    assert applied == kinds, history["notes"]
    assert (run / "timeline.png").stat().st_size > 10_000


@pytest.mark.parametrize("argv", [["--minutes", "0"], ["--seeds", "0"], ["--replay", "/nonexistent.json"],
                                  ["-D", "no_such_setting=1"], ["-D", "target=external"]])
def test_bad_options_exit_2_with_one_line(argv, capsys):
    with pytest.raises(SystemExit) as stopped:
        code = cli.main(argv)
        raise SystemExit(code)
    assert stopped.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
