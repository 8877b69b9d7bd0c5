"""Estimator parameters checked without importing scikit-learn: unknown names and values of the wrong type.

The allow-listed estimators' parameters and the values each accepts are a committed table
(:mod:`airflow_bridge.spec.estimator_params`, written by ``dev/gen_estimator_params.py`` from
scikit-learn's ``_parameter_constraints``), so ``validate`` and the dags folder check them for the
cost of a dict lookup. :func:`constraints_of` builds the same entries from an imported class, for
estimators a team policy adds (checked only when ``validate`` reads data, which may import them).

A constraint is a tuple: ``("int" | "real" | "float", low, high, closed)`` (``real`` takes whole
and decimal numbers, ``float`` only decimals; ``None`` bounds are open), ``("str", options)``,
``("options", values)``, ``("bool",)``, ``("none",)``, ``("text",)``, ``("list",)``, ``("dict",)``,
``("any",)``, or ``("hidden", constraint)`` for values accepted but not advertised (deprecated).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from airflow_bridge.issues import did_you_mean

if TYPE_CHECKING:
    from airflow_bridge.spec.semantics import Finding

Constraint = tuple[Any, ...]
ParamTable = Mapping[str, tuple[Constraint, ...]]

_ANY: tuple[Constraint, ...] = (("any",),)
_RANDOM_STATE: tuple[Constraint, ...] = (("int", 0, 2**32 - 1, "both"), ("none",))
_VERBOSE: tuple[Constraint, ...] = (("int", 0, None, "left"), ("bool",))
_NAMED: dict[str, tuple[Constraint, ...]] = {
    "boolean": (("bool",),),
    "random_state": _RANDOM_STATE,
    "verbose": _VERBOSE,
    "array-like": (("list",),),
    "missing_values": (("real", None, None, "neither"), ("options", (math.nan,)), ("text",), ("none",)),
    "nan": (("options", (math.nan,)),),
}


def builtin_table(estimator: str) -> ParamTable | None:
    """The committed parameter table of an allow-listed estimator, or None (e.g. one a policy adds)."""
    from airflow_bridge.ml.boosting_params import BOOSTING_PARAMETERS
    from airflow_bridge.spec.estimator_params import PARAMETERS

    return PARAMETERS.get(estimator) or BOOSTING_PARAMETERS.get(estimator)


def check_params(estimator: str, params: Mapping[str, Any], table: ParamTable) -> Iterator[Finding]:
    """Unknown parameter names (with 'did you mean') and values no constraint of the parameter accepts."""
    short = estimator.rsplit(".", 1)[-1]
    for name, value in params.items():
        where = ("model", "params", name)
        accepted = table.get(name)
        if accepted is None:
            yield (
                where,
                f"{short} has no parameter '{name}'",
                did_you_mean(name, list(table)) or f"its parameters: {', '.join(sorted(table))}",
            )
            continue
        problem = _value_problem(name, value, accepted)
        if problem is not None:
            yield (where, *problem)


def check_space(
    estimator: str, space: Mapping[str, Any], params: Mapping[str, Any], table: ParamTable
) -> Iterator[Finding]:
    """A search space (``model.search.space``, :class:`~airflow_bridge.spec.models.SearchDimension` values) the
    estimator cannot take: unknown names, names also fixed in ``params``, choices or range ends of the wrong type."""
    short = estimator.rsplit(".", 1)[-1]
    for name, dimension in space.items():
        where = ("model", "search", "space", name)
        accepted = table.get(name)
        if accepted is None:
            yield (
                where,
                f"{short} has no parameter '{name}' to search",
                did_you_mean(name, list(table)) or f"its parameters: {', '.join(sorted(table))}",
            )
            continue
        if name in params:
            yield (where, f"'{name}' is both fixed in model.params and searched", "remove it from one of them")
        if dimension.kind == "choices":
            for index, value in enumerate(dimension.choices):
                problem = _value_problem(name, value, accepted)
                if problem is not None:
                    yield ((*where, "choices", index), *problem)
            continue
        cast = int if dimension.kind == "int" else float
        low, high = cast(dimension.low), cast(dimension.high)
        numeric = [c[1] if c[0] == "hidden" else c for c in accepted]
        numeric = [c for c in numeric if c[0] in ("int", "real", "float", "any")]
        if any(_accepts(c, low) and _accepts(c, high) for c in numeric):
            continue
        kind = "integer" if dimension.kind == "int" else "decimal"
        wanted = _describe_all([c for c in accepted if c[0] != "hidden"]) or "no number"
        hint = None
        if dimension.kind == "int" and any(c[0] == "float" for c in numeric):
            hint = f"write decimal bounds ({float(low)}, {float(high)}) or type: float for a fraction"
        elif (
            dimension.kind == "float"
            and any(c[0] == "int" for c in numeric)
            and not any(c[0] in ("real", "float") for c in numeric)
        ):
            hint = "write whole-number bounds for an integer range, e.g. {low: 2, high: 12}"
        yield (where, f"the {kind} range {low} to {high} does not fit '{name}', which takes {wanted}", hint)


def names_value(accepted: tuple[Constraint, ...], value: float) -> bool:
    """Whether ``value`` (NaN or an infinity) is one of the parameter's documented options, e.g. ``inf``."""
    for constraint in accepted:
        inner = constraint[1] if constraint[0] == "hidden" else constraint
        if inner[0] == "options" and _accepts(inner, value):
            return True
    return False


