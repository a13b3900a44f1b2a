"""Run the data-quality suites against the warehouse and record what they found.

    result = run_suite(warehouse, "raw.events", params={"as_of": as_of})
    if not result.success: ...   # an ERROR expectation failed: block the downstream syncs

Each run validates SQL inside the warehouse (GE table assets on the table itself, or on a view in
the `lifeline_dq` schema for an audience; nothing is pulled into pandas or Python). Not query
assets: GE reads a query asset's columns by running the whole query and fetching every row
(`column_reflection_fallback`), which pulled entire raw tables into Python,
writes the full GE result as JSON under `results_dir` (default `.lifeline/dq/`) and one row per
expectation into `lifeline_state.dq_results`. DuckDB and PostgreSQL take the same path; DuckDB's
data source keeps its connection open until rows are fetched (expectations/gx_duckdb.py).
Suite names: `raw.<table>`, `profiles`, `audience.<audience>.<channel>`.
"""
from __future__ import annotations

import json
import re
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from great_expectations.core import ExpectationSuite, ExpectationSuiteValidationResult
from great_expectations.core.expectation_validation_result import ExpectationValidationResult

from expectations import sql, suites
from expectations.params import DQParams
from expectations.context import ephemeral_context, require_warehouse, warehouse_datasource
from expectations.gx_duckdb import refresh_snapshot
from expectations.store import ResultRow, last_accepted_value, write_results
from syncs.warehouse import RAW_SCHEMA, Warehouse

DEFAULT_RESULTS_DIR = Path(".lifeline/dq")
# No row values in results (they can be emails or phones): counts and shares only.
RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 0}
PROFILES_TABLE = "profiles"
MEMBERS_TABLE = "audience_members"


class UnknownSuiteError(ValueError):
    """The suite name is not one this project defines; the message lists the valid forms."""


@dataclass(frozen=True)
class CheckOutcome:
    check: str
    expectation_type: str
    severity: str
    success: bool
    observed_value: str | None


@dataclass
class SuiteResult:
    suite: str
    asset: str
    run_id: str
    success: bool                          # every ERROR expectation passed
    blocking_failures: list[CheckOutcome]  # failed ERROR expectations
    warnings: list[CheckOutcome]           # failed WARN expectations
    statistics: dict[str, Any]
    result_path: Path
    outcomes: list[CheckOutcome] = field(default_factory=list)

    def failed(self, check: str) -> CheckOutcome | None:
        return next((o for o in self.outcomes if o.check == check and not o.success), None)


@dataclass(frozen=True)
class _Plan:
    suite: ExpectationSuite
    asset: str   # what is validated, for people: a table name or a description
    schema: str  # the relation GE validates (a table, or a view made for the audience suites)
    table: str


# -- plan ------------------------------------------------------------------------------------
def _split_table(table: str, default_schema: str) -> tuple[str, str]:
    schema, _, name = table.rpartition(".")
    return (schema or default_schema), name


class MissingTableError(LookupError):
    """The table a suite validates is not in the warehouse."""


def _columns(engine: sa.Engine, relation: str) -> list[str]:
    try:
        with engine.connect() as connection:
            return list(connection.execute(sa.text(f"select * from {relation} where 1 = 0")).keys())
    except sa.exc.DBAPIError as exc:
        raise MissingTableError(f"cannot read {relation}: load it first (`lifeline load`) or pick a suite "
                                f"from available_suites(warehouse) ({exc.orig})") from exc


