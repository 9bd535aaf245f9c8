"""A command's output read as a person reads it: a label's value, found by the label's words, in any layout."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

#: ANSI escape sequences: CSI (colours, cursor), OSC (titles, hyperlinks), and the two-character ones.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
#: Characters that separate the cells of a table row (box drawing, ASCII).
_BORDERS = "│┃║|┆┇┊┋╎╏"
#: Characters a horizontal rule is made of (box drawing, ASCII, Markdown alignment colons).
_RULE_CHARS = set("─━═-=+:┼╇╈╉╊╋╪╫╬┿┬┭┮┯┰┱┲┳┴┵┶┷┸┹┺┻╤╥╦╧╨╩├┝┞┟┠┡┢┣┤┥┦┧┨┩┪┫╞╟╠╡╢╣┌┍┎┏┐┑┒┓└┕┖┗┘┙┚┛"
                  "╒╓╔╕╖╗╘╙╚╛╜╝╭╮╯╰╴╵╶╷╸╹╺╻") | set(_BORDERS) | {" "}
_RULE_STROKES = set("─━═-=")
#: The stubs rich's MINIMAL boxes draw above and below a table.
_STUBS = set("╴╵╶╷╸╹╺╻")
_GAP = re.compile(r"\s{2,}|\t")
#: Decoration before a label: bullets, marks, quotes, emoji, a log line's time stamp and ``[tag]``.
_LEAD = re.compile(r"^(?:[^\w(\[{]+|\[[^\]]*\]|\d{4}-\d\d-\d\d[T ][\d:.,]+(?:Z|[+-]\d\d:?\d\d)?)+")
#: ``label: value``, ``label = value``, ``label -> value`` (a colon must be followed by a space or the end, so
#: times and URLs stay whole).
_KEY_VALUE = re.compile(r"^(?P<label>[^\W\d](?:[^:=()]|\([^()]*\))*?)\s*(?::(?=\s|$)|=>|->|→|=|[.·…]{2,})\s*"
                        r"(?P<value>.*)$")
#: What may stand between a label and the value in the next cell (``Connected    = True``).
_SEPARATOR = re.compile(r"^(?::(?=\s|$)|=>|->|→|=|[.·…]{2,})\s*")
#: ``label 100`` / ``label ..... 100``: a label of words followed by a number on the same line.
_LABEL_NUMBER = re.compile(r"^(?P<label>[^\W\d](?:[^\W\d]|[ \t'/.-])*?)(?:\s*[.·…]{2,}\s*|\s+)(?P<value>[-+$]?\.?\d.*)$")
_NUMBER = re.compile(r"^[^\w(\[{<#+\-.]*?(?P<number>[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[+-]?\.\d+)"
                     r"(?![\d.,]*\d|[-:]\d)")
#: In a label, a number with punctuation inside (``75/100``, ``1.5``): the label has run into its value.
_VALUE_IN_LABEL = re.compile(r"\d[\d.,/:%]*[.,/:%]\d")
#: Where a printed Python dict (or a list of them) may start: ``{'key'``, ``[{'key'``.
_DICT_REPR = re.compile(r"(?:\[\s*)?\{\s*['\"]")
_DICT_REPR_TRIES = 20
#: A line that opens a section (YAML's ``resilience:``, ``Resilience score:`` over its indented details).
_SECTION = re.compile(r"^([^\W\d][^:=]*?)\s*:$")
_MAX_LABEL_WORDS = 8
_MAX_EXTRA_WORDS = 3


@dataclass(frozen=True)
class Reading:
    """One label and its value, as read from the output.

    Args:
        label: the label as printed (a JSON key, a table header, the text before a colon).
        value: the value as printed (a JSON scalar as JSON spells it: ``true``, ``null``, ``100.0``).
        at: where it was found (a position in the output), to prefer the first of equal readings.
        context: the labels a value sits under: a nested JSON value's keys (``resilience`` for
            ``resilience.overall_score``), an indented line's sections (``resilience:`` above ``  score: 75``).
    """

    label: str
    value: str
    at: float
    context: tuple[str, ...] = ()


def plain(output: str) -> str:
    """The output as a terminal shows it: colour codes out, each line as its last carriage return left it."""
    lines = []
    for line in _ANSI.sub("", output).replace("\r\n", "\n").split("\n"):
        parts = [p for p in line.split("\r") if p.strip()]
        lines.append(parts[-1] if parts else "")
    return "\n".join(lines)


def words_of(label: str | Sequence[str]) -> tuple[str, ...]:
    """The words of a label, lower case, singular-ish (``Connections_Closed`` → ``connection``, ``closed``)."""
    text = label if isinstance(label, str) else " ".join(label)
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", text).lower()
    found = []
    for word in re.findall(r"[a-z]+|\d+", text):
        if word == "s":
            continue   # "connection(s)"
        found.append(word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word)
    return tuple(found)


def readings(output: str) -> list[Reading]:
    """Every label and value the output shows, in the order printed.

    A value is read from its label's line (``key: value``, ``key = value``, dot leaders, a label padded to any
    width, a row of a box-drawing or ASCII table), from its column under a table's header row, or from a JSON
    object (or a printed Python dict) anywhere in the output, nested keys included. Colour codes are stripped
    first. Nothing is read across lines but a table's columns.
    """
    text = plain(output)
    found: list[Reading] = []
    pieces, done = [], 0   # the text with its JSON blanked out (lines kept), for the line readers
    for start, end, value in _json_spans(text):
        found += _json_readings(value, (), start)
        pieces += [text[done:start], re.sub(r"[^\n]", " ", text[start:end])]
        done = end
    found += _line_readings("".join([*pieces, text[done:]]))
    return sorted(found, key=lambda r: r.at)


def value_of(output: str, label_words: str | Sequence[str]) -> str | None:
    """The value printed for a label (None when no label has these words).

    Args:
        output: what the command printed (colour codes and all).
        label_words: the words the label must contain, e.g. ``("resilience", "score")`` or
            ``"resilience score"``; a label with fewer other words is preferred, then the first printed.
    """
    best = _best(readings(output), words_of(label_words))
    return best.value if best is not None else None


def number_of(output: str, label_words: str | Sequence[str]) -> float | None:
    """The number printed for a label: the number its value starts with (``100/100`` → 100, ``75.0 %`` → 75).

    None when the label is absent or its value does not start with a number (``unavailable (HTTP 503)``);
    another label's number is never taken instead.
    """
    value = value_of(output, label_words)
    return number_in(value) if value is not None else None


def number_in(value: str) -> float | None:
    """The number a value starts with (after a sign, a currency or a mark), or None (``127.0.0.1``, a date)."""
    match = _NUMBER.match(value.strip())
    return float(match.group("number").replace(",", "")) if match else None


# --------------------------------------------------------------------------- matching


def _best(found: list[Reading], wanted: tuple[str, ...]) -> Reading | None:
    if not wanted:
        raise ValueError("a label needs at least one word")
    need = set(wanted)
    scored = []
    for reading in found:
        own = words_of(reading.label)
        if not own or len(own) > _MAX_LABEL_WORDS or not need & set(own):
            continue
        if not need <= set(own) | set(words_of(reading.context)):
            continue
        extra = len(set(own) - need)
        if extra <= _MAX_EXTRA_WORDS:   # a label with every word itself beats one completed by its section
            scored.append((not need <= set(own), extra, reading.at, reading))
    return min(scored, key=lambda s: s[:3])[3] if scored else None


# --------------------------------------------------------------------------- JSON (and printed Python dicts)


def _json_spans(text: str) -> Iterator[tuple[int, int, object]]:
    """The JSON objects (or dict reprs) in ``text``: start, end and the decoded value."""
    decoder = json.JSONDecoder()
    at = 0
    tries = [_DICT_REPR_TRIES]   # printed dicts are parsed by scanning ahead: a few tries per output, no more
    while True:
        starts = [i for i in (text.find("{", at), text.find("[", at)) if i >= 0]
        if not starts:
            return
        start = min(starts)
        value, end = _decode(decoder, text, start, tries)
        if _holds_an_object(value):
            yield start, end, value
            at = end
        else:
            at = start + 1


def _decode(decoder: json.JSONDecoder, text: str, start: int, tries: list[int]) -> tuple[object, int]:
    try:
        return decoder.raw_decode(text, start)
    except ValueError:
        pass
    if tries[0] <= 0 or not _DICT_REPR.match(text, start):
        return None, start
    tries[0] -= 1
    end = _matching_bracket(text, start)
    if end is None:
        return None, start
    try:
        return ast.literal_eval(text[start:end]), end
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None, start


def _matching_bracket(text: str, start: int, limit_chars: int = 20_000) -> int | None:
    """The end of the bracketed expression starting at ``start`` (quotes respected), or None."""
    closing = {"{": "}", "[": "]", "(": ")"}
    stack: list[str] = []
    quote = ""
    index = start
    for index in range(start, min(len(text), start + limit_chars)):
        char = text[index]
        if quote:
            if char == "\\":
                continue
            if char == quote and text[index - 1] != "\\":
                quote = ""
        elif char in "'\"":
            quote = char
        elif char in closing:
            stack.append(closing[char])
        elif char in "}])":
            if not stack or stack.pop() != char:
                return None
            if not stack:
                return index + 1
    return None


def _holds_an_object(value: object) -> bool:
    if isinstance(value, dict):
        return bool(value)
    return isinstance(value, list) and any(_holds_an_object(v) for v in value)


def _scalar_text(value: object) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value)
    except (TypeError, ValueError):   # a printed dict may hold a set, bytes, a tuple of them …
        return repr(value)


def _json_readings(value: object, path: tuple[str, ...], at: float) -> list[Reading]:
    found: list[Reading] = []
    if isinstance(value, dict):
        for key, item in value.items():
            key = str(key)
            at += 1e-6
            if isinstance(item, dict) or (isinstance(item, list) and _holds_an_object(item)):
                inner = _json_readings(item, (*path, key), at)
                at += 1e-6 * (len(inner) + 1)
                found += inner
            elif isinstance(item, list):
                found.append(Reading(key, ", ".join(_scalar_text(v) for v in item), at, path))
            else:
                found.append(Reading(key, _scalar_text(item), at, path))
    elif isinstance(value, list):
        for item in value:
            inner = _json_readings(item, path, at)
            at += 1e-6 * (len(inner) + 1)
            found += inner
    return found


# --------------------------------------------------------------------------- lines and tables


@dataclass(frozen=True)
class _Line:
    at: int
    text: str
    rule: bool
    cells: tuple[str, ...]
    bordered: bool


def _is_rule(text: str) -> bool:
    stripped = text.strip()
    return (bool(stripped) and set(stripped) <= _RULE_CHARS
            and (sum(c in _RULE_STROKES for c in stripped) >= 3 or bool(_STUBS & set(stripped))))


def _cells(text: str) -> tuple[tuple[str, ...], bool]:
    """A row's cells: between borders when it has any, else between gaps of two or more spaces."""
    if any(b in text for b in _BORDERS):
        parts = [p.strip() for p in re.split(f"[{re.escape(_BORDERS)}]", text)]
        if parts and not parts[0]:
            parts = parts[1:]
        if parts and not parts[-1]:
            parts = parts[:-1]
        return tuple(parts), True
    return tuple(p.strip() for p in _GAP.split(text.strip()) if p.strip()), False


