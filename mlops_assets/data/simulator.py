"""Synthetic landing data: a realistic event stream with known ground truth and injectable faults.

Pure module (numpy + polars only; the spec module is imported lazily) so it imports fast and can
be used from tests, benchmarks and the demo alike. Two datasets:

* ``card_transactions`` (the bundled default spec, ``simulate``): card payments, binary target
  ``is_fraud`` (~3 % positives) delivered in a *delayed label feed*, drawn from a known logistic
  function, :func:`fraud_logit`, plus unobserved noise: the Bayes-optimal ranking is known.
* ``bike_rentals`` (``specs/bike_rentals.yaml``, ``simulate_regression``): bike-share rides,
  regression target ``duration_min`` carried in the events; expected value :func:`rental_duration`.

Determinism: every random draw comes from a generator seeded by ``(seed, stream, day)``, so a day's
content depends only on the seed, that day and the injections active on it -- not on ``start`` or
``days``: a range simulated in one call or in consecutive chunks gives byte-identical files.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import math
import os
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import polars as pl

from mlops_assets.core.spec import BUNDLED_SPEC, SPECS_DIR, DatasetSpec, load_spec

CARD_SPEC = BUNDLED_SPEC
BIKE_SPEC = SPECS_DIR / "bike_rentals.yaml"

INJECTION_KINDS = (
    "covariate_drift",
    "concept_drift",
    "late_file",
    "duplicate_file",
    "corrupt_file",
    "schema_change",
    "label_noise",
    "correlation_drift",
)
LABEL_NOISE_DAYS = 21
"""label_noise@D: for events of D .. D+20 the label feed loses every online fraud (an
upstream labelling bug: online chargebacks are dropped). A model trained on it learns
"online is safe" and its own time holdout, labelled by the same bug, cannot see it;
labels are right again from D+21. For the regression dataset the window uses the
concept-drifted duration function instead."""
# correlation_drift@D: from D on, some features lose their link to the others while each keeps
# its marginal exactly (the day's values are shuffled across its rows): card amount (vs merchant
# and ATM) and distance from home (vs country); bike trip distance (vs elevation gain and rider
# type). Per-column drift tests cannot see it; multivariate drift (PCA reconstruction error) can.
# Injections that add or alter one file on one day; their date must lie inside the simulated range.
_FILE_INJECTIONS = ("late_file", "duplicate_file", "corrupt_file")

BAD_FILE_KINDS = (
    "truncated_parquet",
    "malformed_csv",
    "wrong_types",
    "missing_column",
    "nan_flood",
    "duplicated_ids",
    "path_trick",
)

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S"  # how event timestamps are written in CSV files

# ---- card transactions: vocabulary and fixed parameters -----------------------------------------
MERCHANTS = (
    "grocery", "fuel", "restaurant", "electronics",
    "travel", "online_retail", "gambling", "pharmacy",
)  # fmt: skip
CHANNELS = ("pos", "online", "atm")
COUNTRIES = ("home", "neighbour", "far")
DEVICE_TYPES = ("terminal", "ios", "android", "web")  # the column schema_change adds
CARD_COLUMNS = (
    "transaction_id", "event_time", "amount", "distance_from_home_km", "card_age_days",
    "tx_count_24h", "merchant_category", "channel", "country", "card_number", "email",
)  # fmt: skip
CARD_LABEL_COLUMNS = ("transaction_id", "is_fraud", "event_date")
CARD_EXTRA_COLUMN = "device_type"

_MERCHANT_P = np.array([0.25, 0.12, 0.18, 0.07, 0.05, 0.20, 0.03, 0.10])
_MERCHANT_P_DRIFT = np.array([0.15, 0.08, 0.12, 0.14, 0.09, 0.30, 0.06, 0.06])
_AMOUNT_MEDIAN = np.array([38.0, 55.0, 32.0, 240.0, 380.0, 58.0, 90.0, 22.0])
_AMOUNT_SIGMA = np.array([0.70, 0.45, 0.65, 0.90, 0.85, 0.95, 1.10, 0.60])
# channel | merchant (rows follow MERCHANTS; columns follow CHANNELS)
_CHANNEL_GIVEN_MERCHANT = np.array(
    [
        [0.86, 0.06, 0.08],
        [0.93, 0.02, 0.05],
        [0.82, 0.14, 0.04],
        [0.45, 0.52, 0.03],
        [0.20, 0.78, 0.02],
        [0.03, 0.96, 0.01],
        [0.30, 0.66, 0.04],
        [0.90, 0.06, 0.04],
    ]
)
# Card activity by hour of day for the legitimate population (fraud concentrates at night through
# the label function, not through this curve).
_HOUR_WEIGHT = np.array(
    [1.2, 0.8, 0.6, 0.5, 0.5, 0.8, 1.5, 2.8, 4.2, 5.0, 5.6, 6.2,
     7.2, 6.8, 6.0, 6.0, 6.5, 7.2, 7.4, 6.6, 5.4, 4.2, 3.0, 2.0]
)  # fmt: skip
_WEEKDAY_VOLUME = np.array([0.95, 0.97, 1.00, 1.02, 1.12, 0.86, 0.74])  # Mon..Sun
_BASE_DAILY_EVENTS = 3100
_LABEL_JITTER_P = np.array([0.6, 0.3, 0.1])  # extra days of label delay: 0, 1, 2

# Fraud label model. Baseline regime: classic card-not-present fraud (big amounts, night, far away,
# risky merchants, online, bursts of activity, freshly issued cards).
_FRAUD_MERCHANT = dict(zip(MERCHANTS, (-0.6, 0.0, -0.2, 1.1, 0.4, 0.8, 1.5, -0.4), strict=True))
_FRAUD_CHANNEL = {"pos": 0.0, "online": 0.9, "atm": 0.4}
_FRAUD_COUNTRY = {"home": 0.0, "neighbour": 0.3, "far": 1.0}
# Concept-drift regime: skimming gangs -- small card-present purchases at grocery/fuel in daytime
# on long-held cards at home. The old signals carry no (or reversed) information.
_FRAUD_MERCHANT_CD = dict(
    zip(MERCHANTS, (1.3, 1.5, -0.3, -0.8, -0.8, -0.8, -1.2, 0.8), strict=True)
)
_FRAUD_CHANNEL_CD = {"pos": 1.0, "online": -0.8, "atm": 0.2}
_FRAUD_COUNTRY_CD = {"home": 0.8, "neighbour": 0.0, "far": -0.8}
_FRAUD_INTERCEPT = -6.5
_FRAUD_INTERCEPT_CD = -7.6
_FRAUD_NOISE_SD = 0.6  # unobserved per-transaction risk: caps the achievable ROC AUC

# ---- bike rentals -------------------------------------------------------------------------------
BIKE_TYPES = ("classic", "electric", "cargo")
RIDER_TYPES = ("member", "casual")
BIKE_COLUMNS = (
    "rental_id", "started_at", "trip_distance_km", "elevation_gain_m", "temperature_c",
    "precipitation_mm", "rider_age", "battery_pct", "bike_type", "rider_type", "member_phone",
    "duration_min",
)  # fmt: skip
BIKE_EXTRA_COLUMN = "app_version"
_BIKE_HOUR_WEEKDAY = np.array(
    [0.3, 0.15, 0.1, 0.1, 0.2, 0.8, 2.5, 6.0, 8.5, 5.0, 3.2, 3.5,
     4.2, 4.0, 3.6, 4.2, 6.0, 8.8, 7.5, 5.0, 3.4, 2.4, 1.5, 0.8]
)  # fmt: skip
_BIKE_HOUR_WEEKEND = np.array(
    [0.8, 0.6, 0.4, 0.2, 0.15, 0.2, 0.5, 1.0, 2.0, 3.5, 5.5, 6.8,
     7.5, 7.8, 7.6, 7.2, 6.5, 5.6, 4.6, 3.6, 2.8, 2.0, 1.5, 1.1]
)  # fmt: skip
_BIKE_SPEED = {"classic": 15.0, "electric": 21.0, "cargo": 11.0}
_BIKE_CLIMB_MIN_PER_M = {"classic": 0.06, "electric": 0.015, "cargo": 0.08}
_BIKE_NOISE_SD = 0.18  # multiplicative log-normal noise on the duration

# Seed streams: each kind of draw has its own generator so that, e.g., adding a column on one day
# or a late file does not shift any other random number.
(_S_EVENTS, _S_LATE, _S_CORRUPT, _S_DELAY, _S_DELAY_LATE, _S_EXTRA,
 _S_EXTRA_LATE, _S_POOL, _S_BAD, _S_BAD_DEFECT, _S_WEATHER) = range(1, 12)  # fmt: skip
_EPOCH = dt.date(2000, 1, 1)  # cards are issued over [_EPOCH, _EPOCH + _POOL_SPAN_DAYS)
_POOL_SPAN_DAYS = 41 * 365


# =================================================================================================
# Public value types
# =================================================================================================
@dataclass(frozen=True, order=True)
class Injection:
    """One fault to inject: ``kind`` (one of :data:`INJECTION_KINDS`) on or from ``date``."""

    kind: str
    date: dt.date

    def __post_init__(self) -> None:
        if self.kind not in INJECTION_KINDS:
            raise ValueError(f"unknown injection kind {self.kind!r}; expected one of {_KINDS_TEXT}")
        if not isinstance(self.date, dt.date) or isinstance(self.date, dt.datetime):
            raise ValueError(f"injection date must be a datetime.date, got {self.date!r}")

    def __str__(self) -> str:
        return f"{self.kind}@{self.date.isoformat()}"


_KINDS_TEXT = ", ".join(INJECTION_KINDS)
_INJECTION_RE = re.compile(r"^\s*([a-z_]+)\s*@\s*(\d{4}-\d{2}-\d{2})\s*$")


def parse_injection(text: str) -> Injection:
    """Parse ``KIND@YYYY-MM-DD`` (``concept_drift@2026-02-01``); a ValueError names the bad text."""
    m = _INJECTION_RE.match(text) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"bad injection {text!r}: expected KIND@YYYY-MM-DD, KIND in {_KINDS_TEXT}")
    kind, day = m.groups()
    if kind not in INJECTION_KINDS:
        raise ValueError(f"bad injection {text!r}: unknown kind {kind!r}; expected {_KINDS_TEXT}")
    try:
        date = dt.date.fromisoformat(day)
    except ValueError:
        raise ValueError(f"bad injection {text!r}: {day!r} is not a valid date") from None
    return Injection(kind, date)


@dataclass(frozen=True)
class FileRecord:
    """One landing file. ``path`` is relative to the manifest's ``out`` (POSIX separators).

    ``kind``: events | late | duplicate | corrupt | labels. ``rows`` counts the rows a reader can
    get back: 0 for a corrupt file. ``injections`` names the injections that shaped the file.
    """

    path: str
    date: str
    kind: str
    rows: int
    format: str
    injections: tuple[str, ...] = ()


@dataclass(frozen=True)
class PendingLateFile:
    """A late events file for ``write_late_files``; ``id_offset`` keeps its ids unique."""

    path: str
    date: str
    rows: int
    format: str
    id_offset: int


@dataclass
class SimulationManifest:
    """What a simulation wrote (and what it holds back as late files). JSON-serialisable."""

    dataset: str
    out: str
    start: str
    days: int
    seed: int
    injections: list[str]
    files: list[FileRecord] = field(default_factory=list)
    pending_late: list[PendingLateFile] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        for f in d["files"]:
            f["injections"] = list(f["injections"])
        return d

    @classmethod
    def from_dict(cls, data: dict) -> SimulationManifest:
        files = [
            FileRecord(**{**f, "injections": tuple(f.get("injections", ()))})
            for f in data.get("files", [])
        ]
        pending = [PendingLateFile(**p) for p in data.get("pending_late", [])]
        fields = {k: data[k] for k in ("dataset", "out", "start", "days", "seed", "injections")}
        return cls(**fields, files=files, pending_late=pending)

    def paths(self, kind: str | None = None) -> list[Path]:
        """Absolute paths of the written files, optionally only those of one ``kind``."""
        return [Path(self.out) / f.path for f in self.files if kind is None or f.kind == kind]


# =================================================================================================
# Small helpers
# =================================================================================================
def _rng(seed: int, stream: int, day: dt.date | None = None) -> np.random.Generator:
    key = [seed, stream] if day is None else [seed, stream, day.toordinal()]
    return np.random.default_rng(key)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _choice_rows(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of ``probs`` (n x k), vectorised."""
    cum = np.cumsum(probs, axis=1)
    cum[:, -1] = 1.0
    return (rng.random(len(probs))[:, None] > cum).sum(axis=1)


