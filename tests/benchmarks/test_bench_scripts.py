"""Smoke tests of the sync and diff benchmark scripts at tiny sizes: each runs end to end as a
command and writes JSON with the fields the report reads (no timing assertions: shared machine)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / name), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=240)


def test_bench_diff_tiny(tmp_path: Path) -> None:
    out, md = tmp_path / "diff.json", tmp_path / "results.md"
    done = run_script("bench_diff.py", "--rows", "3000", "--pg-rows", "1500", "--repeats", "2", "--out", str(out),
                      "--markdown", str(md))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads(out.read_text())
    duck = results["duckdb"]
    # a 1% change of 3,000 members: 10 removed, 10 updated, 10 added, all found by the diff
    assert duck["change"] == {"adds": 10, "updates": 10, "removes": 10}
    assert all(r["rows_read"] == 30 for r in duck["runs"]) and len(duck["runs"]) == 2
    for key in ("total_s", "build_diff_s", "pages_s"):
        assert set(duck[key]) >= {"median", "min", "max", "spread", "n"}
    assert "meets_target" in duck
    pg = results["postgres"]
    assert "skipped" in pg or pg["change"] == {"adds": 5, "updates": 5, "removes": 5}
    assert "## Audience diff" in md.read_text()


def test_bench_sync_tiny(tmp_path: Path) -> None:
    out, md = tmp_path / "sync.json", tmp_path / "results.md"
    done = run_script("bench_sync.py", "--rows", "3000", "--limited-rows", "600", "--memory-rows", "3000",
                      "--repeats", "1", "--out", str(out), "--markdown", str(md))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads(out.read_text())
    assert results["versions"]["drt-core"]
    t = results["throughput"]
    for tool in ("lifeline", "drt"):
        assert set(t[tool]) >= {"initial_records_per_s", "change_s", "change_records_per_s", "peak_rss_mb"}
    # Lifeline converges to exactly the audience after the change; drt cannot remove from DuckDB
    assert t["lifeline"]["lost_after_change"] == 0 and t["lifeline"]["stale_after_change"] == 0
    assert t["drt"]["lost_after_change"] == 0 and t["drt"]["stale_after_change"] == t["change"]["removes"]
    assert t["ratio_initial"]["n"] == 1 and "ratio_change" in t
    limited = results["limited"]
    assert limited["destination"]["lost"] == 0 and limited["class_m_calls"] > 0
    assert limited["share_of_allowed_rate"] >= 0 and limited["throttled_429"] >= 0
    memory = results["memory"]
    assert memory["distinct_keys"] == 3000 and memory["sync"]["peak_rss_mb"] > 0
    assert "## Sync: Lifeline vs drt-core" in md.read_text()


def test_make_bench_replaces_only_its_own_block_of_results_md():
    import importlib.util

    # by path: this test folder is itself a package named `benchmarks`
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "benchmarks" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    BEGIN, merge_generated = module.BEGIN, module.merge_generated

    first = merge_generated("", "# Benchmark results\nold tables\n")
    kept = first + "\n## Sync: written by bench_sync.py\nfigures\n"
    second = merge_generated(kept, "# Benchmark results\nnew tables\n")
    assert second.count(BEGIN) == 1
    assert "new tables" in second and "old tables" not in second
    assert "## Sync: written by bench_sync.py\nfigures" in second
