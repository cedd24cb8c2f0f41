"""Promotion, approval, waivers and rollback: the rules of every alias move.

One rule set for the ``champion`` asset, the guard sensor and the operator CLI:

* a version that failed a blocking gate never becomes champion, except through an
  explicit, owned, unexpired waiver;
* every move is decided here and carried out by ``ledger.apply_move``: serialised,
  compare-and-set against the aliases it was decided on, written to the hash-chained
  audit ledger as intent, applied to MLflow, marked applied;
* ``last_known_good`` is the newest earlier champion that was never rolled back, so a
  second rollback still has somewhere to go.

The version's own tags carry its state (``mlops.status``), the ``evaluations`` table
its gate results, MLflow aliases what is serving, the ledger why.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
from dataclasses import dataclass
from typing import Any

import polars as pl

from mlops_assets.control.ledger import (
    Move,
    PromotionRefused,
    apply_move,
    champion_history,
    moves,
    read_ledger,
    record,
)
from mlops_assets.control.registry import ModelRegistry
from mlops_assets.core.clock import utc_now
from mlops_assets.core.tables import AUDIT_COLUMNS, AUDIT_SCHEMA
from mlops_assets.core.vocabulary import (
    EVALUATIONS,
    MODEL_VERSION_COLUMN,
    PARTITION_COLUMN,
    SHADOW_SCORES,
    Action,
    Alias,
    Status,
    VersionTag,
)
from mlops_assets.data.lake import DeltaLake
from mlops_assets.model.gates import GateVerdict


def current_actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user database in some containers
        return "unknown"


def append_audit(lake: DeltaLake, **row: Any) -> None:
    """Record one audit row that moves nothing (chained like every other row)."""
    record(lake, **{k: row.get(k) for k in AUDIT_COLUMNS})


def read_audit(lake: DeltaLake, limit: int | None = None, *, strict: bool = True) -> pl.DataFrame:
    """One row per move, newest first, with ``state`` (done | pending). ``strict=False``: an
    unreadable audit table gives no rows (readers that report, such as status, say why
    elsewhere)."""
    try:
        frame = moves(read_ledger(lake)).select(*AUDIT_COLUMNS, "state", "seq")
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:  # noqa: BLE001 - polars panics on a corrupt file with a non-Exception
        if strict:
            raise
        frame = pl.DataFrame(schema={**AUDIT_SCHEMA, "state": pl.String, "seq": pl.Int64})
    return frame.head(limit) if limit else frame


def gate_results(lake: DeltaLake, version: int) -> list[dict]:
    """The latest evaluation's gate rows for ``version`` ([] when it was never evaluated)."""
    ev = lake.read(EVALUATIONS)
    if ev.is_empty():
        return []
    mine = ev.filter(pl.col("version") == version)
    if mine.is_empty():
        return []
    latest = mine.filter(pl.col("evaluated_at") == mine["evaluated_at"].max())
    return latest.select("gate", "passed", "value", "threshold", "message").sort("gate").to_dicts()


@dataclass
class PromotionVerdict:
    """What the record says of a version's eligibility: its latest gate rows, and whether they all
    passed and it was not rejected."""

    version: int
    passed: bool
    gates: list[dict]

    @property
    def failures(self) -> list[str]:
        return [g["message"] for g in self.gates if not g["passed"]]

    def gates_json(self) -> str:
        return json.dumps(self.gates, default=str)


def verdict(lake: DeltaLake, registry: ModelRegistry, version: int) -> PromotionVerdict:
    gates = gate_results(lake, version)
    tags = registry.version_tags(version)
    passed = (
        bool(gates)
        and all(g["passed"] for g in gates)
        and tags.get(VersionTag.STATUS) != Status.REJECTED
    )
    return PromotionVerdict(version, passed, gates)


