"""The alias ledger: the append-only, hash-chained audit table, source of truth of what serves.

MLflow aliases and version tags follow it. Every move (promote, approve, waiver, rollback,
challenger parking, rejection) runs as
1. **lock** — one lock serialises moves (``move_lock``);
2. **compare** — the aliases the caller decided on (``Move.expected``) must still be what
   MLflow holds, else ``MoveConflict`` says what changed and which ledger row changed it;
3. **intent** — a ledger row with the whole plan (aliases to set, tags to write);
4. **apply** — the aliases and tags in MLflow;
5. **applied** — a completion row for that move.

A crash between any two steps leaves an intent without its completion row, which ``reconcile``
completes (every step is idempotent). Each row carries ``hash`` = sha256(previous row's hash +
the row's content); ``verify_chain`` finds a deleted, edited or inserted row.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from mlops_assets.control.registry import ModelRegistry
from mlops_assets.core.clock import utc_now
from mlops_assets.core.faults import pause_point
from mlops_assets.core.tables import AUDIT_COLUMNS, LEDGER_SCHEMA
from mlops_assets.core.vocabulary import AUDIT, Action, Alias
from mlops_assets.data.lake import DeltaLake
from mlops_assets.data.lake_lock import LockTimeout

ALIAS_MOVES = "alias_moves"  # the name of the lake's lock every move holds
STEPS = ("locked", "intent", "aliases", "tags")  # boundaries a move can die at
INTENT, APPLIED, RECORDED = "intent", "applied", "recorded"  # row phases
GENESIS = "0" * 64
MANAGED_ALIASES = (Alias.CHAMPION, Alias.CHALLENGER, Alias.LAST_KNOWN_GOOD)
ALLOWED_OPERATIONS = {"CREATE TABLE", "OPTIMIZE", "VACUUM START", "VACUUM END"}  # besides appends


class PromotionRefused(RuntimeError):
    """A move that the rules do not allow (the message says why and what to do instead)."""


class MoveConflict(PromotionRefused):
    """Another move changed the aliases between this move's decision and its lock."""


@dataclass(frozen=True)
class Move:
    """One audited change: the audit facts, and the plan that ``apply`` carries out."""

    action: str
    actor: str
    reason: str
    alias: str | None = None
    from_version: int | None = None
    to_version: int | None = None
    gate_results: str | None = None
    run_id: str | None = None
    waiver_owner: str | None = None
    waiver_expires: str | None = None
    aliases: Mapping[str, int | None] = field(default_factory=dict)  # None: delete the alias
    tags: Mapping[int, Mapping[str, str]] = field(default_factory=dict)  # version -> tags to set
    expected: Mapping[str, int | None] = field(default_factory=dict)  # alias -> version decided on

    def plan_json(self) -> str:
        return json.dumps(
            {
                "aliases": dict(self.aliases),
                "tags": {str(v): dict(t) for v, t in self.tags.items()},
                "expected": dict(self.expected),
            },
            sort_keys=True,
        )


# ---- the chain -------------------------------------------------------------------------------
def row_hash(row: Mapping[str, Any], prev_hash: str) -> str:
    content = {
        k: v.isoformat() if isinstance(v, dt.datetime) else v
        for k, v in row.items()
        if k not in ("hash", "prev_hash")
    }
    return hashlib.sha256(
        (prev_hash + json.dumps(content, sort_keys=True, default=str)).encode()
    ).hexdigest()


def _chained(rows: list[dict], last: dict | None) -> pl.DataFrame:
    seq, prev = (last["seq"] + 1, last["hash"]) if last else (0, GENESIS)
    out = []
    for row in rows:
        full = {k: row.get(k) for k in LEDGER_SCHEMA} | {"seq": seq}
        full["at"] = full["at"] or utc_now()
        full["prev_hash"], full["hash"] = prev, row_hash(full, prev)
        out.append(full)
        seq, prev = seq + 1, full["hash"]
    return pl.DataFrame(out, schema=LEDGER_SCHEMA)


def read_ledger(lake: DeltaLake) -> pl.DataFrame:
    """Every ledger row in chain order (an empty frame before the first move)."""
    frame = lake.read(AUDIT)
    return pl.DataFrame(schema=LEDGER_SCHEMA) if frame.is_empty() else frame.sort("seq")


def _last(ledger: pl.DataFrame) -> dict | None:
    return ledger.row(-1, named=True) if ledger.height else None


def _append(lake: DeltaLake, rows: list[dict], ledger: pl.DataFrame) -> pl.DataFrame:
    frame = _chained(rows, _last(ledger))
    lake.append(AUDIT, frame, run_id=rows[0].get("run_id"))
    return pl.concat([ledger, frame]) if ledger.height else frame


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    rows: int
    broken_at: int | None = None  # the first seq (row position) that does not hold
    reason: str = ""

    def __str__(self) -> str:
        return (
            f"audit verified ({self.rows} rows)"
            if self.ok
            else f"audit broken at row {self.broken_at}: {self.reason}"
        )


