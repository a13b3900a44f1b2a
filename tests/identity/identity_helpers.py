"""Helpers of the identity tests: write small raw CSV folders, load them, build only the identity
part of the dbt project (staging -> identity_map, identity_exclusions, profile_merges), read the
results and the graph's log figures."""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import sqlalchemy as sa

from orchestration.dbt_runner import DbtResult, run_dbt
from orchestration.load import load
from syncs.warehouse import Warehouse

AS_OF = datetime(2026, 11, 1)
IDENTITY_SELECTION = ["--select", "+identity_map", "+identity_exclusions", "+profile_merges",
                      "--indirect-selection", "cautious"]
EVENT_COLUMNS = ["event_id", "event_type", "occurred_at", "anonymous_id", "user_id", "email", "phone"]
CUSTOMER_COLUMNS = ["customer_id", "email", "phone", "first_name", "created_at", "country", "updated_at"]
ORDER_COLUMNS = ["order_id", "ordered_at", "customer_id", "email", "phone", "anonymous_id", "total"]


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in columns})


def event(event_id: str, occurred_at: str, **identifiers: str) -> dict[str, str]:
    return {"event_id": event_id, "event_type": "identify", "occurred_at": occurred_at, **identifiers}


@dataclass
class Stitcher:
    """Writes raw tables to a folder, loads them and builds the identity models."""
    warehouse: Warehouse
    folder: Path

    def write(self, events: Sequence[Mapping] = (), customers: Sequence[Mapping] = (),
              orders: Sequence[Mapping] = ()) -> None:
        write_csv(self.folder / "events.csv", EVENT_COLUMNS, events)
        write_csv(self.folder / "customers.csv", CUSTOMER_COLUMNS, customers)
        write_csv(self.folder / "orders.csv", ORDER_COLUMNS, orders)

    def build(self, events: Sequence[Mapping] = (), customers: Sequence[Mapping] = (),
              orders: Sequence[Mapping] = (), *, full_refresh: bool = False,
              extra_vars: Mapping[str, object] | None = None, check: bool = True) -> DbtResult:
        self.write(events, customers, orders)
        load(self.warehouse, self.folder, replace=True)
        args = IDENTITY_SELECTION + (["--full-refresh"] if full_refresh else [])
        return run_dbt(self.warehouse, "build", args, as_of=AS_OF, extra_vars=extra_vars, check=check)

    def rows(self, sql: str) -> list[tuple]:
        engine = self.warehouse.engine()
        try:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(sa.text(sql)).fetchall()]
        finally:
            engine.dispose()

    def identity_map(self) -> dict[tuple[str, str], str]:
        return {(t, v): p for t, v, p in self.rows(
            "select identifier_type, identifier_value, profile_id from identity_map")}

    def profile_of(self, identifier_type: str, value: str) -> str | None:
        return self.identity_map().get((identifier_type, value))


def graph_stats(result: DbtResult) -> dict[str, float]:
    """Figures from the 'identity graph:' log lines of a dbt run (the last full line wins)."""
    stats: dict[str, int] = {}
    for line in result.output.splitlines():
        found = re.search(r"identity graph: (\d+) rounds, (\d+) pointer jumps, ([\d.]+) s, (\d+) linked identifiers "
                          r"in (\d+) components, largest (\d+)", line)
        if found:
            stats.update(rounds=int(found[1]), jumps=int(found[2]), seconds=float(found[3]), linked=int(found[4]),
                         components=int(found[5]), largest=int(found[6]))
        recomputed = re.search(r"recomputing (\d+) identifiers in touched components, of (\d+) stored", line)
        if recomputed:
            stats["recomputed"], stats["stored"] = int(recomputed[1]), int(recomputed[2])
    return stats
