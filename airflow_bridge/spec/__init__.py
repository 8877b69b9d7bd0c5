"""The experiment spec language: models, safe loading with positions, JSON Schema. Imports no Airflow."""

from __future__ import annotations

from airflow_bridge.issues import SpecIssue
from airflow_bridge.spec.loader import LoadedSpec, discover_specs, load_spec, load_spec_text, load_specs
from airflow_bridge.spec.models import API_VERSION, Experiment
from airflow_bridge.spec.semantics import SpecContext

__all__ = [
    "API_VERSION",
    "Experiment",
    "LoadedSpec",
    "SpecContext",
    "SpecIssue",
    "discover_specs",
    "load_spec",
    "load_spec_text",
    "load_specs",
]
