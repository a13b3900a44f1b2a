"""Fixtures of the identity tests (helpers in identity_helpers.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from identity_helpers import Stitcher
from syncs.warehouse import Warehouse


@pytest.fixture(params=["duckdb", "postgres"], scope="module")
def module_stitcher(request, tmp_path_factory) -> Stitcher:
    """One warehouse per module and engine, for tests that share one build."""
    folder = tmp_path_factory.mktemp("identity")
    if request.param == "duckdb":
        return Stitcher(Warehouse(kind="duckdb", duckdb_path=folder / "warehouse.duckdb"), folder / "raw")
    server = request.getfixturevalue("pg_server")
    name = f"identity_{folder.name.replace('-', '_')}"
    server.create_database(name)
    return Stitcher(Warehouse.from_env(server.env(name)), folder / "raw")


@pytest.fixture
def duck_stitcher(duck_warehouse: Warehouse, tmp_path: Path) -> Stitcher:
    return Stitcher(duck_warehouse, tmp_path / "raw")
