"""The data simulator: determinism, layout, label delay, injections and bad files (real files)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from mlops_assets.core.spec import load_spec, parse_spec
from mlops_assets.data import simulator as sim

START = dt.date(2026, 1, 1)  # a Thursday
DAYS = 10
SEED = 5
CARD = load_spec(sim.CARD_SPEC)

FAULTS = [
    "late_file@2026-01-03",
    "duplicate_file@2026-01-04",
    "corrupt_file@2026-01-05",
    "covariate_drift@2026-01-07",
    "schema_change@2026-01-08",
]


# ---- helpers ------------------------------------------------------------------------------------
def auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC via the rank-sum statistic (ties get average ranks)."""
    ranks = pl.Series(np.asarray(score, dtype=float)).rank("average").to_numpy()
    y = np.asarray(y).astype(bool)
    pos, neg = y.sum(), (~y).sum()
    return float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg))


def read_events(path: Path) -> pl.DataFrame:
    if path.suffix == ".parquet":
        return pl.read_parquet(path)
    frame = pl.read_csv(path, schema_overrides={"card_number": pl.String})
    return frame.with_columns(pl.col("event_time").str.to_datetime(sim.TIMESTAMP_FORMAT))


def day_files(manifest: sim.SimulationManifest, kind: str = "events") -> dict[str, Path]:
    return {f.date: Path(manifest.out) / f.path for f in manifest.files if f.kind == kind}


def all_events(manifest: sim.SimulationManifest) -> pl.DataFrame:
    frames = [read_events(p).select(sim.CARD_COLUMNS) for p in day_files(manifest).values()]
    return pl.concat(frames).sort("transaction_id")


def all_labels(manifest: sim.SimulationManifest) -> pl.DataFrame:
    paths = manifest.paths("labels")
    return pl.concat([pl.read_csv(p).with_columns(arrival=pl.lit(p.parent.name)) for p in paths])


def tree_bytes(root: Path) -> dict[str, bytes]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in files}


# ---- shared simulations (module scope keeps the file fast) --------------------------------------
@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> sim.SimulationManifest:
    return sim.simulate(tmp_path_factory.mktemp("clean") / "landing", START, DAYS, seed=SEED)


@pytest.fixture(scope="module")
def faulty(tmp_path_factory) -> sim.SimulationManifest:
    out = tmp_path_factory.mktemp("faulty") / "landing"
    return sim.simulate(out, START, DAYS, seed=SEED, inject=FAULTS)


@pytest.fixture(scope="module")
def concept(tmp_path_factory) -> sim.SimulationManifest:
    out = tmp_path_factory.mktemp("concept")
    return sim.simulate(out, START, 14, seed=SEED, inject=["concept_drift@2026-01-08"])


# ---- injections parsing -------------------------------------------------------------------------
def test_parse_injection_round_trips():
    inj = sim.parse_injection("concept_drift@2026-02-01")
    assert inj == sim.Injection("concept_drift", dt.date(2026, 2, 1))
    assert str(inj) == "concept_drift@2026-02-01"
    kinds = {sim.parse_injection(f"{k}@2026-01-01").kind for k in sim.INJECTION_KINDS}
    assert kinds == set(sim.INJECTION_KINDS)


@pytest.mark.parametrize(
    "text",
    ["concept_drift", "conceptdrift@2026-01-01", "late_file@2026-13-01", "late_file@26-01-01", ""],
)
def test_parse_injection_rejects_bad_text_and_names_it(text):
    with pytest.raises(ValueError) as err:
        sim.parse_injection(text)
    assert repr(text) in str(err.value)


def test_file_injection_outside_the_range_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="outside the simulated range"):
        sim.simulate(tmp_path, START, 2, inject=["duplicate_file@2026-03-01"])


# ---- determinism --------------------------------------------------------------------------------
def test_same_arguments_give_byte_identical_files(tmp_path, faulty):
    again = sim.simulate(tmp_path / "landing", START, DAYS, seed=SEED, inject=FAULTS)
    first, second = tree_bytes(Path(faulty.out)), tree_bytes(Path(again.out))
    assert first.keys() == second.keys()
    assert any(k.endswith(".parquet") for k in first) and any(k.endswith(".csv") for k in first)
    for name in first:  # Parquet bytes are deterministic too with polars 2.1
        assert first[name] == second[name], name
    assert again.to_dict() | {"out": ""} == faulty.to_dict() | {"out": ""}


def test_other_seed_gives_other_data(tmp_path, clean):
    other = sim.simulate(tmp_path, START, 1, seed=SEED + 1)
    assert other.paths()[0].read_bytes() != day_files(clean)[START.isoformat()].read_bytes()


