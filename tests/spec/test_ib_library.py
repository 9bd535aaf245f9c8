"""One IB client seam (ibtargets/common/ibclient.py): ib_insync or ib_async, chosen by IB_RESILIENCE_IB_LIBRARY / ib_library."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ibtargets.common import ibclient
from ibtargets.gateway import ThreadedGateway
from ibtargets.refbackend.settings import Settings as BackendSettings
from ibtargets.refbackend.settings import SettingsError as BackendSettingsError
from support.settings import Settings, SettingsError
from support.targets import backend_environment

ROOT = Path(__file__).resolve().parents[2]
ENV = ibclient.ENV_VAR

#: Run in a fresh interpreter: what the seam and every module going through it resolve to, and which libraries
#: the process imported.
RESOLVE = textwrap.dedent("""
    import json, sys
    from ibtargets.common import ibclient
    from support.drivers import ib as driver
    from ibtargets.refbackend import market, pool, server, service
    lib = ibclient.library()
    print(json.dumps({
        "name": ibclient.library_name(), "version": ibclient.version(), "logger": ibclient.logger_name(),
        "same_names": [getattr(ibclient, n) is getattr(lib, n) for n in ibclient.EXPORTS],
        "pool_IB": pool.IB.__module__, "market_RequestError": market.RequestError is lib.RequestError,
        "service_RequestError": service.RequestError is lib.RequestError,
        "service_Contract": service.Contract is lib.Contract,
        "loaded": sorted(m for m in ("ib_insync", "ib_async") if m in sys.modules)}))
