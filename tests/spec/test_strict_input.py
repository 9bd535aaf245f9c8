"""Bad settings and options fail before any scenario, with one line naming what is valid."""

import subprocess
import sys
from pathlib import Path

import pytest

from support.settings import Settings, SettingsError, known_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("userdata, message", [
    ({"recovry_s": "3"}, "unknown setting 'recovry_s': did you mean recovery_s"),
    ({"ib_port": "99999"}, r"ib_port=99999 is not a TCP port \(0..65535\)"),
    ({"recovery_s": "-1"}, "recovery_s=-1.0 must be > 0"),
    ({"preferred_client_id": "-1"}, r"not an IB client ID \(0..2147483647\)"),
    ({"client_id_min": "20", "client_id_max": "10"}, "client_id_min=20 > client_id_max=10"),
    ({"shutdown_s": "soon"}, "shutdown_s='soon' is not a valid float"),
    ({"backend_stop_timeout_s": "0"}, "must be > 0"),
])
def test_a_bad_setting_is_named(userdata, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_userdata(userdata)


def test_formatter_options_pass_and_every_setting_is_known():
    Settings.from_userdata({"AllureFormatter.hide_excluded": "true"})
    assert {"recovery_s", "pool_limit", "max_idle_s", "cli_api", "profile", "target"} <= set(known_settings())


def test_a_profile_with_a_misspelt_setting_is_named(tmp_path):
    profile = tmp_path / "mine.toml"
    profile.write_text('pool_limt = 5\n')
    with pytest.raises(SettingsError, match="profile .*'pool_limt': did you mean pool_limit"):
        Settings.from_userdata({"profile": str(profile)})


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ibresilience.main", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def test_the_runner_refuses_a_misspelt_setting_in_one_line_before_any_scenario(tmp_path):
    run = _cli("run", "--reports-dir", str(tmp_path), "-D", "recovry_s=3")
    assert run.returncode == 2 and run.stderr.strip().count("\n") == 0, run.stderr
    assert "did you mean recovery_s" in run.stderr and not (tmp_path / "allure-results").exists()


def test_both_programs_tell_their_version():
    from support import __version__
    assert _cli("--version").stdout.strip() == f"ib-resilience {__version__}"
    refbackend = subprocess.run([sys.executable, "-m", "ibtargets.refbackend", "--version"], cwd=ROOT,
                                capture_output=True, text=True, timeout=60)
    assert refbackend.stdout.strip() == f"refbackend {__version__}", refbackend.stderr


@pytest.mark.parametrize(("options", "says"), [
    (["--name", "("], "--name '(' is not a regular expression"),
    (["-D", "foo"], "-D 'foo' is not NAME=VALUE"),
    (["--reports-dir", "/proc/no-such-folder"], "cannot be written"),
    (["--api-base-url", "localhost:8000"], "must be a URL like http://localhost:8000"),
    (["--target", "managed", "--backend-command", "srv"], "a managed target needs cli (--cli or -D cli=…"),
])
def test_bad_runner_input_is_one_line_and_exit_2(options, says, tmp_path, capsys):
    from ibresilience import runner

    reports = [] if "--reports-dir" in options else ["--reports-dir", str(tmp_path / "reports")]
    assert runner.main(["--level", "basic", *options, *reports]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err and "Traceback" not in err, err


def test_merging_a_folder_without_results_is_one_line_and_exit_2(tmp_path, capsys):
    from ibresilience import merge

    (tmp_path / "empty").mkdir()
    assert merge.main(["--merge", str(tmp_path / "empty"), "--out", str(tmp_path / "out"), "--no-html"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no scenario results there" in err, err
