"""The model's input matrix built in polars, for scoring: the fitted pipeline's preprocessing
replayed with the categories it learnt, so the estimator sees exactly the matrix the
``ColumnTransformer`` would have given it (identical predictions, bit for bit).

``to_model_frame`` + the pipeline's ``ColumnTransformer`` turn every categorical into a pandas
``object`` column and encode it with scikit-learn's per-row Python mapping (0.45 s per 1M rows).
Here each categorical is mapped with one ``replace_strict`` over the fitted categories; the code of
every category — and the code of anything unseen — is read from the fitted encoder itself
(``encoder.transform`` on its own categories), so rare-category grouping (``max_categories``),
unknown values and the ``MISSING_CATEGORY`` stand-in for nulls behave as in the pipeline.

Supported: a ``Pipeline([("prep", ColumnTransformer), ("model", estimator)])`` whose parts are
passthrough / numeric transformers and an ``OrdinalEncoder`` or ``OneHotEncoder`` (no ``drop``, no
infrequent grouping) on the categoricals, dense numpy output. Anything else: ``compile_input``
returns None and the caller uses the pipeline as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from mlops_assets.spec import DatasetSpec

MISSING_CATEGORY = "__missing__"  # = ml.training.MISSING_CATEGORY (checked by the tests)


@dataclass(frozen=True)
class _Block:
    columns: list[str]
    build: Callable[[pl.DataFrame], np.ndarray]


class EncodedModel:
    """The fitted estimator behind a pipeline, fed the replayed matrix: what ``predict_scores``
    needs (``predict_proba``/``predict``, ``classes_``, ``declared_classes_``)."""

    def __init__(self, pipeline: Any, blocks: list[_Block]):
        self.estimator = pipeline.steps[-1][1]
        self.classes_ = getattr(self.estimator, "classes_", None)
        self.declared_classes_ = getattr(pipeline, "declared_classes_", None)
        self._blocks = blocks

    def matrix(self, frame: pl.DataFrame) -> np.ndarray:
        parts = [b.build(frame) for b in self._blocks]
        return parts[0] if len(parts) == 1 else np.hstack(parts)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.estimator.predict_proba(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.estimator.predict(X)


def _is_passthrough(transformer: Any) -> bool:
    if isinstance(transformer, str):
        return transformer == "passthrough"
    return type(transformer).__name__ == "FunctionTransformer" and transformer.func is None


def _category_codes(encoder: Any, columns: list[str]) -> np.ndarray:
    """``encoder.transform`` of its own fitted categories: row i holds, per column, category i's output
    (columns with fewer categories repeat their first one past the end)."""
    import pandas as pd

    longest = max(len(c) for c in encoder.categories_)
    probe = pd.DataFrame({col: np.array([cats[i] if i < len(cats) else cats[0] for i in range(longest)], dtype=object)
                          for col, cats in zip(columns, encoder.categories_, strict=True)})
    return np.asarray(encoder.transform(probe))


def _category_index(col: str, categories) -> pl.Expr:
    """The position of each value among the fitted ``categories`` (UInt32), ``len(categories)`` for a value
    never seen in training: an ``Enum`` cast (one hash per row, no Python), nulls as ``MISSING_CATEGORY``."""
    return (pl.col(col).cast(pl.String).fill_null(MISSING_CATEGORY).cast(pl.Enum(list(categories)), strict=False)
            .to_physical().fill_null(len(categories)).alias(col))


def _lookup_block(columns: list[str], categories, tables: list[np.ndarray]) -> _Block:
    """Each column's rows looked up in its table (row k: category k's output; last row: an unseen value)."""
    exprs = [_category_index(col, cats) for col, cats in zip(columns, categories, strict=True)]

    def build(frame: pl.DataFrame) -> np.ndarray:
        idx = frame.select(exprs).to_numpy()
        parts = [t[idx[:, j]] for j, t in enumerate(tables)]
        return parts[0] if len(parts) == 1 else np.hstack(parts)

    return _Block(columns, build)


def _ordinal_block(encoder: Any, columns: list[str]) -> _Block:
    if encoder.handle_unknown != "use_encoded_value":  # an unseen value would raise in the pipeline: let it
        raise _Unsupported("OrdinalEncoder without handle_unknown='use_encoded_value'")
    codes = _category_codes(encoder, columns).astype(encoder.dtype)
    unknown = np.array([encoder.unknown_value], dtype=encoder.dtype)
    tables = [np.concatenate([codes[: len(cats), j], unknown]).reshape(-1, 1)
              for j, cats in enumerate(encoder.categories_)]
    return _lookup_block(columns, encoder.categories_, tables)


def _onehot_block(encoder: Any, columns: list[str]) -> _Block:
    if encoder.drop is not None or getattr(encoder, "_infrequent_enabled", False) or encoder.handle_unknown != "ignore":
        raise _Unsupported("OneHotEncoder with drop, infrequent categories or unknowns that raise")
    out = _category_codes(encoder, columns)
    tables, start = [], 0
    for cats in encoder.categories_:
        width = len(cats)  # an unseen value: all zeros (handle_unknown="ignore")
        tables.append(np.vstack([out[: width, start:start + width], np.zeros((1, width))]).astype(encoder.dtype))
        start += width
    return _lookup_block(columns, encoder.categories_, tables)


def _numeric_block(transformer: Any, columns: list[str]) -> _Block:
    def build(frame: pl.DataFrame) -> np.ndarray:
        values = frame.select(pl.col(c).cast(pl.Float64) for c in columns).to_numpy()
        if _is_passthrough(transformer):
            return values
        import pandas as pd  # the transformer was fitted on a named frame: keep the names

        return np.asarray(transformer.transform(pd.DataFrame(values, columns=columns)))

    return _Block(columns, build)


class _Unsupported(Exception):
    pass


def _block(name: str, transformer: Any, columns: list[str], spec: DatasetSpec) -> _Block:
    kind = type(transformer).__name__
    if all(c in spec.categorical_features for c in columns) and kind == "OrdinalEncoder":
        return _ordinal_block(transformer, columns)
    if all(c in spec.categorical_features for c in columns) and kind == "OneHotEncoder":
        return _onehot_block(transformer, columns)
    if not any(c in spec.categorical_features for c in columns):
        return _numeric_block(transformer, columns)
    raise _Unsupported(f"transformer {name!r} ({kind}) mixes categorical and numeric columns")


def compile_input(pipeline: Any, spec: DatasetSpec) -> EncodedModel | None:
    """An ``EncodedModel`` for ``pipeline`` (fitted), or None when its shape is not one replayed here."""
    steps = getattr(pipeline, "steps", None)
    if not steps or len(steps) != 2 or type(steps[0][1]).__name__ != "ColumnTransformer":
        return None
    prep = steps[0][1]
    if getattr(prep, "sparse_output_", False) or getattr(prep, "_sklearn_output_config", {}).get("transform"):
        return None
    blocks = []
    try:
        for name, transformer, columns in prep.transformers_:
            columns = list(columns)
            if transformer == "drop" or not columns:
                continue
            blocks.append(_block(name, transformer, columns, spec))
    except _Unsupported:
        return None
    return EncodedModel(pipeline, blocks) if blocks else None
