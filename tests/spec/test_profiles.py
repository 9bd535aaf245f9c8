"""Profiles: environments as tables, lists, services, placeholders ({profile_dir}, {port:NAME}, the suite's facts),
what the backend lacks, facts declared absent, and settings refused for a target they do nothing for."""

import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from support.capabilities import CAPABILITIES, needed_by, taken_by_route
from support.settings import Settings, SettingsError, env_pairs, load_profile
from support.targets import EmbeddedTargets, allot_ports
from support.world import World

ROOT = Path(__file__).resolve().parents[2]

MANAGED = textwrap.dedent('''
    target = "managed"
    backend_command = "python {profile_dir}/wrapper.py --api-port {api_port} --ib-side-port {port:ib_side} --store-port {port:store}"
    backend_cwd = "{profile_dir}"
    cli = "mycli"
    lacks = ["sync_data_load"]
    pool_limit = 4
    idle_timeout_s = 30
    [backend_env]
    IB_HOST = "{ib_host}"
    IB_PORT = "{ib_port}"
    IB_PACING_WAITS_S = "2,5,15"
    POOL_SIZE = "{pool_limit}"
    IDLE_S = "{idle_timeout_s}"
    VALIDATE_S = "{validation_s}"
    RETRIES = 3
    VERBOSE = true
    WAITS = [2, 5, 15]
    [backend_tuning_env]
    HEALTH_S = "1"
    [cli_env]
    SOME_VAR = "x"
    [[services]]
    name = "store"
    command = "python {profile_dir}/store.py --port {port:store} --dir {run_dir}/store"
    cwd = "{profile_dir}"
    env = { STORE_FLAG = "1" }
    ready = { port = "{port:store}" }
    lifetime = "run"
    ready_timeout_s = 30
''')


def _write(folder: Path, text: str, name: str = "mine.toml") -> str:
    path = folder / name
    path.write_text(text)
    return str(path)


def test_a_managed_profile_with_tables_lists_services_and_placeholders(tmp_path):
    settings = Settings.from_userdata({"profile": _write(tmp_path, MANAGED)})
    here = str(tmp_path.resolve())
    assert settings.profile_dir == here and settings.backend_cwd == here
    assert settings.backend_command[:2] == ("python", f"{here}/wrapper.py")
    env = dict(settings.backend_env)
    assert env["IB_PACING_WAITS_S"] == "2,5,15" and env["POOL_SIZE"] == "4" and env["IDLE_S"] == "30"
    assert env["VALIDATE_S"] == "3" and env["RETRIES"] == "3" and env["VERBOSE"] == "true" and env["WAITS"] == "2,5,15"
    assert env["IB_HOST"] == "{ib_host}"                 # filled when the backend starts
    assert dict(settings.backend_tuning_env) == {"HEALTH_S": "1"} and dict(settings.cli_env) == {"SOME_VAR": "x"}
    assert settings.lacks == ("sync_data_load",)
    (store,) = settings.services
    assert store.name == "store" and store.command[1] == f"{here}/store.py" and store.cwd == here
    assert store.env == (("STORE_FLAG", "1"),) and (store.ready_kind, store.ready) == ("port", "{port:store}")
    assert store.lifetime == "run" and store.ready_timeout_s == 30
    assert settings.port_names == ("ib_side", "store")


def test_named_ports_are_distinct_free_ports_allotted_once_per_run(tmp_path):
    settings = Settings.from_userdata({"profile": _write(tmp_path, MANAGED), "reports_dir": str(tmp_path)})
    targets = EmbeddedTargets(settings, tmp_path / "logs")
    assert set(targets.ports) == {"ib_side", "store"} and len(set(targets.ports.values())) == 2
    values = targets._values()
    assert values["port:store"] == targets.ports["store"] and values["run_dir"] == str(tmp_path / "logs")
    assert targets._values()["api_port"] == values["api_port"]      # the API's port too: one per run
    assert len(set(allot_ports(tuple(f"p{i}" for i in range(20))).values())) == 20


def test_a_dash_d_environment_still_works_and_its_values_may_hold_commas():
    assert env_pairs("backend_env", "A=1,IB_PACING_WAITS_S=2,5,15,B=x") == (
        ("A", "1"), ("IB_PACING_WAITS_S", "2,5,15"), ("B", "x"))
    settings = Settings.from_userdata({"target": "managed", "backend_command": "srv {api_port}", "cli": "c",
                                       "backend_env": "POOL={pool_limit},LOG=info"})
    assert dict(settings.backend_env) == {"POOL": "5", "LOG": "info"}
    with pytest.raises(SettingsError, match="must be a table or K=V,K=V"):
        env_pairs("backend_env", "just words")
    with pytest.raises(SettingsError, match=r"backend_command uses \{profile_dir\}, but no profile file was given"):
        Settings.from_userdata({"target": "managed", "backend_command": "{profile_dir}/srv", "cli": "c"})


