"""Warehouse-side helpers for the lifecycle scenario: look people up by role, write hand-made
BG/NBD predictions and a past audience snapshot for lift (used by tests/lifecycle and tests/report)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa

from lifecycle_scenario import LIFT_ENTERED, LIFT_SNAPSHOT
from syncs.warehouse import Warehouse

P_ALIVE_VARS = {"at_risk_p_alive_below": 0.3}
# Hand-written BG/NBD output: the weekly buyer is probably gone, the yearly one is not; the
# prediction for pa_future was made for a later as_of and must be ignored.
PREDICTIONS = {"pa_weekly": (0.05, None), "pa_yearly": (0.9, None), "pa_future": (0.01, datetime(2026, 6, 2))}


@dataclass
class Snapshot:
    warehouse: Warehouse
    ids: dict[str, str] = field(default_factory=dict)
    early_history: list[tuple] = field(default_factory=list)
    off_stages: dict[str, str] = field(default_factory=dict)
    off_members: list[tuple] = field(default_factory=list)

    def rows(self, sql: str, **params) -> list[tuple]:
        engine = self.warehouse.engine()
        try:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(sa.text(sql), params).fetchall()]
        finally:
            engine.dispose()

    def pid(self, role: str) -> str:
        return self.ids[role]

    def role_of(self) -> dict[str, str]:
        return {pid: role for role, pid in self.ids.items()}

    def stages(self) -> dict[str, str]:
        by_id = self.role_of()
        return {by_id.get(p, p): s for p, s in self.rows("select profile_id, lifecycle_stage from profiles")}

    def members(self) -> dict[tuple[str, str, str], dict]:
        by_id = self.role_of()
        out = {}
        for audience, channel, pid, entered_at, holdout, payload in self.rows(
                "select audience, channel, profile_id, entered_at, is_holdout, payload from audience_members"):
            out[(audience, channel, by_id.get(pid, pid))] = {"entered_at": entered_at, "is_holdout": bool(holdout),
                                                             "payload": payload, "profile_id": pid}
        return out


def role_ids(warehouse: Warehouse) -> dict[str, str]:
    snap = Snapshot(warehouse)
    return dict(snap.rows("select identifier_value, profile_id from identity_map where identifier_type = 'user_id'"))


def execute(warehouse: Warehouse, statements: list[str], params: list[dict] | None = None) -> None:
    engine = warehouse.engine()
    try:
        with engine.begin() as conn:
            for k, statement in enumerate(statements):
                conn.execute(sa.text(statement), (params or [{}] * len(statements))[k])
    finally:
        engine.dispose()


def write_predictions(warehouse: Warehouse, ids: dict[str, str]) -> None:
    ddl = ("create table if not exists predictions.profile_predictions (profile_id varchar, p_alive double precision, "
           "expected_purchases_90d double precision, frequency integer, recency_days double precision, "
           "t_days double precision, model varchar, r double precision, alpha double precision, a double precision, "
           "b double precision, as_of timestamp, fitted_at timestamp)")
    rows = [{"p": ids[role], "v": p_alive, "a": as_of} for role, (p_alive, as_of) in PREDICTIONS.items()]
    statements = ["create schema if not exists predictions", ddl, "delete from predictions.profile_predictions"]
    statements += ["insert into predictions.profile_predictions (profile_id, p_alive, as_of) values (:p, :v, :a)"] * len(rows)
    execute(warehouse, statements, [{}, {}, {}] + rows)


def write_lift_history(warehouse: Warehouse, ids: dict[str, str]) -> None:
    """A past snapshot of a 'test_lift' audience (li_m* synced members, li_h* held out) and of a
    'test_exposure' audience (li_x0, who entered 60 days before that run)."""
    rows = [{"as_of": LIFT_SNAPSHOT, "p": ids[f"li_{kind}{k}"], "e": LIFT_ENTERED, "h": kind == "h"}
            for kind in ("m", "h") for k in range(10)]
    rows = [{**row, "aud": "test_lift"} for row in rows]
    rows.append({"as_of": LIFT_SNAPSHOT, "p": ids["li_x0"], "e": LIFT_ENTERED - timedelta(days=60), "h": False,
                 "aud": "test_exposure"})
    execute(warehouse, ["insert into analytics.audience_membership_history (as_of, audience, channel, profile_id, "
                        "entered_at, is_holdout) values (:as_of, :aud, 'email', :p, :e, :h)"] * len(rows), rows)
