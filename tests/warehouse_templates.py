"""Warehouses prepared once per test module and copied into each test's fresh warehouse.

Many dbt tests start from the same state (a first batch loaded and built with --full-refresh) and
then exercise one path each. Loading and building that state costs 6-10 s per test and warehouse;
copying it costs a fraction of a second: a DuckDB file copy, or PostgreSQL's
`create database ... template`. The first test of a state prepares it in its own warehouse. The copy is the same database, byte for byte (DuckDB) or object for
object (PostgreSQL), so a test sees exactly what its own load and build would have left.

`built_once_per_run` does the same across the pytest-xdist workers, for a session's state that
several test files read (`--dist loadfile` sends them to different workers)."""
from __future__ import annotations

import fcntl
import itertools
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pg_server import PostgresServer
from syncs.warehouse import Warehouse

Prepare = Callable[[Warehouse, Path], None]
_names = itertools.count()


def copy_duckdb(source: Path, target: Path) -> None:
    """A closed DuckDB file into a new one (`target` must not exist yet)."""
    assert not target.exists(), target
    for suffix in ("", ".wal"):  # dbt closed the file: normally no WAL is left, but copy one if it is
        if Path(f"{source}{suffix}").exists():
            shutil.copyfile(f"{source}{suffix}", f"{target}{suffix}")


def linked_duckdb(link: Path, folder: Path) -> Warehouse:
    """A DuckDB warehouse in `folder`, reached through `link` (a symlink to `folder`, replaced): dbt
    keys its partial parse on the connection, DuckDB's path included, so a warehouse at a new path
    costs its first dbt command a parse of the whole project (3-4 s of CPU)."""
    if link.is_symlink():
        link.unlink()
    link.symlink_to(folder, target_is_directory=True)
    return Warehouse(kind="duckdb", duckdb_path=link / "warehouse.duckdb")


class ModuleWarehouses:
    """Module-scoped warehouses at the same DuckDB path (a link to the module's folder) and the same
    PostgreSQL database name for every module of this test process: dbt keys its partial parse on
    the connection, so a module's warehouse at a new path or name costs its first dbt command a
    parse of the whole project (3-4 s of CPU). One warehouse per kind at a time."""

    def __init__(self, root: Path, pg_server: Callable[[], PostgresServer]):
        self.root = root
        self._pg_server = pg_server  # asked for only when a PostgreSQL warehouse is held
        self._held: set[str] = set()

    @contextmanager
    def hold(self, kind: str, folder: Path) -> Iterator[Warehouse]:
        """A fresh, empty warehouse of `kind` (DuckDB's file in `folder`) until the block ends."""
        if kind in self._held:
            raise RuntimeError(f"a module-scoped {kind} warehouse is already held in this process: "
                               "give the second one a tmp_path of its own")
        self._held.add(kind)
        try:
            if kind == "duckdb":
                yield linked_duckdb(self.root / "module_warehouse", folder)
            else:
                server, name = self._pg_server(), f"lifeline_module_{os.getpid()}"
                server.create_database(name, replace=True)
                yield Warehouse.from_env(server.env(name))
        finally:
            self._held.discard(kind)


def built_once_per_run(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """The folder `build(folder)` filled, built once per test run: by the first pytest-xdist worker
    that asks (the others wait for it under a file lock, then read the same folder), or in this
    session's temporary folder without xdist. Readers must copy what they change."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        folder = tmp_path_factory.mktemp(name)
        build(folder)
        return folder
    folder = tmp_path_factory.getbasetemp().parent / name  # this run's folder, one per worker below it
    with open(f"{folder}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (folder / ".built").exists():
            shutil.rmtree(folder, ignore_errors=True)  # left by a worker whose build failed
            folder.mkdir()
            build(folder)
            (folder / ".built").touch()
    return folder


class WarehouseTemplates:
    """`fill(warehouse, key, prepare)`: the first call per (kind, key) runs `prepare(warehouse, workdir)`
    on the given fresh, empty warehouse itself and keeps a copy of it as the template; every later
    call replaces the given fresh, empty warehouse by a copy of that template. Preparing in the test's
    own warehouse (not in a template warehouse of its own) keeps dbt on one connection: its partial
    parse is keyed on the connection, and each new DuckDB path or database name costs a full parse
    (3-4 s of CPU)."""

    def __init__(self, root: Path, pg_server: Callable[[], PostgresServer]):
        self.root = root
        self._pg_server = pg_server  # asked for only when a PostgreSQL warehouse is filled
        self._templates: dict[tuple[str, str], Warehouse] = {}

    def _keep(self, prepared: Warehouse, key: str) -> Warehouse:
        """A copy of `prepared` (no connection to it may be open), kept as the template of `key`."""
        if prepared.kind == "duckdb":
            assert prepared.duckdb_path is not None, prepared
            workdir = self.root / f"duckdb-{key}"
            workdir.mkdir(parents=True, exist_ok=True)
            template = Warehouse(kind="duckdb", duckdb_path=workdir / "template.duckdb")
            copy_duckdb(prepared.duckdb_path, template.duckdb_path)
            return template
        name = f"template_{os.getpid()}_{next(_names)}"
        server = self._pg_server()
        server.create_database(name, template=prepared.pg["dbname"])
        return Warehouse.from_env(server.env(name))

    def fill(self, warehouse: Warehouse, key: str, prepare: Prepare) -> Warehouse:
        template = self._templates.get((warehouse.kind, key))
        if template is None:
            workdir = self.root / f"{warehouse.kind}-{key}"
            workdir.mkdir(parents=True, exist_ok=True)
            prepare(warehouse, workdir)
            self._templates[(warehouse.kind, key)] = self._keep(warehouse, key)
            return warehouse
        if warehouse.kind == "duckdb":
            assert warehouse.duckdb_path is not None and template.duckdb_path is not None, warehouse
            copy_duckdb(template.duckdb_path, warehouse.duckdb_path)
            return warehouse
        # the fresh database was never used: replace it by a copy of the template
        self._pg_server().create_database(warehouse.pg["dbname"], template=template.pg["dbname"], replace=True)
        return warehouse
