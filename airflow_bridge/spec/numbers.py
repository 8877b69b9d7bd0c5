"""Numbers a spec or team policy may hold: finite, and whole numbers within ±2**53.

YAML reads integers of any length and ``.nan``/``.inf``. Such values make no sense as a setting,
overflow float conversions in later checks (``OverflowError``), and cannot be stored as JSON (model
cards, the registry) or in Airflow's database. They are found on the plain data before the models
see it (the YAML reader notes them while building the data: no second walk), so each is reported
at its own position and no later check ever meets one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from airflow_bridge.spec.yamlsafe import MAX_SPEC_INT, LocatedDocument, Path

NumberFinding = tuple[Path, str, str | None]
"""(path in the document, message, hint)."""


def number_findings(
    doc: LocatedDocument, allows_non_finite: Callable[[Path, float], bool] | None = None
) -> Iterator[NumberFinding]:
    """Every whole number beyond ±2**53 and every NaN or infinity in ``doc``, in document order.

    ``allows_non_finite(path, value)`` exempts the few values a field explicitly takes (an
    estimator parameter whose documented options include ``inf``).
    """
    for path, value in doc.odd_numbers:
        if isinstance(value, int):
            yield (
                path,
                f"{_written(doc, path, value)} is out of range: whole numbers in a spec lie within ±2**53 "
                f"({MAX_SPEC_INT})",
                "use a smaller number; larger ones cannot be stored exactly as JSON or in Airflow",
            )
        elif allows_non_finite is None or not allows_non_finite(path, value):
            yield (
                path,
                f"'{_written(doc, path, value)}' is not a finite number",
                "write a number: NaN and infinity are not allowed here",
            )


def _written(doc: LocatedDocument, path: Path, value: int | float) -> str:
    """The value as written in the file, shortened when long (a 400-digit integer)."""
    node = doc.value_nodes.get(path)
    text = str(node.value) if node is not None else _text(value)
    if len(text) <= 24:
        return text
    digits = text.lstrip("+-")
    unit = "digits" if digits.isdigit() else "characters"
    return f"{text[:12]}...{text[-3:]} ({len(digits) if unit == 'digits' else len(text)} {unit})"


def _text(value: int | float) -> str:
    try:
        return repr(value)
    except ValueError:  # an integer too long for Python to print (hex of thousands of digits)
        return f"a {value.bit_length()}-bit number" if isinstance(value, int) else "a number"
