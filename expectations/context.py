"""An ephemeral Great Expectations context (in memory, analytics off, no progress bars) and the
warehouse data source for it. Nothing is written to disk and nothing goes to the network."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import great_expectations as gx
from great_expectations.data_context import EphemeralDataContext
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
from great_expectations.datasource.fluent import SQLDatasource

from expectations.gx_duckdb import close_datasource
from syncs.warehouse import Warehouse

DATASOURCE_NAME = "lifeline_warehouse"


def ephemeral_context() -> EphemeralDataContext:
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    return gx.get_context(project_config=config, mode="ephemeral")


def require_warehouse(warehouse: Warehouse) -> None:
    """Checks read a warehouse, they never create one (connecting to DuckDB would create the file)."""
    if warehouse.kind == "duckdb" and not (warehouse.duckdb_path and warehouse.duckdb_path.exists()):
        raise FileNotFoundError(f"no DuckDB warehouse at {warehouse.duckdb_path}: run `lifeline load` "
                                "and `lifeline build` first, or set LIFELINE_DUCKDB_PATH")


@contextmanager
def warehouse_datasource(context: EphemeralDataContext, warehouse: Warehouse) -> Iterator[SQLDatasource]:
    """The warehouse as a GE SQL data source; its connections are closed on exit.

    DuckDB goes through :class:`expectations.gx_duckdb.LifelineDuckDBDatasource` (see that module
    for why GE's own `sql` source returns no rows there); PostgreSQL through GE's `postgres`.
    """
    require_warehouse(warehouse)
    if warehouse.kind == "duckdb":
        datasource = context.data_sources.add_lifeline_duckdb(
            name=DATASOURCE_NAME, connection_string=warehouse.sqlalchemy_url)
    else:
        datasource = context.data_sources.add_postgres(
            name=DATASOURCE_NAME, connection_string=warehouse.sqlalchemy_url)
    try:
        yield datasource
    finally:
        close_datasource(datasource)
        context.data_sources.delete(DATASOURCE_NAME)
