"""The NannyML side of ``test_nannyml_crosscheck``: runs in ``.venv-nannyml`` (NannyML's own pins),
never
imported by the project. Reads the data the test wrote, fits NannyML's CBPE, DLE and
DataReconstructionDriftCalculator on the reference, prints one JSON line: the per-chunk values
and the
seconds each took (fit + estimate).

    .venv-nannyml/bin/python mlops_assets_tests/nannyml_side.py <folder>
"""

import json
import sys
import time
import warnings
from pathlib import Path

import pandas as pd

warnings.filterwarnings("ignore")


def main(folder: Path) -> dict:
    import nannyml as nml

    meta = json.loads((folder / "meta.json").read_text())
    size = meta["chunk_size"]
    out = {"nannyml": nml.__version__}

    ref, ana = (
        pd.read_parquet(folder / "binary_reference.parquet"),
        pd.read_parquet(folder / "binary_analysis.parquet"),
    )
    t0 = time.perf_counter()
    cbpe = nml.CBPE(
        problem_type="classification_binary",
        y_pred_proba="score",
        y_pred="label",
        y_true="y",
        metrics=["roc_auc"],
        chunk_size=size,
    )
    cbpe.fit(ref)
    res = cbpe.estimate(ana).filter(period="analysis").to_df()
    out["cbpe_seconds"] = time.perf_counter() - t0
    out["cbpe_roc_auc"] = res[("roc_auc", "value")].tolist()

    ref, ana = (
        pd.read_parquet(folder / "reg_reference.parquet"),
        pd.read_parquet(folder / "reg_analysis.parquet"),
    )
    for c in meta["reg_categorical"]:
        ref[c], ana[c] = ref[c].astype("category"), ana[c].astype("category")
    t0 = time.perf_counter()
    dle = nml.DLE(
        feature_column_names=meta["reg_features"],
        y_pred="prediction",
        y_true="y",
        metrics=["mae"],
        chunk_size=size,
    )
    dle.fit(ref)
    res = dle.estimate(ana).filter(period="analysis").to_df()
    out["dle_seconds"] = time.perf_counter() - t0
    out["dle_mae"] = res[("mae", "value")].tolist()

    ref, ana = (
        pd.read_parquet(folder / "mv_reference.parquet"),
        pd.read_parquet(folder / "mv_analysis.parquet"),
    )
    t0 = time.perf_counter()
    calc = nml.DataReconstructionDriftCalculator(column_names=meta["mv_columns"], chunk_size=size)
    calc.fit(ref)
    res = calc.calculate(ana).filter(period="analysis").to_df()
    out["dre_seconds"] = time.perf_counter() - t0
    out["reconstruction_error"] = res[("reconstruction_error", "value")].tolist()
    out["dre_alert"] = [bool(a) for a in res[("reconstruction_error", "alert")].tolist()]
    return out


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