def _lines(text: str) -> list[_Line]:
    found, at = [], 0
    for line in text.split("\n"):
        if line.strip():
            rule = _is_rule(line)
            cells, bordered = ((), False) if rule else _cells(line)
            found.append(_Line(at, line, rule, cells, bordered))
        else:
            found.append(_Line(at, "", False, (), False))
        at += len(line) + 1
    return found


def _line_readings(text: str) -> list[Reading]:
    lines = _lines(text)
    headers: set[int] = set()
    found: list[Reading] = []
    for block in _blocks(lines):
        header, columns = _header_and_columns(block)
        if header is None:
            continue
        headers.add(header.at)
        names = columns(header)
        for row in block[block.index(header) + 1:]:
            if row.rule:
                continue
            values = columns(row)
            if len(values) != len(names):
                continue
            for name, value in zip(names, values, strict=True):
                if value and _label_like(name):
                    found.append(Reading(_clean_label(name), value, row.at + 0.5))
    sections: list[tuple[int, str]] = []   # (indent, label) of the "Section:" lines above, outermost first
    for line in lines:
        if not line.text.strip():
            continue
        indent = len(line.text) - len(line.text.lstrip())
        while sections and sections[-1][0] >= indent:
            sections.pop()
        if line.cells and line.at not in headers:
            context = tuple(label for _, label in sections)
            found += [Reading(r.label, r.value, r.at, context) for r in _row_readings(line)]
        section = _SECTION.match(_LEAD.sub("", line.text.strip()))
        if section and len(line.cells) == 1 and _label_like(section.group(1)):
            sections.append((indent, _clean_label(section.group(1))))
    return found


