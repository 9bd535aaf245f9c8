"""Workers on one machine and shards across CI runners: behave's own selection, a duration-balanced partition,
and one set of results merged from many.

A *worker* is one behave process with its own embedded stack (gateway simulator → fault proxy → reference
backend on free ports, its own logs), started by ``features/environment.py`` as in a sequential run. The runner
starts N of them, each on a fixed list of scenario locations (``features/x.feature:LINE``, behave's own
selection), and merges what they wrote. A *shard* is one part of the same partition, computed identically on
every CI runner; ``ib-resilience report --merge`` puts the shards' results together.

The partition is the longest-processing-time-first rule: scenarios sorted by their expected duration
(longest first, ties broken by location), each given to the part with the least expected work so far (ties:
the lowest part). Expected durations come from earlier runs (Allure results and JUnit, kept in
``scenario-durations.json``), over the durations the suite ships (:data:`TYPICAL_DURATIONS`: the reference
backend's, as a managed target) so that a first run is balanced too; a scenario with no duration from either
counts as the median of the known ones.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ibreport.record import Selected, feature_stem, scenario_key
from support.settings import PROFILES_DIR, ROOT

FEATURES = ROOT / "features"
#: Where a run keeps what it learnt about scenario durations (merged over runs, so a basic run does not make
#: the standard level's durations unknown).
DURATIONS_FILE = "scenario-durations.json"
#: The durations the suite ships: each scenario's, measured on the reference backend as a managed target
#: (``make typical-durations FROM=<reports folder>`` rewrites them; a test keeps every scenario in them).
TYPICAL_DURATIONS = PROFILES_DIR / "typical-durations.json"
#: Each worker's own folder under the reports directory: its JUnit, its server logs, its behave output.
WORKERS_DIR = "workers"
#: A feature tag: the feature's scenarios share work done once per behave process (the nemesis's schedule), so
#: the partition keeps them in one worker and one shard.
TOGETHER_TAG = "together"
#: Allure files that describe a run rather than a scenario (merged, not copied).
RUN_FILES = ("environment.properties", "executor.json", "categories.json", "ib-resilience-run.json")


# ------------------------------------------------------------------------------------------- selection

@dataclass(frozen=True)
class Scenario:
    """One selected scenario (an outline's example row is a scenario of its own)."""

    feature_file: str   # relative to the project root, e.g. ``features/cli.feature``
    line: int
    name: str
    feature: str
    together: bool = False  # its feature is tagged @together: its scenarios go to one worker (shared set-up)

    @property
    def location(self) -> str:
        """``features/cli.feature:31``: what behave selects with, and what Allure labels ``location``."""
        return f"{self.feature_file}:{self.line}"

    @property
    def key(self) -> str:
        """The scenario's identity across runs: ``<feature stem>::<name>`` (stable when lines move)."""
        return scenario_key(feature_stem(self.feature_file), self.name)

    @property
    def order(self) -> tuple[str, int]:
        """Sort key: feature file, then line."""
        return self.feature_file, self.line

    @property
    def selected(self) -> Selected:
        """As the run's record knows it (``ibreport.record``)."""
        return Selected(self.location, self.name, self.feature)

    @property
    def unit(self) -> str:
        """What the partition hands out whole: the feature of a ``@together`` feature, else the scenario."""
        return self.feature_file if self.together else self.location


@contextmanager
def _in_root() -> Iterator[None]:
    """behave reads its configuration (``pyproject.toml`` [tool.behave]) from the working directory."""
    before = os.getcwd()
    os.chdir(ROOT)
    try:
        yield
    finally:
        os.chdir(before)


def select(tags: str, names: Sequence[str] = ()) -> list[Scenario]:
    """The scenarios behave would run for ``--tags tags`` and ``--name`` each of ``names``, in feature order.

    behave's own configuration, parser and tag expressions decide (default tags of ``pyproject.toml``
    included), so a worker given these locations runs exactly what a sequential run would.
    """
    found = [Scenario(os.path.relpath(os.path.abspath(model.location.filename), ROOT), model.line,
                      model.name.strip(), model.feature.name, TOGETHER_TAG in model.feature.tags)
             for model in selected_models(tags, names)]
    return sorted(found, key=lambda s: s.order)


def selected_models(tags: str, names: Sequence[str] = ()) -> list:
    """behave's own scenario objects (outline rows expanded, Background steps in ``all_steps``) that
    ``--tags tags`` and ``--name`` select, in feature order."""
    from behave.configuration import Configuration
    from behave.runner_util import collect_feature_locations, parse_features

    command = [str(FEATURES), "--tags", tags]
    for name in names:
        command += ["--name", name]
    with _in_root():
        config = Configuration(command_args=command, load_config=True)
        features = parse_features(collect_feature_locations(config.paths), language=config.lang)
        return [scenario for feature in features for scenario in feature.walk_scenarios()
                if scenario.should_run(config)]


# ------------------------------------------------------------------------------------------- durations

def read_durations(path: Path, base: Mapping[str, float] | None = None) -> dict[str, float]:
    """Scenario durations (key → seconds) found at ``path``, over ``base``: a durations file, a JUnit or Allure
    results folder, or a reports folder holding them. Allure's time (hooks included) wins over JUnit's (steps
    only); a failed scenario (which may have stopped early) only ever raises a duration already known."""
    path = Path(path)
    found: dict[str, float] = dict(base or {})
    if path.is_file():
        return _layer(found, _json_durations(path) if path.suffix == ".json" else _junit_file_durations(path))
    if not path.is_dir():
        return found
    _layer(found, _json_durations(path / DURATIONS_FILE))
    for junit in [*sorted((path / "junit").glob("TESTS-*.xml")), *sorted(path.glob("TESTS-*.xml"))]:
        _layer(found, _junit_file_durations(junit))
    for results in (path / "allure-results", path):
        _layer(found, _allure_durations(results))
    return found


def _layer(durations: dict[str, float], timed: Mapping[str, tuple[float, bool]]) -> dict[str, float]:
    """Put ``timed`` (key → (seconds, passed)) over ``durations``, in place."""
    for key, (seconds, passed) in timed.items():
        durations[key] = seconds if passed or key not in durations else max(durations[key], seconds)
    return durations


def _json_durations(path: Path) -> dict[str, tuple[float, bool]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): (float(v), True) for k, v in (data.get("durations") or {}).items()
            if isinstance(v, (int, float)) and v >= 0} if isinstance(data, dict) else {}