def test_chunked_simulation_equals_one_shot(tmp_path, clean):
    """A day depends only on (seed, day, injections); label files merge across calls."""
    sim.simulate(tmp_path, START, 4, seed=SEED)
    sim.simulate(tmp_path, START + dt.timedelta(days=4), DAYS - 4, seed=SEED)
    assert tree_bytes(tmp_path) == tree_bytes(Path(clean.out))


def test_injections_leave_the_other_days_untouched(clean, faulty):
    base, hit = day_files(clean), day_files(faulty)
    for day in ("2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04", "2026-01-05", "2026-01-06"):
        assert base[day].read_bytes() == hit[day].read_bytes(), day
    assert base["2026-01-07"].read_bytes() != hit["2026-01-07"].read_bytes()


# ---- layout, schema and realism -----------------------------------------------------------------
def test_layout_columns_and_domains(clean):
    out = Path(clean.out)
    files = day_files(clean)
    assert len(files) == DAYS
    for day, path in files.items():
        assert path.parent == out / "events" / day
        assert path.name in (f"events-{day}.csv", f"events-{day}.parquet")
    formats = {p.suffix for p in files.values()}
    assert formats == {".csv", ".parquet"}
    for day, path in files.items():  # back-dated to when the daily export would have landed
        landed = dt.datetime.fromisoformat(day) + dt.timedelta(days=1, minutes=15)
        assert path.stat().st_mtime == landed.replace(tzinfo=dt.UTC).timestamp()

    parquet = pl.read_parquet(next(p for p in files.values() if p.suffix == ".parquet"))
    assert parquet.columns == CARD.event_columns
    assert parquet.schema["event_time"] == pl.Datetime("us")
    csv_path = next(p for p in files.values() if p.suffix == ".csv")
    csv = pl.read_csv(csv_path, schema_overrides={"card_number": pl.String})
    assert csv.columns == CARD.event_columns
    assert csv["event_time"].dtype == pl.String
    csv["event_time"].str.to_datetime(sim.TIMESTAMP_FORMAT, strict=True)  # ISO, parses cleanly

    events = all_events(clean)
    assert events["transaction_id"].n_unique() == events.height
    for col, rule in CARD.features.categorical.items():
        assert set(events[col].unique()) <= set(rule.allowed), col
    for col, rule in CARD.features.numeric.items():
        assert events[col].null_count() == 0
        assert rule.min <= events[col].min() and events[col].max() <= rule.max, col
        assert events[col].dtype == (pl.Int64 if rule.dtype == "int" else pl.Float64), col
    dates = events["event_time"].dt.date().cast(pl.String)
    id_dates = events["transaction_id"].str.slice(1, 8).str.to_date("%Y%m%d").cast(pl.String)
    assert (dates == id_dates).all()  # ids carry their event date


def test_pii_looks_real_but_is_fake(clean):
    events = all_events(clean)
    numbers = events["card_number"]
    assert numbers.str.contains(r"^[45]\d{15}$").all()
    digits = np.array([[int(c) for c in n] for n in numbers.head(500)])
    doubled = digits[:, -2::-2] * 2
    luhn = np.where(doubled > 9, doubled - 9, doubled).sum(axis=1) + digits[:, -1::-2].sum(axis=1)
    assert (luhn % 10 == 0).all()
    assert events["email"].str.contains(r"^[a-z0-9.]+@example\.(com|org|net)$").all()
    assert numbers.n_unique() < events.height  # cards recur across transactions


def test_volume_varies_by_weekday(clean):
    rows = {dt.date.fromisoformat(f.date): f.rows for f in clean.files if f.kind == "events"}
    assert all(2000 <= n <= 4000 for n in rows.values())
    weekday = np.mean([n for d, n in rows.items() if d.weekday() < 5])
    weekend = np.mean([n for d, n in rows.items() if d.weekday() >= 5])
    assert weekday > 1.15 * weekend


# ---- labels -------------------------------------------------------------------------------------
def test_labels_arrive_after_the_delay_and_cover_every_event(clean):
    labels = all_labels(clean)
    assert labels.columns[:3] == list(sim.CARD_LABEL_COLUMNS)
    lag = (labels["arrival"].str.to_date() - labels["event_date"].str.to_date()).dt.total_days()
    delay = CARD.labels.delay_days
    assert lag.min() == delay and lag.max() == delay + 2  # nothing before D + delay; 0..2 jitter
    for path in clean.paths("labels"):
        assert path.name == f"labels-{path.parent.name}.csv"
    events = all_events(clean)
    assert labels["transaction_id"].n_unique() == labels.height == events.height
    assert set(labels["transaction_id"]) == set(events["transaction_id"])


