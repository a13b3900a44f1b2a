"""The incremental identity chain (int_identity_records -> int_identifier_occurrences ->
int_identifiers -> int_identity_edges -> int_identity_components -> identity_map ->
int_record_profiles) equals a --full-refresh build row for row after each run of a hand-written
history, on DuckDB and PostgreSQL; after each run int_profile_id_history equals what comparing every
identity_map row with its previous rows gives (`expected_history`), whether it read identity_map's
list of changes or fell back to that comparison:

1. new events with an existing combination (ann's cookie again, later, and once before anything else
   of ann's: her anchor, so every identifier's profile_id, moves) and a new one (dan's cookie with
   ben's user_id: dan merges into ben); a kiosk cookie seen with a sixth email crosses its link
   limit and becomes excluded, so the five people it linked split apart (edges of records the run
   did not touch; their emails vanish from the graph); a new customer and a new order; cat's
   customer row changes email (her old record is removed, and so is her old email, seen nowhere
   else). identity_map re-derives only the stamped components, and int_record_profiles re-resolves
   dan's untouched records through identity_map's list of changed identifiers;
2. a run with nothing new writes nothing; after a run of the records alone, a run of the edges
   alone fails (its parents have not caught up) and the next run of the chain catches up;
   the chain up to identity_map run alone in between (ben's new cookie): int_record_profiles and
   int_profile_id_history fall back (they missed a list of changes);
3. a late duplicate event_id with different identifiers wins: int_identity_records falls back
   to a full rebuild, and so do the models after it;
4. as_of moves back before the new events: stg_events deletes them, the records fall back again.
Each batch of new events has one without any identifier: staged, in no record, and not counted by
int_identity_records' check that no staged row was rewritten (a count that included it would
rebuild every record).
"""
from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

import table_snapshot
from dbt_results import failed_tests
from raw_batches import write_batch
from table_snapshot import rows
from orchestration.dbt_runner import run_dbt
from orchestration.load import load
from syncs.warehouse import Warehouse

AS_OF = datetime(2026, 11, 1)
BUILD = ["--select", "+int_identity_components", "identity_map", "identity_exclusions", "int_record_profiles",
         "int_profile_id_history", "--exclude-resource-type", "test"]
HISTORY = "intermediate.int_profile_id_history"
# Stored records that lost their profile stay as tombstones (profile_id null) by design.
RECORD_PROFILES = "(select * from intermediate.int_record_profiles where profile_id is not null) as record_profiles"
COMPARED = ["intermediate.int_identity_records", "intermediate.int_identifier_occurrences",
            "intermediate.int_identifiers", "intermediate.int_identity_edges",
            "intermediate.int_identity_components", "identity_map", "identity_exclusions", RECORD_PROFILES]
RUN_STAMPS = {"changed_at", "created_at", "staged_at", "exclusion_changed_at"}
CHAIN = ("int_identity_records", "int_identifier_occurrences", "int_identifiers", "int_identity_edges")

