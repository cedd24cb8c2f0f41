"""PII is never at rest in the clear: the spec's ``pii`` columns are keyed-hashed (HMAC-SHA256 with
``$MLOPS_PII_KEY``) or dropped before anything is written.

The world plants known emails and card numbers in the landing files (the simulator's own and two
hand-written rows, one of them quarantined), runs ingest → features → training → scoring on the real
stack, then searches EVERY store for them: each file under ``$MLOPS_HOME`` as bytes (Delta parquet
files, the MLflow sqlite store and its artifacts, zip members included, the Dagster instance's
sqlite databases, alerts, reports) and every string column of every Delta table read back with
polars (parquet pages may be compressed, so bytes alone would prove nothing). The landing zone, the
input, lives outside ``$MLOPS_HOME``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pytest
import yaml
from dagster import Failure, instance_for_test

from mlops_assets.core.platform import Platform
from mlops_assets.core.spec import BUNDLED_SPEC, parse_spec
from mlops_assets.data.contract import event_contract, protect_pii
from mlops_assets.data.ingest import ingest_partition
from mlops_assets.data.simulator import TIMESTAMP_FORMAT, card_events, simulate, write_bad_file

from .conftest import World, materialized, world_home

START = dt.date(2026, 3, 2)
DAYS = 24  # events START .. START+23
CUTOFF = (START + dt.timedelta(days=20)).isoformat()  # trains on START+6 .. START+19
SCORED = [(START + dt.timedelta(days=i)).isoformat() for i in (20, 21, 22)]
BAD_DAY = START + dt.timedelta(days=23)  # planted and broken files: ingested on its own
KEY = "test-pii-key-" + "0123456789abcdef" * 2
PLANTED_EMAIL, PLANTED_CARD = "planted.victim+pii@example.org", "4111111111111111"
BAD_EMAIL, BAD_CARD = "quarantined.victim@example.net", "5500005555555559"


def small_spec(landing: Path, **over) -> dict:
    """The bundled card spec on a short window, lenient gates (so a champion exists to score with),
    and the landing zone at an absolute path outside $MLOPS_HOME."""
    data = yaml.safe_load(BUNDLED_SPEC.read_text())
    data["landing"]["path"] = str(landing / "events")
    data["labels"].update(path=str(landing / "labels"), delay_days=2)
    data["training"].update(window_days=14, holdout_days=4, cadence_days=7)
    data["model"]["params"] = {"max_iter": 40, "learning_rate": 0.1, "max_leaf_nodes": 15}
    data["gates"] = {
        "floors": {},
        "ceilings": {},
        "max_regression": 1.0,
        "primary_metric": "roc_auc",
        "min_slice_rows": 300,
        "shadow_days": 0,
    }
    data.update(over)
    return data


def plant(folder: Path, day: dt.date) -> Path:
    """A CSV with one valid row and one quarantined row (bad amount), each with known PII."""
    rows = (
        card_events(day, 2, seed=99)
        .drop("is_fraud")
        .with_columns(
            pl.Series("transaction_id", ["planted-ok", "planted-bad"]),
            pl.Series("email", [PLANTED_EMAIL, BAD_EMAIL]),
            pl.Series("card_number", [PLANTED_CARD, BAD_CARD]),
            pl.Series("amount", ["12.5", "not-a-number"]),
        )
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"events-{day}-planted.csv"
    rows.write_csv(path, datetime_format=TIMESTAMP_FORMAT)
    return path


def landing_pii(landing: Path) -> set[str]:
    """Every email and card number in the landing files (the values that must not be at rest)."""
    values: set[str] = set()
    for path in (landing / "events").rglob("*"):
        if path.suffix == ".parquet":
            frame = pl.read_parquet(path)
        elif path.suffix == ".csv":
            frame = pl.read_csv(path, infer_schema=False)
        else:
            continue
        for col in ("email", "card_number"):
            values |= {v for v in frame[col].cast(pl.String).to_list() if v}
    return values


@dataclass
class PiiWorld(World):
    landing: Path | None = None  # the landing zone, outside $MLOPS_HOME
    pii: set[str] = field(default_factory=set)  # every email and card number landed

    @property
    def home(self) -> Path:
        return self.platform.home.root


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from mlops_assets.location.build import build_definitions

    root = tmp_path_factory.mktemp("pii")
    landing = root / "landing_in"
    spec_file = root / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(small_spec(landing)))
    with world_home(root, spec=spec_file, one_thread=True, MLOPS_PII_KEY=KEY) as (
        platform,
        instance,
    ):
        w = PiiWorld(platform, instance, build_definitions(platform), landing=landing)
        w.simulate(START, DAYS, seed=13, spec=platform.spec, landing=landing)
        bad_folder = platform.landing / BAD_DAY.isoformat()
        plant(bad_folder, BAD_DAY)
        for kind in ("wrong_types", "duplicated_ids"):
            write_bad_file(bad_folder, kind, BAD_DAY, seed=4)
        w.ingest(START.isoformat(), SCORED[-1])
        w.ingest_labels()
        w.results["bad_day"] = w.run("ingest", BAD_DAY.isoformat())  # fails: asserted below
        w.step("training", w.train(CUTOFF))
        w.score(SCORED[0], SCORED[-1])
        w.pii = landing_pii(landing)
        yield w


def _texts(path: Path) -> list[tuple[str, str]]:
    """(where, text) of a stored file: its bytes, and each member of a zip (skops, MLflow
    artifacts).
    """
    data = path.read_bytes()
    out = [(str(path), data.decode("latin-1"))]
    if zipfile.is_zipfile(io.BytesIO(data)):
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            out += [(f"{path}!{m}", zf.read(m).decode("latin-1")) for m in zf.namelist()]
    return out


def _hits(texts: list[tuple[str, str]], needles: list[str]) -> dict[str, list[str]]:
    frame = pl.DataFrame({"where": [w for w, _ in texts], "text": [t for _, t in texts]})
    found = frame.with_columns(pl.col("text").str.extract_many(needles).alias("hits")).filter(
        pl.col("hits").list.len() > 0
    )
    return {
        r["where"]: sorted(set(r["hits"]))[:5] for r in found.select("where", "hits").to_dicts()
    }


def test_the_world_ingested_trained_scored_and_quarantined_the_planted_row(world):
    results, lake = world.results, world.lake
    assert not results["bad_day"].success  # the broken files fail the contract of their day
    assert lake.read("scores", SCORED).height > 0 and lake.read("training_set", [CUTOFF]).height > 0
    assert {PLANTED_EMAIL, PLANTED_CARD, BAD_EMAIL, BAD_CARD} <= world.pii and len(
        world.pii
    ) > 10_000
    q = lake.read("quarantine", [BAD_DAY.isoformat()])
    planted = q.filter(pl.col("file").str.ends_with("-planted.csv"))
    assert planted["rule"].to_list() == ["wrong_type"] and planted["record"].null_count() == 0
    assert (
        q.filter(pl.col("rule") == "duplicate_id").height >= 10
    )  # records built from accepted rows too


def test_no_pii_value_is_in_any_file_under_mlops_home(world):
    """Delta parquet and logs, MLflow sqlite and artifacts (zips opened), Dagster's sqlite
    databases,
    alerts, reports: not one email or card number, and not the key."""
    files = [p for p in world.home.rglob("*") if p.is_file()]
    stores = {p.relative_to(world.home).parts[0] for p in files}
    assert {"lake", "mlflow", "dagster"} <= stores, stores
    assert any(
        p.name.endswith(".db") for p in (world.home / "dagster").rglob("*")
    )  # the instance's sqlite
    texts = [t for p in files for t in _texts(p)]
    assert _hits(texts, sorted(world.pii)) == {}
    assert _hits(texts, [KEY]) == {}


def test_every_string_column_of_every_delta_table_is_free_of_pii(world):
    lake, needles = world.lake, sorted(world.pii)
    tables = sorted(p.parent.name for p in (world.home / "lake").glob("*/_delta_log"))
    assert {"raw_events", "quarantine", "features", "training_set", "scores"} <= set(tables)
    cells = []
    for table in tables:
        frame = lake.read(table)
        cells += [
            frame.select(
                pl.lit(table).alias("table"), pl.lit(c).alias("column"), pl.col(c).alias("value")
            )
            for c, dtype in frame.schema.items()
            if dtype == pl.String
        ]
    # every string cell in one contiguous column: polars builds the needles' automaton per chunk
    cells = pl.concat(cells).rechunk()
    raw_columns = set(cells.filter(pl.col("table") == "raw_events")["column"])
    assert {"email", "card_number"} <= raw_columns  # the hashed columns are among those searched
    leaked = cells.filter(pl.col("value").str.contains_any(needles))
    assert leaked.is_empty(), leaked.group_by("table", "column").agg(pl.col("value").head(3))


def digest(value: str) -> str:
    return hmac.new(KEY.encode(), value.encode(), hashlib.sha256).hexdigest()


def test_pii_columns_hold_keyed_hashes_in_raw_events_and_in_quarantine_records(world):
    lake, day = world.lake, BAD_DAY.isoformat()
    raw = lake.read("raw_events", [day])
    row = raw.filter(pl.col("transaction_id") == "planted-ok").row(0, named=True)
    assert (row["email"], row["card_number"]) == (digest(PLANTED_EMAIL), digest(PLANTED_CARD))
    assert raw["email"].str.len_chars().unique().to_list() == [64]  # every value hashed
    record = json.loads(
        lake.read("quarantine", [day]).filter(pl.col("file").str.ends_with("-planted.csv"))[
            "record"
        ][0]
    )
    assert (record["email"], record["card_number"]) == (digest(BAD_EMAIL), digest(BAD_CARD))
    assert record["amount"] == "not-a-number"  # the rest of the record stays as it arrived
    # equal values keep matching (counts, joins), and features never carry PII at all
    assert raw.height > raw["email"].n_unique()
    assert not set(lake.read("features", [day]).columns) & set(world.platform.spec.pii)
    assert materialized(world.results["bad_day"])["raw_events"]["pii"] == {
        "columns": ["card_number", "email"],
        "treatment": "hmac_sha256",
        "why": "keyed hash (key from $MLOPS_PII_KEY)",
    }


@pytest.mark.parametrize("mode", ["no_key", "drop"])
def test_without_a_key_or_with_pii_mode_drop_pii_values_are_dropped(
    mode, home, monkeypatch, tmp_path
):
    from mlops_assets.location.build import build_definitions

    landing = tmp_path / "landing_in"
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(
        yaml.safe_dump(small_spec(landing, **({"pii_mode": "drop"} if mode == "drop" else {})))
    )
    monkeypatch.setenv("MLOPS_SPEC", str(spec_file))
    if mode == "drop":
        monkeypatch.setenv("MLOPS_PII_KEY", KEY)  # a key does not bring hashing back in drop mode
    else:
        monkeypatch.delenv("MLOPS_PII_KEY", raising=False)
    platform = Platform.from_env()
    day = START.isoformat()
    simulate(landing, START, 1, seed=3, spec=platform.spec)
    plant(platform.landing / day, START)
    defs = build_definitions(platform)
    with instance_for_test(temp_dir=str(home / "dagster")) as instance:
        result = defs.resolve_job_def("ingest").execute_in_process(
            instance=instance, partition_key=day, raise_on_error=False
        )
    lake = defs.resources["lake"]
    raw, q = lake.read("raw_events", [day]), lake.read("quarantine", [day])
    assert raw.height > 1000 and {"email", "card_number"} <= set(
        raw.columns
    )  # schema kept, values gone
    assert raw["email"].null_count() == raw["card_number"].null_count() == raw.height
    record = json.loads(q.filter(pl.col("file").str.ends_with("-planted.csv"))["record"][0])
    assert (
        record["email"] is None
        and record["card_number"] is None
        and record["transaction_id"] == "planted-bad"
    )
    pii = materialized(result)["raw_events"]["pii"]
    assert pii["treatment"] == "dropped"
    assert pii["why"] == ("pii_mode: drop" if mode == "drop" else "$MLOPS_PII_KEY is not set")
    texts = [t for p in home.rglob("*") if p.is_file() for t in _texts(p)]
    assert _hits(texts, [PLANTED_EMAIL, PLANTED_CARD, BAD_EMAIL, BAD_CARD, KEY]) == {}


def test_a_short_key_is_refused_without_quoting_it(monkeypatch):
    from mlops_assets.control.resources import PiiKey, pii_resource

    monkeypatch.setenv("MLOPS_PII_KEY", "short-secret")
    resource = pii_resource()
    assert resource.key != "short-secret"  # an EnvVar reference, resolved by Dagster at run time
    with pytest.raises(Failure) as err:
        PiiKey(key="short-secret").key_bytes()
    assert "short-secret" not in str(err.value) and "MLOPS_PII_KEY" in str(err.value)
    assert PiiKey().key_bytes() is None and PiiKey(key=KEY).key_bytes() == KEY.encode()


def test_protect_pii_hashes_with_the_key_or_empties_and_leaves_other_columns():
    frame = pl.DataFrame(
        {
            "email": ["a@example.com", None, "a@example.com"],
            "card_number": [4111, 5500, 4111],
            "amount": [1.0, 2.0, 3.0],
        }
    )
    hashed = protect_pii(frame, ("email", "card_number"), KEY.encode())
    assert hashed["email"].to_list() == [digest("a@example.com"), None, digest("a@example.com")]
    assert hashed["card_number"].to_list() == [
        digest("4111"),
        digest("5500"),
        digest("4111"),
    ]  # ints too
    assert hashed["amount"].equals(frame["amount"])
    other = protect_pii(frame, ("email",), b"another-key-of-enough-length")
    assert other["email"][0] != hashed["email"][0]  # keyed: another key gives other digests
    dropped = protect_pii(frame, ("email", "card_number"), None)
    assert dropped.schema["email"] == pl.String and dropped["card_number"].null_count() == 3
    assert protect_pii(frame, ("absent",), None).equals(frame)


def test_the_contract_protects_pii_before_a_row_is_quarantined(tmp_path):
    spec = parse_spec(small_spec(tmp_path))
    folder = tmp_path / "events" / START.isoformat()
    plant(folder, START)
    result = ingest_partition(
        tmp_path / "events", START.isoformat(), event_contract(spec), KEY.encode()
    )
    assert result.accepted["email"].to_list() == [digest(PLANTED_EMAIL)]
    assert json.loads(result.quarantine["record"][0])["email"] == digest(BAD_EMAIL)
    assert PLANTED_EMAIL not in str(result.files) and BAD_CARD not in result.quarantine.write_csv()
