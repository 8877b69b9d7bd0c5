"""Safe YAML loading that keeps node positions.

Specs are plain data: only the YAML core types are accepted (no python tags, no merge keys),
duplicate keys are errors, and size (read at most :data:`MAX_SPEC_BYTES` + 1 bytes, regular files
only), depth (:data:`MAX_DEPTH`; libyaml itself stops at 1000 levels) and alias expansion
(:data:`MAX_NODES` built values) are bounded so a hostile file cannot exhaust or stall the
dag-processor. Every problem is reported with its line and column.
"""

from __future__ import annotations

import math
import os
import re
import stat
from dataclasses import dataclass, field
from typing import Any

import yaml

MAX_SPEC_BYTES = 256 * 1024
MAX_DEPTH = 32
MAX_NODES = 20_000
MAX_SPEC_INT = 2**53
"""The largest whole number (either sign) a spec or policy may hold: JSON's safe integer range."""

Path = tuple[str | int, ...]

_CORE = "tag:yaml.org,2002:"
_SCALAR_TAGS = {f"{_CORE}{t}" for t in ("str", "int", "float", "bool", "null", "timestamp")}
_KINDS = {
    f"{_CORE}{t}": k for t, k in (("int", "integer"), ("float", "number"), ("bool", "boolean"), ("timestamp", "date"))
}
_MAP_TAG = f"{_CORE}map"
_STR_TAG = f"{_CORE}str"
_SEQ_TAG = f"{_CORE}seq"
_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SafeConstructor = yaml.constructor.SafeConstructor
_scalar_constructor = _SafeConstructor()


@dataclass(frozen=True)
class Position:
    """1-based line and column of a node in the source text."""

    line: int
    col: int


@dataclass
class YamlProblem:
    """A problem found while reading YAML, before any schema check."""

    position: Position
    path: Path
    message: str
    hint: str | None = None


@dataclass
class LocatedDocument:
    """Plain data from one YAML document, with the node (and so the position) of every key and value.

    Nodes are kept rather than positions: turning marks into positions only for the few paths an
    error names keeps loading valid specs cheap.
    """

    data: Any = None
    key_nodes: dict[Path, yaml.Node] = field(default_factory=dict)
    value_nodes: dict[Path, yaml.Node] = field(default_factory=dict)
    problems: list[YamlProblem] = field(default_factory=list)
    odd_numbers: list[tuple[Path, int | float]] = field(default_factory=list)
    """Values beyond ±MAX_SPEC_INT, NaN or infinite, noted while building (see :mod:`.numbers`)."""

    def locates(self, path: Path) -> bool:
        return path in self.value_nodes or path in self.key_nodes

    def position_of(self, path: Path, *, prefer_key: bool = False) -> Position:
        """Best position for ``path``: the node itself, else its nearest located ancestor."""
        probe = tuple(path)
        while True:
            first, second = (self.key_nodes, self.value_nodes) if prefer_key else (self.value_nodes, self.key_nodes)
            if probe in first:
                return _pos(first[probe])
            if probe in second:
                return _pos(second[probe])
            if not probe:
                return Position(1, 1)
            probe = probe[:-1]


def _scalar(node: yaml.Node) -> Any:
    # Call the safe constructor for the node's tag directly: no object cache kept between files.
    return _SafeConstructor.yaml_constructors[node.tag](_scalar_constructor, node)


