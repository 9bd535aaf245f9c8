"""The suite as an installed tool: the wheel's contents, a fresh venv running the basic level, the image and CI recipes."""

from __future__ import annotations

import email
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import yaml

from ibresilience import runner

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.xdist_group("install")
#: What a build needs from the repository (the Dockerfile copies the same): nothing else may be required.
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE",
           "support", "features", "ibtargets", "ibreport", "ibresilience")
TOOL_PACKAGES = {"ibtargets", "ibreport", "ibresilience"}
SPEC = "ibresilience/_spec"


def _bounded(command: list[str], timeout_s: float, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, **kwargs)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel pip builds (as ``pipx install PATH`` does) from a copy of exactly :data:`SOURCES`."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, source / name)
    done = _bounded([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(work / "dist"), str(source)],
                    300)
    assert done.returncode == 0, done.stderr[-3000:]
    (found,) = (work / "dist").glob("ib_resilience-*.whl")
    return found


def _names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def _metadata(wheel: Path, name: str) -> str:
    with zipfile.ZipFile(wheel) as archive:
        info = next(n for n in archive.namelist() if n.endswith(f".dist-info/{name}"))
        return archive.read(info).decode()


def test_the_wheel_carries_the_spec_inside_the_tool_and_no_top_level_support(wheel):
    names = _names(wheel)
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == TOOL_PACKAGES, tops
    assert set(_metadata(wheel, "top_level.txt").split()) == TOOL_PACKAGES
    spec_files = {str(p.relative_to(ROOT)) for folder in ("support", "features") for p in (ROOT / folder).rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts}
    carried = {n.removeprefix(SPEC + "/") for n in names if n.startswith(SPEC + "/")}
    assert spec_files == carried, f"missing: {sorted(spec_files - carried)}; extra: {sorted(carried - spec_files)}"
    assert {"features/environment.py", "support/profiles/ktrdr.toml"} <= carried
    assert "ibresilience/spec_home.py" in names and "ibresilience/spec_behave.py" in names


def test_the_wheel_names_its_commands_license_and_dependency_ranges(wheel):
    assert re.search(r"^ib-resilience = ibresilience\.main:main$", _metadata(wheel, "entry_points.txt"), re.M)
    assert re.search(r"^refbackend = ibtargets\.refbackend\.cli:main$", _metadata(wheel, "entry_points.txt"), re.M)
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in _names(wheel))
    metadata = email.message_from_string(_metadata(wheel, "METADATA"))
    assert metadata["License-Expression"] == "MIT"
    required = metadata.get_all("Requires-Dist")
    default = [r for r in required if "extra ==" not in r]
    assert all("<" in r for r in default), f"every dependency with a range: {default}"
    assert any(r.startswith("ib_insync<0.10,>=0.9.86") for r in default), default
    assert not any(r.startswith("matplotlib") for r in default), "plots are an extra"
    assert 'matplotlib<4,>=3.8; extra == "plots"' in required
    assert {"fastapi", "uvicorn", "typer"} <= {re.split(r"[<>=!~; ]", r)[0] for r in default}, \
        "the embedded reference backend is what a plain `ib-resilience run` judges"


def test_reports_default_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = runner.build_parser().parse_args(["--backend-cwd", "backend", "--profile", "mine.toml",
                                             "--durations", "old"])
    assert args.reports_dir == tmp_path / "reports"
    assert (args.backend_cwd, args.profile) == (str(tmp_path / "backend"), str(tmp_path / "mine.toml"))
    assert args.durations == [tmp_path / "old"]
    assert runner.build_parser().parse_args(["--profile", "ktrdr"]).profile == "ktrdr"  # a name stays a name


def _fresh_venv(where: Path) -> Path:
    base = getattr(sys, "_base_executable", sys.executable)
    done = _bounded([base, "-m", "venv", str(where)], 120)
    assert done.returncode == 0, done.stderr
    return where / "bin"


