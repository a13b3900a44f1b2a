"""Build the dbt project once per warehouse per module over a small hand-written fixture whose
every row has a purpose (see tests/fixtures/mini)."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from orchestration.dbt_runner import run_dbt
from orchestration.load import load
from syncs.warehouse import Warehouse

MINI = Path(__file__).resolve().parents[1] / "fixtures" / "mini"
AS_OF = datetime(2026, 11, 1)


class Built:
    def __init__(self, warehouse: Warehouse):
        self.warehouse = warehouse
        self.engine = warehouse.engine()

    def rows(self, sql: str) -> list[tuple]:
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(sql)).fetchall()]

    def scalar(self, sql: str):
        return self.rows(sql)[0][0]

    def profile_of(self, identifier_type: str, value: str) -> str | None:
        found = self.rows(f"select profile_id from identity_map where identifier_type = '{identifier_type}' "
                          f"and identifier_value = '{value}'")
        return found[0][0] if found else None


def build_mini(warehouse: Warehouse, source: Path = MINI, as_of: datetime = AS_OF) -> Built:
    load(warehouse, source, replace=True)
    run_dbt(warehouse, "build", as_of=as_of)
    return Built(warehouse)


@pytest.fixture(scope="module")
def duck_built(tmp_path_factory, module_warehouses) -> Built:
    with module_warehouses.hold("duckdb", tmp_path_factory.mktemp("duck")) as warehouse:
        built = build_mini(warehouse)
        yield built
        built.engine.dispose()


@pytest.fixture(scope="module")
def pg_built(tmp_path_factory, module_warehouses) -> Built:
    with module_warehouses.hold("postgres", tmp_path_factory.mktemp("pg")) as warehouse:
        built = build_mini(warehouse)
        yield built
        built.engine.dispose()


@pytest.fixture(params=["duckdb", "postgres"], scope="module")
def built(request) -> Built:
    return request.getfixturevalue("duck_built" if request.param == "duckdb" else "pg_built")
