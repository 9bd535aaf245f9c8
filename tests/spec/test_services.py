"""A managed backend's services: started in order before it, ready by their own check, stopped after it (the last
started first), their output in the run's logs and judged like the backend's, nothing left at the end."""

import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from support.drivers.backend_output import BackendOutput
from support.settings import Settings
from support.targets import EmbeddedTargets, port_taken

ROOT = Path(__file__).resolve().parents[2]
REFBACKEND = str(ROOT / ".venv" / "bin" / "refbackend")

#: A service: says when it starts and stops in the order file, listens on its port (HTTP /health), prints a line.
SERVICE = textwrap.dedent('''
    import http.server, os, signal, sys, threading
    name, port, order = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    def note(what):
        with open(order, "a") as f:
            f.write(f"{what} {name}\\n")
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()
        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Health)
    def stop(*_):
        note("stop")
        threading.Thread(target=server.shutdown).start()
    signal.signal(signal.SIGTERM, stop)
    note("start")
    print(f"{name} listening on {port} with STORE_FLAG={os.environ.get('STORE_FLAG')}", flush=True)
    if name == "cache":
        print("cache.py:9: RuntimeWarning: coroutine 'warm' was never awaited", flush=True)
    server.serve_forever()
''')

#: The backend: the reference backend under a wrapper that notes its start and stop and what it was given.
WRAPPER = textwrap.dedent('''
    import json, os, signal, subprocess, sys
    order, seen, store_port = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(order, "a") as f:
        f.write("start backend\\n")
    with open(seen, "w") as f:
        json.dump({"store_port": store_port, "env": dict(os.environ)}, f)
    child = subprocess.Popen(sys.argv[4:])
    signal.signal(signal.SIGTERM, lambda *_: None)   # the group's SIGTERM reaches the child once
    code = child.wait()
    with open(order, "a") as f:
        f.write("stop backend\\n")
    sys.exit(code)
''')


def _profile(folder: Path) -> Path:
    (folder / "service.py").write_text(SERVICE)
    (folder / "wrapper.py").write_text(WRAPPER)
    profile = folder / "mine.toml"
    profile.write_text(textwrap.dedent(f'''
        target = "managed"
        backend_command = "{sys.executable} {{profile_dir}}/wrapper.py {{run_dir}}/order {{run_dir}}/seen.json {{port:store}} {REFBACKEND} serve --host 127.0.0.1 --port {{api_port}}"
        backend_cwd = "{{profile_dir}}"
        cli = "{REFBACKEND}"
        backend_remove = ["data"]
        [backend_env]
        REFBACKEND_POOL_SIZE = "{{pool_limit}}"
        REFBACKEND_DATA_DIR = "data"
        IB_PACING_WAITS_S = "2,5,15"
        STORE_URL = "http://127.0.0.1:{{port:store}}"
        [cli_env]
        STORE_PORT = "{{port:store}}"
        [[services]]
        name = "store"
        command = "{sys.executable} {{profile_dir}}/service.py store {{port:store}} {{run_dir}}/order"
        env = {{ STORE_FLAG = 1 }}
        ready = {{ port = "{{port:store}}" }}
        lifetime = "run"
        [[services]]
        name = "cache"
        command = ["{sys.executable}", "{{profile_dir}}/service.py", "cache", "{{port:cache}}", "{{run_dir}}/order"]
        ready = {{ http = "http://127.0.0.1:{{port:cache}}/health" }}
        lifetime = "backend"
        ready_timeout_s = 20
    '''))
    return profile


def _order(logs: Path) -> list[str]:
    return (logs / "order").read_text().splitlines()


@pytest.mark.timeout(180)
def test_services_start_before_the_backend_stop_after_it_and_leave_nothing(tmp_path):
    (tmp_path / "profile").mkdir()
    settings = Settings.from_userdata({"profile": str(_profile(tmp_path / "profile")), "pool_limit": "4",
                                       "reports_dir": str(tmp_path / "reports")})
    logs = tmp_path / "logs"
    embedded = EmbeddedTargets(settings, logs)
    ports = dict(embedded.ports)
    assert set(ports) == {"store", "cache"} and len(set(ports.values())) == 2
    try:
        targets = embedded.start()
        assert _order(logs) == ["start store", "start cache", "start backend"]
        seen = (logs / "seen.json").read_text()
        assert '"IB_PACING_WAITS_S": "2,5,15"' in seen and '"REFBACKEND_POOL_SIZE": "4"' in seen
        store = ports["store"]
        assert f"http://127.0.0.1:{store}" in seen and f'"store_port": "{store}"' in seen
        assert dict(targets.cli_env) == {"STORE_PORT": str(ports["store"])}
        pids = {name: process.pid for name, process in embedded.services.items()}
        assert port_taken(ports["store"]) and port_taken(ports["cache"])

        embedded.start_backend()   # the 'backend' service restarts with the backend; the 'run' one lives on
        assert _order(logs)[3:] == ["stop backend", "stop cache", "start cache", "start backend"]
        assert embedded.services["store"].pid == pids["store"] and embedded.services["cache"].pid != pids["cache"]
        pids["cache 2"] = embedded.services["cache"].pid

        output = BackendOutput(Path(targets.backend_log), tuple((n, Path(p)) for n, p in targets.service_logs))
        assert "[service store] store listening on" in output.since(0) and "STORE_FLAG=1" in output.since(0)
        assert any("[service cache]" in line and "never awaited" in line for line in output.complaints_since(0))
    finally:
        embedded.stop()
    assert _order(logs)[7:] == ["stop backend", "stop cache", "stop store"]
    assert (logs / "service-store.log").read_text().startswith("$ ")
    assert not any(port_taken(port) for port in ports.values())
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
                   for pid in pids.values())


def test_a_service_that_never_gets_ready_fails_the_start_with_its_output_and_is_stopped(tmp_path):
    (tmp_path / "p.toml").write_text(textwrap.dedent(f'''
        target = "managed"
        backend_command = "never-started --port {{api_port}}"
        cli = "x"
        [[services]]
        name = "mute"
        command = ["{sys.executable}", "-c", "import time; print('mute is up, listening nowhere', flush=True); time.sleep(60)"]
        ready = {{ command = "exit 1" }}
        ready_timeout_s = 1
    '''))
    settings = Settings.from_userdata({"profile": str(tmp_path / "p.toml"), "reports_dir": str(tmp_path / "r")})
    embedded = EmbeddedTargets(settings, tmp_path / "logs")
    try:
        with pytest.raises(Exception, match=r"service mute not ready within 1 s \(ready: command exit 1\)"
                                            r"[\s\S]*mute is up"):
            embedded.start()
        assert embedded.services == {}
    finally:
        embedded.stop()


def test_the_observer_reads_each_service_into_the_history_under_its_name(tmp_path):
    from support.observer import Observer
    from support.run_history import RunHistory

    (tmp_path / "backend.log").write_text("INFO up\n")
    (tmp_path / "service-store.log").write_text("store up\nRuntimeWarning: coroutine 'x' was never awaited\n")
    history = RunHistory()
    observer = Observer(history, tmp_path / "backend.log", lambda: "", 1.0,
                        services=(("store", tmp_path / "service-store.log"),))
    observer.sync()
    assert [(line.source, line.text) for line in history.output] == [
        ("backend", "INFO up"), ("service store", "store up"),
        ("service store", "RuntimeWarning: coroutine 'x' was never awaited")]