def test_label_delay_follows_the_spec(tmp_path):
    data = yaml.safe_load(sim.CARD_SPEC.read_text())
    data["labels"]["delay_days"] = 1
    manifest = sim.simulate(tmp_path, START, 2, spec=parse_spec(data))
    lag = all_labels(manifest).select(
        (pl.col("arrival").str.to_date() - pl.col("event_date").str.to_date()).dt.total_days()
    )
    assert lag.to_series().min() == 1


def test_simulate_rejects_a_spec_for_another_dataset(tmp_path):
    with pytest.raises(ValueError, match="does not describe"):
        sim.simulate(tmp_path, START, 1, spec=sim.BIKE_SPEC)


def test_fraud_is_rare_nocturnal_and_predictable(clean):
    joined = all_events(clean).join(all_labels(clean), on="transaction_id")
    y = joined["is_fraud"].to_numpy()
    assert 0.015 <= y.mean() <= 0.04
    night = (joined["event_time"].dt.hour() <= 5).to_numpy()
    assert y[night].mean() > 2.5 * y[~night].mean()
    bayes = auc(y, sim.fraud_logit(joined))
    assert 0.85 <= bayes <= 0.95
    assert auc(y, joined["amount"].to_numpy()) < bayes - 0.05  # a one-feature model is worse


# ---- injections ---------------------------------------------------------------------------------
def test_covariate_drift_shifts_several_features(faulty):
    drift_day = dt.date(2026, 1, 7)
    events = all_events(faulty).with_columns(after=pl.col("event_time").dt.date() >= drift_day)
    stats = events.group_by("after").agg(
        pl.col("amount").mean(),
        pl.col("distance_from_home_km").mean(),
        (pl.col("channel") == "online").mean().alias("online"),
        (pl.col("country") == "far").mean().alias("far"),
    )
    before, after = (stats.filter(pl.col("after") == f).row(0, named=True) for f in (False, True))
    # a shift the drift statistics flag, mild enough that a model trained before it still ranks well
    assert after["amount"] > 1.4 * before["amount"]
    assert after["distance_from_home_km"] > 1.5 * before["distance_from_home_km"]
    assert after["online"] > before["online"] + 0.12
    assert after["far"] > before["far"] + 0.06


def test_concept_drift_breaks_the_old_label_relation(concept):
    joined = all_events(concept).join(all_labels(concept), on="transaction_id")
    after = (joined["event_time"].dt.date() >= dt.date(2026, 1, 8)).to_numpy()
    y = joined["is_fraud"].to_numpy()
    old, new = sim.fraud_logit(joined), sim.fraud_logit(joined, concept_drift=True)
    assert auc(y[~after], old[~after]) > 0.85
    assert auc(y[after], old[after]) < 0.5  # the old signals now point the wrong way
    assert auc(y[after], new[after]) > 0.8
    assert 0.015 <= y[after].mean() <= 0.06


def test_duplicate_file_is_a_byte_copy(faulty):
    dup = day_files(faulty, "duplicate")["2026-01-04"]
    original = day_files(faulty)["2026-01-04"]
    assert dup.parent == original.parent and dup.name != original.name
    assert dup.name.startswith("events-2026-01-04-copy.")
    assert dup.read_bytes() == original.read_bytes()


def test_corrupt_file_is_unreadable(faulty):
    (record,) = [f for f in faulty.files if f.kind == "corrupt"]
    path = Path(faulty.out) / record.path
    assert path.name == "events-2026-01-05-part2.parquet" and record.rows == 0
    with pytest.raises(pl.exceptions.PolarsError):
        pl.read_parquet(path)
    assert read_events(day_files(faulty)["2026-01-05"]).height > 0  # the day's main file is intact


def test_schema_change_adds_a_column_from_its_date(faulty):
    for day, path in day_files(faulty).items():
        columns = read_events(path).columns
        if day >= "2026-01-08":
            assert columns == [*CARD.event_columns, "device_type"], day
        else:
            assert columns == CARD.event_columns, day
    formats = {p.suffix for d, p in day_files(faulty).items() if d >= "2026-01-08"}
    assert formats == {".csv", ".parquet"}