def _move_champion(
    lake: DeltaLake,
    registry: ModelRegistry,
    version: int,
    *,
    actor: str,
    action: str,
    reason: str,
    gates_json: str,
    run_id: str | None,
    waiver: dict | None = None,
) -> dict:
    aliases = registry.aliases()
    previous, challenger = aliases.get(Alias.CHAMPION), aliases.get(Alias.CHALLENGER)
    if previous == version:
        return {
            "action": Action.NOOP,
            "champion": version,
            "reason": f"version {version} is already champion",
        }
    plan = {Alias.CHAMPION: version}
    tags = {
        version: {
            VersionTag.STATUS: Status.CHAMPION,
            VersionTag.PROMOTED_AT: utc_now().isoformat(),
            VersionTag.PROMOTION_REASON: reason[:500],
            **({VersionTag.WAIVER: json.dumps(waiver)} if waiver else {}),
        }
    }
    if previous is not None:
        plan[Alias.LAST_KNOWN_GOOD] = previous
        tags[previous] = {VersionTag.STATUS: Status.RETIRED}
    if challenger == version:
        plan[Alias.CHALLENGER] = None
    apply_move(
        lake,
        registry,
        Move(
            action,
            actor,
            reason,
            Alias.CHAMPION,
            previous,
            version,
            gates_json,
            run_id,
            (waiver or {}).get("owner"),
            (waiver or {}).get("expires"),
            aliases=plan,
            tags=tags,
            expected={Alias.CHAMPION: previous, Alias.CHALLENGER: challenger},
        ),
    )
    return {"action": action, "champion": version, "last_known_good": previous, "reason": reason}


def shadow_days_observed(lake: DeltaLake, version: int) -> int:
    """Days of shadow scores the version has (evidence for the shadow-days gate)."""
    shadow = lake.read(SHADOW_SCORES)
    if shadow.is_empty():
        return 0
    return shadow.filter(pl.col(MODEL_VERSION_COLUMN) == version)[PARTITION_COLUMN].n_unique()


def _park_as_challenger(
    lake, registry, version, *, action: str, reason: str, gates_json: str, actor, run_id
) -> dict:
    aliases = registry.aliases()
    if aliases.get(Alias.CHAMPION) == version:
        return {"action": Action.NOOP, "champion": version, "reason": "already champion"}
    previous = aliases.get(Alias.CHALLENGER)
    if previous != version:
        apply_move(
            lake,
            registry,
            Move(
                action,
                actor,
                reason,
                Alias.CHALLENGER,
                previous,
                version,
                gates_json,
                run_id,
                aliases={Alias.CHALLENGER: version},
                tags={version: {VersionTag.STATUS: Status.CHALLENGER}},
                expected={Alias.CHAMPION: aliases.get(Alias.CHAMPION), Alias.CHALLENGER: previous},
            ),
        )
    return {"action": action, "challenger": version, "reason": reason}


def promote_if_passed(
    lake: DeltaLake,
    registry: ModelRegistry,
    version: int,
    *,
    require_approval: bool,
    actor: str,
    run_id: str | None,
    shadow_days: int = 0,
) -> dict:
    """The champion asset's step: promote a version whose every gate passed, or park it as
    challenger (awaiting approval, or shadow evidence when ``shadow_days`` > 0 and there is a
    champion to shadow). Refuses a version that failed or was never evaluated, and one trained at
    a cutoff older than the serving champion's."""
    v = verdict(lake, registry, version)
    tags = registry.version_tags(version)
    champion = registry.get_alias(Alias.CHAMPION)
    champion_cutoff = (
        registry.version_tags(champion).get(VersionTag.CUTOFF)
        if champion is not None and champion != version
        else None
    )
    action, reason = promotion_decision(
        v,
        tags.get(VersionTag.STATUS),
        require_approval=require_approval,
        shadow_days=shadow_days,
        has_champion=champion is not None,
        shadow_days_seen=shadow_days_observed(lake, version) if shadow_days else 0,
        cutoff=tags.get(VersionTag.CUTOFF),
        champion_cutoff=champion_cutoff,
        champion=champion,
    )
    if action == Action.PROMOTE:
        return _move_champion(
            lake,
            registry,
            version,
            actor=actor,
            action=action,
            reason=reason,
            gates_json=v.gates_json(),
            run_id=run_id,
        )
    return _park_as_challenger(
        lake,
        registry,
        version,
        action=action,
        reason=reason,
        gates_json=v.gates_json(),
        actor=actor,
        run_id=run_id,
    )