def _junit_file_durations(path: Path) -> dict[str, tuple[float, bool]]:
    from ibreport.results import xml_safe

    stem = path.name.removeprefix("TESTS-").removesuffix(".xml")
    try:
        root = ElementTree.fromstring(xml_safe(path.read_text(encoding="utf-8", errors="replace")))
    except (OSError, ElementTree.ParseError):
        return {}
    found = {}
    for case in root.iter("testcase"):
        status = case.get("status") or "passed"
        if status in ("passed", "failed") and case.get("name"):
            try:
                found[scenario_key(stem, case.get("name", ""))] = (float(case.get("time") or 0.0), status == "passed")
            except ValueError:
                continue
    return found


def allure_scenario_results(results_dir: Path) -> Iterator[tuple[dict, str]]:
    """Each scenario result of an Allure results folder with its ``location`` label ('' when it has none); the
    run-wide invariants' results (support/run_evidence.py) are no scenarios and are left out."""
    for path in sorted(Path(results_dir).glob("*-result.json")):
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if any(label.get("name") == "tag" and label.get("value") == "run_wide" for label in raw.get("labels") or []):
            continue
        yield raw, next((str(label.get("value")) for label in raw.get("labels") or []
                         if label.get("name") == "location"), "")


def _allure_durations(results_dir: Path) -> dict[str, tuple[float, bool]]:
    found = {}
    for raw, location in allure_scenario_results(results_dir):
        start, stop = raw.get("start") or 0, raw.get("stop") or 0
        if location and raw.get("status") in ("passed", "failed", "broken") and stop >= start > 0:
            found[scenario_key(feature_stem(location.rsplit(":", 1)[0]), str(raw.get("name") or ""))] = \
                ((stop - start) / 1000.0, raw.get("status") == "passed")
    return found


def typical_durations() -> dict[str, float]:
    """The durations the suite ships (:data:`TYPICAL_DURATIONS`; empty if the file is missing)."""
    return {key: seconds for key, (seconds, _) in _json_durations(TYPICAL_DURATIONS).items()}


