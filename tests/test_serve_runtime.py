"""The serving processes' two settings (airflow_bridge/serving/runtime.py): pandas' Python string storage
predicts exactly what the default storage predicts, and a frozen heap still lets a replaced version go."""

from __future__ import annotations

import gc
import json
import weakref
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from airflow_bridge.registry import ModelRegistry
from airflow_bridge.serving.app import ModelHolder, predict_body
from airflow_bridge.serving.runtime import settle
from tests.serve_examples import EXAMPLES, register_example


def _bodies(rows: list[dict[str, Any]], probabilities: bool) -> list[bytes]:
    """All rows in one request, then the first five one by one (pandas infers dtypes per request)."""
    documents: list[dict[str, Any]] = [{"instances": rows}] + [{"instances": [row]} for row in rows[:5]]
    if probabilities:
        for document in documents:
            document["probabilities"] = True
    return [json.dumps(document).encode() for document in documents]


@pytest.mark.parametrize("spec", list(EXAMPLES))
def test_python_string_storage_answers_exactly_as_the_default_on_each_example_table(spec: str, tmp_path: Path) -> None:
    example = register_example(spec, tmp_path)
    holder = ModelHolder(ModelRegistry(example.registry_url), example.model, "production")
    holder.load_initial()
    table = example.rows.sample(40, random_state=3, replace=len(example.rows) < 40)
    rows = json.loads(table.to_json(orient="records"))  # NaN → null, as a client sends a missing value
    text = [{name: None if value is None else str(value) for name, value in row.items()} for row in rows[:5]]
    classifier = hasattr(holder.current.estimator, "predict_proba")  # type: ignore[union-attr]
    bodies = [body for p in ((False, True) if classifier else (False,)) for body in _bodies(rows, p)]
    bodies += _bodies(text, False)  # every value as text: the columns' dtypes are inferred from strings
    expected = [predict_body(holder, body, "application/json", 10_000) for body in bodies]
    assert pd.DataFrame({"a": ["x"]})["a"].dtype.storage == "pyarrow"  # the default this compares against

    with pd.option_context("mode.string_storage", "python"):
        assert pd.DataFrame({"a": ["x"]})["a"].dtype.storage == "python"
        got = [predict_body(holder, body, "application/json", 10_000) for body in bodies]

    assert [status for status, _ in expected] == [200] * len(bodies), expected
    assert got == expected  # byte for byte: labels, probabilities, warnings


def test_a_frozen_heap_still_lets_a_replaced_version_go() -> None:
    class Version:
        """Stands for a loaded model: an object graph with a reference cycle."""

    old = Version()
    old.me = old  # type: ignore[attr-defined]
    gone = weakref.ref(old)
    try:
        settle()
        assert gc.get_freeze_count() > 0
        del old
        gc.collect()
        assert gone() is not None  # frozen: the collector no longer walks it
        settle()  # the next load unfreezes and collects before freezing again
        assert gone() is None
    finally:
        gc.unfreeze()
