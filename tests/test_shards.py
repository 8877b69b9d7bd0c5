"""Sharded loading: stable shard assignment, ``airflow-bridge loaders`` and a DagBag over shard files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from airflow_bridge.cli.main import app
from airflow_bridge.spec.shards import MARKER, Shard, ShardError, assign, auto_count, shard_of
from tests.helpers import EXAMPLES

BASE = (EXAMPLES / "diabetes_progression.yaml").read_text()


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def make_specs(folder: Path, count: int, *, start: int = 0) -> list[str]:
    """``count`` valid specs ``model_<i>.yaml`` (the diabetes example renamed) and the example data."""
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "data").exists():
        shutil.copytree(EXAMPLES / "data", folder / "data")
    names = [f"model_{i:02d}" for i in range(start, start + count)]
    for name in names:
        (folder / f"{name}.yaml").write_text(BASE.replace("name: diabetes_progression", f"name: {name}"))
    return names


def listing(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.iterdir()) if p.is_file()}


# -- shard assignment ------------------------------------------------------------------------------


def test_every_spec_is_in_exactly_one_shard() -> None:
    paths = [f"/specs/team_{i % 7}/model_{i}.yaml" for i in range(1000)]
    shards = assign(paths, "/specs", 20)
    assert sorted(p for shard in shards for p in shard) == sorted(paths)
    assert all(30 <= len(shard) <= 70 for shard in shards), [len(s) for s in shards]  # about 50 each


def test_a_spec_keeps_its_shard_when_others_are_added_or_removed() -> None:
    before = {p: i for i, shard in enumerate(assign([f"/s/m{i}.yaml" for i in range(100)], "/s", 5)) for p in shard}
    grown = [f"/s/m{i}.yaml" for i in range(50, 300)]  # half removed, 200 added
    after = {p: i for i, shard in enumerate(assign(grown, "/s", 5)) for p in shard}
    assert {p: after[p] for p in before if p in after} == {p: before[p] for p in before if p in after}


def test_the_key_is_the_path_relative_to_the_folder_and_never_salted() -> None:
    assert Shard(2, 5).holds("/a/specs/x.yaml", "/a/specs") == Shard(2, 5).holds("/b/specs/x.yaml", "/b/specs")
    assert shard_of("team/x.yaml", 1000) == 855  # SHA-256: the same in every process and on every machine


@pytest.mark.parametrize(("index", "count"), [(0, 0), (3, 3), (-1, 2), (0, True)])
def test_a_bad_shard_is_refused(index: int, count: int) -> None:
    with pytest.raises(ShardError, match="shard"):
        Shard(index, count)


def test_auto_puts_at_most_500_specs_in_a_file() -> None:
    assert [auto_count(n) for n in (1, 500, 501, 10_000)] == [1, 1, 2, 20]


# -- the loaders command ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shards", "message"),
    [("0", "at least 1"), ("5", "more than the 4 spec"), ("two", "whole number or 'auto'")],
)
def test_bad_shard_counts_are_refused_and_nothing_is_written(shards: str, message: str, tmp_path: Path) -> None:
    make_specs(tmp_path, 4)
    before = listing(tmp_path)
    result = invoke("loaders", tmp_path, "--shards", shards)
    assert result.exit_code == 2
    assert message in result.output
    assert listing(tmp_path) == before


def test_a_folder_without_specs_is_refused(tmp_path: Path) -> None:
    result = invoke("loaders", tmp_path)
    assert result.exit_code == 2
    assert "no spec files" in result.output
    assert not list(tmp_path.iterdir())


def test_an_unsharded_loader_in_the_folder_is_refused(tmp_path: Path) -> None:
    make_specs(tmp_path, 4)
    shutil.copy(EXAMPLES / "airflow_bridge_dags.py", tmp_path / "airflow_bridge_dags.py")
    before = listing(tmp_path)
    result = invoke("loaders", tmp_path, "--shards", "2")
    assert result.exit_code == 1
    assert "airflow_bridge_dags.py also load(s) this folder's specs" in result.output
    assert listing(tmp_path) == before


def test_relayout_removes_only_the_shard_files_it_wrote(tmp_path: Path) -> None:
    make_specs(tmp_path, 4)
    mine = tmp_path / "airflow_bridge_dags_shard_07_of_09.py"  # the user's, without the marker
    mine.write_text("# my own file\n")
    assert invoke("loaders", tmp_path, "--shards", "3").exit_code == 0
    assert invoke("loaders", tmp_path, "--shards", "2").exit_code == 0
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*.py")}
    assert invoke("loaders", tmp_path, "--shards", "2").exit_code == 0
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("*.py")} == stamps  # unchanged files not rewritten
    written = sorted(p.name for p in tmp_path.glob("*.py") if MARKER in p.read_text())
    assert written == [
        "airflow_bridge_dags_shard_00_of_02.py",
        "airflow_bridge_dags_shard_01_of_02.py",
        "airflow_bridge_spec_errors_shard_00_of_02.py",
        "airflow_bridge_spec_errors_shard_01_of_02.py",
    ]
    assert mine.read_text() == "# my own file\n"
    assert "load_dag_specs(globals(), shard=(1, 2))" in (tmp_path / written[1]).read_text()


def test_validate_warns_when_one_loader_file_would_parse_too_long(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_specs(tmp_path, 4)
    monkeypatch.setenv("AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT", "0.05")  # 4 specs x 5 ms > a third of it > 3 specs
    result = invoke("validate", tmp_path, "--no-data", "--no-registry")
    assert result.exit_code == 0
    assert "its one loader file builds 4 specs" in result.output
    assert f"airflow-bridge loaders {tmp_path} --shards auto" in result.output
    invoke("loaders", tmp_path, "--shards", "4")
    result = invoke("validate", tmp_path, "--no-data", "--no-registry")
    assert "dagbag_import_timeout" not in result.output  # at most 3 specs per file: under a third


# -- loading ---------------------------------------------------------------------------------------


def test_a_name_used_in_two_shards_builds_in_neither(tmp_path: Path) -> None:
    from airflow_bridge.factory import load_dag_specs

    make_specs(tmp_path, 6)
    home = shard_of("model_00.yaml", 2)
    twin = next(f"twin_{i}.yaml" for i in range(100) if shard_of(f"twin_{i}.yaml", 2) != home)
    (tmp_path / twin).write_text(BASE.replace("name: diabetes_progression", "name: model_00"))
    built = [load_dag_specs(folder=str(tmp_path), shard=(i, 2)) for i in range(2)]
    twins = [dag for dags in built for dag in dags.values() if "model_00" in (dag.doc_md or "")]
    assert len(twins) == 2 and all("invalid-spec" in dag.tags for dag in twins)
    assert "model_00" not in {dag.dag_id for dag in twins}  # neither placeholder takes the contested name
    assert all("name 'model_00' is also used by" in (dag.doc_md or "") for dag in twins)


def test_a_worker_builds_its_dag_from_any_shard_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_bridge.factory import load_dag_specs

    make_specs(tmp_path, 6)
    dag_id = next(f"model_{i:02d}" for i in range(6) if shard_of(f"model_{i:02d}.yaml", 3) != 0)
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", dag_id)  # a run queued before its spec moved
    assert list(load_dag_specs(folder=str(tmp_path), shard=(0, 3))) == [dag_id]


def test_dagbag_of_a_sharded_folder_has_every_dag_once_and_no_import_error(tmp_path: Path) -> None:
    from airflow.dag_processing.dagbag import DagBag

    names = make_specs(tmp_path / "specs", 12)
    assert invoke("loaders", tmp_path / "specs", "--shards", "3").exit_code == 0
    bag = DagBag(dag_folder=str(tmp_path / "specs"))
    assert bag.import_errors == {}
    assert sorted(bag.dags) == names
    per_file: dict[str, list[str]] = {}
    for dag_id, dag in bag.dags.items():
        per_file.setdefault(Path(dag.fileloc).name, []).append(dag_id)
    expected = assign([str(tmp_path / "specs" / f"{n}.yaml") for n in names], str(tmp_path / "specs"), 3)
    assert sorted(map(sorted, per_file.values())) == sorted(sorted(Path(p).stem for p in s) for s in expected)
    assert all(len(ids) >= 1 for ids in per_file.values()) and len(per_file) == 3
    assert len([f for f in bag.file_last_changed if "_spec_errors_shard_" in f]) == 3  # parsed, silent


def test_each_shard_lists_only_its_own_invalid_specs(tmp_path: Path) -> None:
    from airflow_bridge.factory import InvalidSpecsError, report_invalid_specs

    make_specs(tmp_path, 6)
    (tmp_path / "broken.yaml").write_text(BASE.replace("estimator: sklearn", "estimator: os.system #"))
    home = shard_of("broken.yaml", 3)
    with pytest.raises(InvalidSpecsError, match=rf"1 invalid .* \(shard {home} of 3\): .*\n- \S*broken.yaml:"):
        report_invalid_specs(folder=str(tmp_path), shard=(home, 3))
    for other in {0, 1, 2} - {home}:
        report_invalid_specs(folder=str(tmp_path), shard=(other, 3))  # silent