def write_typical_durations(reports_dir: Path, keys: Iterable[str]) -> Path:
    """Rewrite :data:`TYPICAL_DURATIONS` from a run's reports folder, for the scenarios ``keys`` (a scenario the
    run did not time keeps its shipped duration)."""
    known = typical_durations() | read_durations(Path(reports_dir))
    kept = {key: round(known[key], 3) for key in sorted(keys) if key in known}
    TYPICAL_DURATIONS.write_text(json.dumps({"durations": kept}, indent=1) + "\n", encoding="utf-8")
    return TYPICAL_DURATIONS


def over_typical(measured: Mapping[str, float]) -> dict[str, float]:
    """A partition's durations: ``measured`` ones over the ones the suite ships (:func:`typical_durations`)."""
    return typical_durations() | dict(measured)


def load_durations(reports_dir: Path | None, extra: Iterable[Path] = ()) -> dict[str, float]:
    """What the reports folder knows (its durations file and its last run's Allure results and JUnit; nothing
    when None), then each of ``extra`` over it (``--durations``)."""
    durations = read_durations(Path(reports_dir)) if reports_dir is not None else {}
    for path in extra:
        durations = read_durations(Path(path), durations)
    return durations


def remember_durations(reports_dir: Path, durations: Mapping[str, float]) -> Path:
    """Merge ``durations`` into the reports folder's durations file; return its path."""
    path = Path(reports_dir) / DURATIONS_FILE
    known = {k: v for k, (v, _) in _json_durations(path).items()} | {k: round(float(v), 3) for k, v in durations.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"durations": dict(sorted(known.items()))}, indent=1) + "\n", encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------- partition

def parse_shard(text: str) -> tuple[int, int]:
    """``"2/4"`` → ``(2, 4)``.

    Raises:
        ValueError: not ``I/N`` with 1 ≤ I ≤ N.
    """
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise ValueError(f"--shard must be I/N with 1 ≤ I ≤ N (e.g. 2/4), not {text!r}")
    return int(match.group(1)), int(match.group(2))


def expected_durations(scenarios: Sequence[Scenario], durations: Mapping[str, float]) -> dict[Scenario, float]:
    """Each scenario's expected duration: the recorded one, else the median of the recorded ones (1 s when
    none is recorded)."""
    known = [durations[s.key] for s in scenarios if s.key in durations]
    default = statistics.median(known) if known else 1.0
    return {s: durations.get(s.key, default) for s in scenarios}


def partition(scenarios: Sequence[Scenario], durations: Mapping[str, float], parts: int) -> list[list[Scenario]]:
    """Longest first, each to the part with the least expected work (ties: lowest part; equal durations: by
    location), so every shard computes the same partition. A ``@together`` feature goes whole, as one unit of
    its scenarios' summed durations. Each part is returned in feature order."""
    if parts < 1:
        raise ValueError("parts must be at least 1")
    expected = expected_durations(scenarios, durations)
    units: dict[str, list[Scenario]] = {}
    for scenario in sorted(scenarios, key=lambda s: s.order):
        units.setdefault(scenario.unit, []).append(scenario)
    weight = {unit: sum(expected[s] for s in members) for unit, members in units.items()}
    loads = [0.0] * parts
    out: list[list[Scenario]] = [[] for _ in range(parts)]
    for unit in sorted(units, key=lambda u: (-weight[u], units[u][0].order)):
        part = min(range(parts), key=lambda i: (loads[i], i))
        out[part] += units[unit]
        loads[part] += weight[unit]
    return [sorted(part, key=lambda s: s.order) for part in out]


def expected_seconds(scenarios: Iterable[Scenario], durations: Mapping[str, float],
                     among: Sequence[Scenario] | None = None) -> float:
    """Expected work of ``scenarios`` (unknown ones at the median of ``among``, default: themselves)."""
    scenarios = list(scenarios)
    expected = expected_durations(among if among is not None else scenarios, durations)
    return sum(expected.get(s, durations.get(s.key, 0.0)) for s in scenarios)