def _timestamps(day: dt.date, hours: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Second-resolution datetime64[us] timestamps within ``hours`` of ``day``."""
    secs = hours * 3600 + rng.integers(0, 3600, len(hours))
    return np.datetime64(day.isoformat(), "us") + secs.astype("timedelta64[s]")


def _ids(prefix: str, day: dt.date, offset: int, n: int, width: int) -> list[str]:
    stem = f"{prefix}{day:%Y%m%d}-"
    return [f"{stem}{i:0{width}d}" for i in range(offset + 1, offset + n + 1)]


def _hour_of(frame: pl.DataFrame, column: str) -> np.ndarray:
    ts = frame.get_column(column)
    if ts.dtype == pl.String:
        ts = ts.str.to_datetime(TIMESTAMP_FORMAT, strict=True)
    return ts.dt.hour().to_numpy().astype(np.int64)


def _lookup(frame: pl.DataFrame, column: str, table: dict[str, float]) -> np.ndarray:
    return frame.get_column(column).replace_strict(table, return_dtype=pl.Float64).to_numpy()


def _normalise(injections: Iterable[Injection | str]) -> list[Injection]:
    out = [i if isinstance(i, Injection) else parse_injection(i) for i in injections]
    return sorted(set(out))


@dataclass(frozen=True)
class _Regime:
    """Which gradual injections are active on a given day."""

    covariate: bool = False
    concept: bool = False
    schema_change: bool = False
    label_noise: bool = False
    correlation: bool = False

    @classmethod
    def on(cls, injections: Sequence[Injection], day: dt.date) -> _Regime:
        active = {i.kind for i in injections if i.date <= day}
        return cls(
            covariate="covariate_drift" in active,
            concept="concept_drift" in active,
            schema_change="schema_change" in active,
            label_noise=any(
                i.kind == "label_noise"
                and i.date <= day < i.date + dt.timedelta(days=LABEL_NOISE_DAYS)
                for i in injections
            ),
            correlation="correlation_drift" in active,
        )

    @property
    def names(self) -> tuple[str, ...]:
        flags = {
            "covariate_drift": self.covariate,
            "concept_drift": self.concept,
            "schema_change": self.schema_change,
            "label_noise": self.label_noise,
            "correlation_drift": self.correlation,
        }
        return tuple(name for name, on in flags.items() if on)


# =================================================================================================
# Known ground-truth functions
# =================================================================================================
def fraud_logit(frame: pl.DataFrame, concept_drift: bool = False) -> np.ndarray:
    """The deterministic part of the fraud log-odds for card-transaction events.

    ``is_fraud ~ Bernoulli(sigmoid(fraud_logit(x) + N(0, 0.6)))``. The noise term is independent of
    the features, so ``fraud_logit`` itself is the Bayes-optimal ranking score (best ROC AUC).
    ``event_time`` may be a Datetime or an ISO string column (as read back from CSV).
    ``concept_drift=True`` gives the label function used from a concept_drift injection onward.
    """
    amount = frame.get_column("amount").to_numpy().astype(float)
    log_amount = np.log(np.clip(amount, 0.5, None) / 60.0)
    hour = _hour_of(frame, "event_time")
    card_age = frame.get_column("card_age_days").to_numpy().astype(float)
    tx24 = frame.get_column("tx_count_24h").to_numpy().astype(float)
    if not concept_drift:
        night = np.where(hour <= 5, 1.6, np.where(hour >= 22, 0.8, 0.0))
        distance_km = frame.get_column("distance_from_home_km").to_numpy().astype(float)
        distance = 0.35 * np.log1p(distance_km / 50.0)
        young = np.where(card_age < 30, 1.4, np.where(card_age < 90, 0.5, 0.0))
        return (
            _FRAUD_INTERCEPT
            + 0.55 * log_amount
            + night
            + distance
            + _lookup(frame, "merchant_category", _FRAUD_MERCHANT)
            + _lookup(frame, "channel", _FRAUD_CHANNEL)
            + _lookup(frame, "country", _FRAUD_COUNTRY)
            + young
            + 0.12 * np.minimum(tx24, 25)
        )
    daytime = np.where((hour >= 9) & (hour <= 17), 1.6, 0.0)
    established = np.where(card_age > 365, 0.6, -0.5)
    return (
        _FRAUD_INTERCEPT_CD
        - 0.5 * log_amount
        + daytime
        + _lookup(frame, "merchant_category", _FRAUD_MERCHANT_CD)
        + _lookup(frame, "channel", _FRAUD_CHANNEL_CD)
        + _lookup(frame, "country", _FRAUD_COUNTRY_CD)
        + established
    )


def rental_duration(frame: pl.DataFrame, concept_drift: bool = False) -> np.ndarray:
    """Expected ride duration in minutes for bike-rental events (the regression ground truth).

    ``duration_min = rental_duration(x) * LogNormal(mean 1, sd ~0.18)``, so this is the
    Bayes-optimal prediction under squared error. ``concept_drift=True`` is the regime after a
    concept_drift injection: e-bikes get speed-capped (slower than classic bikes), new bike lanes
    remove the rush-hour slowdown and casual riders stop lingering.
    """
    distance = frame.get_column("trip_distance_km").to_numpy().astype(float)
    climb = frame.get_column("elevation_gain_m").to_numpy().astype(float)
    temp = frame.get_column("temperature_c").to_numpy().astype(float)
    rain = frame.get_column("precipitation_mm").to_numpy().astype(float) > 0
    age = frame.get_column("rider_age").to_numpy().astype(float)
    battery = frame.get_column("battery_pct").fill_null(100).to_numpy().astype(float)
    bike = frame.get_column("bike_type")
    casual = (frame.get_column("rider_type") == "casual").to_numpy()
    ts = frame.get_column("started_at")
    if ts.dtype == pl.String:
        ts = ts.str.to_datetime(TIMESTAMP_FORMAT, strict=True)
    hour = ts.dt.hour().to_numpy()
    weekend = (ts.dt.weekday() >= 6).to_numpy()  # polars: Monday=1 .. Sunday=7

    speeds = dict(_BIKE_SPEED, electric=12.0) if concept_drift else _BIKE_SPEED
    speed = bike.replace_strict(speeds, return_dtype=pl.Float64).to_numpy()
    electric = (bike == "electric").to_numpy()
    speed = np.where(electric & (battery < 20), np.minimum(speed, 16.0), speed)  # weak assist
    speed = speed * np.where(casual, 0.8, 1.0) * (1 - 0.006 * np.clip(age - 35, 0, None))
    rush = ~weekend & np.isin(hour, (7, 8, 9, 16, 17, 18))
    speed = speed * np.where(rush, 1.08 if concept_drift else 0.85, 1.0)
    speed = speed * np.where(rain, 0.9, 1.0) * np.where(temp > 26, 1 - 0.015 * (temp - 26), 1.0)
    speed = speed * np.where(temp < 0, 0.9, 1.0)
    climb_rate = bike.replace_strict(_BIKE_CLIMB_MIN_PER_M, return_dtype=pl.Float64).to_numpy()
    if concept_drift:
        climb_rate = np.where(electric, _BIKE_CLIMB_MIN_PER_M["classic"], climb_rate)
    linger = 0.0 if concept_drift else np.where(casual, np.where(weekend, 9.0, 4.0), 0.0)
    return 60.0 * distance / speed + 2.0 + climb * climb_rate + linger


# =================================================================================================
# Dataset generators
# =================================================================================================
def _luhn_numbers(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` fake, Luhn-valid 16-digit card numbers (Visa 4..., Mastercard 51-55...) as int64."""
    digits = rng.integers(0, 10, size=(n, 15))
    visa = rng.random(n) < 0.6
    digits[:, 0] = np.where(visa, 4, 5)
    digits[:, 1] = np.where(visa, digits[:, 1], rng.integers(1, 6, n))
    doubled = digits[:, ::-1][:, ::2] * 2  # from the right, every other payload digit is doubled
    doubled = np.where(doubled > 9, doubled - 9, doubled)
    total = doubled.sum(axis=1) + digits[:, ::-1][:, 1::2].sum(axis=1)
    check = (10 - total % 10) % 10
    powers = 10 ** np.arange(15, 0, -1, dtype=np.int64)
    return (digits.astype(np.int64) * powers).sum(axis=1) + check


_FIRST = (
    "alex", "sam", "maria", "li", "noah", "emma", "omar", "ana", "jonas", "sofia", "yuki", "lena",
    "ravi", "chloe", "mateo", "ines", "david", "fatima", "tom", "nora", "ivan", "zoe", "kofi",
    "mia",
)  # fmt: skip
_LAST = (
    "smith", "garcia", "chen", "muller", "rossi", "novak", "silva", "kim", "okafor", "dubois",
    "jensen", "kowalski", "haddad", "tanaka", "murphy", "costa", "ivanova", "nguyen", "berg",
    "patel",
)  # fmt: skip
_DOMAINS = ("example.com", "example.org", "example.net")  # reserved domains: never real mailboxes


@functools.lru_cache(maxsize=8)
def _card_pool(seed: int, size: int = 120_000) -> dict[str, np.ndarray | pl.Series]:
    """Cards with fixed issue dates, card numbers and owner emails: PII repeats across events and
    ``card_age_days`` is consistent for a card over time. Independent of the simulated range."""
    rng = _rng(seed, _S_POOL)
    issued = rng.integers(0, _POOL_SPAN_DAYS, size)  # days since _EPOCH
    activity = rng.gamma(2.0, 0.5, size)
    numbers = pl.Series(_luhn_numbers(rng, size)).cast(pl.String)
    names = pl.DataFrame(
        {
            "first": pl.Series(_FIRST).gather(rng.integers(0, len(_FIRST), size)),
            "last": pl.Series(_LAST).gather(rng.integers(0, len(_LAST), size)),
            "nn": pl.Series(rng.integers(1, 100, size)).cast(pl.String),
            "dom": pl.Series(_DOMAINS).gather(rng.integers(0, len(_DOMAINS), size)),
            "style": rng.integers(0, 3, size),
        }
    )
    first, last, nn, dom = (pl.col(c) for c in ("first", "last", "nn", "dom"))
    email = (
        pl.when(pl.col("style") == 0)
        .then(pl.concat_str([first, pl.lit("."), last, pl.lit("@"), dom]))
        .when(pl.col("style") == 1)
        .then(pl.concat_str([first, last, nn, pl.lit("@"), dom]))
        .otherwise(pl.concat_str([first.str.slice(0, 1), last, nn, pl.lit("@"), dom]))
    )
    issued.setflags(write=False)  # cached: must not be mutated by callers
    activity.setflags(write=False)
    return {
        "issued": issued,
        "activity": activity,
        "card_number": numbers,
        "email": names.select(email.alias("email")).get_column("email"),
    }


class _CardSim:
    """Card-transaction events; the target goes to a delayed label feed."""

    name = "card_transactions"
    columns = CARD_COLUMNS
    id_col, ts_col, target = "transaction_id", "event_time", "is_fraud"
    extra_column = CARD_EXTRA_COLUMN
    label_feed = True

    def daily_rows(self, day: dt.date, rng: np.random.Generator, seed: int) -> int:
        mean = _BASE_DAILY_EVENTS * _WEEKDAY_VOLUME[day.weekday()] * rng.lognormal(0.0, 0.04)
        return int(np.clip(rng.poisson(mean), 2000, 4000))

    def generate(
        self,
        day: dt.date,
        n: int,
        rng: np.random.Generator,
        regime: _Regime,
        id_offset: int,
        seed: int,
    ) -> tuple[pl.DataFrame, np.ndarray]:
        cov = regime.covariate
        hours = rng.choice(24, n, p=_HOUR_WEIGHT / _HOUR_WEIGHT.sum())
        times = np.sort(_timestamps(day, hours, rng))
        merchant = rng.choice(len(MERCHANTS), n, p=_MERCHANT_P_DRIFT if cov else _MERCHANT_P)

        chan_p = _CHANNEL_GIVEN_MERCHANT[merchant]
        if cov:  # a shift toward online shopping
            chan_p = 0.7 * chan_p + 0.3 * np.array([0.08, 0.90, 0.02])
        channel = _choice_rows(rng, chan_p)

        ctry_p = np.tile([0.86, 0.10, 0.04], (n, 1))
        ctry_p[merchant == MERCHANTS.index("travel")] = [0.45, 0.20, 0.35]
        ctry_p[channel == CHANNELS.index("online")] += [-0.06, 0.0, 0.06]
        if cov:  # cross-border traffic surges
            ctry_p = 0.8 * ctry_p + 0.2 * np.array([0.35, 0.25, 0.40])
        country = _choice_rows(rng, ctry_p)

        dist = np.select(
            [country == 0, country == 1],
            [rng.gamma(1.2, 6.0, n), 40.0 + rng.gamma(2.0, 80.0, n)],
            800.0 + rng.lognormal(np.log(2500.0), 0.7, n),
        )
        dist = np.round(np.clip(dist, 0.0, 20_000.0), 1)

        amount = rng.lognormal(np.log(_AMOUNT_MEDIAN[merchant]), _AMOUNT_SIGMA[merchant])
        atm = channel == CHANNELS.index("atm")
        cash = np.maximum(20.0, np.round(amount * 2 / 20) * 20)  # ATMs pay out multiples of 20
        amount = np.where(atm, cash, amount)
        if cov:  # prices up
            amount = amount * 1.6
        amount = np.round(np.clip(amount, 0.01, 50_000.0), 2)
        if regime.correlation:  # same marginals, broken links: amount-merchant, distance-country
            amount, dist = rng.permutation(amount), rng.permutation(dist)

        pool = _card_pool(seed)
        age_all = (day - _EPOCH).days - pool["issued"]
        eligible = np.flatnonzero(age_all >= 0)
        age_e = age_all[eligible]
        # Dormant old cards, very active brand-new ones.
        weight = pool["activity"][eligible] * np.exp(-age_e / 4000.0)
        weight = weight * np.where(age_e < 30, 6.0, np.where(age_e < 120, 2.0, 1.0))
        card = eligible[rng.choice(len(eligible), n, p=weight / weight.sum())]
        card_age = age_all[card].astype(np.int64)

        burst = rng.random(n) < (0.07 if cov else 0.04)  # card-testing bursts
        tx24 = rng.poisson(rng.gamma(2.0, 1.2, n)) + burst * rng.poisson(6.0, n)
        tx24 = np.clip(tx24, 0, 500).astype(np.int64)

        frame = pl.DataFrame(
            {
                "transaction_id": _ids("t", day, id_offset, n, 6),
                "event_time": pl.Series(times, dtype=pl.Datetime("us")),
                "amount": amount,
                "distance_from_home_km": dist,
                "card_age_days": card_age,
                "tx_count_24h": tx24,
                "merchant_category": np.array(MERCHANTS)[merchant],
                "channel": np.array(CHANNELS)[channel],
                "country": np.array(COUNTRIES)[country],
                "card_number": pool["card_number"].gather(card),
                "email": pool["email"].gather(card),
            }
        )
        noise = rng.normal(0.0, _FRAUD_NOISE_SD, n)
        logit = fraud_logit(frame, concept_drift=regime.concept) + noise
        is_fraud = (rng.random(n) < _sigmoid(logit)).astype(np.int8)
        if regime.label_noise:  # the labelling bug: chargebacks of online payments get lost
            is_fraud = np.where(channel == CHANNELS.index("online"), 0, is_fraud).astype(np.int8)
        return frame, is_fraud

    def extra(self, frame: pl.DataFrame, rng: np.random.Generator) -> pl.Series:
        n = frame.height
        channel = frame.get_column("channel").to_numpy()
        phone = np.array(["ios", "android"])[rng.integers(0, 2, n)]
        online = np.where(rng.random(n) < 0.45, "web", phone)
        pos = np.where(rng.random(n) < 0.2, phone, "terminal")  # phone wallets at the till
        device = np.where(channel == "online", online, np.where(channel == "pos", pos, "terminal"))
        return pl.Series(self.extra_column, device)


@functools.lru_cache(maxsize=8)
def _phone_pool(seed: int, size: int = 30_000) -> np.ndarray:
    """Fictional phone numbers (the NANP 555-01XX range is reserved for fiction)."""
    rng = _rng(seed, _S_POOL)
    area = rng.integers(201, 990, size)
    line = rng.integers(0, 100, size)
    pool = np.array(
        [f"+1-{a}-555-01{b:02d}" for a, b in zip(area.tolist(), line.tolist(), strict=True)]
    )
    pool.setflags(write=False)
    return pool


class _BikeSim:
    """Bike-share rides with the regression target in the events (no label feed)."""

    name = "bike_rentals"
    columns = BIKE_COLUMNS
    id_col, ts_col, target = "rental_id", "started_at", "duration_min"
    extra_column = BIKE_EXTRA_COLUMN
    label_feed = False

    @staticmethod
    def _weather(day: dt.date, seed: int) -> tuple[float, np.ndarray]:
        """Daily mean temperature and hourly precipitation: shared by every file of the day."""
        rng = _rng(seed, _S_WEATHER, day)
        doy = day.timetuple().tm_yday
        temp_mean = 11.0 + 10.0 * math.sin(2 * math.pi * (doy - 110) / 365) + rng.normal(0.0, 3.0)
        rain_day = rng.random() < 0.3
        wet_hour = rain_day & (rng.random(24) < 0.5)
        rain = np.where(wet_hour, np.round(rng.gamma(1.0, 1.5, 24), 1), 0.0)
        return temp_mean, rain

    def daily_rows(self, day: dt.date, rng: np.random.Generator, seed: int) -> int:
        temp_mean, rain = self._weather(day, seed)
        factor = (1.0, 1.0, 1.0, 1.0, 1.05, 0.9, 0.8)[day.weekday()]
        factor *= float(np.clip(0.45 + 0.035 * temp_mean, 0.3, 1.3)) * (0.7 if rain.any() else 1.0)
        return int(max(200, rng.poisson(1500 * factor)))

    def generate(
        self,
        day: dt.date,
        n: int,
        rng: np.random.Generator,
        regime: _Regime,
        id_offset: int,
        seed: int,
    ) -> tuple[pl.DataFrame, np.ndarray]:
        cov = regime.covariate
        temp_mean, rain = self._weather(day, seed)
        weekend = day.weekday() >= 5
        hour_w = _BIKE_HOUR_WEEKEND if weekend else _BIKE_HOUR_WEEKDAY
        hour_w = hour_w * np.where(rain > 0, 0.5, 1.0)
        hours = rng.choice(24, n, p=hour_w / hour_w.sum())
        times = np.sort(_timestamps(day, hours, rng))
        hours = (times - np.datetime64(day.isoformat(), "us")).astype("timedelta64[h]").astype(int)

        temp = temp_mean + 4.0 * np.sin(2 * np.pi * (hours - 9) / 24) + rng.normal(0.0, 0.5, n)
        if cov:  # heatwave
            temp = temp + 12.0
        casual = rng.random(n) < (0.5 if weekend else 0.25) + (0.3 if cov else 0.0)
        bike = rng.choice(3, n, p=[0.30, 0.60, 0.10] if cov else [0.55, 0.35, 0.10])
        distance = rng.lognormal(np.log(np.where(casual, 3.0, 2.2)), 0.55)
        distance = distance * np.where(bike == BIKE_TYPES.index("cargo"), 0.8, 1.0)
        if cov:
            distance = distance * 1.6
        distance = np.round(np.clip(distance, 0.1, 60.0), 2)
        climb = np.round(np.clip(distance * rng.gamma(2.0, 4.0, n), 0.0, 1500.0), 1)
        if regime.correlation:  # same marginal, broken links: distance vs climb and rider type
            distance = rng.permutation(distance)
        age = np.where(casual, rng.normal(31, 10, n), rng.normal(38, 11, n))
        age = np.clip(np.round(age), 16, 90)
        battery = np.clip(np.round(100 * rng.beta(5.0, 2.0, n)), 0, 100).astype(np.int64)
        phones = _phone_pool(seed)

        frame = pl.DataFrame(
            {
                "rental_id": _ids("r", day, id_offset, n, 5),
                "started_at": pl.Series(times, dtype=pl.Datetime("us")),
                "trip_distance_km": distance,
                "elevation_gain_m": climb,
                "temperature_c": np.round(temp, 1),
                "precipitation_mm": rain[hours],
                "rider_age": age.astype(np.int64),
                "battery_pct": battery,
                "bike_type": np.array(BIKE_TYPES)[bike],
                "rider_type": np.where(casual, "casual", "member"),
                "member_phone": phones[rng.integers(0, len(phones), n)],
            }
        )
        # classic bikes have no battery: a nullable int column
        classic = pl.col("bike_type") == "classic"
        battery_or_null = pl.when(classic).then(None).otherwise("battery_pct")
        frame = frame.with_columns(battery_or_null.alias("battery_pct"))
        expected = rental_duration(frame, concept_drift=regime.concept or regime.label_noise)
        noise = rng.lognormal(-(_BIKE_NOISE_SD**2) / 2, _BIKE_NOISE_SD, n)  # mean-one noise
        duration = np.round(np.maximum(1.0, expected * noise), 2)
        return frame.with_columns(pl.Series("duration_min", duration)), duration

    def extra(self, frame: pl.DataFrame, rng: np.random.Generator) -> pl.Series:
        versions = np.array(["5.2.0", "5.3.1", "6.0.0"])
        return pl.Series(self.extra_column, versions[rng.integers(0, len(versions), frame.height)])


_SIMS = {"card_transactions": _CardSim(), "bike_rentals": _BikeSim()}


# =================================================================================================
# Writing
# =================================================================================================
def _write_frame(frame: pl.DataFrame, path: Path, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")  # atomic: a watcher never sees a half-written file
    if fmt == "csv":
        frame.write_csv(tmp, datetime_format=TIMESTAMP_FORMAT)
    else:
        frame.write_parquet(tmp)  # bytes are deterministic for equal frames (checked in the tests)
    os.replace(tmp, path)


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _truncated_parquet(frame: pl.DataFrame) -> bytes:
    """The first half of a valid Parquet file: the footer (and its magic bytes) is missing."""
    buf = io.BytesIO()
    frame.write_parquet(buf)
    blob = buf.getvalue()
    return blob[: len(blob) // 2]


def _format_for(day: dt.date, formats: Sequence[str]) -> str:
    """The landing format of a day: with both allowed, Parquet every 3rd day and CSV otherwise.
    Keyed on the date's ordinal, not its position in the run, so it never depends on ``start``."""
    if len(formats) == 1:
        return formats[0]
    return "parquet" if day.toordinal() % 3 == 0 else "csv"


def _set_mtime(path: Path, when: dt.datetime | None) -> None:
    """Back-date a file to when it would have landed (never into the future)."""
    if when is None:
        return
    ts = min(when.replace(tzinfo=dt.UTC).timestamp(), time.time())
    os.utime(path, (ts, ts))


def _at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute))


def _resolve_spec(spec: DatasetSpec | str | os.PathLike[str] | None, default: Path) -> DatasetSpec:
    if spec is None:
        return load_spec(default)  # explicitly the bundled file, not $MLOPS_SPEC
    return spec if isinstance(spec, DatasetSpec) else load_spec(spec)


_VOCABULARY = {
    "merchant_category": MERCHANTS,
    "channel": CHANNELS,
    "country": COUNTRIES,
    "bike_type": BIKE_TYPES,
    "rider_type": RIDER_TYPES,
}


def _check_spec(spec: DatasetSpec, sim: _CardSim | _BikeSim) -> None:
    problems = []
    if set(spec.event_columns) != set(sim.columns):
        problems.append(f"event columns {sorted(spec.event_columns)} != {sorted(sim.columns)}")
    if (spec.id, spec.timestamp, spec.target) != (sim.id_col, sim.ts_col, sim.target):
        problems.append("id/timestamp/target names differ")
    if sim.label_feed != (spec.labels is not None):
        problems.append("label feed presence differs")
    for col, cat in spec.features.categorical.items():
        vocab = _VOCABULARY.get(col, ())
        if cat.allowed is not None and not set(vocab) <= set(cat.allowed):
            problems.append(f"{col}: spec allows {cat.allowed}, generator emits {list(vocab)}")
    if problems:
        detail = "; ".join(problems)
        raise ValueError(f"spec {spec.name!r} does not describe the {sim.name} generator: {detail}")


def _merge_labels(path: Path, new: pl.DataFrame, id_col: str, target: str) -> pl.DataFrame:
    """Union with an existing label file so chunked simulations equal one-shot ones."""
    if path.exists():
        schema = {id_col: pl.String, target: pl.Int8, "event_date": pl.String}
        old = pl.read_csv(path, schema=schema)
        new = pl.concat([old, new]).unique(subset=[id_col], keep="last")
    return new.sort(["event_date", id_col])


def _run(
    sim: _CardSim | _BikeSim,
    out: Path,
    start: dt.date,
    days: int,
    seed: int,
    inject: Iterable[Injection | str],
    spec: DatasetSpec,
    backdate_mtimes: bool,
) -> SimulationManifest:
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    injections = _normalise(inject)
    end = start + dt.timedelta(days=days - 1)
    for inj in injections:
        if inj.kind in _FILE_INJECTIONS and not start <= inj.date <= end:
            raise ValueError(f"injection {inj} lies outside the simulated range {start}..{end}")

    out = Path(out).resolve()
    events_dir = out / "events"
    manifest = SimulationManifest(
        sim.name, str(out), start.isoformat(), days, seed, [str(i) for i in injections]
    )
    labels: list[pl.DataFrame] = []
    delay = spec.labels.delay_days if spec.labels else 0

    def rel(path: Path) -> str:
        return path.relative_to(out).as_posix()

    def stamp(path: Path, when: dt.datetime) -> None:
        _set_mtime(path, when if backdate_mtimes else None)

    def record(path: Path, day: dt.date, kind: str, rows: int, fmt: str, names: tuple[str, ...]):
        manifest.files.append(FileRecord(rel(path), day.isoformat(), kind, rows, fmt, names))

    def label_rows(frame: pl.DataFrame, y: np.ndarray, day: dt.date, stream: int) -> None:
        jitter = _rng(seed, stream, day).choice(3, frame.height, p=_LABEL_JITTER_P)
        arrival = np.datetime64(day.isoformat(), "D") + (delay + jitter).astype("timedelta64[D]")
        labels.append(
            pl.DataFrame(
                {
                    spec.labels.id: frame.get_column(sim.id_col),
                    spec.label_target: pl.Series(y, dtype=pl.Int8),
                    "event_date": day.isoformat(),
                    "_arrival": arrival.astype(str),
                }
            )
        )

    for offset in range(days):
        day = start + dt.timedelta(days=offset)
        regime = _Regime.on(injections, day)
        today = {i.kind for i in injections if i.date == day}
        fmt = _format_for(day, spec.landing.formats)
        day_dir = events_dir / day.isoformat()
        next_day = day + dt.timedelta(days=1)  # the day's export lands just after midnight

        rng = _rng(seed, _S_EVENTS, day)
        n = sim.daily_rows(day, rng, seed)
        frame, y = sim.generate(day, n, rng, regime, 0, seed)
        if regime.schema_change:
            frame = frame.with_columns(sim.extra(frame, _rng(seed, _S_EXTRA, day)))
        path = day_dir / f"events-{day}.{fmt}"
        _write_frame(frame, path, fmt)
        stamp(path, _at(next_day, 0, 15))
        record(path, day, "events", n, fmt, regime.names)
        if sim.label_feed:
            label_rows(frame, y, day, _S_DELAY)

        if "late_file" in today:
            late, late_y = _late_frame(sim, day, seed, regime, id_offset=n)
            late_path = day_dir / f"events-{day}-late.{fmt}"
            manifest.pending_late.append(
                PendingLateFile(rel(late_path), day.isoformat(), late.height, fmt, id_offset=n)
            )
            if sim.label_feed:  # the events happened; their labels arrive on schedule regardless
                label_rows(late, late_y, day, _S_DELAY_LATE)

        if "duplicate_file" in today:  # an upstream re-delivery under another name
            copy = day_dir / f"events-{day}-copy.{fmt}"
            _write_bytes(copy, path.read_bytes())
            stamp(copy, _at(next_day, 0, 20))
            record(copy, day, "duplicate", n, fmt, (*regime.names, "duplicate_file"))

        if "corrupt_file" in today:  # a second part whose upload was cut off half-way
            crng = _rng(seed, _S_CORRUPT, day)
            part, _ = sim.generate(day, int(crng.integers(300, 601)), crng, regime, n + 1000, seed)
            part_path = day_dir / f"events-{day}-part2.parquet"
            _write_bytes(part_path, _truncated_parquet(part))
            stamp(part_path, _at(next_day, 0, 16))
            record(part_path, day, "corrupt", 0, "parquet", (*regime.names, "corrupt_file"))

    if labels:
        all_labels = pl.concat(labels)
        for arrival in sorted(all_labels.get_column("_arrival").unique().to_list()):
            part = all_labels.filter(pl.col("_arrival") == arrival).drop("_arrival")
            path = out / "labels" / arrival / f"labels-{arrival}.csv"
            part = _merge_labels(path, part, spec.labels.id, spec.label_target)
            _write_frame(part, path, "csv")
            arrival_day = dt.date.fromisoformat(arrival)
            stamp(path, _at(arrival_day, 3))  # the label export runs at 03:00
            record(path, arrival_day, "labels", part.height, "csv", ())
    return manifest


def _late_frame(
    sim: _CardSim | _BikeSim, day: dt.date, seed: int, regime: _Regime, id_offset: int
) -> tuple[pl.DataFrame, np.ndarray]:
    rng = _rng(seed, _S_LATE, day)
    frame, y = sim.generate(day, int(rng.integers(200, 501)), rng, regime, id_offset, seed)
    if regime.schema_change:
        frame = frame.with_columns(sim.extra(frame, _rng(seed, _S_EXTRA_LATE, day)))
    return frame, y


# =================================================================================================
# Public entry points
# =================================================================================================
def simulate(
    out: Path,
    start: dt.date,
    days: int,
    seed: int = 0,
    inject: Iterable[Injection | str] = (),
    spec: DatasetSpec | str | os.PathLike[str] | None = None,
    *,
    backdate_mtimes: bool = True,
) -> SimulationManifest:
    """Write ``days`` days of card-transaction events (+ the delayed label feed) under ``out``.

    ``out`` is the landing directory (``$MLOPS_HOME/landing`` for the default spec, whose
    ``landing.path`` is ``landing/events``)::

        out/events/<D>/events-<D>.csv | .parquet    one file per event day; with both formats in
                                                     the spec's landing.formats (card), Parquet
                                                     every 3rd day and CSV otherwise
        out/events/<D>/events-<D>-late.<ext>        late_file@D      (only via write_late_files)
        out/events/<D>/events-<D>-copy.<ext>        duplicate_file@D (byte copy of the day file)
        out/events/<D>/events-<D>-part2.parquet     corrupt_file@D   (truncated Parquet)
        out/labels/<A>/labels-<A>.csv                labels arriving on day A (merged on write:
                                                     one arrival day collects several event days)

    ``inject`` takes :class:`Injection` objects or ``KIND@YYYY-MM-DD`` strings. ``spec`` (default:
    the bundled ``card_transactions.yaml``) must describe this generator's columns; its
    ``labels.delay_days`` sets the label delay (plus 0-2 days of jitter). With ``backdate_mtimes``
    every file's mtime is set to when it would have landed (day files just after midnight of D+1,
    label files on their arrival day), capped at now. Late files are *not* written: they are listed
    in ``manifest.pending_late`` for :func:`write_late_files`.
    """
    sim = _SIMS["card_transactions"]
    resolved = _resolve_spec(spec, CARD_SPEC)
    _check_spec(resolved, sim)
    return _run(sim, Path(out), start, days, seed, inject, resolved, backdate_mtimes)


def simulate_regression(
    out: Path,
    start: dt.date,
    days: int,
    seed: int = 0,
    inject: Iterable[Injection | str] = (),
    spec: DatasetSpec | str | os.PathLike[str] | None = None,
    *,
    backdate_mtimes: bool = True,
) -> SimulationManifest:
    """Write ``days`` days of bike-rental rides (Parquet, target ``duration_min`` in the events)
    to ``out/events/<D>/events-<D>.parquet``; same injections and manifest as :func:`simulate`.
    With the bundled ``bike_rentals.yaml`` (``landing.path: landing/bike_rentals/events``) ``out``
    is ``$MLOPS_HOME/landing/bike_rentals``."""
    sim = _SIMS["bike_rentals"]
    resolved = _resolve_spec(spec, BIKE_SPEC)
    _check_spec(resolved, sim)
    return _run(sim, Path(out), start, days, seed, inject, resolved, backdate_mtimes)


def write_late_files(manifest: SimulationManifest) -> list[FileRecord]:
    """Drop the manifest's pending late files now (mtime = now) and move them to ``files``.

    The content is regenerated from the manifest's seed and injections, so this also works on a
    manifest reloaded with :meth:`SimulationManifest.from_dict`. A second call writes nothing.
    """
    sim = _SIMS[manifest.dataset]
    injections = _normalise(manifest.injections)
    written = []
    for pending in manifest.pending_late:
        day = dt.date.fromisoformat(pending.date)
        regime = _Regime.on(injections, day)
        frame, _ = _late_frame(sim, day, manifest.seed, regime, pending.id_offset)
        path = Path(manifest.out) / pending.path
        _write_frame(frame, path, pending.format)
        os.utime(path, None)  # explicitly "now": the file arrives after its partition was processed
        written.append(FileRecord(pending.path, pending.date, "late", frame.height, pending.format,
                                  (*regime.names, "late_file")))  # fmt: skip
    manifest.files.extend(written)
    manifest.pending_late = []
    return written


def write_label_correction(
    manifest: SimulationManifest, spec: DatasetSpec, arrival: dt.date
) -> Path | None:
    """The label team's fix for ``label_noise``: the true labels of every event (of the days'
    main files) whose label the bug lost, re-delivered as
    ``labels/<arrival>/labels-<arrival>-correction.csv`` (the latest label of an id wins, so they
    replace the wrong ones). None when no day had the bug. The events are regenerated from the
    manifest's seed: the bug draws nothing, so the rows are the delivered ones."""
    sim = _SIMS[manifest.dataset]
    if not sim.label_feed or spec.labels is None:
        return None
    injections = _normalise(manifest.injections)
    start = dt.date.fromisoformat(manifest.start)
    parts = []
    for offset in range(manifest.days):
        day = start + dt.timedelta(days=offset)
        regime = _Regime.on(injections, day)
        if not regime.label_noise:
            continue
        rng = _rng(manifest.seed, _S_EVENTS, day)
        frame, y = sim.generate(
            day,
            sim.daily_rows(day, rng, manifest.seed),
            rng,
            replace(regime, label_noise=False),
            0,
            manifest.seed,
        )
        parts.append(
            pl.DataFrame(
                {
                    spec.labels.id: frame.get_column(sim.id_col),
                    spec.label_target: pl.Series(y, dtype=pl.Int8),
                    "event_date": day.isoformat(),
                }
            )
        )
    if not parts:
        return None
    path = Path(manifest.out) / "labels" / arrival.isoformat() / f"labels-{arrival}-correction.csv"
    _write_frame(pl.concat(parts), path, "csv")
    manifest.files.append(
        FileRecord(
            path.relative_to(manifest.out).as_posix(),
            arrival.isoformat(),
            "labels",
            sum(p.height for p in parts),
            "csv",
            ("label_correction",),
        )
    )
    return path


def card_events(
    day: dt.date, rows: int, seed: int = 0, inject: Iterable[Injection | str] = ()
) -> pl.DataFrame:
    """An in-memory frame of valid card events for ``day`` (ids ``t<date>-9xxxxx``) with the true
    ``is_fraud`` attached: handy for unit tests that need a few rows without touching disk."""
    regime = _Regime.on(_normalise(inject), day)
    rng = _rng(seed, _S_BAD, day)
    frame, y = _SIMS["card_transactions"].generate(day, rows, rng, regime, 900_000, seed)
    return frame.with_columns(pl.Series("is_fraud", y))


# ---- single bad files for quarantine tests ------------------------------------------------------
def write_bad_file(directory: Path, kind: str, day: dt.date, seed: int = 0) -> Path:
    """Write ONE card-events file for ``day`` into ``directory`` with the defect ``kind``.

    All other rows are valid (200 rows, ids ``t<date>-9xxxxx`` so they never collide with
    :func:`simulate` ids). Returns the path written, always directly inside ``directory``:

    * ``truncated_parquet`` -- ``events-<D>-truncated.parquet``, first half of a valid file.
    * ``malformed_csv``     -- ``events-<D>-malformed.csv``: one row with an extra field and an
      unterminated quote on the last row (``pl.read_csv`` raises).
    * ``wrong_types``       -- ``events-<D>-wrong-types.csv``: ``amount`` holds words in ~10% rows.
    * ``missing_column``    -- ``events-<D>-missing-column.parquet``: no ``amount`` column.
    * ``nan_flood``         -- ``events-<D>-nan-flood.csv``: ``amount`` empty/``NaN`` in ~85% rows.
    * ``duplicated_ids``    -- ``events-<D>-dup-ids.csv``: 10 rows reuse other rows' ids.
    * ``path_trick``        -- a valid CSV whose *name* is hostile: leading dots, spaces, ``;``,
      ``$(...)``, a newline and non-ASCII characters (no ``/``, so it stays inside ``directory``).
    """
    if kind not in BAD_FILE_KINDS:
        expected = ", ".join(BAD_FILE_KINDS)
        raise ValueError(f"unknown bad file kind {kind!r}; expected one of {expected}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    frame = card_events(day, 200, seed).drop("is_fraud")
    rng = _rng(seed, _S_BAD_DEFECT, day)
    n = frame.height

    if kind == "truncated_parquet":
        path = directory / f"events-{day}-truncated.parquet"
        _write_bytes(path, _truncated_parquet(frame))
    elif kind == "malformed_csv":
        path = directory / f"events-{day}-malformed.csv"
        lines = frame.write_csv(datetime_format=TIMESTAMP_FORMAT).splitlines()
        lines[n // 2] += ",unexpected_extra_field"  # ragged row (lines[0] is the header)
        last = lines[-1].split(",")
        channel = CARD_COLUMNS.index("channel")
        last[channel] = '"' + last[channel]  # an opening quote that is never closed
        lines[-1] = ",".join(last)
        _write_bytes(path, ("\n".join(lines) + "\n").encode())
    elif kind == "wrong_types":
        path = directory / f"events-{day}-wrong-types.csv"
        bad = rng.random(n) < 0.1
        bad[rng.integers(0, n)] = True
        words = np.array(["abc", "n/a", "twelve", "12,50 EUR"])[rng.integers(0, 4, n)]
        amount = np.where(bad, words, frame.get_column("amount").cast(pl.String).to_numpy())
        _write_frame(frame.with_columns(pl.Series("amount", amount)), path, "csv")
    elif kind == "missing_column":
        path = directory / f"events-{day}-missing-column.parquet"
        _write_frame(frame.drop("amount"), path, "parquet")
    elif kind == "nan_flood":
        path = directory / f"events-{day}-nan-flood.csv"
        u = pl.Series(rng.random(n))
        # a float column that is mostly missing: empty fields (null) and literal NaN
        amount = pl.when(u < 0.45).then(None).when(u < 0.85).then(float("nan")).otherwise("amount")
        _write_frame(frame.with_columns(amount.alias("amount")), path, "csv")
    elif kind == "duplicated_ids":
        path = directory / f"events-{day}-dup-ids.csv"
        ids = frame.get_column("transaction_id").to_numpy().copy()
        victims = rng.choice(n, 20, replace=False)
        ids[victims[:10]] = ids[victims[10:]]  # 10 rows take the id of 10 other rows
        _write_frame(frame.with_columns(pl.Series("transaction_id", ids)), path, "csv")
    else:  # path_trick
        # Shell metacharacters are harmless on purpose: a buggy consumer that runs this through a
        # shell echoes a word instead of doing damage.
        name = f"..events-{day} ;echo pwned;$(echo pwned) \u00fcn\u00efc\u00f8de\n\u2603.csv"
        path = directory / name
        _write_frame(frame, path, "csv")
    return path


__all__ = [
    "BAD_FILE_KINDS",
    "BIKE_COLUMNS",
    "BIKE_SPEC",
    "CARD_COLUMNS",
    "CARD_LABEL_COLUMNS",
    "CARD_SPEC",
    "INJECTION_KINDS",
    "FileRecord",
    "Injection",
    "PendingLateFile",
    "SimulationManifest",
    "card_events",
    "fraud_logit",
    "parse_injection",
    "rental_duration",
    "simulate",
    "simulate_regression",
    "write_bad_file",
    "write_late_files",
]
