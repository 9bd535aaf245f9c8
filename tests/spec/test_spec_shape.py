"""The specification itself: every step defined, levels nested, enough scenarios, settings strict."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ibresilience.runner import LEVELS, behave_command, build_parser
from support.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[2]
LEVEL_TAGS = ("@basic", "@standard", "@exhaustive")


def dry_run(tags: str) -> str:
    result = subprocess.run([sys.executable, "-m", "behave", "--dry-run", "--no-summary", "-f", "plain",
                             "--no-skipped", "--tags", tags, str(ROOT / "features")],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout


def scenario_count(tags: str) -> int:
    result = subprocess.run([sys.executable, "-m", "behave", "--dry-run", "-f", "null", "--tags", tags,
                             str(ROOT / "features")], capture_output=True, text=True, timeout=60, cwd=ROOT)
    match = re.search(r"(\d+) scenarios? passed, \d+ failed, (\d+) skipped, (\d+) untested", result.stdout)
    assert match, result.stdout
    return int(match.group(3))


def test_every_step_is_defined():
    out = dry_run("@basic or @standard or @exhaustive")
    assert "undefined" not in out.lower()


def test_levels_are_nested_and_standard_has_at_least_40_scenarios():
    basic, standard, exhaustive = (scenario_count(LEVELS[level]) for level in ("basic", "standard", "exhaustive"))
    assert 0 < basic < standard < exhaustive
    assert standard >= 40


def test_every_scenario_has_exactly_one_level_tag():
    untagged = []
    for feature in (ROOT / "features").glob("*.feature"):
        lines = feature.read_text().splitlines()
        for number, line in enumerate(lines):
            if line.strip().startswith(("Scenario:", "Scenario Outline:")):
                tags = " ".join(text for text in lines[max(0, number - 3):number] if text.strip().startswith("@"))
                if sum(tag in tags.split() for tag in LEVEL_TAGS) != 1:
                    untagged.append(f"{feature.name}:{number + 1}")
    assert not untagged


def test_gherkin_holds_no_hosts_ports_urls_or_json():
    offending = [f"{f.name}: {line.strip()}" for f in (ROOT / "features").glob("*.feature")
                 for line in f.read_text().splitlines()
                 if re.search(r"https?://|127\.0\.0\.1|localhost|:\d{4,5}\b|[{}]|/api/", line)]
    assert not offending


def test_steps_do_not_import_transport_libraries():
    banned = re.compile(r"^\s*(import|from)\s+(socket|subprocess|requests|pexpect|psutil)\b", re.MULTILINE)
    offenders = [p.name for p in (ROOT / "features").rglob("*.py") if banned.search(p.read_text())]
    assert not offenders


def test_settings_from_userdata_convert_and_reject():
    settings = Settings.from_userdata({"timeout_multiplier": "2", "recovery_s": "12", "max_idle_s": "3",
                                       "cli": "ktrdr --verbose", "target": "embedded"})
    assert settings.timeout_multiplier == 2.0 and settings.thresholds.recovery_s == 12.0
    assert settings.tuning.max_idle_s == 3.0 and settings.cli == ("ktrdr", "--verbose")
    with pytest.raises(SettingsError, match="timeout_multiplier"):
        Settings.from_userdata({"timeout_multiplier": "fast"})
    with pytest.raises(SettingsError, match="api_base_url"):
        Settings.from_userdata({"target": "external", "cli": "ktrdr"})
    with pytest.raises(SettingsError, match="target"):
        Settings.from_userdata({"target": "somewhere"})


def test_runner_maps_levels_and_external_options():
    args = build_parser().parse_args(["--test-level", "standard", "--api-base-url", "http://h:8000",
                                      "--ib-port", "4003", "--cli", "ktrdr"])
    command = behave_command(args)
    assert command[command.index("--tags") + 1] == "@basic or @standard"
    assert "target=external" in command and "ib_port=4003" in command and "cli=ktrdr" in command


def test_plain_behave_runs_the_basic_level_and_its_dry_run_passes():
    result = subprocess.run([sys.executable, "-m", "behave", "--dry-run", "-f", "null"], capture_output=True,
                            text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    match = re.search(r"(\d+) scenarios? passed, (\d+) failed, (\d+) skipped, (\d+) untested", result.stdout)
    assert match and match.group(2) == "0" and int(match.group(4)) == scenario_count("@basic"), result.stdout
