"""The data contract on one landing CSV vs a typed polars read of the same file, and a NaN flood.

Input: a landing CSV of card events and the same file NaN-flooded (``make_files``). Side by
side, interleaved, best of N (wall clock, this process):

* ``typed_read`` (baseline): ``pl.read_csv(path, schema_overrides=<the contract's types>)``,
  the least a typed read of the file costs;
* ``contract``: ``readers.read_file`` (polars read + the vectorised field-count check) +
  ``landing_file.validate_file`` (typing, every rule, the quarantine records) — what
  ``raw_events`` runs per file (PII dropped: no key; ``pii_hash`` is the same with a key);
* ``nan_flood``: the same contract on the flooded file.

Keys: ``ingest.validate_vs_typed_read`` = contract / typed_read; ``ingest.nan_flood_vs_clean``
= nan_flood / contract.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import polars as pl

from benchmarks.common import Result, Table, goal, interleaved, ratio, secs, temp_dir

DAY = dt.date(2026, 3, 2)
FLOODED = ("amount", "distance_from_home_km")


def make_files(folder: Path, rows: int) -> tuple[Path, Path]:
    """``simulator.card_events(day, rows, seed=0)`` as a landing CSV (the simulator's own
    timestamp format), and the same file with every ``amount`` and ``distance_from_home_km``
    written as ``NaN`` (a required column: every row is rejected and quarantined with its
    record)."""
    from mlops_assets.data.simulator import TIMESTAMP_FORMAT, card_events

    events = card_events(DAY, rows=rows, seed=0).drop("is_fraud")
    clean, flood = folder / f"events-{DAY}.csv", folder / f"events-{DAY}-nan.csv"
    events.write_csv(clean, datetime_format=TIMESTAMP_FORMAT)
    events.with_columns(pl.lit("NaN").alias(c) for c in FLOODED).write_csv(
        flood, datetime_format=TIMESTAMP_FORMAT
    )
    return clean, flood


def bench(quick: bool = False) -> Result:
    from mlops_assets.core.spec import load_spec
    from mlops_assets.data.contract import event_contract
    from mlops_assets.data.landing_file import validate_file
    from mlops_assets.data.readers import read_file

    rows = 50_000 if quick else 1_000_000
    repeats = 2 if quick else 5
    spec = load_spec()
    contract = event_contract(spec)
    day = DAY.isoformat()
    with temp_dir("ingest") as folder:
        clean, flood = make_files(folder, rows)

        def run(path: Path, key: bytes | None = None):
            return validate_file(read_file(path), contract, day, path.name, key)

        ok, bad, _ = run(clean)
        flooded_ok, flooded_bad, _ = run(flood)
        timings = interleaved(
            {
                "typed_read": lambda: pl.read_csv(clean, schema_overrides=contract.dtypes),
                "contract": lambda: run(clean),
                "nan_flood": lambda: run(flood),
                "read_file": lambda: read_file(clean),
                "text_read": lambda: pl.read_csv(clean, infer_schema=False),
            },
            repeats,
        )
        pii = interleaved({"pii_hash": lambda: run(clean, b"bench-key")}, 1, warmup=False)[
            "pii_hash"
        ]
        size_mb = clean.stat().st_size / 2**20
    t = {k: v.best for k, v in timings.items()}
    table = Table(
        f"the contract on a {rows:,}-row landing CSV ({size_mb:.0f} MB); best of {repeats},"
        " interleaved",
        ["variant", "best", "median", "× typed read"],
    )
    labels = {
        "typed_read": "pl.read_csv with the contract's types (baseline)",
        "text_read": "pl.read_csv, every column as text",
        "read_file": "readers.read_file (text + field count)",
        "contract": "read_file + validate_file (whole contract)",
        "nan_flood": f"… on the NaN-flooded file ({flooded_bad.height:,} rows quarantined)",
    }
    for name, label in labels.items():
        table.add(
            label,
            secs(timings[name].best),
            secs(timings[name].median),
            ratio(t[name], t["typed_read"]),
        )
    table.add(
        "… contract with a PII key (HMAC of 2 columns; one sample)",
        secs(pii.best),
        "",
        ratio(pii.best, t["typed_read"]),
    )
    table.notes.append(
        f"clean file: {ok.height:,} accepted, {bad.height} rejected; flooded: {flooded_ok.height:,}"
        f" accepted, {flooded_bad.height:,} rejected (rule {sorted(set(flooded_bad['rule']))})"
    )
    keys = {
        "ingest.validate_vs_typed_read": t["contract"] / t["typed_read"],
        "ingest.nan_flood_vs_clean": t["nan_flood"] / t["contract"],
    }
    goals = [
        goal(
            "contract vs typed read",
            "<= 2x",
            ratio(t["contract"], t["typed_read"]),
            keys["ingest.validate_vs_typed_read"] <= 2,
        ),
        goal(
            "NaN flood vs clean",
            "<= 2x",
            ratio(t["nan_flood"], t["contract"]),
            keys["ingest.nan_flood_vs_clean"] <= 2,
        ),
    ]
    data = {
        "rows": rows,
        "repeats": repeats,
        "csv_mb": size_mb,
        "quarantined_flood": flooded_bad.height,
        "pii_hash": pii.to_json(),
        **{k: v.to_json() for k, v in timings.items()},
    }
    return Result("ingest", [table], goals, data, keys)


if __name__ == "__main__":
    for tbl in bench("--quick" in sys.argv).tables:
        print(tbl.render(), end="\n\n")
