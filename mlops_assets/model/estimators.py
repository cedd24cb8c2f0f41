"""Estimators: a registry from the spec's ``model.estimator`` name to how it is built and stored.

Each entry names the scikit-learn class per task (imported only when a model is built, so
this module and the spec that validates against it stay light), its preprocessing family,
the default arguments it gets from the spec, and the exact extra types skops must trust to
load it back (everything else in these pipelines is on skops' own allow-list). Adding an
estimator is one entry plus its test in ``test_ml_training.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

TASKS = ("classification", "regression")


@dataclass(frozen=True)
class Estimator:
    name: str
    classes: dict[str, str]  # task -> "module.Class"; a task it cannot do is absent
    family: Literal["tree", "linear"]
    trusted_types: tuple[str, ...] = ()
    defaults: Callable[[Any], dict[str, Any]] = field(default=lambda spec: {})  # spec -> kwargs
    # the memory layout of the matrix scoring feeds it: "F" (column-major, built without a
    # transpose) only where the predictions are the same numbers on either layout (tested bit for
    # bit); else the "C" order the pipeline's ColumnTransformer gives (a BLAS product may round
    # differently on another layout)
    input_order: Literal["C", "F"] = "C"

    def supports(self, task: str) -> bool:
        return task in self.classes


def _hgb_defaults(spec: Any) -> dict[str, Any]:
    # The tree preprocessor emits numeric+calendar columns first, then categoricals.
    mask = [False] * (len(spec.numeric_features) + len(spec.calendar_features)) + [True] * len(
        spec.categorical_features
    )
    return {"categorical_features": mask if any(mask) else None}


_HGB_TYPES = (
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    # gradient boosting wraps check_array in a partial whenever it has categorical features
    "functools.partial",
    "sklearn.utils.validation.check_array",
)
_LINEAR_TYPES = ("numpy.dtype",)  # the median imputer's stored _fit_dtype

ESTIMATORS: dict[str, Estimator] = {
    e.name: e
    for e in (
        Estimator(
            "hist_gradient_boosting",
            {
                "classification": "sklearn.ensemble.HistGradientBoostingClassifier",
                "regression": "sklearn.ensemble.HistGradientBoostingRegressor",
            },
            "tree",
            _HGB_TYPES,
            _hgb_defaults,
            input_order="F",
        ),
        Estimator(
            "random_forest",
            {
                "classification": "sklearn.ensemble.RandomForestClassifier",
                "regression": "sklearn.ensemble.RandomForestRegressor",
            },
            "tree",
            ("sklearn.tree._tree.Tree",),
        ),
        Estimator(
            "logistic_regression",
            {"classification": "sklearn.linear_model.LogisticRegression"},
            "linear",
            _LINEAR_TYPES,
            lambda spec: {"max_iter": 1000},
        ),
        Estimator("ridge", {"regression": "sklearn.linear_model.Ridge"}, "linear", _LINEAR_TYPES),
        Estimator(
            "linear",
            {
                "classification": "sklearn.linear_model.LogisticRegression",
                "regression": "sklearn.linear_model.Ridge",
            },
            "linear",
            _LINEAR_TYPES,
            lambda spec: {"max_iter": 1000} if spec.task == "classification" else {},
        ),
        Estimator(
            "baseline",
            {
                "classification": "sklearn.dummy.DummyClassifier",
                "regression": "sklearn.dummy.DummyRegressor",
            },
            "tree",
            (),
            lambda spec: {"strategy": "prior" if spec.task == "classification" else "mean"},
        ),
    )
}
"""``linear`` means logistic regression for classification and ridge for regression;
``baseline`` (the training prior or mean) is also the degrade fallback."""


def estimator_problem(name: str, task: str) -> str | None:
    """Why ``name`` cannot be the estimator of a ``task`` model, or None."""
    est = ESTIMATORS.get(name)
    if est is None:
        return f"unknown estimator {name!r}; expected one of {list(ESTIMATORS)}"
    if not est.supports(task):
        others = [n for n, e in ESTIMATORS.items() if e.supports(task) and e.family == est.family]
        return (
            f"{name!r} is for {', '.join(est.classes)} but the task is {task}; use one of {others}"
        )
    return None


PARAM_NAMES: dict[str, frozenset[str]] = {
    cls: frozenset(names.split())
    for cls, names in {
        "sklearn.ensemble.HistGradientBoostingClassifier": (
            "categorical_features class_weight early_stopping interaction_cst l2_regularization"
            " learning_rate loss max_bins max_depth max_features max_iter max_leaf_nodes"
            " min_samples_leaf monotonic_cst n_iter_no_change random_state scoring tol"
            " validation_fraction verbose warm_start"
        ),
        "sklearn.ensemble.HistGradientBoostingRegressor": (
            "categorical_features early_stopping interaction_cst l2_regularization learning_rate"
            " loss max_bins max_depth max_features max_iter max_leaf_nodes min_samples_leaf"
            " monotonic_cst n_iter_no_change quantile random_state scoring tol validation_fraction"
            " verbose warm_start"
        ),
        "sklearn.ensemble.RandomForestClassifier": (
            "bootstrap ccp_alpha class_weight criterion max_depth max_features max_leaf_nodes"
            " max_samples min_impurity_decrease min_samples_leaf min_samples_split"
            " min_weight_fraction_leaf monotonic_cst n_estimators n_jobs oob_score random_state"
            " verbose warm_start"
        ),
        "sklearn.ensemble.RandomForestRegressor": (
            "bootstrap ccp_alpha criterion max_depth max_features max_leaf_nodes max_samples"
            " min_impurity_decrease min_samples_leaf min_samples_split min_weight_fraction_leaf"
            " monotonic_cst n_estimators n_jobs oob_score random_state verbose warm_start"
        ),
        "sklearn.linear_model.LogisticRegression": (
            "C class_weight dual fit_intercept intercept_scaling l1_ratio max_iter n_jobs penalty"
            " random_state solver tol verbose warm_start"
        ),
        "sklearn.linear_model.Ridge": (
            "alpha copy_X fit_intercept max_iter positive random_state solver tol"
        ),
        "sklearn.dummy.DummyClassifier": "constant random_state strategy",
        "sklearn.dummy.DummyRegressor": "constant quantile strategy",
    }.items()
}
"""The constructor arguments of each class (``get_params()`` of the pinned scikit-learn), so the
spec rejects a misspelt ``model.params`` key at load, without importing scikit-learn; a class not
listed is checked only when the model is built. ``test_spec.py`` compares this with scikit-learn."""


def params_problems(name: str, task: str, params: dict[str, Any]) -> dict[str, str]:
    """param -> why it is not an argument of the ``task`` class of estimator ``name`` (empty: all
    known).
    """
    est = ESTIMATORS.get(name)
    known = PARAM_NAMES.get(est.classes.get(task, "")) if est else None
    if known is None:
        return {}
    cls = est.classes[task].rpartition(".")[2]
    return {
        p: f"{p!r} is not an argument of {cls} ({name} for {task}); expected one of {sorted(known)}"
        for p in params
        if p not in known
    }


def all_trusted_types() -> list[str]:
    return sorted({t for e in ESTIMATORS.values() for t in e.trusted_types})


def input_order(estimator: Any) -> Literal["C", "F"]:
    """The ``input_order`` of a fitted estimator's registry entry (by its class); "C" for any
    other."""
    name = type(estimator).__name__
    orders = {
        e.input_order
        for e in ESTIMATORS.values()
        for path in e.classes.values()
        if path.endswith(f".{name}")
    }
    return orders.pop() if len(orders) == 1 else "C"
