"""Problems with their position in a source file (a spec, a team policy), and the hints they carry.

Shared by every layer that reports such a problem: ``exceptions`` (``SpecError``), ``spec``, ``ml`` and
``governance``; it imports nothing of airflow-bridge.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, order=True)
class SpecIssue:
    """One problem in a spec file: where it is, what is wrong, and how to fix it."""

    path: str
    line: int
    col: int
    field: str
    message: str
    hint: str | None = None

    def format(self) -> str:
        """``path:line:col: field: message (hint)`` — the format editors and CI understand."""
        where = f"{self.path}:{self.line}:{self.col}"
        text = f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def did_you_mean(word: str, choices: list[str] | tuple[str, ...] | set[str]) -> str | None:
    """A 'did you mean' hint for a misspelled key or name, or None when nothing is close."""
    import difflib

    options = sorted(str(c) for c in choices)
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if not close:
        # Dotted names: compare the last part too (RandomForestClasifier vs sklearn.ensemble.RandomForestClassifier).
        tail = word.rsplit(".", 1)[-1]
        tails = {o.rsplit(".", 1)[-1]: o for o in options}
        close = [tails[m] for m in difflib.get_close_matches(tail, list(tails), n=1, cutoff=0.75)]
    return f"did you mean '{close[0]}'?" if close else None


def failure_issue(path: str, what: str, exc: BaseException) -> SpecIssue:
    """An unexpected exception as an issue of the spec at ``path`` (line 1: where is unknown)."""
    try:
        detail = str(exc)
    except Exception:  # an exception that cannot even describe itself
        detail = ""
    detail = detail if len(detail) <= 300 else f"{detail[:297]}..."
    return SpecIssue(
        path,
        1,
        1,
        "",
        f"{what}: {type(exc).__name__}" + (f": {detail}" if detail else ""),
        "the other specs are not affected; if this spec looks right, it is likely a bug in airflow-bridge: "
        "please report it",
    )


def percent_hint(value: Any) -> str | None:
    """``test_size: 20`` was meant as a percentage: suggest the fraction."""
    if isinstance(value, int | float) and not isinstance(value, bool) and 1 < value < 100:
        return f"a fraction of the rows: did you mean {value / 100:g} ({value:g} %)?"
    return None