def promotion_decision(
    v: PromotionVerdict,
    status: str | None,
    *,
    require_approval: bool,
    shadow_days: int,
    has_champion: bool,
    shadow_days_seen: int,
    cutoff: str | None = None,
    champion_cutoff: str | None = None,
    champion: int | None = None,
) -> tuple[str, str]:
    """What the champion step does with an evaluated version: (action, reason), where action is
    ``promote``, ``await_approval`` or ``await_shadow``; ``PromotionRefused`` when the version
    was never evaluated, failed a gate, was rolled back before, or was trained at a ``cutoff``
    older than the serving champion's (ISO dates; a waiver can still promote it)."""
    if not v.gates:
        raise PromotionRefused(
            f"version {v.version} has no evaluation: run evaluation_report first"
        )
    if not v.passed:
        raise PromotionRefused(
            f"version {v.version} failed its gates: " + "; ".join(v.failures or ["tagged rejected"])
        )
    if status == Status.SUPERSEDED:
        raise PromotionRefused(
            f"version {v.version} was superseded by a later attempt at its cutoff and was never "
            "gated: promote the version that replaced it"
        )
    if status == Status.ROLLED_BACK:
        raise PromotionRefused(
            f"version {v.version} was rolled back: it is never auto-promoted again "
            "(`mlops-assets approve` can still promote it)"
        )
    if cutoff and champion_cutoff and cutoff < champion_cutoff:
        serving = f"v{champion}" if champion is not None else "the champion"
        raise PromotionRefused(
            f"version {v.version} was trained at cutoff {cutoff}, older than the serving champion"
            f" {serving}'s cutoff {champion_cutoff}: automatic promotion never replaces a newer"
            f" model with an older one; an explicit waiver can (`mlops-assets promote {v.version}"
            " --waiver-owner … --waiver-reason … --waiver-expires …`)"
        )
    if require_approval:
        return Action.AWAIT_APPROVAL, "passed every gate; the spec requires approval"
    if shadow_days and has_champion and shadow_days_seen < shadow_days:
        return (
            Action.AWAIT_SHADOW,
            (
                f"passed every gate; needs {shadow_days} days of shadow scores (has"
                f" {shadow_days_seen})"
            ),
        )
    return Action.PROMOTE, "passed every blocking gate"


def approve(
    lake: DeltaLake, registry: ModelRegistry, version: int, *, by: str, reason: str
) -> dict:
    if not by.strip() or not reason.strip():
        raise PromotionRefused("approval needs --by and --reason")
    v = verdict(lake, registry, version)
    if not v.passed:
        raise PromotionRefused(
            f"version {version} did not pass every gate"
            f" ({'; '.join(v.failures) or 'never evaluated'}): approval is refused — a waiver"
            " (`mlops-assets promote --waiver-…`) is the path for that"
        )
    return _move_champion(
        lake,
        registry,
        version,
        actor=by,
        action=Action.APPROVE,
        reason=reason,
        gates_json=v.gates_json(),
        run_id=None,
    )


def promote_with_waiver(
    lake: DeltaLake,
    registry: ModelRegistry,
    version: int,
    *,
    owner: str,
    reason: str,
    expires: str,
    today: dt.date | None = None,
) -> dict:
    missing = [
        n
        for n, val in (
            ("--waiver-owner", owner),
            ("--waiver-reason", reason),
            ("--waiver-expires", expires),
        )
        if not (val or "").strip()
    ]
    if missing:
        raise PromotionRefused(f"incomplete waiver: {', '.join(missing)} required")
    try:
        expiry = dt.date.fromisoformat(expires)
    except ValueError:
        raise PromotionRefused(f"--waiver-expires {expires!r} is not a date (YYYY-MM-DD)") from None
    if expiry < (today or dt.date.today()):
        raise PromotionRefused(f"the waiver expired on {expiry}")
    v = verdict(lake, registry, version)
    if not v.gates:
        raise PromotionRefused(
            f"version {version} was never evaluated; a waiver covers failed gates, not missing ones"
        )
    waived = "; ".join(v.failures) or "none failed"
    return _move_champion(
        lake,
        registry,
        version,
        actor=owner,
        action=Action.WAIVER_PROMOTE,
        reason=f"waiver: {reason} (waived gates: {waived})",
        gates_json=v.gates_json(),
        run_id=None,
        waiver={"owner": owner, "reason": reason, "expires": expires},
    )


