"""Building estimators from allow-listed dotted names, with clear errors for bad parameters."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_bridge.exceptions import EstimatorError
from airflow_bridge.issues import did_you_mean
from airflow_bridge.ml.catalogue import DEFAULT_ESTIMATORS


def build_estimator(
    dotted: str,
    params: Mapping[str, Any],
    *,
    seed: int | None = None,
    allowed: Mapping[str, Any] | None = None,
) -> Any:
    """Instantiate ``dotted`` with ``params``; only names on the allow-list are ever imported."""
    allow = allowed if allowed is not None else DEFAULT_ESTIMATORS
    if dotted not in allow:
        from airflow_bridge.ml.catalogue import missing_extra

        raise EstimatorError(missing_extra(dotted) or f"estimator '{dotted}' is not on the allow-list")
    module_name, _, class_name = dotted.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise EstimatorError(f"cannot import estimator '{dotted}': {exc}") from None
    if not (inspect.isclass(cls) and hasattr(cls, "fit") and hasattr(cls, "predict")):
        raise EstimatorError(f"'{dotted}' is not an estimator (it needs fit and predict)")
    signature = inspect.signature(cls.__init__).parameters
    accepted = {n for n, p in signature.items() if n != "self" and p.kind != p.VAR_KEYWORD}
    if any(p.kind == p.VAR_KEYWORD for p in signature.values()):
        from airflow_bridge.ml.boosting_params import BOOSTING_PARAMETERS

        accepted |= set(BOOSTING_PARAMETERS.get(dotted, {}))  # the names the library documents, not any typo
    unknown = [name for name in params if name not in accepted]
    if unknown:
        hints = [did_you_mean(name, accepted) for name in unknown]
        detail = "; ".join(f"'{n}'" + (f" ({h})" if h else "") for n, h in zip(unknown, hints, strict=True))
        raise EstimatorError(f"{class_name} does not take parameter(s) {detail}")
    kwargs = dict(params)
    if seed is not None and "random_state" in accepted and "random_state" not in kwargs:
        kwargs["random_state"] = seed
    try:
        estimator = cls(**kwargs)
        # sklearn validates parameter values at fit time; check them now for an early, clear error.
        if hasattr(estimator, "_validate_params") and hasattr(estimator, "_parameter_constraints"):
            estimator._validate_params()
    except (TypeError, ValueError) as exc:
        raise EstimatorError(f"invalid parameters for {class_name}: {exc}") from None
    return estimator


def build_model_pipeline(
    estimator: Any, roles: Mapping[str, Any], *, seed: int | None = None, missing_values: Sequence[str] = ()
) -> Any:
    """The artifact: one scikit-learn ``Pipeline`` that takes rows as they appear in the file.

    ``ColumnRoles`` (the spec's overrides, refusal of malformed rows) → skrub's ``tabular_pipeline``
    for this estimator: ``TableVectorizer`` (dates, categories of any cardinality, missing values;
    native categorical support for histogram gradient boosting), imputation and scaling where the
    estimator needs them → the estimator.

    With ``seed`` every random component the pipeline builds on its own (skrub's text encoder, whose
    SVD is randomised) gets it as ``random_state``, so the same rows give the same fitted bytes. The
    estimator's own ``random_state`` is :func:`build_estimator`'s (the spec's value, else the seed).
    """
    import skrub
    from sklearn.pipeline import Pipeline

    from airflow_bridge.ml.columns import roles_pipeline_step
    from airflow_bridge.ml.seeding import RANDOM_STATE, seed_random_states

    tail = skrub.tabular_pipeline(estimator)
    if type(estimator).__name__.startswith("LGBM"):  # LightGBM splits pandas categories natively
        tail.steps[0][1].set_params(low_cardinality=skrub.ToCategorical())
    pipeline = Pipeline([("columns", roles_pipeline_step(roles, missing_values)), *tail.steps])
    if seed is not None:
        seed_random_states(pipeline, seed, keep={f"{tail.steps[-1][0]}__{RANDOM_STATE}"})
    return pipeline
