"""``mlops-assets`` commands on files: a spec inferred from sample files, a spec validated and
linted, drift between two files with the platform's statistics."""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import yaml

from mlops_assets.core.platform import Platform
from mlops_assets.core.spec import SpecLoader, load_spec, parse_spec
from mlops_assets.data.spec_infer import InferOptions, infer_spec, read_samples, spec_lints
from mlops_assets.monitoring.drift.methods import feature_drift
from mlops_assets.monitoring.drift.profile import build_reference_profile
from mlops_assets.operations.commands_common import print_err


def _dataset_name(path: Path) -> str:
    name = re.sub(r"[^a-z0-9_]+", "_", path.stem.lower()).strip("_")
    return name if re.match(r"^[a-z]", name) else f"dataset_{name}"


def cmd_spec_infer(args) -> int:
    files = [Path(f) for f in args.files]
    opts = InferOptions(
        target=args.target,
        timestamp=args.timestamp,
        id=args.id,
        name=args.name or _dataset_name(files[0]),
        landing=args.landing,
        formats=tuple(sorted({f.suffix.lower().lstrip(".") for f in files})),
        labels=args.labels,
        label_delay=args.label_delay,
        window_days=args.window_days,
        holdout_days=args.holdout_days,
        margin=args.margin,
    )
    inferred = infer_spec(read_samples(files), opts, [f.name for f in files])
    text = inferred.to_yaml()
    print(text, end="")
    spec = parse_spec(yaml.load(text, Loader=SpecLoader), "<inferred spec>")  # SpecError: exit 2
    print_err(
        f"inferred {spec.task} spec {spec.name}: {len(spec.numeric_features)} numeric,"
        f" {len(spec.categorical_features)} categorical, {len(spec.calendar_features)} calendar"
        f" feature(s); pii {spec.pii or 'none'}; left out:"
        f" {', '.join(c for c, _ in inferred.left_out) or 'nothing'}"
    )
    return 0


def cmd_spec_check(args) -> int:
    spec = load_spec(args.file)  # SpecError names the field: exit 2
    lints = spec_lints(spec)
    root = Platform.from_env(spec).home.root
    for field_name, path in (
        ("landing.path", spec.landing.path),
        ("labels.path", spec.labels and spec.labels.path),
    ):
        if path and not spec.resolve(path, root).exists():
            lints.append(
                (
                    field_name,
                    f"{spec.resolve(path, root)} does not exist yet (under MLOPS_HOME={root})",
                )
            )
    print(
        f"ok: {args.file} is a valid {spec.task} spec {spec.name!r} ({len(spec.model_features)}"
        f" features, {'label feed' if spec.labels else 'target in the events'})"
    )
    for field_name, why in lints:
        print(f"warning: {field_name}: {why}")
    return 2 if lints and args.strict else 0


def _drift_columns(frame: pl.DataFrame, names: str | None, numeric: bool) -> list[str]:
    if names:
        return [c.strip() for c in names.split(",") if c.strip()]
    return [
        c
        for c in frame.columns
        if frame[c].dtype.is_numeric() == numeric
        and frame[c].dtype != pl.Boolean
        and not isinstance(frame[c].dtype, pl.Datetime | pl.Date)
        and (numeric or frame[c].n_unique() <= 1000)
    ]


def cmd_drift(args) -> int:
    reference, current = read_samples([Path(args.reference)]), read_samples([Path(args.current)])
    numeric = _drift_columns(reference, args.numeric, True)
    categorical = _drift_columns(reference, args.categorical, False)
    missing = [
        c for c in numeric + categorical if c not in reference.columns or c not in current.columns
    ]
    if missing:
        raise ValueError(f"columns {missing} are not in both files")
    spec = parse_spec(
        {
            "name": "adhoc_drift",
            "task": "regression",
            "landing": {"path": "."},
            "timestamp": "__timestamp__",
            "id": "__id__",
            "target": "__target__",
            "features": {
                "numeric": {c: {} for c in numeric},
                "categorical": {c: {} for c in categorical},
            },
            "partition_start": "2000-01-01",
            "training": {"window_days": 2, "holdout_days": 1},
            "model": {"registered_name": "adhoc_drift"},
        },
        "<drift command>",
    )
    profile = build_reference_profile(
        reference.with_columns(pl.col(categorical).cast(pl.String)), numeric, categorical
    )
    result = feature_drift(profile, current.with_columns(pl.col(categorical).cast(pl.String)), spec)
    report = {
        "columns": [
            {
                "column": c,
                "method": f.get("method"),
                "statistic": f.get("score"),
                "threshold": f.get("threshold"),
                "drifted": bool(f.get("drifted")),
                "status": f.get("status"),
            }
            for c, f in result["features"].items()
        ],
        "share_drifted": result["share_drifted"],
        "dataset_drifted": bool(result["dataset_drifted"]),
    }
    if args.json:
        print(json.dumps(report, default=str))
        return 0
    for c in report["columns"]:
        stat = "-" if c["statistic"] is None else f"{c['statistic']:.4g}"
        mark = "DRIFT" if c["drifted"] else "ok   "
        print(f"{mark} {c['column']}: {c['method']} {stat} (threshold {c['threshold']})")
    print(
        f"dataset {'DRIFTED' if report['dataset_drifted'] else 'not drifted'}: "
        f"share drifted {report['share_drifted']:.2f} (threshold {spec.drift.share_drifted})"
    )
    return 0


def add_file_commands(sub) -> None:
    """spec infer/check, drift: commands on spec and data files, no instance."""
    sp = sub.add_parser("spec", help="write a spec from sample files; validate and lint a spec")
    sp_sub = sp.add_subparsers(dest="spec_command", required=True)
    si = sp_sub.add_parser("infer", help="a spec YAML on stdout from sample CSV/Parquet files")
    si.add_argument("files", nargs="+", metavar="FILE")
    si.add_argument("--target", required=True)
    si.add_argument(
        "--timestamp", help="the event time column (default: the first datetime column)"
    )
    si.add_argument("--id", help="the event id column (default: a column unique per row)")
    si.add_argument("--name", help="dataset name (default: from the first file's name)")
    si.add_argument(
        "--landing", help="landing folder (default landing/<name>/events under $MLOPS_HOME)"
    )
    si.add_argument(
        "--labels", metavar="PATH", help="a delayed label feed's folder (labels/<arrival date>/*)"
    )
    si.add_argument("--label-delay", type=int, default=1, metavar="DAYS")
    si.add_argument("--window-days", type=int, default=28)
    si.add_argument("--holdout-days", type=int)
    si.add_argument(
        "--margin", type=float, default=0.25, help="ranges widened by this share of their span"
    )
    si.set_defaults(fn=cmd_spec_infer)
    sk = sp_sub.add_parser("check", help="validate (exit 2 naming the field) and lint a spec")
    sk.add_argument("file")
    sk.add_argument("--strict", action="store_true", help="exit 2 on a lint warning too")
    sk.set_defaults(fn=cmd_spec_check)

    dr = sub.add_parser(
        "drift", help="drift between two files with the platform's drift statistics"
    )
    dr.add_argument("--reference", required=True, metavar="FILE")
    dr.add_argument("--current", required=True, metavar="FILE")
    dr.add_argument(
        "--numeric", metavar="C,..", help="numeric columns (default: every numeric column)"
    )
    dr.add_argument(
        "--categorical", metavar="C,..", help="categorical columns (default: every text column)"
    )
    dr.add_argument("--json", action="store_true")
    dr.set_defaults(fn=cmd_drift)