def rollback(
    lake: DeltaLake,
    registry: ModelRegistry,
    *,
    reason: str,
    to_version: int | None = None,
    actor: str | None = None,
    run_id: str | None = None,
) -> dict:
    """Champion back to ``last_known_good`` (or ``to_version``). The rolled-back version is
    tagged ``rolled_back`` so it is never auto-promoted again. The target must have passed every
    gate or carry an unexpired waiver (rollback is no back door for a rejected version)."""
    if not reason.strip():
        raise PromotionRefused("rollback needs --reason")
    aliases = registry.aliases()
    current = aliases.get(Alias.CHAMPION)
    target = to_version if to_version is not None else aliases.get(Alias.LAST_KNOWN_GOOD)
    if target is None:
        raise PromotionRefused(
            "nothing to roll back to: no last_known_good version (pass --to VERSION)"
        )
    if target == current:
        raise PromotionRefused(f"version {target} is already champion")
    waiver = json.loads(
        registry.version_tags(target).get(VersionTag.WAIVER) or "{}"
    )  # raises for an unknown version
    if (
        not verdict(lake, registry, target).passed
        and not waiver.get("expires", "") >= dt.date.today().isoformat()
    ):
        raise PromotionRefused(
            f"version {target} did not pass every gate and has no unexpired waiver: rollback "
            "cannot make it champion (`mlops-assets promote --waiver-…` is the path for that)"
        )
    fallback = next_known_good(lake, registry, exclude={current, target})
    tags = {target: {VersionTag.STATUS: Status.CHAMPION}}
    if current is not None:
        tags[current] = {
            VersionTag.STATUS: Status.ROLLED_BACK,
            VersionTag.ROLLED_BACK_REASON: reason[:500],
        }
    apply_move(
        lake,
        registry,
        Move(
            Action.ROLLBACK,
            actor or current_actor(),
            reason,
            Alias.CHAMPION,
            current,
            target,
            None,
            run_id,
            aliases={Alias.CHAMPION: target, Alias.LAST_KNOWN_GOOD: fallback},
            tags=tags,
            expected={
                Alias.CHAMPION: current,
                Alias.LAST_KNOWN_GOOD: aliases.get(Alias.LAST_KNOWN_GOOD),
            },
        ),
    )
    return {
        "action": Action.ROLLBACK,
        "from": current,
        "champion": target,
        "last_known_good": fallback,
    }


def next_known_good(lake: DeltaLake, registry: ModelRegistry, exclude: set) -> int | None:
    """The newest earlier champion that was never rolled back (the safety net after a rollback)."""
    for term in reversed(champion_history(read_ledger(lake))):
        if (
            term.version not in exclude
            and registry.version_tags(term.version).get(VersionTag.STATUS) != Status.ROLLED_BACK
        ):
            return term.version
    return None


def record_gate_verdict(
    lake: DeltaLake,
    registry: ModelRegistry,
    version: int,
    verdict: GateVerdict,
    *,
    champion_version: int | None,
    actor: str,
    run_id: str | None,
) -> None:
    """Tag the evaluated version with its verdict; a rejection also gets an audit row (why, by
    which gates), so a rejected candidate is on record and never becomes champion."""
    if verdict.passed:
        registry.set_version_tags(version, verdict.version_tags())
        return
    apply_move(
        lake,
        registry,
        Move(
            Action.REJECT,
            actor,
            verdict.reasons,
            None,
            champion_version,
            version,
            json.dumps(verdict.as_dicts(), default=str),
            run_id,
            tags={version: verdict.version_tags()},
        ),
    )


def dagster_actor(run_id: str) -> str:
    """The audit actor of a move made by a Dagster run."""
    return f"dagster:{run_id[:8]}"