def test_late_file_is_only_written_on_demand(tmp_path):
    manifest = sim.simulate(tmp_path, START, 4, seed=SEED, inject=["late_file@2026-01-02"])
    (pending,) = manifest.pending_late
    late_path = tmp_path / pending.path
    assert not late_path.exists()
    assert late_path.name.startswith("events-2026-01-02-late.")
    # the manifest survives JSON, and the late file can be dropped from the reloaded copy
    reloaded = sim.SimulationManifest.from_dict(json.loads(json.dumps(manifest.to_dict())))
    before = time.time()
    (record,) = sim.write_late_files(reloaded)
    assert late_path.exists() and record.kind == "late" and record.rows == pending.rows
    assert late_path.stat().st_mtime >= before - 1
    main = day_files(manifest)["2026-01-02"]
    assert late_path.stat().st_mtime > main.stat().st_mtime
    late, day = read_events(late_path), read_events(main)
    assert late.columns == day.columns and 200 <= late.height <= 500
    assert not set(late["transaction_id"]) & set(day["transaction_id"])
    # the late rows were labelled on schedule like any other event
    assert set(late["transaction_id"]) <= set(all_labels(manifest)["transaction_id"])
    assert sim.write_late_files(reloaded) == [] and reloaded.pending_late == []
    first = late_path.read_bytes()
    sim.write_late_files(manifest)
    assert late_path.read_bytes() == first


def test_manifest_lists_every_file_and_is_json(faulty):
    data = json.loads(json.dumps(faulty.to_dict()))
    listed = {f["path"] for f in data["files"]}
    on_disk = set(tree_bytes(Path(faulty.out)))
    assert listed == on_disk
    kinds = {f["kind"] for f in data["files"]}
    assert kinds == {"events", "labels", "duplicate", "corrupt"}
    assert data["injections"] == sorted(FAULTS)
    for f in faulty.files:
        if f.kind in ("events", "duplicate"):
            assert read_events(Path(faulty.out) / f.path).height == f.rows


# ---- bad files for quarantine tests -------------------------------------------------------------
def _read_bad(path: Path) -> pl.DataFrame:
    if path.suffix == ".parquet":
        return pl.read_parquet(path)
    return pl.read_csv(path, schema_overrides={"card_number": pl.String})


@pytest.mark.parametrize("kind", sim.BAD_FILE_KINDS)
def test_bad_file_has_its_defect(tmp_path, kind):
    path = sim.write_bad_file(tmp_path, kind, START)
    assert path.exists() and path.parent == tmp_path and path.resolve().parent == tmp_path.resolve()
    assert sim.write_bad_file(tmp_path, kind, START) == path  # deterministic name
    if kind == "truncated_parquet":
        with pytest.raises(pl.exceptions.PolarsError):
            pl.read_parquet(path)
        return
    if kind == "malformed_csv":
        for options in ({}, {"truncate_ragged_lines": True}):
            with pytest.raises(pl.exceptions.PolarsError):
                pl.read_csv(path, **options)
        return
    frame = _read_bad(path)
    assert frame.height == 200
    if kind == "wrong_types":
        assert frame["amount"].dtype == pl.String
        assert frame["amount"].cast(pl.Float64, strict=False).null_count() >= 1
        assert "abc" in set(frame["amount"]) or frame["amount"].str.contains("[a-z]").any()
        with pytest.raises(pl.exceptions.PolarsError):
            frame["amount"].cast(pl.Float64, strict=True)
    elif kind == "missing_column":
        assert "amount" not in frame.columns
        assert set(frame.columns) == set(CARD.event_columns) - {"amount"}
    elif kind == "nan_flood":
        bad = frame["amount"].is_null() | frame["amount"].is_nan()
        assert bad.mean() >= 0.75 and frame["amount"].dtype == pl.Float64
    elif kind == "duplicated_ids":
        assert frame["transaction_id"].n_unique() == frame.height - 10
    elif kind == "path_trick":
        name = path.name
        assert name.startswith("..") and "\n" in name and ";" in name and not name.isascii()
        assert frame.columns == CARD.event_columns
    if kind != "missing_column":
        assert frame.columns == CARD.event_columns


def test_bad_file_rejects_an_unknown_kind(tmp_path):
    with pytest.raises(ValueError, match="nope"):
        sim.write_bad_file(tmp_path, "nope", START)


# ---- the regression dataset ---------------------------------------------------------------------
def test_bundled_specs_validate():
    card, bike = load_spec(sim.CARD_SPEC), load_spec(sim.BIKE_SPEC)
    assert parse_spec(yaml.safe_load(sim.BIKE_SPEC.read_text()), "bike") == bike
    assert card.task == "classification" and card.labels is not None
    assert bike.task == "regression" and bike.labels is None and bike.target_in_events
    assert bike.schema_evolution == "merge" and bike.landing.formats == ["parquet"]
    assert {bike.id, bike.timestamp} != {card.id, card.timestamp}
    assert {c.dtype for c in bike.features.numeric.values()} == {"int", "float"}
    assert set(bike.event_columns) == set(sim.BIKE_COLUMNS)


