"""The Models page's paged registry reads, on SQLite and PostgreSQL: pages in SQL order, counts, search."""

from __future__ import annotations

from pathlib import Path

from airflow_bridge.artifacts import ArtifactStore
from airflow_bridge.registry import ModelCard, ModelRegistry, RunRef, queries


def _registry(url: str, tmp_path: Path) -> ModelRegistry:
    registry = ModelRegistry(url)
    store = ArtifactStore(f"file://{tmp_path / 'artifacts'}")
    for number, auc in enumerate([0.91, 0.97, 0.93, None, 0.95], start=1):
        metrics = {"roc_auc": auc} if auc is not None else {"rmse": 1.0}
        registry.register_version(
            "cancer",
            store.put(f"m{number}".encode(), "models/cancer", ".joblib"),
            metrics=metrics,
            run=RunRef("cancer_dag", f"run{number}", "register") if number != 5 else RunRef(),
            actor="alice",
            card=ModelCard(owner="alice", team="onc", description="Tumours 100% of the time"),
        )
    registry.register_version(
        "churn_rate",
        store.put(b"c", "models/churn", ".joblib"),
        actor="bob",
        card=ModelCard(owner="bob", team="growth"),
    )
    registry.move_alias("cancer", "staging", 2, actor="alice")
    return registry


def test_pages_of_versions_in_sql_order(registry_url: str, tmp_path: Path) -> None:
    registry = _registry(registry_url, tmp_path)
    with registry.reading("test") as conn:
        assert queries.count_versions(conn, "cancer") == 5
        assert queries.count_versions(conn, "cancer", newer_than=3) == 2
        newest = queries.versions_page(conn, "cancer", offset=0, limit=2)
        assert [v.version for v in newest] == [5, 4]
        assert [v.version for v in queries.versions_page(conn, "cancer", offset=4, limit=2)] == [1]
        best = queries.versions_page(conn, "cancer", sort="metric", metric="roc_auc", limit=5)
        assert [v.version for v in best] == [2, 5, 3, 1, 4]  # without the metric: last
        worst = queries.versions_page(conn, "cancer", sort="metric", metric="roc_auc", descending=False, limit=5)
        assert [v.version for v in worst] == [1, 3, 5, 2, 4]
        [second] = queries.versions_page(conn, "cancer", offset=3, limit=1, descending=False)
        assert (second.version, second.aliases, second.run.run_id) == (4, (), "run4")
        [staged] = queries.versions_page(conn, "cancer", offset=3, limit=1)
        assert (staged.version, staged.aliases) == (2, ("staging",))
        assert queries.model_dag_id(conn, "cancer") == "cancer_dag"  # v5 came from no DAG: v4's
        assert queries.model_dag_id(conn, "churn_rate") is None


def test_pages_of_models_search_filter_and_sort(registry_url: str, tmp_path: Path) -> None:
    registry = _registry(registry_url, tmp_path)
    with registry.reading("test") as conn:
        found, total = queries.models_page(conn)
        assert ([m.name for m in found], total) == (["cancer", "churn_rate"], 2)
        assert [m.name for m in queries.models_page(conn, search="100%")[0]] == ["cancer"]  # % is a character
        assert [m.name for m in queries.models_page(conn, search="n_r")[0]] == ["churn_rate"]  # so is _
        assert queries.models_page(conn, search="1_0")[1] == 0
        assert [m.name for m in queries.models_page(conn, team="growth")[0]] == ["churn_rate"]
        assert [m.name for m in queries.models_page(conn, live=True)[0]] == ["cancer"]
        assert [m.name for m in queries.models_page(conn, sort="latest", descending=True)[0]] == [
            "cancer",
            "churn_rate",
        ]
        page, total = queries.models_page(conn, limit=1, offset=1)
        assert ([m.name for m in page], total) == (["churn_rate"], 2)
        assert queries.model_teams(conn) == ["growth", "onc"]
        events, total = queries.events_page(conn, model="cancer", limit=2)
        assert total == len(registry.audit_events(model="cancer")) and len(events) == 2
        assert events[0].seq > events[1].seq  # newest first
        assert [e.action for e in queries.fate_events(conn, "cancer")] == ["alias_moved"]