@pytest.mark.parametrize("extra, message", [
    ('lacks = ["sync_data_lod"]', r"lacks: unknown capability 'sync_data_lod'; valid: sync_data_load, async_data_load"),
    ('backend_reset = "rm -rf {pool_limt}"',
     r"backend_reset uses an unknown placeholder \{pool_limt\}: did you mean \{pool_limit\}\? known: "),
    ('[cli_env]\nA = "{health_check_interval_s}"',
     r"cli_env uses \{health_check_interval_s\}, but health_check_interval_s is not stated \(0: the health interval"),
    ('[[services]]\nname = "db"\ncommand = "db"\nready = { tcp = "1" }', r"services: 'db': ready must be one of"),
    ('[[services]]\nname = "db"\ncommand = "db"\nready = { port = "1" }\nlifetime = "forever"',
     r"services: 'db': lifetime must be 'run' or 'backend', not 'forever'"),
    ('[[services]]\nname = "db"\nready = { port = "1" }', r"services: 'db': needs a command"),
    ('[[services]]\nname = "db"\ncommand = "db"\nready = { port = "1" }\nrestart = true',
     r"services: 'db': unknown key 'restart'"),
    ('[[services]]\ncommand = "db"\nready = { port = "1" }', r"services #1: needs a name"),
    ('[other]\nx = 1', r"only backend_env, backend_tuning_env, cli_env may be tables .* not other"),
    ('max_idle_s = 3', r"max_idle_s does nothing for the managed target: it tunes the reference backend only"),
    ('health_interval_s = 3', r"health_interval_s does nothing for the managed target"),
    ('client_id_span = 3', r"client_id_span does nothing for the managed target"),
    ('connect_timeout_s = 3', r"connect_timeout_s does nothing for the managed target: .*\{connect_timeout_s\}"),
    ('backend_log = "x.log"', r"backend_log does nothing for the managed target"),
])
def test_a_bad_profile_is_one_line_naming_what_is_wrong(tmp_path, extra, message):
    text = 'target = "managed"\nbackend_command = "srv --port {api_port}"\ncli = "c"\n' + extra + "\n"
    with pytest.raises(SettingsError, match=message) as raised:
        Settings.from_userdata({"profile": _write(tmp_path, text)})
    assert "\n" not in str(raised.value)


def test_braces_of_the_command_s_own_are_left_alone(tmp_path):
    text = ('target = "managed"\nbackend_command = "srv {api_port}"\ncli = "c"\n'
            'backend_reset = "awk \'{print}\' log > /dev/null"\n')
    assert Settings.from_userdata({"profile": _write(tmp_path, text)}).backend_reset == "awk '{print}' log > /dev/null"


def test_a_fact_used_as_a_placeholder_is_no_idle_setting(tmp_path):
    text = ('target = "managed"\nbackend_command = "srv {api_port}"\ncli = "c"\nconnect_timeout_s = 7\n'
            '[backend_env]\nIB_TIMEOUT = "{connect_timeout_s}"\n')
    assert dict(Settings.from_userdata({"profile": _write(tmp_path, text)}).backend_env) == {"IB_TIMEOUT": "7"}


