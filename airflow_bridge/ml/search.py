"""Hyperparameter search (``model.search``): a seeded Optuna study inside the train action.

Each trial draws the searched parameters (``TPESampler`` seeded with the run's seed), merges them over the
spec's fixed ``params`` and scores the same pipeline as training by k-fold cross-validation on the training
rows only (the held-out rows stay unseen until validate). With ``pruning`` a trial whose running mean after
a fold is worse than the median of earlier trials at that fold stops (``MedianPruner``). A trial that raises
(a parameter combination the estimator refuses) is recorded as failed and the search goes on.

The study lives in memory for the length of the task: every trial is returned in a
:class:`~airflow_bridge.actions.results.SearchSummary` (XCom, registry, report), which is the record; there
is no study database to run. Trials run one after another, so a trials budget gives the same trials, the
same best parameters and the same artifact bytes on every run; a minutes budget that stops the study early
depends on the machine's speed.

Light at import: Optuna and scikit-learn are imported when a search runs (``pip install 'airflow-bridge[search]'``).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from airflow_bridge.exceptions import EstimatorError

log = logging.getLogger(__name__)

EXTRA = "search"
PRUNER_STARTUP_TRIALS = 5
"""Trials that always run to the end before the median pruner may stop one."""
_PRIMITIVE = (str, int, float, bool, type(None))


def missing_optuna() -> str:
    """Why a spec with ``model.search`` cannot run here, and what to install."""
    return (
        f"model.search needs the 'optuna' library, which is not installed where this runs: "
        f"pip install 'airflow-bridge[{EXTRA}]' (on the workers, or in the image of the compute tier)"
    )


def cap_refusal(trials: int | None, cap: int | None, team: str | None = None) -> tuple[str, str] | None:
    """Why a search budget breaks the team's ``max_search_trials`` (None: it does not), with a hint."""
    if cap is None:
        return None
    whose, setting = (
        (f"team '{team}'", f"teams.{team}.max_search_trials") if team else ("the team", "max_search_trials")
    )
    if trials is None:
        return (
            f"{whose} caps a search at {cap} trials (max_search_trials) and this budget sets only minutes",
            f"add budget.trials of at most {cap}",
        )
    if trials > cap:
        return (
            f"budget.trials {trials} is above {whose}'s cap of {cap} (max_search_trials)",
            f"use at most {cap} trials; engineers change the cap in the team policy ({setting})",
        )
    return None


@dataclass(frozen=True)
class Trainee:
    """What each trial fits: the estimator, its fixed parameters and the pipeline's inputs (from the train request)."""

    model: str
    estimator: str
    params: Mapping[str, Any]
    seed: int
    target: str
    allowed: Mapping[str, Any] | None = None
    missing_values: Sequence[str] = field(default_factory=list)


def run_search(
    search: Mapping[str, Any],
    request: Trainee,
    *,
    rows: Any,
    features: Sequence[str],
    roles: Mapping[str, Any],
    task_kind: str,
) -> dict[str, Any]:
    """Search ``search`` (``model.search`` as JSON) on the training ``rows``: the ``SearchSummary`` JSON
    (``airflow_bridge.actions.results``), whose ``best_params`` are the searched parameters only."""
    budget = dict(search.get("budget") or {})
    try:
        import optuna
    except ImportError:
        raise EstimatorError(missing_optuna()) from None
    from airflow_bridge.ml.catalogue import LOWER_IS_BETTER

    metric, folds, seed = str(search["metric"]), int(search.get("folds", 3)), request.seed
    space: dict[str, dict[str, Any]] = {k: dict(v) for k, v in dict(search["space"]).items()}
    x, y = rows[list(features)], rows[request.target]
    splits = _folds(x, y, task_kind, folds, seed)
    direction: Literal["minimize", "maximize"] = "minimize" if metric in LOWER_IS_BETTER else "maximize"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruning = bool(search.get("pruning", True))
    pruner: Any = (
        optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS, n_warmup_steps=0)
        if pruning
        else optuna.pruners.NopPruner()
    )
    sampler = optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(direction=direction, sampler=sampler, pruner=pruner, study_name=request.model)
    objective = _Objective(
        request, space=space, x=x, y=y, splits=splits, roles=roles, task_kind=task_kind, metric=metric
    )
    minutes = budget.get("minutes")
    trials_budget = budget.get("trials")
    log.info(
        "Searching %d parameter(s) of %s: %s trials, %s minutes, %s on %d folds of %d training rows (%s)",
        len(space),
        request.estimator,
        trials_budget or "unlimited",
        minutes or "unlimited",
        metric,
        folds,
        len(x),
        direction,
    )
    study.optimize(
        objective,
        n_trials=trials_budget,
        timeout=float(minutes) * 60 if minutes else None,
        catch=(Exception,),
        callbacks=[_log_trial],
    )
    recorded = [
        dict(
            number=t.number,
            params={k: objective.decode(k, v) for k, v in t.params.items()},
            value=t.value if t.state.name == "COMPLETE" and t.value is not None and math.isfinite(t.value) else None,
            state=t.state.name,
            duration_seconds=round(t.duration.total_seconds(), 3) if t.duration is not None else None,
            error=str(t.user_attrs.get("error", "")),
        )
        for t in study.trials
    ]
    if not any(t["state"] == "COMPLETE" for t in recorded):
        reasons = "; ".join(f"trial {t['number']}: {t['error'] or t['state']}" for t in recorded[:3])
        raise EstimatorError(f"no trial of the search of {request.model} finished ({len(recorded)} tried): {reasons}")
    best = study.best_trial
    stopped_by = "trials" if trials_budget is not None and len(recorded) >= trials_budget else "minutes"
    summary = dict(
        metric=metric,
        direction=direction,
        folds=folds,
        sampler=f"TPESampler(seed={seed})",
        pruner=type(pruner).__name__,
        seed=seed,
        budget={"trials": trials_budget, "minutes": minutes},
        stopped_by=stopped_by,
        space=space,
        trials=recorded,
        best_trial=best.number,
        best_value=float(best.value) if best.value is not None else float("nan"),
        best_params={k: objective.decode(k, v) for k, v in best.params.items()},
        importance=_importance(optuna, study, seed),
        library=f"optuna {optuna.__version__}",
    )
    log.info(
        "Best of %d trials: trial %d, %s %.6g, %s",
        len(recorded),
        best.number,
        metric,
        best.value,
        summary["best_params"],
    )
    return summary


