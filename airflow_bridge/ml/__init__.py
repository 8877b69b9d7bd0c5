"""ML helpers (data, estimators, metrics, gates), imported only inside operator ``execute``.

Two modules are static data that parse-time code (``spec``) reads too, importing nothing heavy: the
estimator and metric catalogue (:mod:`~airflow_bridge.ml.catalogue`) and what a target column looks
like (:mod:`~airflow_bridge.ml.targets`).
"""