@pytest.mark.parametrize("userdata, message", [
    ({"backend_env": "A=1"}, "backend_env does nothing for the embedded target: the suite starts no backend of yours"),
    ({"api_port": "9000"}, "api_port does nothing for the embedded target"),
    ({"target": "external", "api_base_url": "http://h:1", "ib_port": "4002", "cli": "c", "backend_command": "srv"},
     "backend_command does nothing for the external target: the suite starts no backend"),
    ({"target": "external", "api_base_url": "http://h:1", "ib_port": "4002", "cli": "c", "max_idle_s": "3"},
     "max_idle_s does nothing for the external target"),
    ({"gateway_control": "http://127.0.0.1:1"}, "gateway_control does nothing for the embedded target"),
    ({"services": "store"}, "services must be declared in a profile"),
])
def test_a_setting_that_does_nothing_for_the_target_is_refused(userdata, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_userdata(userdata)


def test_embedded_tuning_and_lacks_stay_accepted_where_they_act():
    settings = Settings.from_userdata({"max_idle_s": "3", "connect_timeout_s": "2", "lacks": "cli_cleanup,idle_gc"})
    assert settings.tuning.max_idle_s == 3 and settings.lacks == ("cli_cleanup", "idle_gc")


def test_a_fact_the_backend_does_not_have_is_declared_absent(tmp_path):
    text = ('target = "managed"\nbackend_command = "srv {api_port}"\ncli = "c"\nhealth_check_interval_s = "none"\n'
            'lacks = ["cli_cleanup"]\n')
    settings = Settings.from_userdata({"profile": _write(tmp_path, text)})
    assert settings.profile.health_check_interval_s == 0 and settings.lacks == ("cli_cleanup", "health_check_loop")
    world = SimpleNamespace(settings=settings, missing={})
    assert World.lacking(world, "health_check_loop").startswith("the backend does not provide health_check_loop (")
    assert World.lacking(world, "idle_gc") == ""
    from support import claims
    assert claims.health_interval_s(SimpleNamespace(settings=settings)) == 0.0   # never asked of the backend


def test_a_missing_route_is_learnt_once_as_the_capabilities_it_carries():
    world = SimpleNamespace(settings=Settings(), missing={})
    World.learn_missing(world, "POST", "/data/load?async_mode=false", "contract: not provided: the API has no "
                        "POST /api/v1/data/load?async_mode=false (HTTP 404)", "Discover, load and read back")
    World.learn_missing(world, "POST", "/data/load?async_mode=false", "again", "A later scenario")
    assert set(world.missing) == {"sync_data_load"}, "the asynchronous load is another route: it may be there"
    assert taken_by_route("POST", "/data/load?async_mode=true") == ("async_data_load",)
    assert taken_by_route("POST", "/data/load") == ("sync_data_load",)
    reason = World.lacking(world, "sync_data_load")
    assert "the API has no POST /api/v1/data/load" in reason and "found by 'Discover, load and read back'" in reason
    assert taken_by_route("DELETE", "/operations/op-1") == ("operation_cancel",)
    assert taken_by_route("GET", "/ib/status") == ()      # no capability: every scenario judges it (and fails)


def test_the_ktrdr_profile_keeps_its_meaning():
    settings = Settings.from_userdata({"profile": "ktrdr", "backend_cwd": "/srv/ktrdr"})
    assert dict(settings.backend_env) == {"IB_HOST": "{ib_host}", "IB_PORT": "{ib_port}", "IB_CLIENT_ID": "1"}
    assert settings.backend_command[0] == "/srv/ktrdr/.venv/bin/uvicorn" and settings.api_port == 8000
    assert (settings.profile.pool_limit, settings.profile.idle_timeout_s, settings.profile.health_check_interval_s) \
        == (25, 300, 60)
    assert settings.lacks == () and settings.services == () and isinstance(load_profile("ktrdr")["backend_env"], dict)


def _scenarios():
    from behave.parser import parse_file

    for path in sorted((ROOT / "features").glob("*.feature")):
        feature = parse_file(str(path))
        background = [s.name for s in feature.background.steps] if feature.background else []
        for scenario in feature.walk_scenarios():
            yield path.name, scenario, background + [s.name for s in scenario.steps]


def test_every_scenario_tags_the_capabilities_its_steps_use_and_only_known_ones():
    untagged, unknown = [], []
    for name, scenario, steps in _scenarios():
        tags = set(scenario.effective_tags)
        needed = set().union(*(needed_by(text) for text in steps))
        untagged += [f"{name}:{scenario.line} {scenario.name}: @uses.{c}" for c in sorted(needed)
                     if f"uses.{c}" not in tags]
        unknown += [f"{name}:{scenario.line} @{t}" for t in tags
                    if t.startswith("uses.") and t.removeprefix("uses.") not in CAPABILITIES]
    assert not untagged and not unknown, untagged + unknown


def test_the_backend_authors_page_names_every_capability():
    page = (ROOT / "docs" / "backend-authors.md").read_text()
    assert [c for c in CAPABILITIES if f"`{c}`" not in page] == []


def test_preflight_names_a_service_whose_program_is_missing(tmp_path):
    from support.preflight import programs_missing

    text = ('target = "managed"\nbackend_command = "srv {api_port}"\ncli = "true"\n'
            '[[services]]\nname = "db"\ncommand = "/nonexistent/db --port {port:db}"\nready = { port = "{port:db}" }\n')
    settings = Settings.from_userdata({"profile": _write(tmp_path, text)})
    assert "service db's command '/nonexistent/db' is not an executable program" in programs_missing(settings)


def test_a_missing_field_is_learnt_once_as_the_capability_it_carries():
    world = SimpleNamespace(settings=Settings(), missing={})
    World.learn_missing(world, "", "", "contract: not provided: GET /ib/resilience answers without "
                        "phase_2_garbage_collection.health_check_interval", "The default timings",
                        "phase_2_garbage_collection.health_check_interval")
    World.learn_missing(world, "", "", "… without client_id_range.min", "The IB configuration", "client_id_range.min")
    assert list(world.missing) == ["health_check_loop"]
    assert "answers without phase_2_garbage_collection.health_check_interval (found by 'The default timings')" \
        in World.lacking(world, "health_check_loop")
