"""The bad-input corpus: every folder under cases/ is one named case with its input files and
case.yml (what must happen: quarantined with a reason, repaired by a documented rule, or refused
with an error naming the file and row/column), and nothing else may be lost.

Row-level cases are loaded together and built once per warehouse; file-level cases are loaded
on top of a good load and must leave the raw tables exactly as they were."""
from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from orchestration.dbt_runner import run_dbt
from orchestration.load import LoadError, load
from syncs.warehouse import Warehouse

CASES = Path(__file__).parent / "cases"
AS_OF = datetime(2026, 11, 1)
FILE_KINDS = {"load_error", "builds"}


def all_cases() -> list[tuple[str, dict]]:
    return [(d.name, yaml.safe_load((d / "case.yml").read_text())) for d in sorted(CASES.iterdir())]


ROW_CASES = [(n, c) for n, c in all_cases() if c["expect"]["kind"] not in FILE_KINDS]
FILE_CASES = [(n, c) for n, c in all_cases() if c["expect"]["kind"] in FILE_KINDS]


def test_corpus_has_at_least_40_named_cases():
    assert len(ROW_CASES) + len(FILE_CASES) >= 40
    for name, case in all_cases():
        assert case["description"], name


def combine_row_cases(target: Path) -> None:
    for name, _ in ROW_CASES:
        for f in (CASES / name).glob("*.csv"):
            dest = target / f.stem / f"{name}.csv"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, dest)


class Rows:
    def __init__(self, warehouse: Warehouse):
        self.engine = warehouse.engine()

    def __call__(self, sql: str, **params) -> list[tuple]:
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(sql), params).fetchall()]


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def corpus(request, tmp_path_factory, module_warehouses):
    work = tmp_path_factory.mktemp("corpus")
    combine_row_cases(work / "input")
    with module_warehouses.hold(request.param, work) as warehouse:
        load(warehouse, work / "input", replace=True)
        run_dbt(warehouse, "build", as_of=AS_OF)
        rows = Rows(warehouse)
        yield rows
        rows.engine.dispose()


@pytest.mark.parametrize("name, case", ROW_CASES, ids=[n for n, _ in ROW_CASES])
def test_row_case(corpus, name, case):
    e = case["expect"]
    kind = e["kind"]
    if kind == "quarantined":
        found = corpus("select source_key, reason, action from quarantine where source_table = :t and reason = :r",
                       t=e["table"], r=e["reason"])
        if "key_prefix" in e:
            assert any(k.startswith(e["key_prefix"]) for k, _, _ in found), found
            # The dropped row's other identifiers did not leak into stitching.
            assert not corpus("select 1 from identity_map where identifier_value = :v", v=e["anonymous_id"])
        else:
            matches = [row for row in found if row[0] == e["key"]]
            assert matches, f"{name}: {e['key']} not quarantined as {e['reason']}: {found[:5]}"
            if "action" in e:
                assert matches[0][2] == e["action"]
        if e.get("action") == "repaired":  # the row itself is kept
            assert corpus("select count(*) from staging.stg_events where event_id = :k", k=e["key"])[0][0] == 1
    elif kind == "identifier":
        assert corpus("select count(*) from identity_map where identifier_type = :t and identifier_value = :v",
                      t=e["type"], v=e["value"])[0][0] == 1
    elif kind == "no_identifier":
        for value in e["values"]:
            assert not corpus("select 1 from identity_map where lower(identifier_value) = lower(:v)", v=value)
    elif kind == "duplicate":
        assert corpus("select count(*) from staging.stg_events where event_id = :k", k=e["key"])[0][0] == e["kept"]
        dups = corpus("select count(*) from quarantine where source_key = :k and reason = 'duplicate_event_id'", k=e["key"])
        assert dups[0][0] == e["quarantined"]
        if "kept_event_type" in e:
            assert corpus("select event_type from staging.stg_events where event_id = :k", k=e["key"])[0][0] == e["kept_event_type"]
    elif kind == "value":
        got = corpus(e["sql"])
        assert got and str(got[0][0]).lower() == str(e["equals"]).lower(), got
    elif kind == "excluded":
        found = corpus("select linked_count from identity_exclusions where identifier_type = :t and identifier_value = :v",
                       t=e["type"], v=e["value"])
        assert found, f"{e['value']} not excluded"
        if "linked_count" in e:
            assert found[0][0] == e["linked_count"]
            # Every person on the shared device keeps their own profile.
            profiles = corpus("select count(distinct profile_id) from identity_map where identifier_type = 'email' "
                              "and identifier_value like 'visitor%@example.org'")[0][0]
            assert profiles == e["linked_count"]
    else:
        pytest.fail(f"{name}: unknown expectation kind {kind}")


def test_nothing_is_lost(corpus):
    """Every raw event is staged, quarantined as dropped, or waiting beyond as_of: none vanish."""
    raw = corpus("select count(*) from raw.events")[0][0]
    staged = corpus("select count(*) from staging.stg_events")[0][0]
    dropped = corpus("select count(*) from quarantine where source_table = 'events' and action = 'dropped'")[0][0]
    later = corpus("select count(*) from staging.base_events where drop_reason is null "
                   "and occurred_at > cast('2026-11-01 00:00:00' as timestamp)")[0][0]
    assert raw == staged + dropped + later
    for table, staged_model in (("orders", "stg_orders"), ("customers", "stg_customers")):
        raw_n = corpus(f"select count(*) from raw.{table}")[0][0]
        kept = corpus(f"select count(*) from staging.{staged_model}")[0][0]
        lost = corpus(f"select count(*) from quarantine where source_table = '{table}' and action = 'dropped'")[0][0]
        assert raw_n == kept + lost, table


@pytest.fixture
def loaded_good(duck_warehouse, tmp_path) -> Warehouse:
    good = tmp_path / "good"
    good.mkdir()
    (good / "events.csv").write_text("event_id,event_type,occurred_at\ng1,page_view,2026-10-01T00:00:00Z\n")
    (good / "orders.csv").write_text("order_id,ordered_at\no1,2026-10-01T00:00:00Z\n")
    load(duck_warehouse, good, replace=True)
    return duck_warehouse


def snapshot(warehouse: Warehouse) -> dict:
    rows = Rows(warehouse)
    try:
        return {t: rows(f"select * from raw.{t} order by 1") for t in ("events", "orders", "customers")}
    finally:
        rows.engine.dispose()


@pytest.mark.parametrize("name, case", [c for c in FILE_CASES if c[1]["expect"]["kind"] == "load_error"],
                         ids=[n for n, c in FILE_CASES if c["expect"]["kind"] == "load_error"])
@pytest.mark.parametrize("replace", [False, True])
def test_file_case_is_refused_and_nothing_changes(loaded_good, name, case, replace):
    before = snapshot(loaded_good)
    with pytest.raises(LoadError) as err:
        load(loaded_good, CASES / name, replace=replace)
    for needle in case["expect"]["match"]:
        assert needle.lower() in str(err.value).lower(), (needle, str(err.value))
    assert snapshot(loaded_good) == before


def test_missing_optional_tables_build(duck_warehouse):
    case = yaml.safe_load((CASES / "52_missing_optional_tables" / "case.yml").read_text())
    load(duck_warehouse, CASES / "52_missing_optional_tables", replace=True)
    run_dbt(duck_warehouse, "build", as_of=AS_OF)
    rows = Rows(duck_warehouse)
    for table in case["expect"]["empty_tables"]:
        assert rows(f"select count(*) from raw.{table}")[0][0] == 0
    assert rows("select count(*) from profiles where email = 'solo@example.com'")[0][0] == 1
    rows.engine.dispose()