def _plan(warehouse: Warehouse, engine: sa.Engine, suite_name: str, table: str | None,
          params: DQParams) -> _Plan:
    if suite_name.startswith("raw."):
        raw_table = suite_name.removeprefix("raw.")
        if raw_table not in suites.RAW_TABLES:
            raise UnknownSuiteError(f"unknown suite {suite_name!r}: raw.<table> suites exist for "
                                    f"{', '.join(sorted(suites.RAW_TABLES))}; see available_suites(warehouse)")
        schema, name = _split_table(table or f"{RAW_SCHEMA}.{raw_table}", RAW_SCHEMA)
        relation = sql.qualified(schema, name)
        suite = suites.raw_suite(raw_table, as_of=params.as_of, columns=_columns(engine, relation),
                                 future_tolerance=timedelta(days=params.future_tolerance_days))
        return _Plan(suite, f"{schema}.{name}", schema, name)
    if suite_name == "profiles":
        schema, name = _split_table(table or PROFILES_TABLE, warehouse.marts_schema)
        suite = suites.profiles_suite(contactability_min=params.contactability_min,
                                      contactability_max=params.contactability_max)
        return _Plan(suite, f"{schema}.{name}", schema, name)
    match = re.fullmatch(r"audience\.(.+)\.([^.]+)", suite_name)
    if match:
        audience, channel = match.groups()
        previous = last_accepted_value(engine, suite_name, suites.SIZE_CHECK)
        suite = suites.audience_suite(audience, channel,
                                      previous_size=int(json.loads(previous)) if previous else None,
                                      max_size_change=params.max_size_change)
        query = sql.audience_query(warehouse, audience, channel, members_table=table or MEMBERS_TABLE)
        view = sql.audience_view(engine, warehouse, suite_name, query)
        return _Plan(suite, f"{table or MEMBERS_TABLE}[audience={audience}, channel={channel}]", sql.DQ_SCHEMA, view)
    raise UnknownSuiteError(
        f"unknown suite {suite_name!r}: use raw.<table> ({', '.join(sorted(suites.RAW_TABLES))}), "
        "'profiles', or audience.<audience>.<channel>; available_suites(warehouse) lists them")


# -- results -----------------------------------------------------------------------------------
def _observed(result: ExpectationValidationResult) -> str | None:
    if result.exception_info and result.exception_info.get("raised_exception"):
        return f"error: {result.exception_info.get('exception_message')}"[:500]
    errors = [v.get("exception_message") for v in (result.exception_info or {}).values()
              if isinstance(v, dict) and v.get("raised_exception")]
    if errors:
        return f"error: {errors[0]}"[:500]
    payload = result.result or {}
    if "observed_value" in payload:  # for UnexpectedRowsExpectation: the number of rows returned
        value: Any = payload["observed_value"]
    else:
        value = {k: payload[k] for k in ("element_count", "unexpected_count", "unexpected_percent",
                                          "missing_count") if k in payload}
    return json.dumps(value, default=str, sort_keys=True)


def _outcomes(validation: ExpectationSuiteValidationResult) -> list[CheckOutcome]:
    outcomes = []
    for result in validation.results:
        config = result.expectation_config
        meta = config.meta or {}
        outcomes.append(CheckOutcome(
            check=meta.get("check", config.type), expectation_type=config.type,
            severity=suites.severity_of(meta), success=bool(result.success), observed_value=_observed(result)))
    return outcomes


def _safe_filename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


