"""Parameter tables of the gradient-boosting estimators (LightGBM, XGBoost, CatBoost), written by hand.

scikit-learn's estimators describe their parameters (``_parameter_constraints``) and their table is
generated (``spec/estimator_params.py``); these libraries do not, so the parameters a spec most often
sets are listed here from each library's documentation, in the same constraint format
(:mod:`airflow_bridge.spec.params`). ``validate`` checks names and values against them without
importing the library, and training accepts exactly these names (the libraries take ``**kwargs``,
where a typo would be ignored with a warning).
"""

from __future__ import annotations

from typing import Any

_POSITIVE_INT = (("int", 1, None, "left"),)
_NON_NEGATIVE_INT = (("int", 0, None, "left"),)
_NON_NEGATIVE = (("real", 0, None, "left"),)
_POSITIVE = (("real", 0, None, "neither"),)
_FRACTION = (("real", 0, 1, "right"),)
_SEED = (("int", 0, 2**32 - 1, "both"), ("none",))
_JOBS = (("int", None, None, "neither"), ("none",))
_TEXT_OR_NONE = (("text",), ("none",))

_LIGHTGBM: dict[str, tuple[tuple[Any, ...], ...]] = {
    "boosting_type": (("str", ("dart", "gbdt", "rf")),),
    "num_leaves": (("int", 2, None, "left"),),
    "max_depth": (("int", -1, None, "left"),),
    "learning_rate": _POSITIVE,
    "n_estimators": _POSITIVE_INT,
    "subsample_for_bin": _POSITIVE_INT,
    "objective": _TEXT_OR_NONE,
    "class_weight": (("str", ("balanced",)), ("dict",), ("none",)),
    "min_split_gain": _NON_NEGATIVE,
    "min_child_weight": _NON_NEGATIVE,
    "min_child_samples": _NON_NEGATIVE_INT,
    "subsample": _FRACTION,
    "subsample_freq": _NON_NEGATIVE_INT,
    "colsample_bytree": _FRACTION,
    "reg_alpha": _NON_NEGATIVE,
    "reg_lambda": _NON_NEGATIVE,
    "random_state": _SEED,
    "n_jobs": _JOBS,
    "importance_type": (("str", ("gain", "split")),),
    "verbose": (("int", None, None, "neither"),),
    "deterministic": (("bool",),),
}
_XGBOOST: dict[str, tuple[tuple[Any, ...], ...]] = {
    "n_estimators": _POSITIVE_INT,
    "max_depth": _NON_NEGATIVE_INT,
    "max_leaves": _NON_NEGATIVE_INT,
    "learning_rate": _POSITIVE,
    "booster": (("str", ("dart", "gblinear", "gbtree")),),
    "tree_method": (("str", ("approx", "auto", "exact", "hist")),),
    "gamma": _NON_NEGATIVE,
    "min_child_weight": _NON_NEGATIVE,
    "subsample": _FRACTION,
    "colsample_bytree": _FRACTION,
    "reg_alpha": _NON_NEGATIVE,
    "reg_lambda": _NON_NEGATIVE,
    "scale_pos_weight": _POSITIVE,
    "objective": _TEXT_OR_NONE,
    "random_state": _SEED,
    "n_jobs": _JOBS,
    "enable_categorical": (("bool",),),
    "verbosity": (("int", 0, 3, "both"),),
}
_CATBOOST: dict[str, tuple[tuple[Any, ...], ...]] = {
    "iterations": _POSITIVE_INT,
    "learning_rate": _POSITIVE,
    "depth": (("int", 1, 16, "both"),),
    "l2_leaf_reg": _NON_NEGATIVE,
    "loss_function": _TEXT_OR_NONE,
    "random_seed": _SEED,
    "random_state": _SEED,
    "thread_count": _JOBS,
    "border_count": (("int", 1, 65535, "both"),),
    "auto_class_weights": (("str", ("Balanced", "SqrtBalanced")), ("none",)),
    "verbose": (("bool",), ("int", 0, None, "left")),
    "allow_writing_files": (("bool",),),
}

BOOSTING_PARAMETERS: dict[str, dict[str, tuple[tuple[Any, ...], ...]]] = {
    "lightgbm.LGBMClassifier": _LIGHTGBM,
    "lightgbm.LGBMRegressor": _LIGHTGBM,
    "xgboost.XGBClassifier": _XGBOOST,
    "xgboost.XGBRegressor": _XGBOOST,
    "catboost.CatBoostClassifier": _CATBOOST,
    "catboost.CatBoostRegressor": _CATBOOST,
}
