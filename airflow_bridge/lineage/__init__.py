"""OpenLineage for airflow-bridge: dataset naming, custom facets and the registry-only lineage chain.

Import rules: this package's ``__init__``, :mod:`naming`, :mod:`mixin`, :mod:`provenance` and
:mod:`chain` never import OpenLineage (they run at DAG parse time or in the CLI). The facet classes
(:mod:`facets`) and event builders (:mod:`builders`) import it and are only imported inside the
operators' ``get_openlineage_facets_*`` methods, which the OpenLineage listener calls at run time.
"""

from __future__ import annotations

from pathlib import Path

SCHEMA_DIR = Path(__file__).with_name("schemas")

__all__ = ["SCHEMA_DIR"]
