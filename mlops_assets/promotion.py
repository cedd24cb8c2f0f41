"""Promotion, approval, waivers and rollback: every alias move goes through here.

One rule set for the ``champion`` asset and the operator CLI:

* a version that failed a blocking gate never becomes champion, except through an
  explicit, owned, unexpired waiver;
* every alias move appends a row to the ``audit`` Delta table (who, when, from, to,
  why, the gate results, the run id) — the audit is append-only.

The version's own tags carry its state (``mlops.status``), the ``evaluations`` table
its gate results, MLflow aliases what is serving.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
from dataclasses import dataclass
from typing import Any

import polars as pl

from mlops_assets.lake import DeltaLake
from mlops_assets.platform import AUDIT, EVALUATIONS, SHADOW_SCORES
from mlops_assets.registry import CHALLENGER, CHAMPION, LAST_KNOWN_GOOD, ModelRegistry

STATUS_TAG = "mlops.status"  # candidate | rejected | challenger | champion | retired | rolled_back
CUTOFF_TAG = "mlops.cutoff"
GATES_TAG = "mlops.gates"  # passed | failed
REASONS_TAG = "mlops.rejected_reasons"

AUDIT_SCHEMA = {
    "at": pl.Datetime("us"),
    "actor": pl.String,
    "action": pl.String,
    "alias": pl.String,
    "from_version": pl.Int64,
    "to_version": pl.Int64,
    "reason": pl.String,
    "gate_results": pl.String,
    "run_id": pl.String,
    "waiver_owner": pl.String,
    "waiver_expires": pl.String,
}


class PromotionRefused(RuntimeError):
    """A promotion, approval or rollback that the rules do not allow (the message says why)."""


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def current_actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user database in some containers
        return "unknown"


def append_audit(lake: DeltaLake, **row: Any) -> None:
    full = {k: row.get(k) for k in AUDIT_SCHEMA}
    full["at"] = full["at"] or now()
    lake.append(AUDIT, pl.DataFrame([full], schema=AUDIT_SCHEMA), run_id=row.get("run_id"))


def read_audit(lake: DeltaLake, limit: int | None = None) -> pl.DataFrame:
    frame = lake.read(AUDIT)
    if frame.is_empty():
        return pl.DataFrame(schema=AUDIT_SCHEMA)
    frame = frame.sort("at", descending=True)
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
class Verdict:
    version: int
    passed: bool
    gates: list[dict]

    @property
    def failures(self) -> list[str]:
        return [g["message"] for g in self.gates if not g["passed"]]

    def gates_json(self) -> str:
        return json.dumps(self.gates, default=str)


def verdict(lake: DeltaLake, registry: ModelRegistry, version: int) -> Verdict:
    gates = gate_results(lake, version)
    tags = registry.version_tags(version)
    passed = bool(gates) and all(g["passed"] for g in gates) and tags.get(STATUS_TAG) != "rejected"
    return Verdict(version, passed, gates)


def _move_champion(
    lake: DeltaLake, registry: ModelRegistry, version: int, *, actor: str, action: str, reason: str,
    gates_json: str, run_id: str | None, waiver: dict | None = None,
) -> dict:
    previous = registry.get_alias(CHAMPION)
    if previous == version:
        return {"action": "noop", "champion": version, "reason": f"version {version} is already champion"}
    if previous is not None:
        registry.set_alias(LAST_KNOWN_GOOD, previous)
        registry.set_version_tags(previous, {STATUS_TAG: "retired"})
    registry.set_alias(CHAMPION, version)
    if registry.get_alias(CHALLENGER) == version:
        registry.delete_alias(CHALLENGER)
    registry.set_version_tags(version, {STATUS_TAG: "champion", "mlops.promoted_at": now().isoformat(),
                                        "mlops.promotion_reason": reason[:500]})
    append_audit(lake, actor=actor, action=action, alias=CHAMPION, from_version=previous, to_version=version,
                 reason=reason, gate_results=gates_json, run_id=run_id,
                 waiver_owner=(waiver or {}).get("owner"), waiver_expires=(waiver or {}).get("expires"))
    return {"action": action, "champion": version, "last_known_good": previous, "reason": reason}


def shadow_days_observed(lake: DeltaLake, version: int) -> int:
    """Days of shadow scores the version has (evidence for the shadow-days gate)."""
    shadow = lake.read(SHADOW_SCORES)
    if shadow.is_empty():
        return 0
    return shadow.filter(pl.col("model_version") == version)["ds"].n_unique()


def _park_as_challenger(lake, registry, version, *, action: str, reason: str, gates_json: str, actor, run_id) -> dict:
    if registry.get_alias(CHAMPION) == version:
        return {"action": "noop", "champion": version, "reason": "already champion"}
    previous = registry.get_alias(CHALLENGER)
    registry.set_alias(CHALLENGER, version)
    registry.set_version_tags(version, {STATUS_TAG: "challenger"})
    if previous != version:
        append_audit(lake, actor=actor, action=action, alias=CHALLENGER, from_version=previous, to_version=version,
                     reason=reason, gate_results=gates_json, run_id=run_id)
    return {"action": action, "challenger": version, "reason": reason}


def promote_if_passed(
    lake: DeltaLake, registry: ModelRegistry, version: int, *, require_approval: bool, actor: str, run_id: str | None,
    shadow_days: int = 0,
) -> dict:
    """The champion asset's step: promote a version whose every gate passed, or park it as
    challenger (awaiting approval, or shadow evidence when ``shadow_days`` > 0 and there is a
    champion to shadow). Refuses a version that failed or was never evaluated."""
    v = verdict(lake, registry, version)
    if not v.gates:
        raise PromotionRefused(f"version {version} has no evaluation: run evaluation_report first")
    if not v.passed:
        raise PromotionRefused(f"version {version} failed its gates: " + "; ".join(v.failures or ["tagged rejected"]))
    if registry.version_tags(version).get(STATUS_TAG) == "rolled_back":
        raise PromotionRefused(f"version {version} was rolled back: it is never auto-promoted again "
                               "(`mlops-assets approve` can still promote it)")
    if require_approval:
        return _park_as_challenger(lake, registry, version, action="await_approval",
                                   reason="passed every gate; the spec requires approval",
                                   gates_json=v.gates_json(), actor=actor, run_id=run_id)
    observed = shadow_days_observed(lake, version)
    if shadow_days and registry.get_alias(CHAMPION) is not None and observed < shadow_days:
        return _park_as_challenger(lake, registry, version, action="await_shadow",
                                   reason=f"passed every gate; needs {shadow_days} days of shadow scores (has {observed})",
                                   gates_json=v.gates_json(), actor=actor, run_id=run_id)
    return _move_champion(lake, registry, version, actor=actor, action="promote",
                          reason="passed every blocking gate", gates_json=v.gates_json(), run_id=run_id)


def approve(lake: DeltaLake, registry: ModelRegistry, version: int, *, by: str, reason: str) -> dict:
    if not by.strip() or not reason.strip():
        raise PromotionRefused("approval needs --by and --reason")
    v = verdict(lake, registry, version)
    if not v.passed:
        raise PromotionRefused(
            f"version {version} did not pass every gate ({'; '.join(v.failures) or 'never evaluated'}): "
            "approval is refused — a waiver (`mlops-assets promote --waiver-…`) is the path for that"
        )
    return _move_champion(lake, registry, version, actor=by, action="approve", reason=reason,
                          gates_json=v.gates_json(), run_id=None)


def promote_with_waiver(
    lake: DeltaLake, registry: ModelRegistry, version: int, *, owner: str, reason: str, expires: str,
    today: dt.date | None = None,
) -> dict:
    missing = [n for n, val in (("--waiver-owner", owner), ("--waiver-reason", reason), ("--waiver-expires", expires))
               if not (val or "").strip()]
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
        raise PromotionRefused(f"version {version} was never evaluated; a waiver covers failed gates, not missing ones")
    waived = "; ".join(v.failures) or "none failed"
    registry.set_version_tags(version, {"mlops.waiver": json.dumps({"owner": owner, "reason": reason, "expires": expires})})
    return _move_champion(lake, registry, version, actor=owner, action="waiver_promote",
                          reason=f"waiver: {reason} (waived gates: {waived})", gates_json=v.gates_json(),
                          run_id=None, waiver={"owner": owner, "expires": expires})


def rollback(
    lake: DeltaLake, registry: ModelRegistry, *, reason: str, to_version: int | None = None,
    actor: str | None = None, run_id: str | None = None,
) -> dict:
    """Champion back to ``last_known_good`` (or ``to_version``). The rolled-back version is
    tagged ``rolled_back`` so it is never auto-promoted again. The target must have passed every
    gate or carry an unexpired waiver (rollback is no back door for a rejected version)."""
    if not reason.strip():
        raise PromotionRefused("rollback needs --reason")
    current = registry.get_alias(CHAMPION)
    target = to_version if to_version is not None else registry.get_alias(LAST_KNOWN_GOOD)
    if target is None:
        raise PromotionRefused("nothing to roll back to: no last_known_good version (pass --to VERSION)")
    if target == current:
        raise PromotionRefused(f"version {target} is already champion")
    waiver = json.loads(registry.version_tags(target).get("mlops.waiver") or "{}")  # raises for an unknown version
    if not verdict(lake, registry, target).passed and not waiver.get("expires", "") >= dt.date.today().isoformat():
        raise PromotionRefused(f"version {target} did not pass every gate and has no unexpired waiver: rollback "
                               "cannot make it champion (`mlops-assets promote --waiver-…` is the path for that)")
    registry.set_alias(CHAMPION, target)
    registry.set_version_tags(target, {STATUS_TAG: "champion"})
    if current is not None:
        registry.set_version_tags(current, {STATUS_TAG: "rolled_back", "mlops.rolled_back_reason": reason[:500]})
        if registry.get_alias(LAST_KNOWN_GOOD) == target:
            registry.delete_alias(LAST_KNOWN_GOOD)
    append_audit(lake, actor=actor or current_actor(), action="rollback", alias=CHAMPION, from_version=current,
                 to_version=target, reason=reason, gate_results=None, run_id=run_id)
    return {"action": "rollback", "from": current, "champion": target}
