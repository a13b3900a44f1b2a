"""Real public datasets -> the raw contract tables (shared/contract.md §1), as Parquet files.

`lifeline load --format online_retail|cdnow PATH` converts PATH with :func:`convert` into a
folder of `<table>.parquet` files, then loads that folder like any other raw input.
One module per dataset; each documents its mapping rules.
"""
from __future__ import annotations

from pathlib import Path

from seeds.adapters import cdnow, online_retail
from seeds.adapters.common import AdapterError

FORMATS = ("online_retail", "cdnow")

__all__ = ["AdapterError", "FORMATS", "convert"]


def convert(fmt: str, src: Path, out_dir: Path) -> dict[str, int]:
    """Convert the dataset file ``src`` (layout ``fmt``) into ``out_dir/<table>.parquet``; returns
    rows written per table. On bad input raises :class:`AdapterError` and writes nothing."""
    converters = {"online_retail": online_retail.convert, "cdnow": cdnow.convert}
    if fmt not in converters:
        raise AdapterError(f"unknown dataset format {fmt!r}: choose one of {', '.join(FORMATS)}.")
    return converters[fmt](Path(src), Path(out_dir))