EVENT_HEADER = ["event_id", "event_type", "occurred_at", "anonymous_id", "user_id", "email"]
CUSTOMER_HEADER = ["customer_id", "email", "created_at", "updated_at"]
ORDER_HEADER = ["order_id", "ordered_at", "customer_id", "email", "anonymous_id"]
KIOSK = [[f"k{i}", "identify", f"2026-10-0{i}T10:00:00Z", "cookie-k", "", f"k{i}@x.com"] for i in range(1, 6)]
FIRST = {
    "events": (EVENT_HEADER, [
        ["e1", "identify", "2026-10-01T09:00:00Z", "cookie-ann", "u-ann", ""],
        ["e2", "page_view", "2026-10-02T09:00:00Z", "cookie-ann", "", ""],
        ["e3", "identify", "2026-10-10T09:00:00Z", "cookie-dan", "", "dan@x.com"],
        ["e4", "page_view", "2026-10-20T09:00:00Z", "cookie-cat", "u-cat", ""],
        ["e0", "page_view", "2026-10-03T09:00:00Z", "", "", ""],  # no identifier: staged, in no record
        *KIOSK,
    ]),
    "customers": (CUSTOMER_HEADER, [
        ["u-ann", "ann@x.com", "2026-08-01T09:00:00Z", "2026-08-01T09:00:00Z"],
        ["u-ben", "ben@x.com", "2026-08-02T09:00:00Z", "2026-08-02T09:00:00Z"],
        ["u-cat", "cat@x.com", "2026-08-03T09:00:00Z", "2026-08-03T09:00:00Z"],
    ]),
    "orders": (ORDER_HEADER, [["o1", "2026-10-01T09:30:00Z", "u-ann", "ann@x.com", "cookie-ann"]]),
}
SECOND = {
    "events": (EVENT_HEADER, [
        ["e5", "page_view", "2026-10-25T09:00:00Z", "cookie-ann", "", ""],  # existing combination, later
        ["e8", "page_view", "2026-07-15T09:00:00Z", "cookie-ann", "", ""],  # and earlier than all of ann's: her anchor
        ["e6", "identify", "2026-10-26T09:00:00Z", "cookie-dan", "u-ben", ""],  # dan's cookie is ben's
        ["k6", "identify", "2026-10-27T10:00:00Z", "cookie-k", "", "k6@x.com"],  # the kiosk's sixth email
        ["e10", "page_view", "2026-10-27T11:00:00Z", "", "", ""],  # no identifier: not counted below
    ]),
    "customers": (CUSTOMER_HEADER, [
        ["u-eve", "eve@x.com", "2026-10-27T09:00:00Z", "2026-10-27T09:00:00Z"],
        ["u-cat", "cat.new@x.com", "2026-08-03T09:00:00Z", "2026-10-28T09:00:00Z"],  # cat's new email
    ]),
    "orders": (ORDER_HEADER, [["o2", "2026-10-28T09:30:00Z", "u-ben", "ben@x.com", ""]]),
}
# An earlier copy of e3 with another email: it wins, so the stored e3 is rewritten.
EVE_AGAIN = {"events": (EVENT_HEADER, [["e7", "identify", "2026-10-29T09:00:00Z", "cookie-eve", "u-eve", ""]])}
BEN_COOKIE = {"events": (EVENT_HEADER, [["e9", "page_view", "2026-10-29T08:00:00Z", "cookie-ben", "u-ben", ""]])}
LATE_DUPLICATE = {"events": (EVENT_HEADER, [["e3", "identify", "2026-10-09T09:00:00Z", "cookie-dan", "", "dan.old@x.com"]])}


def build(warehouse: Warehouse, *args: str, as_of: datetime = AS_OF) -> dict[str, str]:
    """One dbt build of the identity chain; the line each incremental identity model logged. Asserts
    that int_profile_id_history is then what the full comparison gives."""
    history_before = history(warehouse)
    result = run_dbt(warehouse, "build", [*BUILD, *args], as_of=as_of)
    after = history(warehouse)
    assert after == expected_history(history_before, rows(warehouse, "select identifier_type, identifier_value, "
                                                                     "profile_id from identity_map"), after)
    return {m.group(1): m.group(2) for m in re.finditer(r"(int_\w+|identity_map) \(incremental\): (.*)", result.output)}


def history(warehouse: Warehouse) -> dict[tuple[str, str], tuple]:
    """int_profile_id_history by identifier: (profile_id, previous_profile_id, merged_away, run_id)."""
    engine = warehouse.engine()
    exists = sa.inspect(engine).has_table(HISTORY.split(".")[1], schema=HISTORY.split(".")[0])
    engine.dispose()
    if not exists:  # before the first build
        return {}
    found = rows(warehouse, f"select identifier_type, identifier_value, profile_id, previous_profile_id, merged_away, run_id "
                            f"from {HISTORY}")
    return {(t, v): (p, previous, bool(merged), run) for t, v, p, previous, merged, run in found}


def expected_history(before: dict[tuple[str, str], tuple], identity_map: list[tuple],
                     after: dict[tuple[str, str], tuple]) -> dict[tuple[str, str], tuple]:
    """The full comparison: every identity_map row whose profile_id differs from the stored one (or
    that has none) is upserted with the previous id, merged_away when no identity_map row has that
    id any more, and the run's run_id (read from `after`: the one id not among the stored rows)."""
    new_runs = {row[3] for row in after.values()} - {row[3] for row in before.values()}
    assert len(new_runs) <= 1, new_runs
    surviving = {profile_id for _, _, profile_id in identity_map}
    expected = dict(before)
    for identifier_type, value, profile_id in identity_map:
        stored = before.get((identifier_type, value))
        if stored is None or stored[0] != profile_id:
            previous = stored[0] if stored else None
            expected[(identifier_type, value)] = (profile_id, previous, previous is not None and previous not in surviving,
                                                  next(iter(new_runs), None))
    return expected