class _Session:
    """One GE context and warehouse data source, shared by the suites of one run."""

    def __init__(self, warehouse: Warehouse, results_dir: Path | None, run_id: str | None) -> None:
        self.warehouse = warehouse
        self.results_dir = Path(results_dir) if results_dir is not None else DEFAULT_RESULTS_DIR
        self.run_id = run_id or uuid.uuid4().hex
        self._stack = ExitStack()

    def __enter__(self) -> "_Session":
        require_warehouse(self.warehouse)
        self.engine = self.warehouse.engine()
        self._stack.callback(self.engine.dispose)
        with self.engine.begin() as connection:
            sql.prepare_scratch_schema(connection, self.warehouse)
        self.context = ephemeral_context()
        self.datasource = self._stack.enter_context(warehouse_datasource(self.context, self.warehouse))
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def run(self, suite_name: str, table: str | None, params: DQParams) -> SuiteResult:
        plan = _plan(self.warehouse, self.engine, suite_name, table, params)
        refresh_snapshot(self.datasource)
        asset = self.datasource.add_table_asset(name=f"{_safe_filename(suite_name)}__{uuid.uuid4().hex[:8]}",
                                                table_name=plan.table, schema_name=plan.schema)
        try:
            batch = asset.add_batch_definition_whole_table("all").get_batch()
            validation = batch.validate(plan.suite, result_format=RESULT_FORMAT)
        finally:
            self.datasource.delete_asset(asset.name)
        outcomes = _outcomes(validation)
        checked_at = datetime.now(timezone.utc).replace(tzinfo=None)
        result_path = self.results_dir / self.run_id / f"{_safe_filename(suite_name)}.json"
        result_path.parent.mkdir(parents=True, exist_ok=True)
        document = {"run_id": self.run_id, "suite": suite_name, "asset": plan.asset,
                    "checked_at": checked_at.isoformat() + "Z", "result": validation.to_json_dict()}
        result_path.write_text(json.dumps(document, indent=2, default=str))
        write_results(self.engine, [
            ResultRow(self.run_id, suite_name, plan.asset, o.check, o.severity, o.success, o.observed_value,
                      checked_at) for o in outcomes])
        blocking = [o for o in outcomes if not o.success and o.severity == suites.ERROR]
        return SuiteResult(
            suite=suite_name, asset=plan.asset, run_id=self.run_id, success=not blocking,
            blocking_failures=blocking, warnings=[o for o in outcomes if not o.success and o.severity == suites.WARN],
            statistics=dict(validation.statistics), result_path=result_path, outcomes=outcomes)


# -- public API --------------------------------------------------------------------------------
def run_suite(warehouse: Warehouse, suite_name: str, *, table: str | None = None, params: dict | None = None,
              results_dir: Path | None = None, run_id: str | None = None) -> SuiteResult:
    """Validate one suite. `table` overrides the validated table (`schema.table` or `table`; for
    an audience suite, the audience_members table). `params`: the fields of
    :class:`expectations.params.DQParams` (as_of, future_tolerance_days, contactability_min/max,
    max_size_change); unknown keys raise a pydantic ValidationError."""
    checked = DQParams(**(params or {}))
    with _Session(warehouse, results_dir, run_id) as session:
        return session.run(suite_name, table, checked)


def available_suites(warehouse: Warehouse) -> list[str]:
    """The suites that apply to what is in the warehouse now: raw tables present, `profiles` when
    built, and one suite per (audience, channel) in audience_members."""
    require_warehouse(warehouse)
    engine = warehouse.engine()
    try:
        with engine.connect() as connection:
            relations = set(connection.execute(sa.text(
                "select table_schema, table_name from information_schema.tables")).tuples())
            names = [f"raw.{t}" for t in suites.RAW_TABLES if (RAW_SCHEMA, t) in relations]
            if (warehouse.marts_schema, PROFILES_TABLE) in relations:
                names.append("profiles")
            if (warehouse.marts_schema, MEMBERS_TABLE) in relations:
                pairs = connection.execute(sa.text(
                    f"select distinct audience, channel from {sql.qualified(warehouse.marts_schema, MEMBERS_TABLE)}"
                    " where audience is not null and channel is not null order by audience, channel")).tuples()
                names += [suites.audience_suite_name(a, c) for a, c in pairs]
        return names
    finally:
        engine.dispose()


def run_all(warehouse: Warehouse, *, params: dict | None = None, results_dir: Path | None = None,
            suite_names: list[str] | None = None) -> list[SuiteResult]:
    """Run every available suite (or `suite_names`) under one run_id and one GE context."""
    checked = DQParams(**(params or {}))
    names = suite_names if suite_names is not None else available_suites(warehouse)
    with _Session(warehouse, results_dir, None) as session:
        return [session.run(name, None, checked) for name in names]
