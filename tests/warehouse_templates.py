"""Warehouses prepared once per test module and copied into each test's fresh warehouse.

Many dbt tests start from the same state (a first batch loaded and built with --full-refresh) and
then exercise one path each. Loading and building that state costs 6-10 s per test and warehouse;
copying it costs a fraction of a second: a DuckDB file copy, or PostgreSQL's
`create database ... template`. The copy is the same database, byte for byte (DuckDB) or object for
object (PostgreSQL), so a test sees exactly what its own load and build would have left."""
from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from pg_server import PostgresServer
from syncs.warehouse import Warehouse

Prepare = Callable[[Warehouse, Path], None]
_names = itertools.count()


class WarehouseTemplates:
    """`fill(warehouse, key, prepare)`: the first call per (kind, key) runs `prepare(template, workdir)`
    on a template warehouse of the same kind; every call then replaces the given fresh, empty
    warehouse by a copy of that template."""

    def __init__(self, root: Path, pg_server: Callable[[], PostgresServer]):
        self.root = root
        self._pg_server = pg_server  # asked for only when a PostgreSQL warehouse is filled
        self._templates: dict[tuple[str, str], Warehouse] = {}

    def _template(self, like: Warehouse, key: str, prepare: Prepare) -> Warehouse:
        found = self._templates.get((like.kind, key))
        if found is not None:
            return found
        workdir = self.root / f"{like.kind}-{key}"
        workdir.mkdir(parents=True)
        if like.kind == "duckdb":
            template = Warehouse(kind="duckdb", duckdb_path=workdir / "template.duckdb")
        else:
            name = f"template_{os.getpid()}_{next(_names)}"
            server = self._pg_server()
            server.create_database(name)
            template = Warehouse.from_env(server.env(name))
        prepare(template, workdir)
        self._templates[(like.kind, key)] = template
        return template

    def fill(self, warehouse: Warehouse, key: str, prepare: Prepare) -> Warehouse:
        template = self._template(warehouse, key, prepare)
        if warehouse.kind == "duckdb":
            assert warehouse.duckdb_path is not None and not warehouse.duckdb_path.exists(), warehouse
            for suffix in ("", ".wal"):  # dbt closed the file: normally no WAL is left, but copy one if it is
                source = Path(f"{template.duckdb_path}{suffix}")
                if source.exists():
                    shutil.copyfile(source, f"{warehouse.duckdb_path}{suffix}")
            return warehouse
        # the fresh database was never used: replace it by a copy of the template
        self._pg_server().create_database(warehouse.pg["dbname"], template=template.pg["dbname"], replace=True)
        return warehouse
