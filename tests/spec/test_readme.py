"""The README stays short and true: every command in its shell blocks is run here, as a reader would run it in a
checkout, and every relative link of the README and of docs/*.md leads somewhere (file and heading).

`make install` runs in the checkout itself (it is about the checkout's .venv/ and node_modules/, and does nothing
when they are up to date). Every other command runs in a folder of its own that mirrors the checkout (its entries
linked, `reports/` left out), so what it writes lands there and never in the checkout's own reports; the profile
the README shows is saved there as `mine.toml`, as the README says.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_LINES = 250
#: Words the project uses in its own sense; the README explains them or leaves them to docs/glossary.md.
HOUSE_WORDS = re.compile(r"\b(seed|wings?|doors?|planes?)\b", re.IGNORECASE)
FENCE = re.compile(r"^```(\S*)\s*$")


def blocks(text: str) -> list[tuple[str, list[str]]]:
    """The fenced blocks of a Markdown text: (language, lines)."""
    found, lang, body = [], None, []
    for line in text.splitlines():
        fence = FENCE.match(line)
        if fence and lang is None:
            lang, body = fence.group(1), []
        elif line.startswith("```") and lang is not None:
            found.append((lang, body))
            lang = None
        elif lang is not None:
            body.append(line)
    return found


def prose(text: str) -> list[str]:
    """The lines of a Markdown text outside its fenced blocks."""
    out, inside = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            inside = not inside
        elif not inside:
            out.append(line)
    return out


def commands(text: str) -> list[str]:
    """Every command of the shell blocks, continuation lines joined, comments dropped."""
    found = []
    for lang, body in blocks(text):
        if lang not in ("bash", "sh", "shell", "console"):
            continue
        joined = "\n".join(body).replace("\\\n", " ")
        for line in joined.splitlines():
            line = re.sub(r"\s+#(\s.*)?$", "", line).strip()
            if line and not line.startswith("#"):
                found.append(line)
    return found


def shown_output(text: str) -> list[str]:
    """The suite's own lines the README shows as output (plain fenced blocks)."""
    return [line for lang, body in blocks(text) if lang == "" for line in body if line.startswith("ib-resilience:")]


def shape(line: str) -> re.Pattern[str]:
    """A shown output line with its numbers left open (counts and times differ from run to run)."""
    parts = re.split(r"\d+(?:\.\d+)?", line)
    return re.compile(r"\d+(?:\.\d+)?".join(re.escape(part) for part in parts))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    heading = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", heading).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found, counts = set(), {}
    for line in prose(page.read_text(encoding="utf-8")):
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            base = slug(heading.group(1))
            counts[base] = counts.get(base, 0) + 1
            found.add(base if counts[base] == 1 else f"{base}-{counts[base] - 1}")
    return found


def links(page: Path) -> list[str]:
    """The relative link targets of a page, outside code."""
    text = "\n".join(re.sub(r"`[^`]*`", "", line) for line in prose(page.read_text(encoding="utf-8")))
    return [target for target in re.findall(r"\[[^\]]*\]\(([^)\s]+)\)", text)
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target)]


def pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def test_the_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_LINES, f"README.md has {len(lines)} lines; at most {MAX_LINES} (the rest goes to docs/)"


def test_the_readme_explains_the_house_words_it_uses():
    unexplained = [line for line in prose(README.read_text(encoding="utf-8"))
                   if HOUSE_WORDS.search(line) and "glossary" not in line and "is the project's name" not in line]
    assert unexplained == []


def test_every_relative_link_leads_to_a_file_and_a_heading():
    broken = []
    for page in pages():
        for target in links(page):
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading in {dest.relative_to(ROOT)})")
    assert broken == []


def test_the_pages_are_found():
    assert len(commands(README.read_text(encoding="utf-8"))) >= 4
    assert {"backend-authors.md", "reviewers.md", "ci.md", "contributors.md", "glossary.md"} <= \
        {page.name for page in pages()}
    assert "what-the-report-shows" in anchors(DOCS / "reviewers.md")


def test_the_levels_the_readme_counts_are_the_runners():
    from ibresilience.parallel import select
    from support.settings import LEVELS

    text = " ".join(README.read_text(encoding="utf-8").split())
    stated = {level: re.search(rf"`{level}` \((\d+)", text) for level in LEVELS}
    assert {level: int(found.group(1)) for level, found in stated.items() if found} == \
        {level: len(select(tags)) for level, tags in LEVELS.items()}


def _checkout_mirror(folder: Path) -> None:
    """A folder whose entries are the checkout's (linked), without its reports: where the reader's commands run."""
    for entry in ROOT.iterdir():
        if entry.name not in ("reports", ".git"):
            (folder / entry.name).symlink_to(entry)


@pytest.mark.xdist_group("readme")
@pytest.mark.timeout(900)
def test_every_command_of_the_readme_runs(tmp_path):
    for stamp in (".venv/.installed-stamp", "node_modules/.installed-stamp"):
        if not (ROOT / stamp).exists():
            pytest.skip(f"the checkout is not installed ({stamp} missing): run `make install` first")
    text = README.read_text(encoding="utf-8")
    here = tmp_path / "checkout"
    here.mkdir()
    _checkout_mirror(here)
    profiles = [body for lang, body in blocks(text) if lang == "toml"]
    assert len(profiles) == 1 and "mine.toml" in text, "the README shows one profile, saved as mine.toml"
    (here / "mine.toml").write_text("\n".join(profiles[0]) + "\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    printed = []
    for command in commands(text):
        done = subprocess.run(["bash", "-c", command], cwd=ROOT if command == "make install" else here, env=env,
                              capture_output=True, text=True, timeout=300)
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"`{command}` exited {done.returncode}:\n{output[-3000:]}"
        if " run " in f" {command} ":
            assert "PASSED, exit 0" in output, f"`{command}` did not pass:\n{output[-3000:]}"
        printed += output.splitlines()
    reports = here / "reports"
    for written in ("run-result.json", "junit", "allure-results", "logs/latest"):
        assert (reports / written).exists(), f"the README says the run writes reports/{written}"
    assert list(reports.glob("resilience_test_report_*.md")), "the README says --report writes the Markdown summary"
    unseen = [line for line in shown_output(text) if not any(shape(line).fullmatch(out) for out in printed)]
    assert unseen == [], "the README shows output the commands do not print"