def _clean_env(bin_dir: Path) -> dict[str, str]:
    """No trace of this checkout or its venv (nor an Allure CLI): only the fresh venv and the system's tools."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "ALLURE", "PYTHONHOME")}
    return {**env, "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin"}


@pytest.mark.timeout(900)
def test_a_fresh_venv_runs_the_basic_level_from_an_empty_directory(wheel, tmp_path):
    """The issue's definition of done: pip install the wheel into a fresh venv outside the repository, run the basic
    level from an empty directory: 14 passed, ./reports written; ``import support`` fails there; ``--report``
    without an Allure CLI writes the Markdown and says in one line how to get the HTML."""
    started = time.monotonic()
    bin_dir = _fresh_venv(tmp_path / "venv")
    env = _clean_env(bin_dir)
    done = _bounded([str(bin_dir / "python"), "-m", "pip", "install", "-q", str(wheel)], 600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    installed_s = time.monotonic() - started
    empty = tmp_path / "empty"
    empty.mkdir()
    for module in ("support", "features"):
        probe = _bounded([str(bin_dir / "python"), "-c", f"import {module}"], 60, cwd=empty, env=env)
        assert probe.returncode == 1 and f"No module named '{module}'" in probe.stderr, probe.stderr
    started = time.monotonic()
    run = _bounded([str(bin_dir / "ib-resilience"), "run", "--level", "basic", "--report"], 700, cwd=empty, env=env)
    ran_s = time.monotonic() - started
    print(f"fresh venv + pip install: {installed_s:.0f} s; basic level with --report: {ran_s:.0f} s")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-3000:]
    assert re.search(r"level basic: 14 scenarios passed, 0 failed, 0 errors, 0 skipped, 0 not run", run.stdout), \
        run.stdout[-2000:]
    reports = empty / "reports"
    assert (reports / "run-result.json").is_file() and list((reports / "junit").glob("TESTS-*.xml"))
    assert len(list(reports.glob("resilience_test_report_*.md"))) == 1
    hint = [line for line in run.stderr.splitlines() if "Allure HTML not generated" in line]
    assert len(hint) == 1 and "npx allure-commandline generate" in hint[0] and "ALLURE=" in hint[0], run.stderr
    assert sorted(p.name for p in empty.iterdir()) == ["reports"], "the run writes nothing but ./reports"
    version = _bounded([str(bin_dir / "ib-resilience"), "--version"], 60, cwd=empty, env=env)
    assert version.stdout.strip() == "ib-resilience 0.1.0", version.stderr


# ------------------------------------------------------------------------------------------- the recipes

def _dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions (continuations joined, comments dropped) as (INSTRUCTION, arguments)."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_the_dockerfile_builds_the_wheel_from_what_the_build_needs_and_runs_the_basic_level():
    """No Docker daemon here: what the image does is checked against this repository, and the steps it runs
    (build the wheel from :data:`SOURCES`, pip install it, ``ib-resilience run --level basic``) are the fresh-venv
    test's."""
    steps = _dockerfile()
    bases = [args for op, args in steps if op == "FROM"]
    assert [b.split()[0] for b in bases] == ["python:3.11-slim", "python:3.11-slim"]
    copied = [shlex.split(args) for op, args in steps if op == "COPY" and not args.startswith("--from")]
    sources = {src for parts in copied for src in parts[:-1]}
    assert sources == set(SOURCES), f"the image copies {sorted(sources)}, the build needs {sorted(SOURCES)}"
    assert all((ROOT / src).exists() for src in sources)
    runs = " ".join(args for op, args in steps if op == "RUN")
    assert "python -m build --wheel" in runs and "pip install --no-cache-dir /dist/*.whl" in runs
    entry = [a for op, args in steps if op == "ENTRYPOINT" for a in json.loads(args)]
    command = [a for op, args in steps if op == "CMD" for a in json.loads(args)]
    assert entry + command == ["ib-resilience", "run", "--level", "basic"]
    args = runner.build_parser().parse_args(command[1:])
    assert args.level == "basic"
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".venv", "node_modules", "reports", ".git"} <= set(ignored)


def _ib_resilience_runs(workflow: dict) -> list[list[str]]:
    """Every ``ib-resilience run`` command line of the workflow's steps (expressions replaced by a word)."""
    found = []
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            script = re.sub(r"\$\{\{[^}]*\}\}", "VALUE", step.get("run", "")).replace("\\\n", " ")
            for line in script.splitlines():
                words = shlex.split(line, comments=True)
                if words[:2] == ["ib-resilience", "run"]:
                    found.append(words[2:])
    return found


def test_the_ci_example_is_valid_and_its_commands_exist():
    workflow = yaml.safe_load((ROOT / "ci" / "examples" / "github-actions.yml").read_text(encoding="utf-8"))
    assert set(workflow["jobs"]) == {"build", "reference", "your-backend"}
    commands = _ib_resilience_runs(workflow)
    assert len(commands) == 2
    for argv in commands:
        runner.build_parser().parse_args(argv)  # an unknown option or value exits 2 here
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    assert any("python -m build --wheel" in step.get("run", "") for step in steps)
    assert sum("pipx install dist/*.whl" in step.get("run", "") for step in steps) == 2
    uploaded = [step["with"]["path"] for step in steps if step.get("uses", "").startswith("actions/upload-artifact")
                and "reports" in str(step["with"]["name"])]
    assert uploaded == ["reports/", "reports/"], "the runs write ./reports (the default) and upload it"
