"""Identity stitching in the warehouse vs scipy.sparse.csgraph.connected_components.

    python benchmarks/bench_identity.py --people 1000000,5000000 [--work DIR]
    run(work=Path(...), scales=(1_000_000,)) -> dict          # used by benchmarks/run.py

For each scale: generate people with seeds.generate, load into a fresh DuckDB file, build the
identity models with dbt (`+int_identity_components`, full refresh), and read the stitching's own
log line (rounds, pointer jumps, seconds of the connected-components macro, components). Then, in
a separate process so its peak memory is its own, read the same edges (int_identity_edges) from
the same file and run scipy's connected_components on them (reading included in its seconds).
Peak memory: dbt's from wait4 (orchestration.dbt_runner), scipy's from its own VmHWM. Checks
that both find the same number of components, and reports the ratio of the warehouse's
graph seconds to scipy's. Writes benchmarks/results_identity.json and results_identity.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS_JSON = ROOT / "benchmarks" / "results_identity.json"
RESULTS_MD = ROOT / "benchmarks" / "results_identity.md"
AS_OF = datetime(2026, 11, 1)
GRAPH_LINE = re.compile(r"identity graph: (\d+) rounds, (\d+) pointer jumps, ([\d.]+) s, (\d+) linked identifiers "
                        r"in (\d+) components, largest (\d+)")


def scipy_components(duckdb_path: Path) -> dict:
    """Runs in its own process: read the edges, label them, report seconds and components."""
    import duckdb
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    started = time.perf_counter()
    con = duckdb.connect(str(duckdb_path), read_only=True)
    edges = con.execute("select src, dst from intermediate.int_identity_edges").fetchnumpy()
    con.close()
    read_s = time.perf_counter() - started
    nodes, index = np.unique(np.concatenate([edges["src"], edges["dst"]]), return_inverse=True)
    half = len(edges["src"])
    graph = coo_matrix((np.ones(half, dtype=np.int8), (index[:half], index[half:])), shape=(len(nodes), len(nodes)))
    count, _labels = connected_components(graph, directed=False)
    seconds = time.perf_counter() - started
    # VmHWM is this process's own peak RSS (ru_maxrss would include the parent's at fork time).
    hwm_kb = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
                  if line.startswith("VmHWM:"))
    return {"seconds": round(seconds, 3), "read_s": round(read_s, 3), "edges": int(half), "nodes": int(len(nodes)),
            "components": int(count), "peak_rss_mb": round(hwm_kb / 1024, 1)}


def _scipy_in_child(duckdb_path: Path) -> dict:
    """scipy in a child process, so its seconds and peak memory are its own."""
    done = subprocess.run([sys.executable, __file__, "--scipy-worker", str(duckdb_path)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise RuntimeError(f"scipy worker failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_scale(people: int, work: Path, graph_only: bool = False) -> dict:
    from orchestration.dbt_runner import run_dbt
    from orchestration.load import load
    from syncs.warehouse import Warehouse

    data = work / f"identity_{people}"
    db = work / f"identity_{people}.duckdb"
    warehouse = Warehouse(kind="duckdb", duckdb_path=db)
    if graph_only and db.exists():
        # Reuse a kept file: rebuild only the components from its edges.
        result = run_dbt(warehouse, "run", ["--select", "int_identity_components", "--full-refresh"], as_of=AS_OF)
        return _measure(people, result, db, {"mode": "graph-only", "generate_s": None, "load_s": None})
    started = time.perf_counter()
    if not (data / "_truth" / "manifest.json").exists():
        # In a child process: the generator's memory must not inflate the peak RSS of later children.
        subprocess.run([sys.executable, "-m", "seeds.generate", "--people", str(people), "--seed", "42",
                        "--out", str(data), "--as-of", AS_OF.strftime("%Y-%m-%dT%H:%M:%S")],
                       cwd=ROOT, check=True, capture_output=True)
    generate_s = time.perf_counter() - started
    db.unlink(missing_ok=True)
    started = time.perf_counter()
    load(warehouse, data, replace=True)
    load_s = time.perf_counter() - started
    run_dbt(warehouse, "seed", as_of=AS_OF)
    result = run_dbt(warehouse, "run", ["--select", "+int_identity_components", "--full-refresh"], as_of=AS_OF)
    return _measure(people, result, db, {"mode": "full", "generate_s": round(generate_s, 1),
                                         "load_s": round(load_s, 1)})


def _measure(people: int, result, db: Path, timings: dict) -> dict:
    found = GRAPH_LINE.search(result.output)
    if not found:
        raise RuntimeError("dbt ran but printed no 'identity graph:' line; is int_identity_components selected?")
    graph = {"rounds": int(found[1]), "pointer_jumps": int(found[2]), "seconds": float(found[3]),
             "linked_identifiers": int(found[4]), "components": int(found[5]), "largest": int(found[6])}
    scipy = _scipy_in_child(db)
    if scipy["components"] != graph["components"] or scipy["nodes"] != graph["linked_identifiers"]:
        raise RuntimeError(f"warehouse and scipy disagree: {graph} vs {scipy}")
    return {
        "people": people,
        **timings,
        "dbt_identity_run_s": round(result.seconds, 1),
        "dbt_peak_rss_mb": round(getattr(result, "peak_rss_mb", 0.0), 1),
        "warehouse_graph": graph,
        "scipy": scipy,
        "ratio_graph_vs_scipy": round(graph["seconds"] / scipy["seconds"], 2),
    }


RECOMPUTE_LINE = re.compile(r"recomputing (\d+) identifiers in touched components, of (\d+) stored")


def bench_incremental_graph(people: int, work: Path, share: float = 0.01) -> dict:
    """On a kept file: add `share` x edges to int_identity_edges (half attach new identifiers to
    random existing ones, half join two random existing ones), run int_identity_components
    incrementally, then fully, and check that both give the same labels."""
    import duckdb

    from orchestration.dbt_runner import run_dbt
    from syncs.warehouse import Warehouse

    db = work / f"identity_{people}.duckdb"
    warehouse = Warehouse(kind="duckdb", duckdb_path=db)
    run_dbt(warehouse, "run", ["--select", "int_identity_components", "--full-refresh"], as_of=AS_OF)
    con = duckdb.connect(str(db))
    total = con.execute("select count(*) from intermediate.int_identity_edges").fetchone()[0]
    half = max(int(total * share / 2), 1)
    con.execute(f"""insert into intermediate.int_identity_edges
        select identifier_key, 4611686018427387904 + row_number() over () from (
            select identifier_key from intermediate.int_identity_components using sample {half} rows (reservoir, 7))""")
    con.execute(f"""insert into intermediate.int_identity_edges
        select a.identifier_key, b.identifier_key from
            (select identifier_key, row_number() over () as i from intermediate.int_identity_components
             using sample {half} rows (reservoir, 8)) a
            join (select identifier_key, row_number() over () as i from intermediate.int_identity_components
             using sample {half} rows (reservoir, 9)) b using (i)
        where a.identifier_key <> b.identifier_key""")
    con.close()
    incremental = run_dbt(warehouse, "run", ["--select", "int_identity_components"], as_of=AS_OF)
    con = duckdb.connect(str(db))
    con.execute("create or replace table intermediate.bench_incremental_labels as "
                "select identifier_key, component_key from intermediate.int_identity_components")
    con.close()
    full = run_dbt(warehouse, "run", ["--select", "int_identity_components", "--full-refresh"], as_of=AS_OF)
    con = duckdb.connect(str(db))
    differing = con.execute("""select count(*) from (
        (select identifier_key, component_key from intermediate.bench_incremental_labels
         except select identifier_key, component_key from intermediate.int_identity_components)
        union all
        (select identifier_key, component_key from intermediate.int_identity_components
         except select identifier_key, component_key from intermediate.bench_incremental_labels))""").fetchone()[0]
    con.execute("drop table intermediate.bench_incremental_labels")
    con.close()
    recomputed = RECOMPUTE_LINE.search(incremental.output)
    inc_graph, full_graph = GRAPH_LINE.search(incremental.output), GRAPH_LINE.search(full.output)
    if differing or not (recomputed and inc_graph and full_graph):
        raise RuntimeError(f"incremental components differ from a full rebuild in {differing} rows")
    return {"people": people, "new_edges": 2 * half, "edges_before": int(total),
            "recomputed_identifiers": int(recomputed[1]), "stored_identifiers": int(recomputed[2]),
            "incremental_graph_s": float(inc_graph[3]), "incremental_model_s": round(incremental.seconds, 1),
            "full_graph_s": float(full_graph[3]), "full_model_s": round(full.seconds, 1),
            "identical_to_full_refresh": True}


def markdown(results: dict) -> str:
    lines = ["# Identity stitching benchmark (DuckDB vs scipy)", "",
             f"Machine: {results['machine']['cpus']} cores, {results['machine']['platform']}; run {results['machine']['when']}.",
             "Warehouse graph s = the connected-components macro inside dbt (temp tables, SQL rounds); scipy s = "
             "reading the same edges from the same DuckDB file + scipy.sparse.csgraph.connected_components, in its "
             "own process. dbt run s = the whole identity build (staging, edges, components) from raw in mode "
             "full, only the components model in mode graph-only (re-run on a kept file).", "",
             "| people | mode | edges | linked identifiers | components | rounds (jumps) | warehouse graph s | scipy s "
             "(read s) | ratio | dbt run s | dbt peak MB | scipy peak MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["scales"]:
        g, s = r["warehouse_graph"], r["scipy"]
        lines.append(f"| {r['people']:,} | {r.get('mode', 'full')} | {s['edges']:,} | {g['linked_identifiers']:,} | {g['components']:,} | "
                     f"{g['rounds']} ({g['pointer_jumps']}) | {g['seconds']} | {s['seconds']} ({s['read_s']}) | "
                     f"{r['ratio_graph_vs_scipy']}x | {r['dbt_identity_run_s']} | {r['dbt_peak_rss_mb']} | "
                     f"{s['peak_rss_mb']} |")
    for r in results.get("incremental", []):
        lines += ["", f"Incremental graph at {r['people']:,} people: {r['new_edges']:,} new edges (1%) -> "
                  f"{r['recomputed_identifiers']:,} of {r['stored_identifiers']:,} identifiers recomputed; graph "
                  f"{r['incremental_graph_s']} s (model {r['incremental_model_s']} s) vs full {r['full_graph_s']} s "
                  f"(model {r['full_model_s']} s); labels identical to a full refresh."]
    return "\n".join(lines) + "\n"


def run(work: Path, scales: Sequence[int] = (1_000_000,), keep: bool = False, graph_only: bool = False) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    results = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                           "when": datetime.now(timezone.utc).isoformat(timespec="seconds")},
               "scales": []}
    for people in scales:
        results["scales"].append(bench_scale(people, work, graph_only=graph_only))
        RESULTS_JSON.write_text(json.dumps(results, indent=2) + "\n")
        RESULTS_MD.write_text(markdown(results))
        if not keep:
            (work / f"identity_{people}.duckdb").unlink(missing_ok=True)
            shutil.rmtree(work / f"identity_{people}", ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", default="1000000", help="comma-separated scales, e.g. 1000000,5000000")
    parser.add_argument("--work", default=str(ROOT / "benchmarks" / ".data"), help="scratch folder for data")
    parser.add_argument("--keep", action="store_true", help="keep the generated data and DuckDB files")
    parser.add_argument("--graph-only", action="store_true",
                        help="with a file kept by --keep: rebuild only the components (dbt run s is then that model)")
    parser.add_argument("--incremental-only", action="store_true",
                        help="with a file kept by --keep: add 1%% edges, time the incremental components run")
    parser.add_argument("--scipy-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scipy_worker:
        print(json.dumps(scipy_components(Path(args.scipy_worker))))
        return
    if args.incremental_only:
        found = [bench_incremental_graph(int(p), Path(args.work)) for p in args.people.split(",") if p]
        merged = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {"scales": []}
        merged["incremental"] = found
        RESULTS_JSON.write_text(json.dumps(merged, indent=2) + "\n")
        print(json.dumps(found, indent=2))
        return
    results = run(Path(args.work), [int(p) for p in args.people.split(",") if p], keep=args.keep,
                  graph_only=args.graph_only)
    print(markdown(results))


if __name__ == "__main__":
    main()
