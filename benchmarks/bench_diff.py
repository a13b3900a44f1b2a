"""The audience diff alone: syncs.plan.build_diff + reading every page, after a 1% change.

    python benchmarks/bench_diff.py [--rows 10000000] [--pg-rows 1000000] [--repeats 3] [--quick]

For each warehouse: a synthetic audience_members table of --rows synced members (built by SQL,
benchmarks/synthetic_audience.py), lifeline_state.sync_state filled as if every member had been
synced, then a 1% change (a third removed, a third updated, a third added). Timed, per repeat:
build_diff (the temp-table diff) and reading all its pages the way run_sync does (adds/updates
in pages of --page-size, removes in pages of --remove-page-size). PostgreSQL runs on a throwaway
server (tests/pg_server.py) at --pg-rows (0 skips it). Writes benchmarks/results_diff.json and
appends a section to benchmarks/results.md. Target: <= 10 s for 10M rows on DuckDB.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.synthetic_audience import AUDIENCE, CHANNEL, apply_change, change_for, create_audience  # noqa: E402
from benchmarks.report import append_markdown, spread  # noqa: E402
from syncs.config import Destination, Source, SyncConfig  # noqa: E402
from syncs.plan import build_diff, pages, source_sql  # noqa: E402
from syncs.state import ensure_state  # noqa: E402
from syncs.warehouse import STATE_SCHEMA, Warehouse  # noqa: E402

RESULTS_JSON = ROOT / "benchmarks" / "results_diff.json"
TARGET_S = 10.0


def bench_sync_config(out_dir: Path) -> SyncConfig:
    return SyncConfig(name="bench_diff", source=Source(audience=AUDIENCE, channel=CHANNEL),
                      destination=Destination(type="file", base_url=str(out_dir)))


def fill_state(conn: sa.Connection, sync: SyncConfig) -> None:
    """sync_state as if every current member had been synced (one INSERT ... SELECT)."""
    source, params = source_sql(sync)
    conn.execute(sa.text(f"delete from {STATE_SCHEMA}.sync_state where sync_name = :name"), {"name": sync.name})
    conn.execute(sa.text(
        f"""insert into {STATE_SCHEMA}.sync_state (sync_name, key, row_hash, destination_id, status, attempts,
                                                    last_error, synced_at)
            select :name, key, row_hash, 'd-' || key, 'synced', 1, null, current_timestamp from ({source}) s"""),
        dict(params, name=sync.name))
    conn.commit()


def time_diff(conn: sa.Connection, sync: SyncConfig, page_size: int, remove_page_size: int) -> dict:
    started = time.perf_counter()
    plan = build_diff(conn, sync)
    diff_s = time.perf_counter() - started
    rows = 0
    page_count = 0
    for ops, size in ((("add", "update"), page_size), (("remove",), remove_page_size)):
        for page in pages(conn, ops, size):
            rows += len(page)
            page_count += 1
    total_s = time.perf_counter() - started
    conn.rollback()
    return {"build_diff_s": round(diff_s, 3), "pages_s": round(total_s - diff_s, 3), "total_s": round(total_s, 3),
            "rows_read": rows, "pages": page_count, "adds": plan.adds, "updates": plan.updates,
            "removes": plan.removes}


def bench_warehouse(warehouse: Warehouse, rows: int, repeats: int, page_size: int, remove_page_size: int,
                    out_dir: Path) -> dict:
    sync = bench_sync_config(out_dir)
    change = change_for(rows)
    engine = warehouse.engine()
    with engine.connect() as conn:
        started = time.perf_counter()
        create_audience(conn, rows)
        ensure_state(conn)
        fill_state(conn, sync)
        apply_change(conn, rows, change)
        if warehouse.kind == "postgres":
            conn.execute(sa.text("analyze"))
            conn.commit()
        setup_s = time.perf_counter() - started
        runs = [time_diff(conn, sync, page_size, remove_page_size) for _ in range(repeats)]
    engine.dispose()
    expected = {"adds": change.adds, "updates": change.updates, "removes": change.removes}
    wrong = [r for r in runs if {k: r[k] for k in expected} != expected]
    if wrong:
        raise RuntimeError(f"the diff found {wrong[0]} but the change was {expected}: the benchmark is not "
                           "measuring the intended diff")
    totals = [r["total_s"] for r in runs]
    return {"warehouse": warehouse.kind, "rows": rows, "change": expected, "setup_s": round(setup_s, 1),
            "page_size": page_size, "remove_page_size": remove_page_size, "runs": runs,
            "total_s": spread(totals),
            "build_diff_s": spread([r["build_diff_s"] for r in runs]),
            "pages_s": spread([r["pages_s"] for r in runs]),
            "target_s": TARGET_S, "meets_target": statistics.median(totals) <= TARGET_S}


def bench_postgres(rows: int, repeats: int, page_size: int, remove_page_size: int, out_dir: Path) -> dict:
    from tests.pg_server import PostgresServer, PostgresUnavailable

    try:
        server = PostgresServer.start()
    except PostgresUnavailable as exc:
        return {"warehouse": "postgres", "skipped": str(exc)}
    try:
        server.create_database("bench_diff")
        warehouse = Warehouse.from_env(server.env("bench_diff"))
        return bench_warehouse(warehouse, rows, repeats, page_size, remove_page_size, out_dir)
    finally:
        server.stop()


def run(rows: int = 10_000_000, pg_rows: int = 1_000_000, repeats: int = 3, page_size: int = 10_000,
        remove_page_size: int = 1_000, work: Path | None = None, out: Path = RESULTS_JSON,
        markdown: Path | None = None) -> dict:
    results: dict = {"rows": rows, "repeats": repeats}
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        duck = Warehouse(kind="duckdb", duckdb_path=Path(tmp) / "bench_diff.duckdb")
        results["duckdb"] = bench_warehouse(duck, rows, repeats, page_size, remove_page_size, Path(tmp) / "out")
        if pg_rows:
            results["postgres"] = bench_postgres(pg_rows, repeats, page_size, remove_page_size, Path(tmp) / "out")
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    out.write_text(json.dumps(results, indent=2) + "\n")
    append_markdown(markdown, "Audience diff (build_diff + all pages, 1% change)", diff_table(results))
    return results


def diff_table(results: dict) -> list[str]:
    lines = ["| warehouse | rows | adds / updates / removes | build_diff s | pages s | total s (median, min-max) |"
             " target |", "|---|---|---|---|---|---|---|"]
    for key in ("duckdb", "postgres"):
        r = results.get(key)
        if not r or "skipped" in r:
            continue
        c = r["change"]
        lines.append(f"| {key} | {r['rows']:,} | {c['adds']:,} / {c['updates']:,} / {c['removes']:,} | "
                     f"{r['build_diff_s']['median']} | {r['pages_s']['median']} | {r['total_s']['median']} "
                     f"({r['total_s']['min']}-{r['total_s']['max']}) | <= {TARGET_S:g} s: "
                     f"{'met' if r['meets_target'] else 'NOT met'} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000, help="synced members on DuckDB")
    parser.add_argument("--pg-rows", type=int, default=1_000_000, help="synced members on PostgreSQL (0 skips)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--page-size", type=int, default=10_000, help="add/update page (Klaviyo bulk import max)")
    parser.add_argument("--remove-page-size", type=int, default=1_000)
    parser.add_argument("--quick", action="store_true", help="100k rows on DuckDB, 20k on PostgreSQL")
    parser.add_argument("--out", type=Path, default=RESULTS_JSON)
    parser.add_argument("--markdown", default=str(ROOT / "benchmarks" / "results.md"),
                        help="file to append the section to ('' skips)")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.pg_rows = 100_000, min(args.pg_rows, 20_000)
    results = run(args.rows, args.pg_rows, args.repeats, args.page_size, args.remove_page_size, out=args.out,
                  markdown=Path(args.markdown) if args.markdown else None)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
