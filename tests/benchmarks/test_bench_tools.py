"""The measuring tools of the scale benchmarks: what documented fixed windows allow for a call
sequence, the per-model-group RSS sampler, the counting sandbox's call log, and one results row
per scale in results.json. Fast (no dbt, no big data)."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]


def by_path(name: str) -> ModuleType:
    # by path: this test folder is itself a package named `benchmarks`
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


windows = by_path("rate_windows")
sampler_mod = by_path("rss_sampler")


def test_fixed_windows_allow_a_burst_then_wait_for_the_next_minute():
    m = {"M": ((10, 1.0), (150, 60.0))}
    # 150 calls from an aligned start: 10 per second, the 150th at 14 s
    assert windows.fixed_window_schedule(["M"] * 150, 600.0, m) == pytest.approx(14.0)
    # the 151st waits for the next clock minute
    assert windows.fixed_window_schedule(["M"] * 151, 600.0, m) == pytest.approx(60.0)
    # starting 50 s into a minute, the steady window resets 10 s later (clock-aligned, not rolling)
    # (100 calls in 650-659 s, then 51 more from 660 s at 10/s: the last at 665 s)
    assert windows.fixed_window_schedule(["M"] * 151, 650.0, m) == pytest.approx(15.0)


def test_tiers_are_counted_apart_and_in_order():
    tiers = windows.DOCUMENTED_TIERS
    # a removal batch: 10 lookups (L) then one DELETE (M); 70 batches fit one L minute (700 calls)
    seq = (["L"] * 10 + ["M"]) * 71
    t = windows.fixed_window_schedule(seq, 0.0, tiers)
    assert 60.0 <= t < 61.0  # the 71st batch's lookups wait for the second L minute, nothing else waits long
    assert windows.fixed_window_schedule(["M"] * 3, 0.0, tiers) == 0.0


def test_unknown_call_names_the_fix():
    assert windows.klaviyo_tier("DELETE klaviyo:list-relationships") == "M"
    assert windows.klaviyo_tier("GET klaviyo/api/profiles") == "L"
    with pytest.raises(ValueError, match="add it to klaviyo_tier"):
        windows.klaviyo_tier("GET klaviyo/api/segments")


def test_sampler_sees_a_child_growing_and_attributes_the_peak_to_its_time():
    code = "import time; time.sleep(0.6); b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(1.2)"
    with sampler_mod.ChildRssSampler(interval_s=0.1) as sampler:
        started = time.time()
        subprocess.run([sys.executable, "-c", code], check=True)
        ended = time.time()
    assert sampler.peak_between(started + 0.7, ended) >= 250
    assert sampler.peak_between(started, started + 0.3) < 200
    assert sampler.peak_spill_mb == 0.0


def test_node_span_reads_dbt_timestamps():
    run = by_path("run")
    node = {"timing": [{"name": "compile", "started_at": "2026-11-23T08:00:00.000000Z",
                        "completed_at": "2026-11-23T08:00:01.500000Z"},
                       {"name": "execute", "started_at": "2026-11-23T08:00:01.500000Z",
                        "completed_at": "2026-11-23T08:00:04.000000Z"}]}
    start, end = run.node_span(node)
    assert end - start == pytest.approx(4.0)
    assert run.node_span({"timing": []}) is None


def _timed(unique_id: str, start: float, end: float) -> dict:
    def at(second: float) -> str:
        return f"2026-11-23T08:00:{second:06.3f}Z"
    return {"unique_id": unique_id, "execution_time": end - start,
            "timing": [{"name": "compile", "started_at": at(start), "completed_at": at(start + 0.1)},
                       {"name": "execute", "started_at": at(start + 0.1), "completed_at": at(end)}]}


def test_critical_path_follows_the_node_each_one_waited_for_longest_including_parent_tests():
    path_mod = by_path("critical_path")
    # a (0-5 s) -> its test (5.2-6) -> c (6.5-9); b (0-7) is a parent of c's sibling d only;
    # d (7-8) waited for b. c ended last, and waited for a and a's test: the path is a, test, c.
    results = {"results": [_timed("model.p.a", 0, 5), _timed("test.p.unique_a.1", 5.2, 6),
                           _timed("model.p.b", 0, 7), _timed("model.p.c", 6.5, 9), _timed("model.p.d", 7, 8)]}
    manifest = {"parent_map": {"model.p.c": ["model.p.a"], "model.p.d": ["model.p.b"], "test.p.unique_a.1": ["model.p.a"]},
                "child_map": {"model.p.a": ["test.p.unique_a.1", "model.p.c"], "model.p.b": ["model.p.d"]}}
    path = path_mod.critical_path(results, manifest)
    assert [p["node"] for p in path] == ["a", "unique_a.1", "c"]
    assert [p["type"] for p in path] == ["model", "test", "model"]
    assert [p["gap_s"] for p in path] == pytest.approx([0.0, 0.2, 0.5])
    # were b the longer parent of c, the path would go through b instead
    manifest["parent_map"]["model.p.c"] = ["model.p.a", "model.p.b"]
    results["results"][3] = _timed("model.p.c", 7.5, 9)
    assert [p["node"] for p in path_mod.critical_path(results, manifest)] == ["b", "c"]


def test_counting_sandbox_logs_calls_in_order_and_resets(tmp_path: Path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.sync_children", "serve", str(port), str(tmp_path),
                             "tok", "nolimits"], cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{base}/_sandbox/health", timeout=1)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "sandbox did not start"
                time.sleep(0.1)
        headers = {"Authorization": "Klaviyo-API-Key tok", "revision": "2026-07-15"}
        requests.get(f"{base}/klaviyo/api/lists", headers=headers, timeout=10)
        requests.delete(f"{base}/klaviyo/api/lists/nope/relationships/profiles", headers=headers,
                        json={"data": []}, timeout=10)
        calls = requests.get(f"{base}/_bench/calls", timeout=10).json()
        assert [c[1] for c in calls] == ["GET klaviyo/api/lists", "DELETE klaviyo:list-relationships"]
        assert calls[0][0] <= calls[1][0] and calls[0][2] == 200
        requests.post(f"{base}/_bench/reset", timeout=10)
        assert requests.get(f"{base}/_bench/calls", timeout=10).json() == []
        assert requests.get(f"{base}/_bench/counts", timeout=10).json()["first"] is None
    finally:
        proc.terminate()
        proc.wait(15)


def test_results_json_keeps_the_rows_of_other_scales(tmp_path: Path, monkeypatch):
    run = by_path("run")
    monkeypatch.setattr(run, "RESULTS_JSON", tmp_path / "results.json")
    monkeypatch.setattr(run, "RESULTS_MD", tmp_path / "results.md")
    incremental = {"full_s": 10, "incremental_s": 1, "share": 0.1, "new_events": 10, "load_average": {}}
    previous = {"machine": {}, "build": [{"people": 100_000, "groups": {}, "phases": [], "load_s": 1, "build_s": 2}],
                "incremental": [dict(incremental, people=100_000), dict(incremental, people=2_000, share=0.5)],
                "freshness": {"p50_s": 1}}
    run.RESULTS_JSON.write_text(json.dumps(previous))
    fresh = {"people": 2_000, "groups": {"staging": {"seconds": 1.0, "peak_rss_mb": 300}}, "phases": [],
             "load_s": 1, "load_peak_rss_mb": 100, "build_s": 3, "raw_rows": {"events": 40_000}}
    monkeypatch.setattr(run, "bench_build", lambda people, work: dict(fresh, people=people))
    monkeypatch.setattr(run, "bench_incremental", lambda people, work, discard: dict(incremental, people=people))
    monkeypatch.setattr(sys, "argv", ["run.py", "--scales", "2000", "--only", "build,incremental", "--work",
                                      str(tmp_path)])
    run.main()
    saved = json.loads(run.RESULTS_JSON.read_text())
    assert [b["people"] for b in saved["build"]] == [2_000, 100_000]
    # the incremental row of the scale run now is replaced, the other scale's kept
    assert [(r["people"], r["share"]) for r in saved["incremental"]] == [(2_000, 0.1), (100_000, 0.1)]
    assert saved["freshness"] == {"p50_s": 1}  # a section not run keeps its figures
    assert "| 2,000 | 40,000 |" in run.RESULTS_MD.read_text()


def test_aligned_limiter_resets_at_the_clock_boundary_where_the_rolling_one_waits_a_window():
    sys.path.insert(0, str(ROOT))
    from syncs.http import limiter

    def sixth_call_after(aligned: bool) -> float:
        while not 0.9 <= time.time() % 2 < 1.0:  # start half-way through a 2 s window
            time.sleep(0.01)
        lim = limiter([(5, 2)], aligned=aligned)
        started = time.time()
        for _ in range(6):
            lim.try_acquire("k")
        return time.time() - started

    assert sixth_call_after(aligned=True) < 1.6  # the window starting at the next even second
    assert sixth_call_after(aligned=False) > 1.9  # two seconds after the first call


def test_synthetic_audience_has_dbt_shaped_ids_in_no_order_and_changes_by_thirds():
    """The sync benchmarks' audience: profile ids shaped as identity_map makes them (`p_` and 20 hex
    digits), stored in an order that follows neither the ids nor the emails (a counter's ascending
    ids made the state index's inserts appends: half the cost of a real audience's), and a 1% change
    that removes, updates and adds a third each."""
    import sqlalchemy as sa

    audience = by_path("synthetic_audience")
    engine = sa.create_engine("duckdb:///:memory:")
    with engine.connect() as conn:
        audience.create_audience(conn, 3_000)
        rows = conn.execute(sa.text("select profile_id, email from audience_members "
                                    "where audience = 'bench' and not is_holdout")).fetchall()
        ids = [r[0] for r in rows]
        assert len(ids) == len(set(ids)) == 3_000
        assert all(len(i) == 22 and i.startswith("p_") and int(i[2:], 16) >= 0 for i in ids)
        assert ids != sorted(ids)
        numbers = [int(r[1].removeprefix("user").split("@")[0]) for r in rows]
        assert numbers != sorted(numbers) and sorted(numbers) == list(range(1, 3_001))
        before = audience.synced_keys(conn)
        change = audience.change_for(3_000)
        audience.apply_change(conn, 3_000, change)
        after = audience.synced_keys(conn)
        assert (len(before - after), len(after - before)) == (change.removes, change.adds) == (10, 10)
        updated = conn.execute(sa.text("select count(*) from audience_members where payload like '%platinum%'")).scalar()
        assert updated == change.updates
    engine.dispose()