def verify_chain(lake: DeltaLake) -> ChainReport:
    """Whether the ledger is exactly what its moves appended: contiguous rows, each hash
    chained to the previous one (a deleted, edited or inserted row breaks it), and a Delta
    history of appends only (no rewritten table)."""
    try:
        ledger = read_ledger(lake)
        history = lake.history(AUDIT)
    except (KeyboardInterrupt, SystemExit):
        raise
    # a corrupt audit is reported, never a crash (polars panics
    except BaseException as err:
        # on a truncated parquet file with an exception that is not an Exception)
        return ChainReport(
            False, 0, 0, f"the audit table cannot be read ({type(err).__name__}: {str(err)[:200]})"
        )
    rewritten = [
        h
        for h in history
        if h.get("operation") not in ALLOWED_OPERATIONS
        and not (
            h.get("operation") == "WRITE"
            and h.get("operationParameters", {}).get("mode") == "Append"
        )
    ]
    prev = GENESIS
    for i, row in enumerate(ledger.iter_rows(named=True)):
        if row["seq"] != i:
            return ChainReport(
                False,
                ledger.height,
                i,
                f"expected row {i}, found row {row['seq']} (deleted or inserted)",
            )
        if row["prev_hash"] != prev or row_hash(row, prev) != row["hash"]:
            return ChainReport(
                False, ledger.height, i, "its content or link does not match its hash (edited)"
            )
        prev = row["hash"]
    if rewritten:
        first = rewritten[-1]
        return ChainReport(
            False,
            ledger.height,
            None,
            f"Delta version {first.get('version')} of the audit table is a {first.get('operation')}"
            f" ({first.get('operationParameters', {}).get('mode', '')}), not an append",
        )
    return ChainReport(True, ledger.height)


# ---- serialising moves -----------------------------------------------------------------------
@contextlib.contextmanager
def move_lock(lake: DeltaLake, timeout_s: float = 60.0) -> Iterator[None]:
    """The one lock every alias move holds: the lake's ``alias_moves`` lock (``DeltaLake.lock``:
    PostgreSQL's advisory lock when the lake has a lock DSN, else a file beside a local lake)."""
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(lake.lock(ALIAS_MOVES).hold(timeout_s))
        except LockTimeout:
            raise PromotionRefused(
                f"another alias move holds the lock for over {timeout_s:.0f} s"
            ) from None
        yield


def _apply_plan(registry: ModelRegistry, plan: Mapping[str, Any]) -> None:
    """Set the plan's aliases, then its tags; idempotent, so a reconciler may run it again."""
    for alias, version in plan.get("aliases", {}).items():
        if version is None:
            registry.delete_alias(alias)
        else:
            registry.set_alias(alias, version)
    pause_point("aliases")
    for version, tags in plan.get("tags", {}).items():
        registry.set_version_tags(int(version), tags)
    pause_point("tags")


def _conflict(current: Mapping[str, int], move: Move, ledger: pl.DataFrame) -> str | None:
    changed = {a: (v, current.get(a)) for a, v in move.expected.items() if current.get(a) != v}
    if not changed:
        return None
    what = ", ".join(
        (
            f"{a} was v{old} and is now v{new}"
            if new is not None
            else f"{a} was v{old} and is now unset"
        )
        for a, (old, new) in changed.items()
    )
    moves = ledger.filter(pl.col("phase") != APPLIED)
    by = moves.row(-1, named=True) if moves.height else None
    last = (
        f"; last move: {by['action']} v{by['from_version']}→v{by['to_version']} by {by['actor']} at"
        f" {by['at']}"
        if by
        else ""
    )
    return (
        f"{move.action} refused: the aliases changed under it ({what}){last}. Check `mlops-assets"
        " status` and retry."
    )


def apply_move(lake: DeltaLake, registry: ModelRegistry, move: Move) -> None:
    """Carry out ``move`` under the lock: compare, write the intent, apply, mark applied."""
    with move_lock(lake):
        pause_point("locked")
        ledger = read_ledger(lake)
        problem = _conflict(registry.aliases(), move, ledger)
        if problem:
            raise MoveConflict(problem)
        row = {
            "move_id": uuid.uuid4().hex,
            "phase": INTENT,
            "plan": move.plan_json(),
            **{k: getattr(move, k) for k in AUDIT_COLUMNS if k != "at"},
        }
        ledger = _append(lake, [row], ledger)
        pause_point("intent")
        _apply_plan(registry, json.loads(row["plan"]))
        _append(lake, [_completion(row, move.actor)], ledger)


