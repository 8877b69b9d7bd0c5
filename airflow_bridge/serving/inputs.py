"""Reading a prediction request: JSON bytes → one table of scalar values, or a short, located refusal.

Everything a client can send is checked here, before pandas or the model see it, so a hostile body gets
a 4xx naming the problem (instance, column) and never a 500: only ``str``, finite numbers that fit a
float, booleans and ``null`` reach the model. Messages never repeat the input beyond a short excerpt.
"""

from __future__ import annotations

import bisect
import json
import math
import operator
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

MAX_INT = 2**63 - 1
"""Integers beyond int64 become pandas object columns; beyond float range they overflow. Refused."""
_NUMBER = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*")
_SCALARS = (str, bool, int, float, type(None))
_SCALAR_TYPES = set(_SCALARS)
EXCERPT = 40
_RANGE = "a number out of range (beyond ±1.8e308)"


class InputError(Exception):
    """A request the server refuses: ``status`` (413, 415, 422) and a short message for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def excerpt(value: Any, limit: int = EXCERPT) -> str:
    """``repr(value)`` cut to ``limit`` characters: enough to recognise, never the whole input."""
    if isinstance(value, str) and len(value) > limit:
        return repr(value[:limit]) + f"… ({len(value)} characters)"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of {len(str(abs(value)))} digits"
    shown = repr(value)
    return shown if len(shown) <= limit else shown[:limit] + "…"


def parse_body(body: bytes, content_type: str | None) -> Any:
    """The JSON document of a request body (any JSON content type, or none given)."""
    if content_type:
        kind = content_type.split(";", 1)[0].strip().lower()
        if kind != "application/json" and not kind.endswith("+json"):
            raise InputError(415, f"send JSON with 'Content-Type: application/json' (got {excerpt(kind)})")
    if not body.strip():
        raise InputError(422, 'the body is empty; send {"instances": [{"column": value, ...}]}')
    try:
        return json.loads(body)
    except RecursionError:
        raise InputError(422, "the body is not valid JSON: nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise InputError(422, f"the body is not UTF-8 JSON: invalid byte at position {exc.start}") from None
    except ValueError as exc:  # JSONDecodeError (position only), or an integer of over 4300 digits
        raise InputError(422, f"the body is not valid JSON: {str(exc)[:120]}") from None


def read_instances(document: Any, features: list[str], max_rows: int) -> Any:
    """The instances of a ``{"instances": [...]}`` document as a pandas DataFrame (:func:`read_columns`)."""
    import pandas as pd

    return pd.DataFrame(read_columns(document, features, max_rows))


def read_columns(document: Any, features: list[str], max_rows: int) -> dict[str, list[Any]]:
    """The instances of a ``{"instances": [...]}`` document as checked columns ``{name: [values]}``, in
    request order (a table the batcher can join to others' before pandas sees it).

    Each instance is a row ``{column: value}``, a KServe v1 list of rows, or KServe v1 columns
    ``{column: [values]}``. Only the model's ``features`` are kept (all columns when it has none
    recorded); a feature absent from every row is left out, for the caller to name. Values are checked
    a column at a time (C-level passes), and one by one only to name the first bad one.
    """
    if not isinstance(document, dict) or "instances" not in document:
        raise InputError(422, 'expected an object {"instances": [...]}; got ' + _kind(document))
    instances = document["instances"]
    if not isinstance(instances, list):
        raise InputError(422, f"'instances' must be a list of rows; got {_kind(instances)}")
    if not instances:
        raise InputError(422, "'instances' is empty: send at least one row")
    if len(instances) > max_rows:
        raise InputError(413, _too_many(len(instances), max_rows))
    blocks = _blocks(instances, max_rows)
    total = blocks[-1].start + blocks[-1].count if blocks else 0
    if total == 0:
        raise InputError(422, "'instances' holds no rows: send at least one")
    names = features or list(dict.fromkeys(name for block in blocks for name in block.names()))
    whole = _every_row_complete(blocks, names)
    if whole is not None:  # the usual request: plain rows, each with every column (transposed in C)
        for name, complete in whole.items():
            _check_column(complete, name, blocks)
        return whole
    columns = {}
    for name in names:
        values: list[Any] = []
        present = False
        for block in blocks:
            present = block.extend(values, name) or present
        if present:
            _check_column(values, name, blocks)
            columns[name] = values
    return columns


PROBABILITIES = "probabilities"
"""The request flag (``{"instances": [...], "probabilities": true}``) that asks for class probabilities."""


def wants_probabilities(options: Any, where: str = "") -> bool:
    """Whether ``options`` (the request body, or v2's ``parameters``) asks for class probabilities.

    Absent means no; anything but a JSON boolean is refused rather than guessed (``"false"`` is truthy).
    """
    if not isinstance(options, dict) or PROBABILITIES not in options:
        return False
    flag = options[PROBABILITIES]
    if type(flag) is not bool:
        raise InputError(422, f"'{where}{PROBABILITIES}' must be true or false; got {_kind(flag)}")
    return flag


@dataclass
class _Block:
    """Consecutive rows of the request: plain rows (``instances[i]``), a KServe list of rows
    (``instances[i][j]``) or KServe columns (``instances[i], value j``)."""

    start: int
    instance: int
    rows: list[dict[str, Any]] | None = None
    columns: dict[str, list[Any]] | None = None
    nested: bool = False

    @property
    def count(self) -> int:
        if self.columns is not None:
            return len(next(iter(self.columns.values())))
        assert self.rows is not None
        return len(self.rows)

    def names(self) -> Iterator[str]:
        if self.columns is not None:
            yield from self.columns
        else:
            assert self.rows is not None
            yield from dict.fromkeys(name for row in self.rows for name in row)

    def extend(self, values: list[Any], name: str) -> bool:
        """Append this block's values of column ``name`` (None where absent); whether it has the column."""
        if self.columns is not None:
            found = self.columns.get(name)
            values.extend(found if found is not None else [None] * self.count)
            return found is not None
        assert self.rows is not None
        before = len(values)
        values.extend([row.get(name) for row in self.rows])
        return any(v is not None for v in values[before:]) or any(name in row for row in self.rows)

    def where(self, row: int) -> str:
        offset = row - self.start
        if self.columns is not None:
            return f"instances[{self.instance}], value {offset}"
        return f"instances[{self.instance}][{offset}]" if self.nested else f"instances[{self.instance + offset}]"


def _blocks(instances: list[Any], max_rows: int) -> list[_Block]:
    """The request's rows, grouped by shape; shapes and the row count are checked on the way."""
    blocks: list[_Block] = []
    plain: _Block | None = None
    total = 0
    for index, item in enumerate(instances):
        if type(item) is dict and not (item and all(type(v) is list for v in item.values())):
            if plain is None:
                plain = _Block(total, index, rows=[])
                blocks.append(plain)
            assert plain.rows is not None
            plain.rows.append(item)
            total += 1
            continue
        plain = None
        where = f"instances[{index}]"
        if type(item) is dict:
            lengths = {len(values) for values in item.values()}
            if len(lengths) > 1:
                shown = ", ".join(f"{excerpt(name)}: {len(values)}" for name, values in list(item.items())[:5])
                raise InputError(
                    422, f"cannot read the instances as a table: {where} has columns of unequal lengths ({shown})"
                )
            block = _Block(total, index, columns=item)
        elif type(item) is list:
            for position, row in enumerate(item):
                if type(row) is not dict:
                    raise InputError(422, f"{where}[{position}] must be a row object; got {_kind(row)}")
            block = _Block(total, index, rows=item, nested=True)
        else:
            raise InputError(422, f"{where} must be a row object {{column: value}}; got {_kind(item)}")
        blocks.append(block)
        total += block.count
        if total > max_rows:
            raise InputError(413, _too_many(total, max_rows, counted=True))
    return blocks


def _every_row_complete(blocks: list[_Block], names: list[str]) -> dict[str, list[Any]] | None:
    """The columns of one block of plain rows that all have every column; None otherwise."""
    rows = blocks[0].rows
    if len(blocks) != 1 or rows is None or not names:
        return None
    pick = operator.itemgetter(*names)
    try:
        table = [pick(row) for row in rows]
    except KeyError:
        return None
    if len(names) == 1:
        return {names[0]: table}
    return {name: list(values) for name, values in zip(names, zip(*table, strict=True), strict=True)}


def _check_column(values: list[Any], name: str, blocks: list[_Block]) -> None:
    """Refuse the column if any value may not reach the model, naming the first such value's row."""
    kinds = set(map(type, values))
    suspect = not kinds <= _SCALAR_TYPES
    if not suspect and float in kinds:
        suspect = not all(map(math.isfinite, values if kinds == {float} else _of(values, float)))
    if not suspect and int in kinds:
        ints = values if kinds == {int} else _of(values, int)
        suspect = max(ints) > MAX_INT or min(ints) < -MAX_INT
    if not suspect and str in kinds:
        suspect = any(len(v) > 308 or "e" in v or "E" in v for v in _of(values, str))  # may overflow a float
    if suspect:
        for row, value in enumerate(values):
            _scalar(value, _locate(blocks, row), name)


def _of(values: list[Any], kind: type) -> list[Any]:
    return [v for v in values if type(v) is kind]


def _locate(blocks: list[_Block], row: int) -> str:
    index = bisect.bisect_right([block.start for block in blocks], row) - 1
    return blocks[index].where(row)


def _scalar(value: Any, where: str, column: str) -> Any:
    """``value`` if the model may see it; otherwise an ``InputError`` naming the instance and column."""
    if not isinstance(value, _SCALARS):
        raise InputError(422, f"{where}, column {excerpt(column)}: {_kind(value)} where a single value is expected")
    if isinstance(value, float) and not math.isfinite(value):
        problem = "NaN is not a number; send null for a missing value" if math.isnan(value) else _RANGE
        raise InputError(422, f"{where}, column {excerpt(column)}: {problem}")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        raise InputError(
            422, f"{where}, column {excerpt(column)}: {excerpt(value)} is out of range (largest: ±{MAX_INT})"
        )
    if isinstance(value, str) and _NUMBER.fullmatch(value) and math.isinf(float(value)):
        raise InputError(422, f"{where}, column {excerpt(column)}: {excerpt(value)} is {_RANGE}")
    return value


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    return f"{type(value).__name__} {excerpt(value)}"


def _too_many(count: int, limit: int, *, counted: bool = False) -> str:
    more = "at least " if counted else ""
    return f"{more}{count} rows; this server takes at most {limit} per request (--max-rows): split the request"
