"""The raw contract tables as Dagster assets (keys raw/<table>, the same keys dagster-dbt gives the
dbt sources, so lineage reads raw -> staging -> ... -> destinations).

Materialising them loads files: the paths in the run config, or every file waiting in the landing
folder (lifeline.yml landing_dir, laid out like `lifeline load` input). Loaded files move to
landing/_loaded/ so nothing is loaded twice.
"""

import shutil
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import duckdb

from orchestration.contract import RAW_TABLES
from orchestration.feedback_assets import FEEDBACK_KEY
from orchestration.load import LoadError, _kind, _relation, load_files
from syncs.warehouse import Warehouse

LOADED_DIR = "_loaded"
TIMED_TABLES = ("events", "message_events")  # the tables the daily partitions window by occurred_at


class LoadConfig(dg.Config):
    paths: list[str] = []
    replace: bool = False


def pending_files(landing: Path) -> dict[str, list[Path]]:
    """Files waiting in the landing folder, per contract table (landing/<table>.* or landing/<table>/*)."""
    found: dict[str, list[Path]] = {}
    if not landing.is_dir():
        return found
    for entry in sorted(landing.iterdir()):
        if entry.name.startswith((".", "_")):
            continue
        table = entry.name.split(".")[0]
        if table not in RAW_TABLES:
            continue
        files = [entry] if entry.is_file() else sorted(f for f in entry.rglob("*") if f.is_file())
        files = [f for f in files if _kind(f) and not f.name.startswith(".")]
        if files:
            found.setdefault(table, []).extend(files)
    return found


def covered_days(files: dict[str, list[Path]]) -> tuple[date, date] | None:
    """First and last UTC day of the parseable occurred_at values in the events and message_events
    files (parsed as the staging models parse them); None when they hold none."""
    days: list[date] = []
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        for table in TIMED_TABLES:
            if not files.get(table):
                continue
            try:
                rel = _relation(con, files[table])
            except LoadError:
                continue  # the load itself reports the unreadable file
            if "occurred_at" not in {c.lower() for c in rel.columns}:
                continue
            parsed = "timezone('UTC', try_cast(trim(cast(occurred_at as varchar)) as timestamptz))"
            low, high = rel.aggregate(f"min({parsed}), max({parsed})").fetchone()
            days += [moment.date() for moment in (low, high) if moment is not None]
    return (min(days), max(days)) if days else None


def _by_table(paths: list[str]) -> dict[str, list[Path]]:
    grouped: dict[str, list[Path]] = {}
    for raw in paths:
        path = Path(raw)
        table = path.name.split(".")[0] if path.name.split(".")[0] in RAW_TABLES else path.parent.name
        grouped.setdefault(table, []).append(path)
    return grouped


def build_raw_assets(warehouse: Warehouse, landing: Path, freshness_hours: float = 26.0) -> dg.AssetsDefinition:
    landing = landing.resolve()
    freshness = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=freshness_hours))
    specs = [dg.AssetSpec(key=["raw", name], group_name="raw", kinds={"file"}, freshness_policy=freshness,
                          deps=[FEEDBACK_KEY] if name == "message_events" else [],
                          description=f"Raw contract table `raw.{name}` (contract §1), loaded from files.")
             for name in RAW_TABLES]

    @dg.multi_asset(specs=specs, can_subset=True, name="raw_tables")
    def raw_tables(context: dg.AssetExecutionContext, config: LoadConfig):
        selected = {key.path[-1] for key in context.selected_asset_keys}
        files = _by_table(config.paths) if config.paths else pending_files(landing)
        files = {t: f for t, f in files.items() if t in selected}
        results = load_files(warehouse, files, replace=config.replace) if files else {}
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        for table_files in files.values():
            for f in table_files:
                if landing in f.resolve().parents:  # files from the landing folder move out of the way
                    target = landing / LOADED_DIR / stamp / f.resolve().relative_to(landing)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(str(f), target)
        for table in sorted(selected):
            loaded = results.get(table)
            yield dg.MaterializeResult(asset_key=["raw", table], metadata={
                "rows_loaded": loaded.rows if loaded else 0,
                "files": dg.MetadataValue.json([str(p) for p in (loaded.files if loaded else [])]),
            })

    return raw_tables