def _completion(intent: Mapping[str, Any], actor: str) -> dict:
    return {
        "move_id": intent["move_id"],
        "phase": APPLIED,
        "actor": actor,
        "action": Action.APPLIED,
        "reason": f"{intent['action']} applied",
        "run_id": intent.get("run_id"),
    }


def record(lake: DeltaLake, **row: Any) -> None:
    """Append one audit row that needs no apply step (a note: a reconciliation, a fact)."""
    with move_lock(lake):
        _append(lake, [{"move_id": uuid.uuid4().hex, "phase": RECORDED, **row}], read_ledger(lake))


# ---- reading it back -------------------------------------------------------------------------
def moves(ledger: pl.DataFrame) -> pl.DataFrame:
    """One row per move (intents and recorded rows), with ``state`` done | pending; newest first."""
    done = (
        set(ledger.filter(pl.col("phase") == APPLIED)["move_id"].to_list())
        if ledger.height
        else set()
    )
    rows = ledger.filter(pl.col("phase") != APPLIED)
    state = pl.when((pl.col("phase") == RECORDED) | pl.col("move_id").is_in(list(done))).then(
        pl.lit("done")
    )
    return rows.with_columns(state.otherwise(pl.lit("pending")).alias("state")).sort(
        "seq", descending=True
    )


def pending_moves(ledger: pl.DataFrame) -> list[dict]:
    return moves(ledger).filter(pl.col("state") == "pending").sort("seq").to_dicts()


def alias_state(ledger: pl.DataFrame) -> dict[str, int]:
    """The aliases the ledger says MLflow holds: every move's plan replayed in order."""
    state: dict[str, int] = {}
    for row in ledger.filter(pl.col("phase") == INTENT).sort("seq").iter_rows(named=True):
        for alias, version in json.loads(row["plan"] or "{}").get("aliases", {}).items():
            if version is None:
                state.pop(alias, None)
            else:
                state[alias] = int(version)
    return state


def reconcile(lake: DeltaLake, registry: ModelRegistry, actor: str = "reconciler") -> dict:
    """Complete every move whose process died half-way (re-applying its plan), then make
    MLflow's aliases agree with the ledger (an alias moved by hand in the MLflow UI). Run by
    ``status``, ``reconcile_sensor`` and ``mlops-assets reconcile``. Returns what was repaired
    (nothing on a healthy system)."""
    with move_lock(lake):
        ledger = read_ledger(lake)
        completed = []
        for intent in pending_moves(ledger):
            _apply_plan(registry, json.loads(intent["plan"] or "{}"))
            ledger = _append(lake, [_completion(intent, actor)], ledger)
            completed.append(intent["move_id"])
        expected, actual = alias_state(ledger), registry.aliases()
        drifted = {
            a: (actual.get(a), expected.get(a))
            for a in MANAGED_ALIASES
            if ledger.height and actual.get(a) != expected.get(a)
        }
        _apply_plan(registry, {"aliases": {a: want for a, (_, want) in drifted.items()}})
        if drifted:
            reason = "; ".join(
                f"{a}: MLflow had v{was}, the ledger says v{want}"
                for a, (was, want) in drifted.items()
            )
            _append(
                lake,
                [
                    {
                        "move_id": uuid.uuid4().hex,
                        "phase": RECORDED,
                        "actor": actor,
                        "action": Action.RECONCILE,
                        "reason": f"aliases restored from the ledger: {reason}",
                    }
                ],
                ledger,
            )
    return {"completed_moves": completed, "restored_aliases": {a: v[1] for a, v in drifted.items()}}


@dataclass(frozen=True)
class ChampionTerm:
    version: int
    since: dt.datetime
    until: dt.datetime | None
    by: str
    action: str
    why: str
    gates: list


def champion_history(ledger: pl.DataFrame) -> list[ChampionTerm]:
    """Who was champion when: one term per applied move of the champion alias, oldest first."""
    done = (
        moves(ledger).filter((pl.col("state") == "done") & (pl.col("phase") == INTENT)).sort("seq")
    )
    terms: list[ChampionTerm] = []
    for row in done.iter_rows(named=True):
        aliases = json.loads(row["plan"] or "{}").get("aliases", {})
        if Alias.CHAMPION not in aliases or aliases[Alias.CHAMPION] is None:
            continue
        if terms:
            terms[-1] = dataclasses.replace(terms[-1], until=row["at"])
        terms.append(
            ChampionTerm(
                int(aliases[Alias.CHAMPION]),
                row["at"],
                None,
                row["actor"],
                row["action"],
                row["reason"] or "",
                json.loads(row["gate_results"] or "[]"),
            )
        )
    return terms


def champion_at(ledger: pl.DataFrame, at: dt.datetime) -> ChampionTerm | None:
    earlier = [t for t in champion_history(ledger) if t.since <= at]
    return earlier[-1] if earlier else None