class _Objective:
    """One trial: draw the parameters, cross-validate the pipeline, report each fold's running mean."""

    def __init__(
        self,
        request: Trainee,
        *,
        space: dict[str, dict[str, Any]],
        x: Any,
        y: Any,
        splits: list[tuple[Any, Any]],
        roles: Mapping[str, Any],
        task_kind: str,
        metric: str,
    ) -> None:
        self.request, self.space, self.x, self.y, self.splits = request, space, x, y, splits
        self.roles, self.task_kind, self.metric = roles, task_kind, metric
        self.encoded = {
            name: {json.dumps(c, sort_keys=True): c for c in dim["choices"]}
            for name, dim in space.items()
            if dim.get("choices") is not None and not all(isinstance(c, _PRIMITIVE) for c in dim["choices"])
        }
        """Choices Optuna cannot store as they are (lists, mappings): drawn as their JSON text."""

    def decode(self, name: str, value: Any) -> Any:
        return self.encoded[name][value] if name in self.encoded else value

    def suggest(self, trial: Any, name: str, dim: Mapping[str, Any]) -> Any:
        if dim.get("choices") is not None:
            if name in self.encoded:
                return self.decode(name, trial.suggest_categorical(name, list(self.encoded[name])))
            return trial.suggest_categorical(name, list(dim["choices"]))
        low, high, log_scale = dim["low"], dim["high"], bool(dim.get("log"))
        kind = dim.get("type") or ("int" if isinstance(low, int) and isinstance(high, int) else "float")
        if kind == "int":
            return trial.suggest_int(name, int(low), int(high), log=log_scale)
        return trial.suggest_float(name, float(low), float(high), log=log_scale)

    def __call__(self, trial: Any) -> float:
        import optuna

        try:
            return self._score(trial)
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            trial.set_user_attr("error", f"{type(exc).__name__}: {str(exc)[:300]}")
            raise

    def _score(self, trial: Any) -> float:
        import numpy as np
        import optuna
        from sklearn.base import clone

        from airflow_bridge.ml.estimator import build_estimator, build_model_pipeline
        from airflow_bridge.ml.metrics import compute_metrics

        request = self.request
        drawn = {name: self.suggest(trial, name, dim) for name, dim in self.space.items()}
        estimator = build_estimator(
            request.estimator, {**request.params, **drawn}, seed=request.seed, allowed=request.allowed
        )
        pipeline = build_model_pipeline(estimator, self.roles, seed=request.seed, missing_values=request.missing_values)
        scores: list[float] = []
        for step, (fit_rows, score_rows) in enumerate(self.splits):
            model = clone(pipeline).fit(self.x.iloc[fit_rows], self.y.iloc[fit_rows])
            found = compute_metrics(self.task_kind, model, self.x.iloc[score_rows], self.y.iloc[score_rows])
            value = found.get(self.metric)
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise EstimatorError(f"{self.metric} could not be computed on fold {step + 1}")
            scores.append(float(value))
            trial.report(float(np.mean(scores)), step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return float(np.mean(scores))


def _folds(x: Any, y: Any, task_kind: str, folds: int, seed: int) -> list[tuple[Any, Any]]:
    """The same seeded folds for every trial: stratified for classification."""
    from airflow_bridge.ml.uncertainty import seeded_folds

    return seeded_folds(x, y, task_kind, folds, seed, setting="model.search.folds")


def _log_trial(study: Any, trial: Any) -> None:
    shown = "" if trial.value is None else f" {trial.value:.6g}"
    error = trial.user_attrs.get("error")
    log.info(
        "  trial %3d %-8s%s %s%s", trial.number, trial.state.name, shown, trial.params, f" ({error})" if error else ""
    )


def _importance(optuna: Any, study: Any, seed: int) -> dict[str, float]:
    """Each searched parameter's share of the objective's variance (fANOVA, seeded); empty when it cannot be told."""
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    if len(complete) < 2:
        return {}
    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
        found = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (RuntimeError, ValueError) as exc:  # e.g. every trial drew the same values
        log.info("Parameter importance not computed: %s", exc)
        return {}
    return {str(k): round(float(v), 6) for k, v in found.items()}