def write_locations(path: Path, scenarios: Sequence[Scenario]) -> Path:
    """A behave ``@file``: one absolute location per line, feature by feature (behave needs them grouped)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{ROOT / s.feature_file}:{s.line}\n" for s in sorted(scenarios, key=lambda s: s.order)),
                    encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------- merging

def merge_junit(sources: Sequence[Path], target: Path, order: Sequence[Scenario] = ()) -> dict[str, int]:
    """Merge behave's ``TESTS-<feature>.xml`` files of several folders into ``target``: one testsuite per
    feature, its testcases in ``order`` (feature order) where known, its totals summed. Returns scenarios per
    JUnit file name."""
    from ibreport.results import xml_safe

    target.mkdir(parents=True, exist_ok=True)
    for stale in target.glob("TESTS-*.xml"):
        stale.unlink()
    rank = {scenario_key(feature_stem(s.feature_file), s.name): i for i, s in enumerate(order)}
    suites: dict[str, list[ElementTree.Element]] = {}
    for source in sources:
        for path in sorted(Path(source).glob("TESTS-*.xml")):
            try:
                root = ElementTree.fromstring(xml_safe(path.read_text(encoding="utf-8", errors="replace")))
            except (OSError, ElementTree.ParseError):
                continue
            suites.setdefault(path.name, []).extend([root] if root.tag == "testsuite" else root.iter("testsuite"))
    written = {}
    for name, parts in sorted(suites.items()):
        stem = name.removeprefix("TESTS-").removesuffix(".xml")
        merged = ElementTree.Element("testsuite", dict(parts[0].attrib))
        cases = [case for part in parts for case in part.findall("testcase")]
        cases.sort(key=lambda c: rank.get(scenario_key(stem, c.get("name", "")), len(rank)))
        for key in ("tests", "errors", "failures", "skipped"):
            merged.set(key, str(sum(int(p.get(key) or 0) for p in parts)))
        merged.set("time", f"{sum(float(p.get('time') or 0) for p in parts):.6f}".rstrip("0").rstrip("."))
        merged.extend(cases)
        ElementTree.ElementTree(merged).write(target / name, encoding="utf-8", xml_declaration=False)
        written[name] = len(cases)
    return written


def merge_properties(documents: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """One ``environment.properties`` from several: a value all agree on once, differing values joined with
    `` | `` in order (each worker's or shard's own ports and URLs)."""
    merged: dict[str, list[str]] = {}
    for document in documents:
        for key, value in document.items():
            values = merged.setdefault(key, [])
            if value not in values:
                values.append(value)
    return {key: " | ".join(values) for key, values in merged.items()}


def copy_results(source: Path, target: Path) -> int:
    """Copy one Allure results folder's scenario files (results, containers, attachments: unique names) into
    ``target``; the run's own files (environment, executor, categories, run record) are merged by the caller.
    Returns how many result files were copied."""
    import shutil

    target.mkdir(parents=True, exist_ok=True)
    copied = 0
    for path in sorted(Path(source).iterdir()):
        if not path.is_file() or path.name in RUN_FILES:
            continue
        destination = target / path.name
        if not destination.exists():
            shutil.copy2(path, destination)
            copied += path.name.endswith("-result.json")
    return copied


def reported_keys(results_dir: Path) -> set[str]:
    """Keys of every scenario with a result (any status) in an Allure results folder."""
    keys = set()
    for raw, location in allure_scenario_results(results_dir):
        if location:
            keys.add(scenario_key(feature_stem(location.rsplit(":", 1)[0]), str(raw.get("name") or "")))
    return keys


def outcome_counts(results_dir: Path) -> Counter[str]:
    """Scenarios per Allure status in a results folder."""
    counts: Counter[str] = Counter()
    for raw, _ in allure_scenario_results(results_dir):
        counts[str(raw.get("status") or "unknown")] += 1
    return counts


#: Options of ``ib-resilience run`` that say how a run is spread out, not what it checks (left out of re-run
#: commands).
RUN_MECHANICS = ("--workers", "--shard", "--durations")


def strip_options(argv: Sequence[str], options: Iterable[str] = RUN_MECHANICS) -> list[str]:
    """``argv`` without the given options and their values (``--x v`` and ``--x=v``)."""
    options = tuple(options)
    out, skip = [], False
    for token in argv:
        if skip:
            skip = False
        elif token in options:
            skip = True
        elif not token.startswith(tuple(f"{o}=" for o in options)):
            out.append(token)
    return out