def written_by_last_run(warehouse: Warehouse, relation: str) -> int:
    return rows(warehouse, f"select count(*) from {relation} where changed_at = (select max(changed_at) from {relation})")[0][0]


def assert_equals_full_refresh(warehouse: Warehouse, as_of: datetime = AS_OF) -> dict[str, list[tuple]]:
    return table_snapshot.assert_same_as_full_refresh(
        warehouse, COMPARED, lambda: build(warehouse, "--full-refresh", as_of=as_of), RUN_STAMPS)


def profile(warehouse: Warehouse, identifier_type: str, value: str) -> str | None:
    found = rows(warehouse, f"select profile_id from identity_map where identifier_type = '{identifier_type}' "
                            f"and identifier_value = '{value}'")
    return found[0][0] if found else None


@pytest.fixture(scope="module")
def batches(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("incremental_identity")
    return {name: write_batch(root / name, batch)
            for name, batch in (("first", FIRST), ("second", SECOND), ("eve", EVE_AGAIN), ("ben", BEN_COOKIE),
                                ("late", LATE_DUPLICATE))}


def first_built(warehouse: Warehouse, batches: dict[str, Path], templates) -> None:
    """The first batch loaded and the identity chain built with --full-refresh (built once per
    module and warehouse kind, copied into `warehouse`)."""
    def prepare(template: Warehouse, _: Path) -> None:
        load(template, batches["first"], replace=True)
        build(template, "--full-refresh")

    templates.fill(warehouse, "first", prepare)


def test_new_events_customers_and_orders_update_the_chain_equal_to_a_full_refresh(any_warehouse, batches,
                                                                                    warehouse_templates):
    first_built(any_warehouse, batches, warehouse_templates)
    assert len({profile(any_warehouse, "email", f"k{i}@x.com") for i in range(1, 6)}) == 1  # the kiosk links them

    # 1. New events, customers and orders: every model takes its incremental path.
    ann_before, dan_before = profile(any_warehouse, "user_id", "u-ann"), profile(any_warehouse, "email", "dan@x.com")
    load(any_warehouse, batches["second"], replace=False)
    lines = build(any_warehouse)
    assert set(lines) >= set(CHAIN), lines
    assert "4 stg_events rows staged after" in lines["int_identity_records"], lines
    assert not any("rebuilding" in line for line in lines.values()), lines
    # Written: ann's cookie record, dan's new one, the kiosk's sixth, eve's customer record, cat's new
    # one and its old one's tombstone (removed by the post-hook), and the o2 order record.
    assert written_by_last_run(any_warehouse, "intermediate.int_identity_records") == 6
    assert rows(any_warehouse, "select count(*) from intermediate.int_identity_records__removed")[0][0] == 1
    # Of those, created by this run (new combinations, the only ones int_identity_edges reads): all but
    # ann's cookie record, into which e5 and e8 were merged (it keeps the first build's created_at).
    created = rows(any_warehouse, "select anonymous_id, user_id, email, created_at = changed_at "
                                  "from intermediate.int_identity_records where changed_at = "
                                  "(select max(changed_at) from intermediate.int_identity_records) order by 1, 2, 3")
    assert created == [("cookie-ann", None, None, False), ("cookie-dan", "u-ben", None, True),
                       ("cookie-k", None, "k6@x.com", True), (None, "u-ben", "ben@x.com", True),
                       (None, "u-cat", "cat.new@x.com", True), (None, "u-eve", "eve@x.com", True)], created
    assert "components, writing" in lines["identity_map"] and "resolving the records created" in lines["int_record_profiles"], lines
    assert "with identity_map's list of changes since" in lines["int_profile_id_history"], lines
    assert profile(any_warehouse, "anonymous_id", "cookie-dan") == profile(any_warehouse, "user_id", "u-ben")
    ann = profile(any_warehouse, "anonymous_id", "cookie-ann")  # her cookie, seen first now, is her anchor
    assert ann != ann_before and profile(any_warehouse, "user_id", "u-ann") == profile(any_warehouse, "email", "ann@x.com") == ann
    # Recorded as merges: ann's old id (her anchor moved) and dan's (into ben).
    merges = rows(any_warehouse, f"select distinct previous_profile_id, profile_id from {HISTORY} where merged_away")
    assert sorted(merges) == sorted([(ann_before, ann), (dan_before, profile(any_warehouse, "user_id", "u-ben"))]), merges
    dans = rows(any_warehouse, "select distinct profile_id from intermediate.int_record_profiles where email_key = 'dan@x.com'")
    assert dans == [(profile(any_warehouse, "user_id", "u-ben"),)]  # e3's record, not rewritten, re-resolved
    assert profile(any_warehouse, "email", "cat@x.com") is None
    assert profile(any_warehouse, "anonymous_id", "cookie-k") is None  # excluded as shared
    assert len({profile(any_warehouse, "email", f"k{i}@x.com") for i in range(1, 7)}) == 6
    assert_equals_full_refresh(any_warehouse)

    # 2. Nothing new: nothing is written.
    before = table_snapshot.snapshot(any_warehouse, COMPARED[:4])
    lines = build(any_warehouse)
    assert "0 stg_events rows staged after" in lines["int_identity_records"], lines
    assert "no record created or removed and no exclusion changed" in lines["int_identity_edges"], lines
    assert table_snapshot.snapshot(any_warehouse, COMPARED[:4]) == before

    # The chain up to identity_map alone, with ben's new cookie: int_record_profiles and
    # int_profile_id_history miss that run's list of changes, so they fall back below. identity_map
    # as an earlier release built it (no changed_at) gains the column in that incremental run.
    table_snapshot.execute(any_warehouse, "alter table identity_map drop column changed_at")
    load(any_warehouse, batches["ben"], replace=False)
    upgraded = run_dbt(any_warehouse, "build", ["--select", "+identity_map", "--exclude-resource-type", "test"], as_of=AS_OF)
    assert "components, writing" in upgraded.output, upgraded.output
    stamped = rows(any_warehouse, "select identifier_type, identifier_value from identity_map where changed_at is not null")
    assert ("anonymous_id", "cookie-ben") in stamped and len(stamped) < len(rows(any_warehouse, "select 1 from identity_map"))
    # The records alone, then the edges alone: refused, as the occurrences and identifiers lag behind.
    load(any_warehouse, batches["eve"], replace=False)
    run_dbt(any_warehouse, "build", ["--select", "+int_identity_records", "--exclude-resource-type", "test"], as_of=AS_OF)
    refused = run_dbt(any_warehouse, "build", ["--select", "int_identity_edges"], as_of=AS_OF, check=False)
    assert refused.returncode != 0
    assert "int_identifier_occurrences has not run since int_identity_records last changed" in refused.output
    lines = build(any_warehouse)
    assert not any("rebuilding" in line for line in lines.values()), lines
    assert "identity_map ran more than once" in lines["int_record_profiles"], lines
    assert "identity_map ran more than once" in lines["int_profile_id_history"], lines
    assert history(any_warehouse)[("anonymous_id", "cookie-ben")][0] == profile(any_warehouse, "user_id", "u-ben")
    assert profile(any_warehouse, "anonymous_id", "cookie-eve") == profile(any_warehouse, "user_id", "u-eve")
    assert_equals_full_refresh(any_warehouse)

    # The key tests of a `dbt build` read only the rows it wrote (changed_at >= its start): a duplicate
    # of an older row (u-ann in identity_map) is not read, two rows stamped as written by the build (u-ben) are caught; a `dbt test`
    # on its own wrote nothing, so it reads every row and finds both.
    components = "intermediate.int_identity_components"
    stamped_copy = (f"insert into {components} (identifier_key, component_key, degree, checksum, changed_at) "
                    f"select identifier_key, component_key, degree, checksum, cast('2100-01-01' as timestamp) "
                    f"from {components} where identifier_key = (select max(identifier_key) from {components})")
    stamped_ben = ("insert into identity_map (identifier_type, identifier_value, profile_id, changed_at) "
                   "select identifier_type, identifier_value, profile_id, cast('2100-01-01' as timestamp) "
                   "from identity_map where identifier_value = 'u-ben' and (changed_at is null or changed_at < cast('2100-01-01' as timestamp))")
    table_snapshot.execute(
        any_warehouse,
        "insert into intermediate.int_record_profiles select * from intermediate.int_record_profiles "
        "where record_id = (select min(record_id) from intermediate.int_record_profiles)",
        f"insert into {components} select * from {components} where identifier_key = (select min(identifier_key) from {components})",
        stamped_copy, stamped_copy,
        "insert into identity_map select * from identity_map where identifier_value = 'u-ann'",
        stamped_ben, stamped_ben)
    # Two builds: a failing test skips the tests of the models after its own in the same build.
    components_test = ["int_identity_components,test_name:unique"]
    after_components = ["int_record_profiles,test_name:unique", "identity_map,test_name:unique_columns"]
    identity_map_key = "unique_columns_identity_map_identifier_type__identifier_value"
    built = failed_tests(run_dbt(any_warehouse, "build", ["--select", *components_test], as_of=AS_OF, check=False))
    assert built == {"unique_int_identity_components_identifier_key": 1}, built
    built = failed_tests(run_dbt(any_warehouse, "build", ["--select", *after_components], as_of=AS_OF, check=False))
    assert built == {identity_map_key: 1}, built
    key_tests = ["--select", *components_test, *after_components]
    tested = failed_tests(run_dbt(any_warehouse, "test", key_tests, as_of=AS_OF, check=False))
    assert tested == {"unique_int_identity_components_identifier_key": 2, "unique_int_record_profiles_record_id": 1,
                      identity_map_key: 2}, tested


def test_a_rewritten_or_deleted_staged_event_rebuilds_the_chain_equal_to_a_full_refresh(any_warehouse, batches):
    load(any_warehouse, batches["first"], replace=True)
    load(any_warehouse, batches["second"], replace=False)
    build(any_warehouse, "--full-refresh")

    # 3. A late duplicate that wins with other identifiers: the records fall back, and so does the chain.
    load(any_warehouse, batches["late"], replace=False)
    lines = build(any_warehouse)
    assert "rebuilding every record" in lines["int_identity_records"], lines
    assert "rebuilt in full since the last run" in lines["int_identity_edges"], lines
    assert "rebuilt in full since the last run" in lines["identity_map"], lines
    assert "resolving every record" in lines["int_record_profiles"], lines
    assert "did not record its changes" in lines["int_profile_id_history"], lines
    full = assert_equals_full_refresh(any_warehouse)
    assert not any("dan@x.com" in row for row in full["intermediate.int_identity_records"])

    # 4. as_of moves back before the second batch: stg_events deletes its events, the records fall back.
    earlier = datetime(2026, 10, 24)
    lines = build(any_warehouse, as_of=earlier)
    assert "rebuilding every record" in lines["int_identity_records"], lines
    full = assert_equals_full_refresh(any_warehouse, as_of=earlier)
    assert not any("k6@x.com" in row for row in full["intermediate.int_identity_records"])


def test_a_table_built_by_an_earlier_release_asks_for_one_full_refresh(any_warehouse, batches, warehouse_templates):
    first_built(any_warehouse, batches, warehouse_templates)  # the chain and the models after it
    chain = ["--select", "+int_identity_edges", "--exclude-resource-type", "test"]
    edges = rows(any_warehouse, "select src, dst from intermediate.int_identity_edges order by 1, 2")
    engine = any_warehouse.engine()
    with engine.begin() as conn:  # the edges as the earlier release built them: no changed_at
        conn.execute(sa.text("alter table intermediate.int_identity_edges drop column changed_at"))
    engine.dispose()

    refused = run_dbt(any_warehouse, "build", chain, as_of=AS_OF, check=False)
    assert refused.returncode != 0
    assert "without the column(s) changed_at" in refused.output and "--full-refresh" in refused.output
    assert rows(any_warehouse, "select src, dst from intermediate.int_identity_edges order by 1, 2") == edges

    run_dbt(any_warehouse, "build", [*chain, "--full-refresh"], as_of=AS_OF)
    assert rows(any_warehouse, "select src, dst from intermediate.int_identity_edges order by 1, 2") == edges
