"""Great Expectations on DuckDB through duckdb-engine: keep the connection open until rows are fetched.

Root cause of the upstream bug (GX issues #10738 and #11579, duckdb-engine issues #734 and #1087):
GE's ``SqlAlchemyExecutionEngine.execute_query`` runs ``with engine.connect() as conn:
result = conn.execute(query)`` and returns ``result``; the caller calls ``result.fetchall()``
only after the ``with`` block has closed the connection. Closing a SQLAlchemy 2 connection rolls
back its autobegun transaction and the pool's reset-on-return rolls back again. With psycopg2
that is harmless: the cursor already holds every row client-side. With duckdb-engine the
DB-API "cursor" is the DuckDB connection itself, whose single pending result set is replaced by
the result of that ROLLBACK. ``fetchall()`` then returns ``[]`` and GE fails every expectation
with ``IndexError: list index out of range`` in ``resolve_metric_bundle``. Neither a
``StaticPool`` nor ``pool_reset_on_return=None`` fixes it, because ``Connection.close()`` itself
rolls back.

The fix: GE already keeps one connection open for the life of the execution engine for dialects
whose state lives on a connection (``_PERSISTED_CONNECTION_DIALECTS``: sqlite, SQL Server, ...);
DuckDB is missing from that list. :class:`PersistentConnectionExecutionEngine` applies that same
upstream code path to every dialect, so a result is fetched before anything else runs on the
connection, and the queries still run inside DuckDB (no table is pulled into Python).
:class:`LifelineDuckDBDatasource` is a GE SQL data source whose only difference from GE's own
``sql`` type is that engine. The caller must :func:`close_datasource` when done, so the DuckDB
file is released for the next writer (dbt, the loader).

Second upstream problem, same engine: duckdb-engine's SQLAlchemy reflection (``get_columns``)
queries ``pg_catalog.pg_collation``, which DuckDB does not have, so GE falls back to reading
columns by running ``select * from <table> limit 1`` *without the schema* (and, for a query
asset, the whole query, fetching every row into Python). :class:`DuckDBColumnsInspector` answers
``get_columns`` from ``information_schema.columns`` instead.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, ContextManager, Generator, Literal, Type

import sqlalchemy as sa
from great_expectations.datasource.fluent import SQLDatasource
from great_expectations.execution_engine import SqlAlchemyExecutionEngine

DATASOURCE_TYPE = "lifeline_duckdb"


class DuckDBColumnsInspector:
    """A SQLAlchemy inspector whose column reflection works on DuckDB (see the module docstring);
    everything else is the engine's own inspector."""

    def __init__(self, engine: sa.Engine, connect: Callable[[], ContextManager[sa.Connection]]) -> None:
        self._inspector = sa.inspect(engine)
        self._connect = connect  # the execution engine's persisted connection

    def __getattr__(self, name: str):
        return getattr(self._inspector, name)

    def get_columns(self, table_name: str, schema: str | None = None, **_kw) -> list[dict]:
        with self._connect() as connection:
            rows = connection.execute(sa.text(
                "select column_name, data_type, is_nullable from information_schema.columns "
                "where table_name = :t and table_schema = coalesce(:s, current_schema()) order by ordinal_position"),
                {"t": str(table_name), "s": schema}).fetchall()
        types = self._inspector.dialect.ischema_names
        return [{"name": name, "type": types.get(data_type.split("(")[0].lower(), sa.types.NullType)(),
                 "nullable": nullable == "YES", "default": None} for name, data_type, nullable in rows]

    def get_pk_constraint(self, table_name: str, schema: str | None = None, **_kw) -> dict:
        return {"constrained_columns": [], "name": None}


class PersistentConnectionExecutionEngine(SqlAlchemyExecutionEngine):
    """GE's persisted-connection path (used upstream for sqlite) for any dialect."""

    def get_inspector(self):  # type: ignore[override] - duck-typed inspector
        if self.engine.dialect.name != "duckdb":
            return super().get_inspector()
        if self._inspector is None:
            self._inspector = DuckDBColumnsInspector(self.engine, self.get_connection)
        return self._inspector

    @contextmanager
    def get_connection(self) -> Generator[sa.Connection, None, None]:
        if self._connection is None or self._connection.closed:
            self._connection = self.engine.connect()
        yield self._connection

    def close(self) -> None:
        if self._connection is not None and not self._connection.closed:
            self._connection.rollback()  # read-only work: nothing to keep
            self._connection.close()
        self._connection = None
        self.engine.dispose()


class LifelineDuckDBDatasource(SQLDatasource):
    """GE's generic SQL data source, run by :class:`PersistentConnectionExecutionEngine`."""

    type: Literal["lifeline_duckdb"] = "lifeline_duckdb"  # type: ignore[assignment]

    @property
    def execution_engine_type(self) -> Type[SqlAlchemyExecutionEngine]:
        return PersistentConnectionExecutionEngine


def close_datasource(datasource: SQLDatasource) -> None:
    """Release the data source's connections (and, for DuckDB, the database file)."""
    engine = datasource._execution_engine  # GE caches one execution engine per data source
    if isinstance(engine, PersistentConnectionExecutionEngine):
        engine.close()
    elif engine is not None:
        engine.engine.dispose()
    if datasource._engine is not None:
        datasource._engine.dispose()


def refresh_snapshot(datasource: SQLDatasource) -> None:
    """End the persisted connection's read transaction, so the next suite sees relations committed
    since (DuckDB gives a transaction a snapshot; the audience suites' views are made per suite)."""
    engine = datasource._execution_engine
    if isinstance(engine, PersistentConnectionExecutionEngine) and engine._connection is not None \
            and not engine._connection.closed:
        engine._connection.rollback()