def _excerpt(value: Any, limit: int = 40) -> str:
    text = str(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _pos(node: yaml.Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    def __init__(self, doc: LocatedDocument) -> None:
        self.doc = doc
        self.nodes = 0
        self.too_big = False

    def build(self, node: yaml.Node, path: Path, depth: int) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES or depth > MAX_DEPTH:
            if not self.too_big:
                self.too_big = True
                what = f"more than {MAX_NODES} nodes" if self.nodes > MAX_NODES else f"deeper than {MAX_DEPTH}"
                top = path[:1]
                self.doc.problems.append(
                    YamlProblem(
                        _pos(self.doc.key_nodes.get(top, node)),
                        top,
                        f"document expands to {what}",
                        "specs are small; remove deep nesting or repeated aliases (a YAML 'alias bomb')",
                    )
                )
            return None
        self.doc.value_nodes.setdefault(path, node)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ_TAG:
                return self._bad_tag(node, path)
            return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        if node.tag not in _SCALAR_TAGS:
            return self._bad_tag(node, path)
        value = self._scalar(node, path)
        if (type(value) is int and abs(value) > MAX_SPEC_INT) or (type(value) is float and not math.isfinite(value)):
            self.doc.odd_numbers.append((path, value))  # noted here: no second walk over every document
        return value

    def _scalar(self, node: yaml.Node, path: Path) -> Any:
        if node.tag == _STR_TAG:  # most scalars (all keys): the text itself, no constructor needed
            return node.value
        try:
            return _scalar(node)
        except (ValueError, KeyError, TypeError, AttributeError, IndexError, OverflowError):
            # e.g. 2024-13-45 (resolved as a date), '!!int abc', '!!bool maybe', a 5000-digit integer
            kind = _KINDS.get(node.tag, node.tag)
            self.doc.problems.append(
                YamlProblem(
                    _pos(node),
                    path,
                    f"'{_excerpt(node.value)}' is not a valid {kind}",
                    "dates are written YYYY-MM-DD; quote the value to keep it as text"
                    if kind == "date"
                    else "fix the value, or quote it to keep it as text",
                )
            )
            return None

    def _mapping(self, node: yaml.MappingNode, path: Path, depth: int) -> Any:
        if node.tag != _MAP_TAG:
            return self._bad_tag(node, path)
        result: dict[str, Any] = {}
        seen: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == f"{_CORE}merge":
                self.doc.problems.append(
                    YamlProblem(
                        _pos(key_node),
                        path,
                        "YAML merge keys ('<<') are not supported in specs",
                        "write the keys out in full",
                    )
                )
                continue
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in _SCALAR_TAGS:
                self.doc.problems.append(YamlProblem(_pos(key_node), path, "mapping keys must be plain strings"))
                continue
            problems = len(self.doc.problems)
            key = str(self._scalar(key_node, path))
            if len(self.doc.problems) > problems:
                continue
            if key in seen:
                first = _pos(seen[key])
                self.doc.problems.append(
                    YamlProblem(
                        _pos(key_node),
                        (*path, key),
                        f"duplicate key '{key}' (first defined at line {first.line}, column {first.col})",
                        "keep one of the two entries",
                    )
                )
                continue
            seen[key] = key_node
            self.doc.key_nodes[(*path, key)] = key_node
            result[key] = self.build(value_node, (*path, key), depth + 1)
        return result

    def _bad_tag(self, node: yaml.Node, path: Path) -> None:
        self.doc.problems.append(
            YamlProblem(
                _pos(node),
                path,
                f"YAML tag '{node.tag.replace(_CORE, '!!')}' is not allowed",
                "specs are plain data: use strings, numbers, booleans, lists and mappings only",
            )
        )


def size_problem(size: int) -> YamlProblem:
    """The problem of a file over :data:`MAX_SPEC_BYTES`."""
    return YamlProblem(
        Position(1, 1),
        (),
        f"file is {size} bytes, over the {MAX_SPEC_BYTES}-byte limit",
        "a spec describes an experiment; keep data and long texts in separate files",
    )


def read_bounded(path: str) -> bytes | YamlProblem:
    """A spec or policy file's bytes, never more than ``MAX_SPEC_BYTES + 1`` of them; OSError propagates.

    A file over the limit is a problem without being read, and so is anything but a regular file:
    opening a FIFO blocks until someone writes to it and a device may never end, either of which
    would stall the whole folder's parse.
    """
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        return YamlProblem(Position(1, 1), (), "not a regular file", "a spec is a YAML file; remove this entry")
    if info.st_size > MAX_SPEC_BYTES:
        return size_problem(info.st_size)
    with open(path, "rb") as handle:
        raw = handle.read(MAX_SPEC_BYTES + 1)
    return size_problem(len(raw)) if len(raw) > MAX_SPEC_BYTES else raw  # grew since stat: still bounded


def load_located(text: str | bytes) -> LocatedDocument:
    """Parse one YAML document safely, keeping positions; problems are collected, never raised."""
    doc = LocatedDocument()
    raw = text.encode("utf-8") if isinstance(text, str) else text
    if len(raw) > MAX_SPEC_BYTES:
        doc.problems.append(size_problem(len(raw)))
        return doc
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        doc.problems.append(YamlProblem(Position(1, 1), (), f"file is not UTF-8 text ({exc.reason})"))
        return doc
    try:
        node = yaml.compose(decoded, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        position = Position(mark.line + 1, mark.column + 1) if mark else Position(1, 1)
        problem = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        hint = "a spec file holds one YAML document" if "single document" in problem else None
        doc.problems.append(YamlProblem(position, (), f"invalid YAML: {problem}", hint))
        return doc
    except yaml.YAMLError as exc:  # reader errors (control characters) carry no mark
        doc.problems.append(YamlProblem(Position(1, 1), (), f"invalid YAML: {exc}"))
        return doc
    except RecursionError:  # the pure-Python parser (no libyaml) recurses once per nesting level
        doc.problems.append(
            YamlProblem(
                Position(1, 1),
                (),
                "invalid YAML: nesting too deep to parse",
                "specs are small; remove deep nesting or repeated aliases (a YAML 'alias bomb')",
            )
        )
        return doc
    if node is None:
        doc.problems.append(YamlProblem(Position(1, 1), (), "file is empty", "run 'airflow-bridge init NAME'"))
        return doc
    doc.data = _Builder(doc).build(node, (), 0)
    return doc


_COMMENT_IN_KEY = re.compile(r"^\s*(?:-\s+)?([^\s#'\"{}\[\]][^#'\":]*?\s#[^'\":]*):(?:\s+(.*))?$")


def comment_in_key(text: str, line: int) -> str | None:
    """A hint when a key near ``line`` (1-based) holds ' #': YAML cut the key there, reading a comment.

    ``Position #: ignore`` reads as the text ``Position``, so the error names something else ("not a
    dictionary", "could not find expected ':'"); the raw line still shows what was meant.
    """
    if " #" not in text:
        return None
    lines = text.splitlines()
    for number in (line, line - 1, line - 2):
        if 1 <= number <= len(lines):
            found = _COMMENT_IN_KEY.match(lines[number - 1])
            if found:
                key, value = found.group(1).strip(), (found.group(2) or "").strip()
                return (
                    f"line {number}: YAML reads ' #' as the start of a comment, so the key '{key}' was cut short; "
                    f'quote the key: "{key}": {value}'.rstrip()
                )
    return None
