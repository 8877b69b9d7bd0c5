"""Placeholder DAGs: how an invalid spec shows up in the Airflow UI without breaking any other DAG.

The placeholder keeps the spec's DAG id when it can be read (so history stays attached), is tagged
``invalid-spec``, shows every error in its docs and description, and fails with them if triggered.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import DAG, BaseOperator

from airflow_bridge.factory.build import BRIDGE_TAG

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_bridge.issues import SpecIssue

INVALID_TAG = "invalid-spec"
_SLUG = re.compile(r"[^a-z0-9_]+")


class SpecErrorOperator(BaseOperator):
    """Fails with the spec's errors: triggering a broken spec explains itself in the task log."""

    ui_color = "#fdecea"

    def __init__(self, *, errors: Sequence[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.errors = list(errors)

    def execute(self, context: Context) -> None:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(
            "The spec of this DAG is invalid; fix it and the DAG comes back:\n" + "\n".join(self.errors)
        )


def placeholder_dag_id(path: str, raw_name: str | None, taken: set[str]) -> str:
    """The spec's own name when usable and not contested, else an id from its file path.

    ``taken`` holds the ids already used and the names two specs fight over; the result is added
    to it, so no two placeholders ever share an id.
    """
    if raw_name and re.fullmatch(r"[a-z][a-z0-9_]{0,62}", raw_name) and raw_name not in taken:
        chosen = raw_name
    else:
        file_name = path.replace("\\", "/").rsplit("/", 1)[-1]
        candidates = [_slug(file_name.rsplit(".", 1)[0]), _slug(path)]
        chosen = next((f"invalid_spec__{c}" for c in candidates if f"invalid_spec__{c}" not in taken), "")
        counter = 2
        while not chosen or chosen in taken:
            chosen = f"invalid_spec__{candidates[-1]}_{counter}"
            counter += 1
    taken.add(chosen)
    return chosen


def _slug(text: str) -> str:
    return _SLUG.sub("_", text.lower()).strip("_")[:200] or "spec"


def build_placeholder_dag(dag_id: str, path: str, issues: Sequence[SpecIssue], owner: str | None = None) -> DAG:
    """A paused, unscheduled DAG owned by the spec's ``owner`` (``airflow`` when unreadable) showing ``issues``."""
    errors = [issue.format() for issue in issues]
    doc = (
        f"## Invalid spec: `{path}`\n\nThis DAG stands in for a spec that does not validate. "
        f"It never runs on a schedule; triggering it fails with these errors:\n\n"
        + "\n".join(f"- {_code(error)}" for error in errors)
        + f"\n\nCheck locally with `airflow-bridge validate {path}`.\n"
    )
    with DAG(
        dag_id=dag_id,
        description=f"INVALID SPEC ({len(errors)} error(s)): {errors[0] if errors else path}"[:400],
        doc_md=doc,
        schedule=None,
        start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        catchup=False,
        tags=[BRIDGE_TAG, INVALID_TAG],
        is_paused_upon_creation=True,
        default_args={"owner": owner or "airflow"},
    ) as dag:
        SpecErrorOperator(task_id="spec_error", errors=errors, retries=0)
    return dag


def _code(text: str) -> str:
    """``text`` as a Markdown code span, whatever backticks it holds."""
    fence = "`"
    while fence in text:
        fence += "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"
