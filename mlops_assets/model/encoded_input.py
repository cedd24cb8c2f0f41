"""The model's input matrix built in polars, for scoring: the fitted pipeline's preprocessing
replayed with the categories it learnt, so the estimator sees exactly the matrix the
``ColumnTransformer`` would have given it (identical predictions, bit for bit).

``to_model_frame`` + the pipeline's ``ColumnTransformer`` turn every categorical into a pandas
``object`` column and encode it with scikit-learn's per-row Python mapping (0.45 s per 1M rows).
Here each categorical becomes its position among the fitted categories (``_Categories``), then
the encoder's output for that position is looked up in a small table read from the fitted encoder
itself (``encoder.transform`` on its own categories, plus the output of an unseen value), so
rare-category grouping (``max_categories``), unknown values and the ``MISSING_CATEGORY`` stand-in
for nulls behave as in the pipeline. ``compile_input`` says which pipelines are replayed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from mlops_assets.core.spec import DatasetSpec
from mlops_assets.model.estimators import input_order

if TYPE_CHECKING:
    import numpy as np

MISSING_CATEGORY = "__missing__"  # = model.training.MISSING_CATEGORY (checked by the tests)


@dataclass(frozen=True)
class _Block:
    columns: list[str]
    # the block's output columns, in order, each as (dtype, write): ``write(view)`` fills one
    # matrix column
    build: Callable[[pl.DataFrame], list[tuple[np.dtype, Callable[[np.ndarray], None]]]]


class EncodedModel:
    """The fitted estimator behind a pipeline, fed the replayed matrix: what ``predict_scores``
    needs (``predict_proba``/``predict``, ``classes_``, ``declared_classes_``)."""

    def __init__(self, pipeline: Any, blocks: list[_Block]):
        self.estimator = pipeline.steps[-1][1]
        self.classes_ = getattr(self.estimator, "classes_", None)
        self.declared_classes_ = getattr(pipeline, "declared_classes_", None)
        self._blocks = blocks
        self.order = input_order(self.estimator)  # "F" only where predictions do not depend on it

    def matrix(self, frame: pl.DataFrame) -> np.ndarray:
        """The blocks' columns side by side, each written once into the matrix (no intermediate
        columns): column-major where the estimator's predictions are the same on it, else
        C-ordered as the ``ColumnTransformer``'s output."""
        import numpy as np

        columns = [c for b in self._blocks for c in b.build(frame)]
        out = np.empty(
            (frame.height, len(columns)),
            dtype=np.result_type(*(d for d, _ in columns)),
            order=self.order,
        )
        for j, (_, write) in enumerate(columns):
            write(out[:, j])
        return out

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.estimator.predict_proba(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.estimator.predict(X)


def _is_passthrough(transformer: Any) -> bool:
    if isinstance(transformer, str):
        return transformer == "passthrough"
    return type(transformer).__name__ == "FunctionTransformer" and transformer.func is None


def _category_codes(encoder: Any, columns: list[str]) -> np.ndarray:
    """``encoder.transform`` of its own fitted categories: row i holds, per column, category
    i's output (columns with fewer categories repeat their first one past the end)."""
    import numpy as np
    import pandas as pd

    longest = max(len(c) for c in encoder.categories_)
    probe = pd.DataFrame(
        {
            col: np.array(
                [cats[i] if i < len(cats) else cats[0] for i in range(longest)], dtype=object
            )
            for col, cats in zip(columns, encoder.categories_, strict=True)
        }
    )
    return np.asarray(encoder.transform(probe))


@dataclass(frozen=True)
class _Categories:
    """One categorical column's fitted categories: position k is category k, ``len`` an unseen
    value. A ``String`` column gets its positions from an ``Enum`` cast (one string hash per
    row); a ``pl.Categorical`` one (``DeltaLake.iter_batches`` reads the spec's categoricals as
    Parquet dictionaries) from its physical ids: the few strings of its categories are cast, the
    rows are integer gathers."""

    column: str
    enum: pl.Enum
    position: dict[str, int]
    missing: int  # the position of a null (= of ``MISSING_CATEGORY``)

    @classmethod
    def of(cls, column: str, categories) -> _Categories:
        values = [str(c) for c in categories]
        position = {v: k for k, v in enumerate(values)}
        return cls(column, pl.Enum(values), position, position.get(MISSING_CATEGORY, len(values)))

    def string_index(self) -> pl.Expr:
        """The positions of a column read as strings: an ``Enum`` cast (one hash per row, no
        Python)."""
        return (
            pl.col(self.column)
            .cast(pl.String)
            .fill_null(MISSING_CATEGORY)
            .cast(self.enum, strict=False)
            .to_physical()
            .cast(pl.UInt32)
            .fill_null(len(self.position))
            .alias(self.column)
        )

    def categorical_index(self, values: pl.Series) -> tuple[np.ndarray, np.ndarray] | None:
        """A ``pl.Categorical`` column as (lookup, rows): the positions are ``lookup[rows]``.
        ``rows``: the physical ids less the smallest (a null: the last slot); ``lookup``: the
        position of the string of every id in between, from the column's ``Categories`` (so no
        string is hashed per row, whatever the size of the process-wide categories). None when
        that span of ids outnumbers the rows."""
        import numpy as np

        physical = values.to_physical()
        low, high = physical.min(), physical.max()
        if high is None:  # only nulls
            return np.array([self.missing], dtype=np.intp), np.zeros(values.len(), dtype=np.uint32)
        span = high - low + 1
        if span > values.len():
            return None
        names = pl.Series(np.arange(low, high + 1, dtype=np.uint32)).cat.to(
            values.dtype, strict=False
        )
        unseen = len(self.position)
        lookup = [self.position.get(n, unseen) for n in names.cast(pl.String).to_list()] + [
            self.missing
        ]
        rows = physical - low if low else physical
        return np.array(lookup, dtype=np.intp), (
            rows.fill_null(span) if physical.null_count() else rows
        ).to_numpy()


def _lookup_block(columns: list[str], categories, tables: list[list[np.ndarray]]) -> _Block:
    """Each column's rows looked up in its tables, one per output column (entry k: category k's
    output; last entry: an unseen value)."""
    fitted = [_Categories.of(col, cats) for col, cats in zip(columns, categories, strict=True)]

    def build(frame: pl.DataFrame) -> list:
        index = {
            f.column: f.categorical_index(frame[f.column])
            for f in fitted
            if isinstance(frame.schema[f.column], pl.Categorical)
        }
        strings = [f.string_index() for f in fitted if index.get(f.column) is None]
        positions = (
            {s.name: s.to_numpy() for s in frame.select(strings).get_columns()} if strings else {}
        )
        out = []
        for f, column_tables in zip(fitted, tables, strict=True):
            lookup, rows = index.get(f.column) or (None, positions[f.column])
            out += [_take(t if lookup is None else t[lookup], rows) for t in column_tables]
        return out

    return _Block(columns, build)


def _ordinal_block(encoder: Any, columns: list[str]) -> _Block:
    import numpy as np

    # an unseen value would raise in the pipeline: let it
    if encoder.handle_unknown != "use_encoded_value":
        raise _Unsupported("OrdinalEncoder without handle_unknown='use_encoded_value'")
    codes = _category_codes(encoder, columns).astype(encoder.dtype)
    unknown = np.array([encoder.unknown_value], dtype=encoder.dtype)
    tables = [
        [np.concatenate([codes[: len(cats), j], unknown])]
        for j, cats in enumerate(encoder.categories_)
    ]
    return _lookup_block(columns, encoder.categories_, tables)


def _onehot_block(encoder: Any, columns: list[str]) -> _Block:
    import numpy as np

    if (
        encoder.drop is not None
        or getattr(encoder, "_infrequent_enabled", False)
        or encoder.handle_unknown != "ignore"
    ):
        raise _Unsupported("OneHotEncoder with drop, infrequent categories or unknowns that raise")
    out = _category_codes(encoder, columns)
    tables, start = [], 0
    for cats in encoder.categories_:
        width = len(cats)  # an unseen value: all zeros (handle_unknown="ignore")
        table = np.vstack([out[:width, start : start + width], np.zeros((1, width))]).astype(
            encoder.dtype
        )
        tables.append([np.ascontiguousarray(table[:, k]) for k in range(width)])
        start += width
    return _lookup_block(columns, encoder.categories_, tables)


def _numeric_block(transformer: Any, columns: list[str]) -> _Block:
    import numpy as np

    casts = [
        pl.col(c).cast(pl.Float64).fill_null(float("nan")) for c in columns
    ]  # a null: NaN, as in pandas

    def build(frame: pl.DataFrame) -> list:
        values = frame.select(casts)
        if _is_passthrough(transformer):
            return [_copy(s.to_numpy()) for s in values.get_columns()]
        import pandas as pd  # the transformer was fitted on a named frame: keep the names

        out = np.asarray(transformer.transform(pd.DataFrame(values.to_numpy(), columns=columns)))
        return [_copy(out[:, j]) for j in range(out.shape[1])]

    return _Block(columns, build)


def _copy(values: np.ndarray) -> tuple[np.dtype, Callable[[np.ndarray], None]]:
    def write(view: np.ndarray) -> None:
        view[:] = values

    return values.dtype, write


def _take(table: np.ndarray, rows: np.ndarray) -> tuple[np.dtype, Callable[[np.ndarray], None]]:
    """A lookup written straight into the matrix column (every row index is within ``table``)."""
    import numpy as np

    def write(view: np.ndarray) -> None:
        np.take(table, rows, out=view, mode="clip")  # "clip": no bounds-checked temporary

    return table.dtype, write


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
    """An ``EncodedModel`` for ``pipeline`` (fitted), or None when its shape is not one replayed
    here and the caller uses the pipeline as it is. Replayed: a ``Pipeline([("prep",
    ColumnTransformer), ("model", estimator)])`` whose parts are passthrough / numeric
    transformers and an ``OrdinalEncoder`` or ``OneHotEncoder`` (no ``drop``, no infrequent
    grouping) on the categoricals, dense numpy output."""
    steps = getattr(pipeline, "steps", None)
    if not steps or len(steps) != 2 or type(steps[0][1]).__name__ != "ColumnTransformer":
        return None
    prep = steps[0][1]
    if getattr(prep, "sparse_output_", False) or getattr(prep, "_sklearn_output_config", {}).get(
        "transform"
    ):
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
