"""Bring your own backend: profiles, the CLI's pointing, the backend's output, its state files."""

import os
import time
from pathlib import Path

import pytest

from support.drivers.backend_output import BackendOutput
from support.drivers.cli import CliDriver
from support.settings import Settings, SettingsError, load_profile
from support.targets import BackendState

ROOT = Path(__file__).resolve().parents[2]


def test_the_ktrdr_profile_fills_its_paths_and_options_override_it():
    settings = Settings.from_userdata({"profile": "ktrdr", "backend_cwd": "/srv/ktrdr", "pool_limit": "7"})
    assert settings.managed and settings.api_port == 8000 and settings.cli_api_fixed_port == 8000
    assert settings.backend_command[0] == "/srv/ktrdr/.venv/bin/uvicorn" and "{api_port}" in settings.backend_command
    assert settings.cli == ("/srv/ktrdr/.venv/bin/ktrdr",)
    assert settings.backend_restore == ("data/symbol_discovery_cache.json",)
    assert settings.backend_remove == ("data/ib_client_id_registry.json", "logs")
    assert settings.profile.pool_limit == 7 and settings.profile.idle_timeout_s == 300   # -D wins, the rest stays
    venv = Settings.from_userdata({"profile": "ktrdr", "backend_cwd": "/k", "backend_venv": "/venvs/k"})
    assert venv.cli == ("/venvs/k/bin/ktrdr",)


def test_profiles_are_found_by_name_or_path_and_bad_ones_are_named(tmp_path):
    own = tmp_path / "mine.toml"
    own.write_text('target = "managed"\nbackend_command = "srv --port {api_port}"\ncli = "srvctl"\n')
    assert load_profile(str(own))["cli"] == "srvctl"
    with pytest.raises(SettingsError, match="known: .*ktrdr"):
        load_profile("nosuch")
    (tmp_path / "nested.toml").write_text("[section]\nx = 1\n")
    with pytest.raises(SettingsError, match="may be tables .*not section"):
        load_profile(str(tmp_path / "nested.toml"))


def test_cli_api_is_checked_and_a_fixed_url_sets_the_managed_port():
    with pytest.raises(SettingsError, match="cli_api"):
        Settings.from_userdata({"cli_api": "somewhere"})
    with pytest.raises(SettingsError, match="port 8000"):
        Settings.from_userdata({"profile": "ktrdr", "backend_cwd": "/k", "api_port": "9000"})


def test_the_cli_is_pointed_by_environment_option_or_not_at_all():
    by_env = CliDriver(("tool",), "http://127.0.0.1:1234", api_pointing="env:MY_API")
    assert by_env.env()["MY_API"] == "http://127.0.0.1:1234" and by_env.argv(["ib", "test"]) == ("tool", "ib", "test")
    by_option = CliDriver(("tool",), "http://127.0.0.1:1234", api_pointing="option:--api-url")
    assert by_option.argv(["ib", "test"], "http://x:1") == ("tool", "--api-url", "http://x:1", "ib", "test")
    fixed = CliDriver(("tool",), "http://127.0.0.1:1234", api_pointing="fixed:http://localhost:8000")
    assert not fixed.can_be_pointed and by_env.can_be_pointed
    assert "KTRDR_API_URL" not in {k for k in fixed.env() if k not in os.environ}


def test_backend_output_is_read_in_slices_and_judged(tmp_path):
    log = tmp_path / "backend.log"
    output = BackendOutput(log)
    assert output.position() == (0,) and output.since(0) == ""
    log.write_text("INFO started, listening on 127.0.0.1 with a long line of start-up text\n")
    mark = output.position()
    with open(log, "a") as f:
        f.write("INFO GET /api/v1/ib/status 200\n"
                "/srv/app.py:12: RuntimeWarning: coroutine 'get_connection_pool' was never awaited\n")
    assert output.complaints_since(mark) == ["/srv/app.py:12: RuntimeWarning: coroutine 'get_connection_pool' "
                                             "was never awaited"]
    assert output.complaints_since(output.position()) == []
    log.write_text("Traceback (most recent call last):\n")       # truncated or rotated: read from the start
    assert output.complaints_since(mark) == ["Traceback (most recent call last):"]
    assert not BackendOutput(None).available


def test_settling_waits_for_quiet_output_within_its_bound(tmp_path):
    log = tmp_path / "backend.log"
    log.write_text("x\n")
    started = time.monotonic()
    assert BackendOutput(log).settled(quiet_s=0.2, within_s=2.0) == (2,)
    assert time.monotonic() - started < 1.5


def test_backend_state_is_restored_and_removed(tmp_path):
    root = tmp_path / "ktrdr"
    (root / "data").mkdir(parents=True)
    (root / "data" / "cache.json").write_text("pristine")
    (root / "logs").mkdir()
    state = BackendState(root, ("data/cache.json", "data/absent.json"), ("data/registry.json", "logs"),
                         tmp_path / "kept")
    state.snapshot()
    (root / "data" / "cache.json").write_text("changed by a run")
    (root / "data" / "absent.json").write_text("created by a run")
    (root / "data" / "registry.json").write_text("{}")
    state.restore()
    assert (root / "data" / "cache.json").read_text() == "pristine"
    assert not (root / "data" / "absent.json").exists() and not (root / "data" / "registry.json").exists()
    assert not (root / "logs").exists()