def _value_problem(name: str, value: Any, accepted: tuple[Constraint, ...]) -> tuple[str, str | None] | None:
    if any(_accepts(c, value) for c in accepted):
        return None
    shown = [c for c in accepted if c[0] != "hidden"]
    wanted = _describe_all(shown) or "a value a spec cannot express (a Python object)"
    got = f"{_type_word(value)} {value!r}" if value is not None else "null"
    hint: str | None = None
    if isinstance(value, str):
        options = [o for c in accepted for o in _str_options(c)]
        hint = did_you_mean(value, options) if options else None
        if hint is None and _numeric_text(value) is not None and any(_accepts(c, _numeric_text(value)) for c in shown):
            hint = f"write the number without quotes: {name}: {value.strip()}"
    elif isinstance(value, float) and value.is_integer() and any(_accepts(c, int(value)) for c in shown):
        hint = f"write a whole number: {name}: {int(value)}"
    elif (
        isinstance(value, int)
        and not isinstance(value, bool)
        and abs(value) <= 2**53  # larger ones do not fit a float (and are refused as out of range)
        and any(_accepts(c, float(value)) for c in shown)
    ):
        hint = f"write a decimal number: {name}: {float(value)}"
    return f"'{name}' takes {wanted}; got {got}", hint


def _accepts(constraint: Constraint, value: Any) -> bool:
    kind = constraint[0]
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "any":
        return True
    if kind == "hidden":
        return _accepts(constraint[1], value)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "none":
        return value is None
    if kind == "text":
        return isinstance(value, str)
    if kind == "str":
        return isinstance(value, str) and value in constraint[1]
    if kind == "list":
        return isinstance(value, list)
    if kind == "dict":
        return isinstance(value, dict)
    if kind == "options":
        return is_number and any(value == o or (math.isnan(o) and math.isnan(value)) for o in constraint[1])
    if kind in ("int", "real", "float"):
        typed = {"int": isinstance(value, int), "real": True, "float": isinstance(value, float)}[kind]
        return is_number and typed and _within(value, *constraint[1:])
    return True  # a constraint this version does not know: never a false alarm


def _within(value: float, low: float | None, high: float | None, closed: str) -> bool:
    if isinstance(value, float) and math.isnan(value):  # math.isnan(int) overflows for huge integers
        return False
    left_ok = low is None or (value >= low if closed in ("left", "both") else value > low)
    right_ok = high is None or (value <= high if closed in ("right", "both") else value < high)
    return left_ok and right_ok


def _describe_all(constraints: list[Constraint]) -> str:
    parts = [_describe(c) for c in constraints]
    parts = [p for i, p in enumerate(parts) if p and p not in parts[:i]]
    if len(parts) <= 1:
        return "".join(parts)
    return f"{', '.join(parts[:-1])} or {parts[-1]}"


