"""``ib-resilience profile check``: a profile's target started once and described before a long run."""

from __future__ import annotations

from pathlib import Path

import pytest

from ibresilience import profile_cmd
from ibtargets.common.launch import venv_script

pytestmark = pytest.mark.xdist_group("profile-check")


def profile(tmp_path: Path, ib_env: str = "IB_HOST={ib_host},IB_PORT={ib_port}", extra: str = "") -> Path:
    path = tmp_path / "mine.toml"
    refbackend = venv_script("refbackend")
    path.write_text(f'target = "managed"\nbackend_command = "{refbackend} serve --host 127.0.0.1 --port {{api_port}}"\n'
                    f'backend_env = "{ib_env},IB_CLIENT_ID=1"\ncli = "{refbackend}"\n{extra}', encoding="utf-8")
    return path


def test_a_sound_profile_reports_every_endpoint_the_ib_address_and_a_clean_stop(tmp_path, capsys):
    code = profile_cmd.main(["check", str(profile(tmp_path)), "--logs", str(tmp_path / "logs")])
    out = capsys.readouterr().out
    assert code == profile_cmd.OK, out
    for seen in ("GET /ib/resilience: HTTP 200", "POST /data/load (synchronous): HTTP 200", "client IDs [1]",
                 "idle_timeout_s: the backend reports 300 s", "`ib status` exit 0", "nothing left running"):
        assert seen in out, out


def test_a_backend_pointed_past_the_proxy_and_a_fact_stated_twice_wrongly_are_findings(tmp_path, capsys):
    mine = profile(tmp_path, ib_env="IB_HOST=127.0.0.1,IB_PORT=9", extra="idle_timeout_s = 120\n")
    code = profile_cmd.main(["check", str(mine), "--logs", str(tmp_path / "logs")])
    out = capsys.readouterr().out
    assert code == profile_cmd.FINDINGS, out
    assert "opened no IB connection through" in out
    assert "idle_timeout_s: the profile says 120 s, the backend reports 300 s" in out


def test_an_unusable_profile_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('target = "managed"\nbackend_command = "x"\ncli = "y"\npool_limt = 3\n')
    assert profile_cmd.main(["check", str(bad)]) == profile_cmd.UNUSABLE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pool_limt" in err and "pool_limit" in err
    assert profile_cmd.main(["check", "ktrdr", "-D", "nonsense"]) == profile_cmd.UNUSABLE


SPLIT = Path(__file__).resolve().parents[1] / "targets" / "split" / "profile.toml"


@pytest.mark.timeout(120)
def test_the_split_backend_checks_clean_with_its_declared_lack_and_is_told_what_to_declare_without_it(tmp_path, capsys):
    assert profile_cmd.main(["check", str(SPLIT), "--logs", str(tmp_path / "a")]) == profile_cmd.OK
    out = capsys.readouterr().out
    assert "as the profile declares (lacks sync_data_load)" in out and "ports [47311, " in out, out
    assert "3 process(es)" in out, "the wrapper, its API process and its IB process"
    assert profile_cmd.main(["check", str(SPLIT), "-D", "lacks=", "--logs", str(tmp_path / "b")]) == profile_cmd.FINDINGS
    assert 'add "sync_data_load" to `lacks`' in capsys.readouterr().out