def _blocks(lines: list[_Line]) -> Iterator[list[_Line]]:
    """Runs of non-blank lines (a table, a paragraph)."""
    block: list[_Line] = []
    for line in [*lines, _Line(-1, "", False, (), False)]:
        if line.rule or line.cells:
            block.append(line)
        elif block:
            yield block
            block = []


def _header_and_columns(block: list[_Line]):
    """The header row of a table and how to cut a row into its columns (None when the block has no header).

    A header is the first row when a rule follows it that sets it apart: the only rule between rows, a rule
    unlike those between later rows (``+===+`` over ``+---+``), or, with identical rules between all rows, a
    row of three or more labels (a two-column table with identical rules is read as labels and values). With no
    rule under it, a header is a row of three or more labels over a row of as many cells, not all labels."""
    rows = [i for i, line in enumerate(block) if not line.rule]
    if len(rows) < 2:
        return None, None
    first = rows[0]
    if first + 1 >= len(block) or not block[first + 1].rule:
        return _unruled_header(block[first], block[rows[1]])
    inner_rules = [block[i].text.strip() for i in range(first + 1, rows[-1]) if block[i].rule]
    header = block[first]
    set_apart = (len(inner_rules) == 1 or inner_rules[0] != inner_rules[1]
                 or (len(header.cells) >= 3 and all(_label_like(c) and number_in(c) is None for c in header.cells)))
    if not set_apart:
        return None, None
    if header.bordered:
        return header, lambda line: line.cells
    spans = [m.span() for m in re.finditer(r"\S+", block[first + 1].text)]
    if len(spans) < 2:   # one rule under the whole header (rich's SIMPLE boxes): columns by the gaps
        return _unruled_header(header, block[rows[1]])
    starts = [s for s, _ in spans]

    def columns(line: _Line) -> tuple[str, ...]:
        cut = [*starts[1:], len(line.text) + 1]
        return tuple(line.text[max(0, start - 1 if k else 0):end].strip() for k, (start, end)
                     in enumerate(zip(starts, cut, strict=True)))
    return header, columns


