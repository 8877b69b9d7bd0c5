"""Messy data, fast: column roles and why, the mistakes that need a fix, and rows checked as they arrive.

No Airflow: the column inference, the table reader and the train action on small files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from airflow_bridge.actions.training import DataChecksFailedError, TrainingRequest, train
from airflow_bridge.artifacts import ArtifactStore
from airflow_bridge.exceptions import DataError
from airflow_bridge.ml.columns import ColumnRoles, feature_columns, infer_roles
from airflow_bridge.ml.data import read_table

RNG = np.random.default_rng(0)


def _lab(rows: int = 60) -> pd.DataFrame:
    species = RNG.choice(["sparrow", "finch"], rows)
    return pd.DataFrame(
        {
            "ring": [f"R-{i:04d}" for i in range(rows)],
            "species": species,
            "site": RNG.choice(["north", "south", None], rows),
            "seen": pd.date_range("2024-01-01", periods=rows).strftime("%Y-%m-%d"),
            "mass (g)": np.where(species == "finch", 20.0, 30.0) + RNG.normal(0, 1, rows),
            "note": [None] * rows,
            "station": ["A"] * rows,
        }
    )


def _roles(frame: pd.DataFrame, **kwargs: Any) -> dict[str, tuple[str, str]]:
    return {c: (r.role, r.reason) for c, r in infer_roles(frame, "species", **kwargs).items()}


def test_each_column_gets_a_role_and_a_reason() -> None:
    roles = _roles(_lab())
    assert roles["ring"] == ("ignore", "unique in every row: an identifier, not a feature")
    assert roles["note"] == ("ignore", "every value is missing")
    assert roles["station"] == ("ignore", "the same value in every row: it cannot tell rows apart")
    assert roles["species"][0] == "target"
    assert roles["site"][0] == "categorical" and roles["seen"][0] == "datetime"
    assert roles["mass (g)"] == ("numeric", "numbers")
    assert feature_columns(infer_roles(_lab(), "species")) == ["site", "seen", "mass (g)"]


def test_the_spec_overrides_roles_and_its_mistakes_are_named() -> None:
    roles = _roles(_lab(), overrides={"ring": "categorical", "site": "ignore"})
    assert roles["ring"] == ("categorical", "set in the spec (data.columns)")
    assert roles["site"] == ("ignore", "set to ignore in the spec (data.columns)")
    with pytest.raises(
        DataError, match=r"names column\(s\) the data does not have: 'mass' \(did you mean 'mass \(g\)'"
    ):
        infer_roles(_lab(), "species", overrides={"mass": "numeric"})
    with pytest.raises(DataError, match=r"column 'note' is entirely empty but data.columns gives it the role"):
        infer_roles(_lab(), "species", overrides={"note": "numeric"})
    many = _lab(1500).assign(code=[f"c{i}" for i in range(1500)])
    with pytest.raises(DataError, match=r"1500 distinct values, too many for the role 'categorical'.*code: text"):
        infer_roles(many, "species", overrides={"code": "categorical"})


def test_dates_in_mixed_formats_are_refused_with_the_fix() -> None:
    frame = _lab()
    frame.loc[::2, "seen"] = "03/04/2024"
    with pytest.raises(DataError, match=r"column 'seen' mixes date formats .*ISO YYYY-MM-DD.*seen: categorical"):
        infer_roles(frame, "species")


def test_files_that_are_not_comma_separated_utf8_say_how_to_read_them(tmp_path: Path) -> None:
    semicolons = tmp_path / "semi.csv"
    semicolons.write_text("a;b;y\n1;2;3\n")
    with pytest.raises(DataError, match=r"looks ';'-separated .*data.training.delimiter: ';'"):
        read_table(str(semicolons))
    assert list(read_table(str(semicolons), delimiter=";").frame.columns) == ["a", "b", "y"]

    latin = tmp_path / "latin.csv"
    latin.write_bytes("site,y\nM\xfcnster,1\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"is not UTF-8 text .*data.training.encoding .*latin-1"):
        read_table(str(latin))
    assert read_table(str(latin), encoding="latin-1").frame["site"][0] == "Münster"

    header = tmp_path / "header.csv"
    header.write_text("a,b,y\n")
    with pytest.raises(DataError, match=r"holds only a header: no rows"):
        read_table(str(header))


def test_parquet_with_nested_columns_names_them(tmp_path: Path) -> None:
    path = tmp_path / "nested.parquet"
    pd.DataFrame({"tags": [["a"], ["b", "c"]], "y": [1, 2]}).to_parquet(path)
    with pytest.raises(DataError, match=r"nested columns \(tags: lists, structs or maps\)"):
        read_table(str(path))


def test_rows_are_checked_as_they_arrive() -> None:
    step = ColumnRoles(columns=["site", "mass (g)"]).fit(_lab())
    out = step.transform(pd.DataFrame({"site": ["north", "NA"], "mass (g)": ["21.5", ""]}))
    assert out["site"].isna().tolist() == [False, True] and out["mass (g)"].tolist()[0] == 21.5
    with pytest.raises(DataError, match=r"missing column\(s\) 'mass \(g\)'"):
        step.transform(pd.DataFrame({"site": ["north"]}))
    with pytest.raises(DataError, match=r"column 'mass \(g\)' takes numbers; got 'heavy'"):
        step.transform(pd.DataFrame({"site": ["north"], "mass (g)": ["heavy"]}))


def _train(tmp_path: Path, frame: pd.DataFrame, **request: Any) -> Any:
    path = tmp_path / "lab.csv"
    frame.to_csv(path, index=False)
    defaults: dict[str, Any] = {
        "model": "lab",
        "target": "species",
        "estimator": "sklearn.linear_model.LogisticRegression",
    }
    return train(TrainingRequest(data_uri=str(path), **{**defaults, **request}), ArtifactStore(str(tmp_path / "art")))


def test_training_on_raw_rows_drops_rows_without_a_target_and_counts_them(tmp_path: Path) -> None:
    frame = _lab()
    frame.loc[:2, "species"] = None
    result = _train(tmp_path, frame)
    assert (result.data.rows, result.data.missing_target_rows) == (57, 3)
    assert result.data.roles["ring"]["role"] == "ignore"
    assert [c.name for c in result.checks] == []  # no checks asked for

    with pytest.raises(DataChecksFailedError, match=r"max_missing_target_fraction = 0\.05"):
        _train(tmp_path, frame, checks={"max_missing_target_fraction": 0.01})


def test_a_target_with_one_class_is_refused_before_anything_is_fitted(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"target 'species' .* has a single class \('finch'\)"):
        _train(tmp_path, _lab().assign(species="finch"))
    assert not (tmp_path / "art").exists()