def _describe(constraint: Constraint) -> str:
    kind = constraint[0]
    if kind in ("int", "real", "float"):
        noun = {"int": "an integer", "real": "a number", "float": "a decimal number"}[kind]
        return noun + _range_text(*constraint[1:])
    if kind == "str":
        return "one of " + ", ".join(repr(o) for o in sorted(constraint[1]))
    if kind == "options":
        return " or ".join(_yaml_number(o) for o in constraint[1])
    words = {"bool": "true or false", "none": "null", "text": "a string", "list": "a list", "dict": "a mapping"}
    return words.get(kind, "any value")


def _yaml_number(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    return (".inf" if value > 0 else "-.inf") if math.isinf(value) else repr(value)


def _range_text(low: float | None, high: float | None, closed: str) -> str:
    if low is None and high is None:
        return ""
    if high is None:
        return f" >= {low:g}" if closed in ("left", "both") else f" > {low:g}"
    if low is None:
        return f" <= {high:g}" if closed in ("right", "both") else f" < {high:g}"
    left = "[" if closed in ("left", "both") else "("
    right = "]" if closed in ("right", "both") else ")"
    return f" in {left}{low:g}, {high:g}{right}"


def _str_options(constraint: Constraint) -> list[str]:
    if constraint[0] == "hidden":
        return _str_options(constraint[1])
    return sorted(constraint[1]) if constraint[0] == "str" else []


def _numeric_text(text: str) -> int | float | None:
    try:
        return int(text.strip())
    except ValueError:
        pass
    try:
        number = float(text.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _type_word(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list", dict: "mapping"}.get(
        type(value), type(value).__name__
    )


# -- building the table from scikit-learn (dev/gen_estimator_params.py; policy estimators at validate) -------------


def constraints_of(cls: type) -> dict[str, tuple[Constraint, ...]]:
    """Each constructor parameter of ``cls`` and the YAML values it accepts, from scikit-learn's constraints.

    Parameters without declared constraints (or classes that are not scikit-learn's) accept anything.
    Imports scikit-learn: call it only where that cost is acceptable.
    """
    import inspect

    signature = inspect.signature(cls)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
        return {}  # takes any keyword: nothing to check
    declared: Mapping[str, Any] = getattr(cls, "_parameter_constraints", {}) or {}
    table: dict[str, tuple[Constraint, ...]] = {}
    for name, parameter in signature.parameters.items():
        if name == "self" or parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.POSITIONAL_ONLY):
            continue
        raw = declared.get(name)
        if raw is None or raw == "no_validation":
            table[name] = _ANY
            continue
        encoded: list[Constraint] = []
        for item in raw:
            for constraint in _encode(item):
                if constraint not in encoded:
                    encoded.append(constraint)
        table[name] = tuple(encoded)
    return table


def _encode(item: Any) -> tuple[Constraint, ...]:
    """One scikit-learn constraint as table entries; objects a spec cannot write give none."""
    from sklearn.utils import _param_validation as pv

    if item is None:
        return (("none",),)
    if isinstance(item, str):
        return _NAMED.get(item, ())  # e.g. 'sparse matrix', 'cv_object': not expressible in YAML
    if isinstance(item, pv.Hidden):
        return tuple(("hidden", c) for c in _encode(item.constraint))
    if isinstance(item, pv.StrOptions):
        return (("str", tuple(sorted(item.options))),)
    if isinstance(item, pv.Interval):
        kind = "int" if item.type is numbers.Integral else "float" if item.type is pv.RealNotInt else "real"
        return ((kind, _bound(item.left), _bound(item.right), item.closed),)
    if isinstance(item, pv.Options):
        return (("options", tuple(sorted(item.options, key=repr))),)
    if isinstance(item, type):
        for types, entry in _TYPES:
            if issubclass(item, types):
                return (entry,)
        return ()  # a class instance (a loss, a distance metric): not expressible in YAML
    if item is callable or isinstance(item, pv.HasMethods):
        return ()
    return _ANY  # a constraint this version does not know: accept anything rather than refuse a working spec


_TYPES: tuple[tuple[type | tuple[type, ...], Constraint], ...] = (
    (bool, ("bool",)),
    (numbers.Integral, ("int", None, None, "neither")),
    (numbers.Real, ("real", None, None, "neither")),
    (str, ("text",)),
    (dict, ("dict",)),
    ((list, tuple), ("list",)),
)


def _bound(value: Any) -> float | int | None:
    if value is None or (isinstance(value, float) and math.isinf(value)):
        return None
    return value if isinstance(value, int) else float(value)