def _unruled_header(first: _Line, second: _Line):
    """A header with no rule under it: three or more labels over a row of as many cells, some of them values
    (``Connected  Host  Port`` over ``True  127.0.0.1  4002``)."""
    def labels(line: _Line) -> bool:
        return all(_label_like(c) and number_in(c) is None for c in line.cells)
    if len(first.cells) >= 3 and labels(first) and len(second.cells) == len(first.cells) and not labels(second):
        return first, lambda line: line.cells
    return None, None


def _clean_label(text: str) -> str:
    """A label without its decoration, its trailing marks and a unit in brackets (``Uptime (s):`` → ``Uptime``)."""
    label = _LEAD.sub("", text).rstrip(" .:·…=-_>→").strip()
    return re.sub(r"\s*\([^()]*\)$", "", label) if not label.startswith("(") else label


def _label_like(text: str) -> bool:
    label = _clean_label(text)
    return (bool(label) and label[0].isalpha() and len(words_of(label)) <= _MAX_LABEL_WORDS
            and label.count("(") == label.count(")") and label.count("[") == label.count("]")
            and not _VALUE_IN_LABEL.search(label))


def _row_readings(line: _Line) -> list[Reading]:
    found: list[Reading] = []
    cells = line.cells
    # three or more words side by side are a header or a list, not labels with values
    all_labels = len(cells) >= 3 and all(_label_like(c) and number_in(c) is None for c in cells)
    for index, cell in enumerate(cells):
        at = line.at + index * 1e-3
        text = _LEAD.sub("", cell)
        following = cells[index + 1] if index + 1 < len(cells) else ""
        pair = _KEY_VALUE.match(text)
        if pair and _label_like(pair.group("label")):
            value = pair.group("value").strip() or _SEPARATOR.sub("", following)
            if value:
                found.append(Reading(_clean_label(pair.group("label")), value, at))
                inner = _KEY_VALUE.match(value)   # "INFO: resilience score: 75"
                if inner and _label_like(inner.group("label")) and inner.group("value").strip():
                    found.append(Reading(_clean_label(inner.group("label")), inner.group("value").strip(), at + 1e-4))
            continue
        pair = _LABEL_NUMBER.match(text)
        if pair and _label_like(pair.group("label")):
            found.append(Reading(_clean_label(pair.group("label")), pair.group("value").strip(), at))
            continue
        if following and _label_like(text) and number_in(text) is None and not all_labels:
            found.append(Reading(_clean_label(text), _SEPARATOR.sub("", following), at))
    return found
