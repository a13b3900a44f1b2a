"""Fixtures of the identity tests (helpers in identity_helpers.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from identity_helpers import Stitcher
from syncs.warehouse import Warehouse


@pytest.fixture(params=["duckdb", "postgres"], scope="module")
def module_stitcher(request, tmp_path_factory, module_warehouses) -> Stitcher:
    """One warehouse per module and engine, for tests that share one build."""
    folder = tmp_path_factory.mktemp("identity")
    with module_warehouses.hold(request.param, folder) as warehouse:
        yield Stitcher(warehouse, folder / "raw")


@pytest.fixture
def duck_stitcher(duck_warehouse: Warehouse, tmp_path: Path) -> Stitcher:
    return Stitcher(duck_warehouse, tmp_path / "raw")