def test_regression_simulation(tmp_path):
    bike = load_spec(sim.BIKE_SPEC)
    inject = ["concept_drift@2026-01-04"]
    manifest = sim.simulate_regression(tmp_path, START, 6, seed=SEED, inject=inject)
    files = day_files(manifest)
    for day, path in files.items():
        assert path == tmp_path / "events" / day / f"events-{day}.parquet"
    assert not (tmp_path / "labels").exists()
    frame = pl.concat([pl.read_parquet(p) for p in files.values()])
    assert frame.columns == bike.event_columns
    assert frame.schema["rider_age"] == pl.Int64 and frame.schema["temperature_c"] == pl.Float64
    assert frame["rental_id"].n_unique() == frame.height
    classic = frame["bike_type"] == "classic"
    assert frame.filter(classic)["battery_pct"].null_count() == classic.sum()
    assert frame.filter(~classic)["battery_pct"].null_count() == 0
    for col, rule in bike.features.numeric.items():
        assert rule.min <= frame[col].min() and frame[col].max() <= rule.max, col

    def r2(mask: np.ndarray, drift: bool) -> float:
        y = frame["duration_min"].to_numpy()[mask]
        pred = sim.rental_duration(frame.filter(pl.Series(mask)), concept_drift=drift)
        return 1 - ((y - pred) ** 2).sum() / ((y - y.mean()) ** 2).sum()

    after = (frame["started_at"].dt.date() >= dt.date(2026, 1, 4)).to_numpy()
    assert r2(~after, False) > 0.8  # known function + noise
    assert r2(after, False) < r2(after, True) - 0.15  # concept drift changed the relation

    again = sim.simulate_regression(tmp_path / "again", START, 6, seed=SEED, inject=inject)
    assert all(
        a.read_bytes() == b.read_bytes()
        for a, b in zip(manifest.paths(), again.paths(), strict=True)
    )


# ---- hygiene ------------------------------------------------------------------------------------
def test_simulator_imports_fast_and_light():
    # the spec (pydantic) is imported at top like every light module; the ML stack and Dagster are
    # not
    code = (
        "import sys, time; t = time.perf_counter(); import mlops_assets.data.simulator; "
        "heavy = {'pandas', 'sklearn', 'mlflow', 'dagster'} & set(sys.modules); "
        "print(time.perf_counter() - t, sorted(heavy))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    out = run.stdout
    seconds, heavy = out.split(" ", 1)
    assert heavy.strip() == "[]"
    assert float(seconds) < 3.0  # ~0.3 s when idle (numpy + polars); generous for loaded CI


def test_the_label_correction_restores_what_the_label_bug_lost(tmp_path):
    """label_noise zeroes online fraud in the feed; the correction re-delivers the true labels of
    those
    days' events (same ids, a superset of the positives), and the clean simulation agrees with
    it."""
    bug = dt.date(2026, 1, 4)
    buggy = sim.simulate(tmp_path / "buggy", START, 8, seed=SEED, inject=[f"label_noise@{bug}"])
    clean_run = sim.simulate(tmp_path / "clean", START, 8, seed=SEED)
    arrival = START + dt.timedelta(days=20)
    path = sim.write_label_correction(buggy, CARD, arrival)
    assert (
        path.name == f"labels-{arrival}-correction.csv" and path.parent.name == arrival.isoformat()
    )
    fixed = pl.read_csv(path, schema_overrides={"event_date": pl.String})
    assert set(fixed["event_date"]) == {
        (bug + dt.timedelta(days=i)).isoformat() for i in range(8 - 3)
    }
    target, ident = CARD.label_target, CARD.labels.id
    delivered = all_labels(buggy).filter(
        pl.col("event_date").is_in(fixed["event_date"].unique().to_list())
    )
    truth = all_labels(clean_run).filter(
        pl.col("event_date").is_in(fixed["event_date"].unique().to_list())
    )
    assert set(fixed[ident]) == set(delivered[ident]) == set(truth[ident])
    joined = fixed.join(delivered, on=ident, suffix="_bug").join(truth, on=ident, suffix="_true")
    assert (joined[target] == joined[f"{target}_true"]).all()  # the correction is the truth
    assert (joined[target] >= joined[f"{target}_bug"]).all() and (
        joined[target] > joined[f"{target}_bug"]
    ).any()
    assert (
        sim.write_label_correction(clean_run, CARD, arrival) is None
    )  # no bug, nothing to correct
