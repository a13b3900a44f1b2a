"""`make bench`: generate data at chosen scales and measure the pipeline, in one run.

    python benchmarks/run.py [--scales 100000,1000000] [--only build,incremental,...] [--keep]

Writes benchmarks/results.json (raw figures, machine and versions) and benchmarks/results.md
(tables), and prints the README summary table. Ratios are computed against a baseline measured
in the same run, because this machine is shared and noisy.

Sections:
  build        full build at each scale: seconds and peak RSS of each model group (one dbt
               subprocess per group, peak RSS from wait4) plus the prediction step
  incremental  append 1% new events (the last day's traffic), rebuild; seconds as a share of the full build
  identity     benchmarks/bench_identity.py (stitching vs scipy connected_components)
  sync         benchmarks/bench_sync.py (records/s vs drt-core, share of the rate limit, peak RSS at 10M)
  diff         benchmarks/bench_diff.py (build_diff + all pages of a 10M-row audience after a 1% change)
  freshness    benchmarks/bench_freshness.py (landing file -> destination through the sensor)
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import shutil
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: tests load this file by path, beside a `benchmarks` test package
    from benchmarks.report import Measured
    from benchmarks.rss_sampler import ChildRssSampler

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestration.dbt_runner import run_dbt  # noqa: E402
from orchestration.load import load  # noqa: E402
from syncs.warehouse import Warehouse  # noqa: E402

GROUPS = ["staging", "quality", "identity", "profiles", "lifecycle", "audiences", "analytics", "tests"]
AS_OF = datetime(2026, 11, 1, tzinfo=timezone.utc)
RESULTS_JSON = ROOT / "benchmarks" / "results.json"
RESULTS_MD = ROOT / "benchmarks" / "results.md"


def machine() -> dict:
    versions = {}
    for pkg in ("duckdb", "dbt-core", "dbt-duckdb", "dagster", "scipy", "great-expectations"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "memory_gb": round(mem, 1),
            "platform": platform.platform(), "versions": versions,
            "when": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def generate(people: int, out: Path) -> dict:
    from seeds.generate import generate as gen

    started = time.perf_counter()
    summary = gen(out, people=people, seed=7, as_of=AS_OF)
    return {"seconds": round(time.perf_counter() - started, 2), "rows": summary.get("rows", summary)}


def add_timings(groups: dict[str, dict], target: Path, sampler: ChildRssSampler | None = None) -> None:
    """Sum dbt's per-node execution times by model folder (tests count in "tests") from the
    run_results.json under `target`; with a sampler, also each folder's peak RSS: the largest
    sample of the dbt process taken while one of its nodes ran (2 threads: nodes of two folders
    can run at once, and then both see the sample)."""
    results = json.loads((target / "run_results.json").read_text())
    for node in results["results"]:
        parts = node["unique_id"].split(".")
        folder = parts[2] if parts[0] == "model" else ("seeds" if parts[0] == "seed" else "tests")
        if parts[0] == "model":
            path = next((p for p in (ROOT / "dbt_project" / "models").rglob(parts[-1] + ".sql")), None)
            folder = path.relative_to(ROOT / "dbt_project" / "models").parts[0] if path else "other"
        entry = groups.setdefault(folder, {"seconds": 0.0})
        entry["seconds"] = round(entry["seconds"] + node["execution_time"], 2)
        span = node_span(node)
        if sampler is not None and span:
            entry["peak_rss_mb"] = round(max(entry.get("peak_rss_mb", 0), sampler.peak_between(*span)))


def node_span(node: dict) -> tuple[float, float] | None:
    """Epoch seconds from the start of a node's compile to the end of its execute (dbt's UTC stamps)."""
    stamps = [datetime.fromisoformat(t[k].replace("Z", "+00:00")).replace(tzinfo=timezone.utc).timestamp()
              for t in node.get("timing", []) for k in ("started_at", "completed_at") if t.get(k)]
    return (min(stamps), max(stamps)) if stamps else None


def run_child(code: str, what: str) -> Measured:
    """Run `code` in a Python child of this venv (cwd = repo root); its wall time and peak RSS."""
    from benchmarks.report import run_measured

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    measured = run_measured([sys.executable, "-c", code], env=env, cwd=ROOT, timeout_s=6 * 3600)
    if measured.returncode != 0:
        raise SystemExit(f"{what} failed (exit {measured.returncode}):\n{measured.output[-3000:]}")
    return measured


def bench_build(people: int, work: Path) -> dict:
    """Generate (if not there yet), load and build at one scale. Generation, load and the
    prediction step each run in their own child process (wall time and peak RSS from wait4); the
    two dbt phases of the real build (orchestration/pipeline.py) are one dbt process each, whose
    RSS is sampled every 0.25 s to give each model folder's peak. DuckDB spills to
    `<database>.tmp` beyond LIFELINE_DUCKDB_MEMORY_LIMIT (see --memory-limit); its peak size is kept."""
    from benchmarks.rss_sampler import ChildRssSampler

    data = work / f"data_{people}"
    load_avg = {"start": [round(x, 2) for x in os.getloadavg()]}
    gen: dict = {"seconds": None, "peak_rss_mb": None}
    if not (data / "_truth").exists():
        g = run_child(f"from seeds.generate import generate; from datetime import datetime, timezone; "
                      f"from pathlib import Path; generate(Path({str(data)!r}), people={people}, seed=7, "
                      f"as_of=datetime(2026, 11, 1, tzinfo=timezone.utc))", "generation")
        gen = {"seconds": round(g.seconds, 2), "peak_rss_mb": round(g.peak_rss_mb)}
    warehouse = Warehouse(kind="duckdb", duckdb_path=work / f"bench_{people}.duckdb")
    spill = Path(str(warehouse.duckdb_path) + ".tmp")
    if warehouse.duckdb_path.exists():
        warehouse.duckdb_path.unlink()
    shutil.rmtree(spill, ignore_errors=True)
    wh = f"Warehouse(kind='duckdb', duckdb_path=Path({str(warehouse.duckdb_path)!r}))"
    loaded = run_child(f"from pathlib import Path; from orchestration.load import load; "
                       f"from syncs.warehouse import Warehouse; load({wh}, Path({str(data)!r}), replace=True)", "load")
    groups: dict[str, dict] = {}
    phases = []
    target = work / f"bench_{people}_target"
    # The real build, in its phases (see orchestration/pipeline.py); per-model times from dbt's
    # run_results.json (a private target path: other checkouts' dbt runs cannot overwrite it).
    with ChildRssSampler(spill_dir=spill) as sampler:
        first = run_dbt(warehouse, "build", ["--select", "+customer_purchase_summary", "--indirect-selection", "cautious",
                                             "--target-path", str(target)], as_of=AS_OF)
        add_timings(groups, target, sampler)
        phases.append({"phase": "staging+identity+summary", "seconds": round(first.seconds, 2),
                       "peak_rss_mb": round(first.peak_rss_mb)})
        pred = run_child(f"from pathlib import Path; from datetime import datetime, timezone; "
                         f"from syncs.warehouse import Warehouse; "
                         f"from orchestration.predictions.step import compute_profile_predictions; "
                         f"compute_profile_predictions({wh}, as_of=datetime(2026, 11, 1, tzinfo=timezone.utc))",
                         "prediction step")
        groups["predictions"] = {"seconds": round(pred.seconds, 2), "peak_rss_mb": round(pred.peak_rss_mb)}
        rest = run_dbt(warehouse, "build", ["--exclude", "+customer_purchase_summary", "--target-path", str(target)],
                       as_of=AS_OF)
        add_timings(groups, target, sampler)
        phases.append({"phase": "profiles+lifecycle+audiences+analytics", "seconds": round(rest.seconds, 2),
                       "peak_rss_mb": round(rest.peak_rss_mb)})
    total = sum(ph["seconds"] for ph in phases) + groups["predictions"]["seconds"]
    load_avg["end"] = [round(x, 2) for x in os.getloadavg()]
    return {"people": people, "generate_s": gen["seconds"], "generate_peak_rss_mb": gen["peak_rss_mb"],
            "load_s": round(loaded.seconds, 2), "load_peak_rss_mb": round(loaded.peak_rss_mb), "groups": groups,
            "phases": phases, "build_s": round(total, 2), "db_mb": round(warehouse.duckdb_path.stat().st_size / 2**20),
            "peak_spill_mb": round(sampler.peak_spill_mb), "raw_rows": raw_rows(warehouse),
            "memory_limit": warehouse.dbt_env()["LIFELINE_DUCKDB_MEMORY_LIMIT"], "load_average": load_avg}


def raw_rows(warehouse: Warehouse) -> dict[str, int]:
    import duckdb

    con = duckdb.connect(str(warehouse.duckdb_path), read_only=True)
    try:
        return {t: con.execute(f"select count(*) from raw.{t}").fetchone()[0] for t in ("events", "message_events", "orders")}
    finally:
        con.close()


def node_timings(target: Path, top: int = 12) -> list[dict]:
    """The slowest nodes of the last dbt invocation that wrote `target`/run_results.json."""
    results = json.loads((target / "run_results.json").read_text())["results"]
    ranked = sorted(results, key=lambda r: r["execution_time"], reverse=True)
    return [{"node": r["unique_id"].split(".", 2)[-1], "seconds": round(r["execution_time"], 2)} for r in ranked[:top]]


def node_time_split(target: Path) -> dict[str, float]:
    """dbt's execution seconds of the last invocation under `target`, summed for models (and
    seeds) and for data tests (2 dbt threads: the sums exceed the wall time)."""
    results = json.loads((target / "run_results.json").read_text())["results"]
    tests = sum(r["execution_time"] for r in results if r["unique_id"].startswith("test."))
    return {"models_s": round(sum(r["execution_time"] for r in results) - tests, 2), "tests_s": round(tests, 2)}


def bench_incremental(people: int, work: Path, discard_data: bool = False) -> dict:
    """Full build, then 1% new events appended and an incremental build, in the same run.
    `discard_data`: delete the generated Parquet once it is loaded (at 5M people its ~6 GB are
    disk the full build's spill needs on a small disk; the next run generates it again).

    Both builds are one `dbt build` each (no prediction step), with a private --target-path so
    that concurrent dbt runs of other checkouts cannot overwrite run_results.json; the slowest
    nodes of each run, node seconds of models and of tests, each run's critical path (the chain of
    nodes that set its wall time, benchmarks/critical_path.py) and the load average (the machine
    is shared) are kept to show where the time goes."""
    import duckdb

    from benchmarks.critical_path import summarise as critical_path_summary

    data = work / f"data_{people}"
    if not (data / "_truth").exists():
        generate(people, data)
    warehouse = Warehouse(kind="duckdb", duckdb_path=work / f"incr_{people}.duckdb")
    if warehouse.duckdb_path.exists():
        warehouse.duckdb_path.unlink()
    target = work / f"incr_{people}_target"
    load(warehouse, data, replace=True)
    if discard_data:
        shutil.rmtree(data)
    load_average = {"start": [round(x, 2) for x in os.getloadavg()]}
    full = run_dbt(warehouse, "build", ["--full-refresh", "--target-path", str(target)], as_of=AS_OF)
    full_nodes, full_split, full_path = node_timings(target), node_time_split(target), critical_path_summary(target)
    # 1% new events, as a day of new traffic arrives: copies of sampled events with fresh ids,
    # spread over the last 24 hours before as_of (copies of events from any time would mostly be
    # older than the look-back window, i.e. a backfill, which the models detect and reprocess).
    new_dir = work / f"new_{people}"
    shutil.rmtree(new_dir, ignore_errors=True)
    (new_dir / "events").mkdir(parents=True)
    con = duckdb.connect(str(warehouse.duckdb_path))
    count = con.execute("select count(*) from raw.events").fetchone()[0]
    con.execute(f"""copy (select * replace ('inc-' || event_id as event_id,
                    strftime(timestamp '{AS_OF:%Y-%m-%d %H:%M:%S}' - to_seconds(cast(1 + hash(event_id) % 86400 as bigint)),
                             '%Y-%m-%dT%H:%M:%SZ') as occurred_at)
                  from raw.events using sample {max(1, count // 100)} rows (reservoir, 7))
                  to '{new_dir / 'events' / 'part-0.parquet'}' (format parquet)""")
    con.close()
    load(warehouse, new_dir, replace=False)
    if discard_data:
        shutil.rmtree(new_dir)
    incremental = run_dbt(warehouse, "build", ["--target-path", str(target)], as_of=AS_OF)
    load_average["end"] = [round(x, 2) for x in os.getloadavg()]
    return {"people": people, "full_s": round(full.seconds, 2), "incremental_s": round(incremental.seconds, 2),
            "share": round(incremental.seconds / full.seconds, 3), "new_events": max(1, count // 100),
            "slowest_full": full_nodes, "slowest_incremental": node_timings(target),
            "node_seconds": {"full": full_split, "incremental": node_time_split(target)},
            "critical_path": {"full": full_path, "incremental": critical_path_summary(target)}, "load_average": load_average}


def optional_section(module: str, **kwargs) -> dict | None:
    path = ROOT / "benchmarks" / f"{module}.py"
    if not path.exists():
        return None
    mod = importlib.import_module(f"benchmarks.{module}")
    return mod.run(**kwargs)


def write_markdown(results: dict) -> str:
    lines = ["# Benchmark results", "", f"Machine: {results['machine']['cpus']} cores, "
             f"{results['machine']['memory_gb']} GB RAM, Python {results['machine']['python']}; "
             + ", ".join(f"{k} {v}" for k, v in results['machine']['versions'].items()),
             f"Run: {results['machine']['when']}", ""]
    if results.get("build"):
        lines += ["## Full build (DuckDB)", "", "| people | load s | " + " | ".join(GROUPS + ["predictions"]) + " | total build s |",
                  "|---|---|" + "---|" * (len(GROUPS) + 1) + "---|"]
        for b in results["build"]:
            cells = []
            for g in GROUPS + ["predictions"]:
                v = b["groups"].get(g)
                cells.append(f"{v['seconds']} s" if v else "-")
            lines.append(f"| {b['people']:,} | {b['load_s']} | " + " | ".join(cells) + f" | {b['build_s']} |")
        lines += ["", "Peak memory: each dbt phase is one process (peak RSS from wait4); a group's peak is the "
                  "largest RSS sampled (every 0.25 s) while one of its nodes ran; generation, load and predictions "
                  "are child processes of their own. Spill = peak size of DuckDB's `<database>.tmp`.", "",
                  "| people | raw events | memory_limit | generate s / MB | load s / MB | "
                  + " | ".join(GROUPS + ["predictions"]) + " (peak RSS MB) | spill MB | DB MB | load average start / end |",
                  "|---|---|---|---|---|" + "---|" * (len(GROUPS) + 1) + "---|---|---|"]
        for b in results["build"]:
            if "load_peak_rss_mb" not in b:
                continue
            peaks = " | ".join(str(b["groups"].get(g, {}).get("peak_rss_mb", "-")) for g in GROUPS + ["predictions"])
            la = b.get("load_average", {})
            lines.append(f"| {b['people']:,} | {b.get('raw_rows', {}).get('events', 0):,} | {b.get('memory_limit')} | "
                         f"{b.get('generate_s')} / {b.get('generate_peak_rss_mb')} | {b['load_s']} / {b['load_peak_rss_mb']} | "
                         f"{peaks} | {b.get('peak_spill_mb')} | {b.get('db_mb')} | "
                         f"{la.get('start', ['-'])[0]} / {la.get('end', ['-'])[0]} |")
        lines += ["", "| people | phase | seconds | peak RSS MB |", "|---|---|---|---|"]
        for b in results["build"]:
            for ph in b["phases"]:
                lines.append(f"| {b['people']:,} | {ph['phase']} | {ph['seconds']} | {ph['peak_rss_mb']} |")
        lines.append("")
    if results.get("incremental"):
        lines += ["## Incremental build after 1% new events", "",
                  "| people | full s | incremental s | share | node s full / incremental: models, tests | load average start / end |",
                  "|---|---|---|---|---|---|"]
        for r in results["incremental"]:
            split, la = r.get("node_seconds", {}), r.get("load_average", {})
            nodes = (f"{split['full']['models_s']}, {split['full']['tests_s']} / {split['incremental']['models_s']}, "
                     f"{split['incremental']['tests_s']}" if split else "-")
            lines.append(f"| {r['people']:,} | {r['full_s']} | {r['incremental_s']} | {r['share']:.1%} | {nodes} | "
                         f"{la.get('start', ['-'])[0]} / {la.get('end', ['-'])[0]} |")
        lines.append("")
    for section in ("identity", "sync", "diff", "freshness"):
        if results.get(section):
            lines += [f"## {section}", "", "```json", json.dumps(results[section], indent=2), "```", ""]
    return "\n".join(lines)


BEGIN, END = "<!-- generated by benchmarks/run.py: do not edit by hand -->", "<!-- end of generated -->"


def merge_generated(existing: str, generated: str) -> str:
    """results.md = the generated block (replaced on every run) + the sections other benchmark
    scripts and people wrote after it (kept)."""
    block = f"{BEGIN}\n{generated.rstrip()}\n{END}\n"
    if BEGIN in existing and END in existing:
        head, rest = existing.split(BEGIN, 1)
        return head + block + "\n" + rest.split(END, 1)[1].lstrip("\n")
    return block + ("\n" + existing if existing else "")


def by_scale(previous: list[dict], fresh: list[dict]) -> list[dict]:
    """One row per scale: the fresh rows, and the previous results.json's rows of scales not run now."""
    scales = {row["people"] for row in fresh}
    return sorted([row for row in previous if row["people"] not in scales] + fresh, key=lambda row: row["people"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="100000", help="comma-separated people counts (e.g. 100000,1000000,5000000)")
    parser.add_argument("--only", default="build,incremental,identity,sync,diff,freshness")
    parser.add_argument("--work", default=str(ROOT / "benchmarks" / ".data"))
    parser.add_argument("--memory-limit", default=None,
                        help="DuckDB memory_limit of every dbt run (e.g. 10GB; default 75%% of RAM); DuckDB spills "
                             "to <database>.tmp beyond it")
    parser.add_argument("--discard-data", action="store_true",
                        help="incremental: delete the generated Parquet once loaded (frees ~6 GB of disk at 5M people "
                             "for the build's spill)")
    args = parser.parse_args()
    if args.memory_limit:
        os.environ["LIFELINE_DUCKDB_MEMORY_LIMIT"] = args.memory_limit
    scales = [int(s) for s in args.scales.split(",") if s]
    only = set(args.only.split(","))
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {"machine": machine()}
    previous = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
    if "build" in only:
        results["build"] = by_scale(previous.get("build", []), [bench_build(n, work) for n in scales])
    if "incremental" in only:
        results["incremental"] = by_scale(previous.get("incremental", []),
                                          [bench_incremental(scales[0], work, args.discard_data)])
    for section, module in (("identity", "bench_identity"), ("sync", "bench_sync"), ("diff", "bench_diff"),
                            ("freshness", "bench_freshness")):
        if section in only:
            results[section] = optional_section(module, work=work)
    for section, figures in previous.items():  # sections not run now keep their last figures
        results.setdefault(section, figures)
    RESULTS_JSON.write_text(json.dumps(results, indent=2, default=str))
    generated = write_markdown(results)
    RESULTS_MD.write_text(merge_generated(RESULTS_MD.read_text() if RESULTS_MD.exists() else "", generated))
    print(generated)


if __name__ == "__main__":
    main()
