"""Evidently HTML reports for humans (lazy imports: evidently costs seconds to import).

Where data crosses into pandas for Evidently it is checked as a dagster-pandas typed
frame first, so a malformed input fails with a named column instead of deep inside
Evidently.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mlops_assets.core.spec import DatasetSpec
from mlops_assets.data.contract_checks import validate_typed_frame

TARGET, PREDICTION = "target", "prediction"


def evaluation_columns(task: str, n_classes: int = 2) -> list:
    """Evidently's input as dagster-pandas column constraints (multiclass: class codes in both)."""
    from dagster_pandas import PandasColumn

    if task == "classification" and n_classes > 2:
        return [
            PandasColumn.integer_column(
                TARGET, min_value=0, max_value=n_classes - 1, non_nullable=True
            ),
            PandasColumn.integer_column(
                PREDICTION, min_value=0, max_value=n_classes - 1, non_nullable=True
            ),
        ]
    if task == "classification":
        return [
            PandasColumn.integer_column(TARGET, min_value=0, max_value=1, non_nullable=True),
            PandasColumn.float_column(PREDICTION, min_value=0.0, max_value=1.0, non_nullable=True),
        ]
    return [
        PandasColumn.float_column(TARGET, non_nullable=True),
        PandasColumn.float_column(PREDICTION, non_nullable=True),
    ]


def _checked(frame: pd.DataFrame, task: str, n_classes: int = 2) -> pd.DataFrame:
    result = validate_typed_frame(frame, evaluation_columns(task, n_classes))
    if not result.success:
        raise ValueError(f"Evidently input rejected: {result.description}")
    return frame


def _data_definition(spec: DatasetSpec):
    from evidently import BinaryClassification, DataDefinition, MulticlassClassification, Regression

    kwargs = {
        "numerical_columns": spec.numeric_features + spec.calendar_features,
        "categorical_columns": spec.categorical_features,
    }
    if (
        spec.task == "classification" and spec.multiclass
    ):  # predicted class codes (probabilities stay in metadata)
        return DataDefinition(
            classification=[MulticlassClassification(target=TARGET, prediction_labels=PREDICTION)],
            **kwargs,
        )
    if spec.task == "classification":
        return DataDefinition(
            classification=[BinaryClassification(target=TARGET, prediction_probas=PREDICTION)],
            **kwargs,
        )
    return DataDefinition(regression=[Regression(target=TARGET, prediction=PREDICTION)], **kwargs)


def evaluation_report_html(
    spec: DatasetSpec,
    current: pd.DataFrame,
    reference: pd.DataFrame | None,
    path: Path,
    sample_rows: int,
) -> Path:
    """Model quality of ``current`` (candidate on the holdout) vs ``reference`` (champion on the
    same rows).
    """
    from evidently import Dataset, Report
    from evidently.presets import ClassificationPreset, RegressionPreset

    definition = _data_definition(spec)

    def dataset(frame: pd.DataFrame):
        frame = (
            frame.sample(n=min(sample_rows, len(frame)), random_state=0)
            if len(frame) > sample_rows
            else frame
        )
        frame = frame.copy()
        if spec.task == "classification":
            frame[TARGET] = frame[TARGET].astype(int)
        return Dataset.from_pandas(
            _checked(frame, spec.task, len(spec.target_classes)), data_definition=definition
        )

    preset = ClassificationPreset() if spec.task == "classification" else RegressionPreset()
    snapshot = Report([preset]).run(
        dataset(current), dataset(reference) if reference is not None else None
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(path))
    return path


def drift_report_html(spec: DatasetSpec, current, reference, path: Path, sample_rows: int) -> Path:
    """Evidently DataDriftPreset of ``current`` (polars, partition D's window) vs ``reference``
    (training rows), each sampled to ``sample_rows`` above that size. A standalone file is about
    4 MB whatever the sample (Evidently embeds its JavaScript): callers bound the folder with
    ``prune_reports``."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    numeric = spec.numeric_features + spec.calendar_features
    columns = numeric + spec.categorical_features
    definition = DataDefinition(
        numerical_columns=numeric, categorical_columns=spec.categorical_features
    )

    def dataset(frame):
        frame = frame.select(columns)
        if frame.height > sample_rows:
            frame = frame.sample(n=sample_rows, seed=0)
        return Dataset.from_pandas(frame.to_pandas(), data_definition=definition)

    snapshot = Report([DataDriftPreset()]).run(dataset(current), dataset(reference))
    path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(path))
    return path


def prune_reports(folder: Path, keep: int, pattern: str = "*.html") -> list[Path]:
    """Delete all but the newest ``keep`` reports in ``folder`` (by modification time, then name);
    returns what was removed. The storage bound: ``keep`` × the size of one report."""
    if not folder.is_dir():
        return []
    files = sorted(folder.glob(pattern), key=lambda f: (f.stat().st_mtime_ns, f.name), reverse=True)
    removed = files[max(keep, 0) :]
    for f in removed:
        f.unlink(missing_ok=True)
    return removed