""")


def _python(code: str, library: str | None, timeout_s: float = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if library is not None:
        env[ENV] = library
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout_s)


@pytest.mark.parametrize("value, expected", [(None, "ib_insync"), ("", "ib_insync"), ("ib_insync", "ib_insync"),
                                             ("ib_async", "ib_async"), (" ib_async ", "ib_async")])
def test_the_seam_picks_the_library_the_variable_names(value, expected):
    run = _python(RESOLVE, value)
    assert run.returncode == 0, run.stderr[-3000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["name"] == expected and seen["logger"] == expected
    assert seen["version"] == __import__(expected).__version__
    assert all(seen["same_names"])
    assert seen["pool_IB"] == f"{expected}.ib"
    assert seen["market_RequestError"] and seen["service_RequestError"] and seen["service_Contract"]
    assert seen["loaded"] == [expected], "only the chosen library is imported"


def test_importing_the_seam_and_the_driver_imports_no_library():
    run = _python("import sys; import ibtargets.common.ibclient, support.drivers.ib, support.world; "
                  "print([m for m in ('ib_insync', 'ib_async') if m in sys.modules])", "ib_async")
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip() == "[]"


def test_use_sets_the_variable_once_per_process():
    code = textwrap.dedent("""
        import os
        from ibtargets.common import ibclient
        assert ibclient.use("ib_async") == "ib_async" and os.environ["IB_RESILIENCE_IB_LIBRARY"] == "ib_async"
        print(type(ibclient.IB()).__module__)
        try:
            ibclient.use("ib_insync")
        except RuntimeError as exc:
            print("refused:", exc)
    """)
    run = _python(code, "ib_insync")
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.strip().splitlines()
    assert lines[0] == "ib_async.ib"
    assert lines[1].startswith("refused:") and "already uses ib_async" in lines[1]


@pytest.mark.parametrize("library", ibclient.LIBRARIES)
def test_the_suite_driver_talks_to_the_gateway_with_the_chosen_library(library, gateway: ThreadedGateway):
    code = textwrap.dedent(f"""
        import sys
        from ibtargets.common import ibclient
        from support.drivers.ib import IbDriver
        ibclient.use({library!r})
        driver = IbDriver("127.0.0.1", {gateway.port})
        try:
            probe = driver.probe(901, timeout_s=5.0)
            driver.squat(902, timeout_s=5.0)
            print(probe.connected, probe.accounts, probe.server_version > 0, driver.squatted, probe.error)
        finally:
            driver.close()
        print(sorted(m for m in ("ib_insync", "ib_async") if m in sys.modules))
    """)
    run = _python(code, None)
    assert run.returncode == 0, run.stderr[-3000:]
    outcome, loaded = run.stdout.strip().splitlines()[-2:]
    assert outcome.startswith("True ('DU") and "True (902,)" in outcome, outcome
    assert loaded == f"[{library!r}]"
    assert {901, 902} <= {c["client_id"] for c in gateway.connections()}


@pytest.mark.parametrize("bad", ["ib-async", "ibasync", "IB_ASYNC", "ibapi", "ib_insync,ib_async"])
def test_a_bad_setting_is_a_clear_settings_error(bad):
    with pytest.raises(SettingsError, match=r"ib_library must be 'ib_insync' or 'ib_async', not "):
        Settings.from_userdata({"ib_library": bad})
    with pytest.raises(ibclient.LibraryError, match=rf"{ENV} must be 'ib_insync' or 'ib_async'"):
        ibclient.check_library(bad)
    with pytest.raises(BackendSettingsError, match=rf"{ENV}="):
        BackendSettings.from_env({ENV: bad})


def test_a_bad_variable_is_a_clear_settings_error(monkeypatch):
    monkeypatch.setenv(ENV, "ib-async")
    with pytest.raises(ibclient.LibraryError, match=rf"{ENV} must be 'ib_insync' or 'ib_async', not 'ib-async'"):
        ibclient.library_name()
    run = _python("import ibtargets.refbackend.pool", "ib-async")
    assert run.returncode != 0
    assert f"LibraryError: {ENV} must be 'ib_insync' or 'ib_async', not 'ib-async'" in run.stderr


def test_the_setting_defaults_to_ib_insync_and_reaches_the_embedded_backend():
    assert Settings().ib_library == "ib_insync" and Settings.from_userdata({}).ib_library == "ib_insync"
    assert BackendSettings.from_env({}).ib_library == "ib_insync"
    for library in ibclient.LIBRARIES:
        settings = Settings.from_userdata({"ib_library": library})
        assert backend_environment(settings, 4002)[ENV] == library
        assert BackendSettings.from_env(backend_environment(settings, 4002)).ib_library == library


def test_the_runner_stops_on_a_bad_library_before_any_scenario(tmp_path):
    run = subprocess.run([sys.executable, "-m", "ibresilience.main", "run", "--level", "basic",
                          "--reports-dir", str(tmp_path), "-D", "ib_library=ib-async"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "ib-resilience: ib_library must be 'ib_insync' or 'ib_async', not 'ib-async'" in run.stderr
    assert not list((tmp_path / "allure-results").glob("*-result.json"))


def test_refbackend_refuses_an_unknown_library(tmp_path):
    run = subprocess.run([str(Path(sys.executable).parent / "refbackend"), "serve", "--port", "0"], cwd=ROOT,
                         env={**os.environ, ENV: "ib-async", "REFBACKEND_DATA_DIR": str(tmp_path)},
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert f"refbackend: {ENV}='ib-async' is not ib_insync or ib_async" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("library", ibclient.LIBRARIES)
def test_the_run_properties_name_the_library_and_its_version(library):
    from types import SimpleNamespace

    from support import evidence

    def unreachable():
        raise ConnectionError("not asked here")

    targets = SimpleNamespace(gateway_control="", proxy_control="", api_base_url="http://127.0.0.1:1",
                              ib_host="127.0.0.1", ib_port=1, backend_ib_host="", backend_ib_port=0, cli=("refbackend",))
    world = SimpleNamespace(settings=Settings.from_userdata({"ib_library": library}), targets=targets,
                            accounts=(), api=SimpleNamespace(health=unreachable),
                            ib=SimpleNamespace(probe=lambda *_: unreachable()))
    properties = evidence.target_properties(world)
    assert properties["ib_library"] == library
    assert properties["ib_library.version"] == __import__(library).__version__
    assert properties["ib_insync.version"] == __import__("ib_insync").__version__
