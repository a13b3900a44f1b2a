"""Benchmark of the demo data generator: wall seconds and peak RSS at each scale.

    python benchmarks/bench_generator.py [--scales 100000,1000000] [--chunk-people 50000] [--keep]

Each scale runs `python -m seeds.generate` in its own process, so the peak RSS (from wait4) is that
run's alone; flat memory means the 1M figure is close to the 100k one. Results are appended to
benchmarks/results_generator.json. Do not run 5,000,000 people on a shared 2-core machine.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results_generator.json"


def run_once(people: int, chunk_people: int, out: Path) -> dict:
    cmd = [sys.executable, "-m", "seeds.generate", "--people", str(people), "--out", str(out),
           "--chunk-people", str(chunk_people)]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - started
    stdout, stderr = proc.stdout.read(), proc.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"generator failed at {people:,} people:\n{stderr.decode()[-3000:]}")
    summary = json.loads(stdout)
    events = summary["rows"]["events"]
    return {"people": people, "chunk_people": chunk_people, "seconds": round(seconds, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "rows": summary["rows"],
            "events_per_second": round(events / seconds), "bytes_on_disk": sum(
                p.stat().st_size for p in out.rglob("*.parquet"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="100000,1000000", help="comma-separated people counts")
    parser.add_argument("--chunk-people", type=int, default=50_000)
    parser.add_argument("--keep", action="store_true", help="keep the generated folders (printed)")
    args = parser.parse_args()
    machine = {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(),
               "when": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    history = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    for people in (int(s) for s in args.scales.split(",")):
        out = Path(tempfile.mkdtemp(prefix=f"bench_generator_{people}_"))
        try:
            result = run_once(people, args.chunk_people, out)
        finally:
            if not args.keep:
                shutil.rmtree(out, ignore_errors=True)
        result["machine"] = machine
        history.append(result)
        RESULTS.write_text(json.dumps(history, indent=2) + "\n")
        print(f"{people:>10,} people: {result['seconds']:>7.1f} s, peak RSS {result['peak_rss_mb']:>7.1f} MB, "
              f"{result['rows']['events']:,} events ({result['events_per_second']:,}/s)"
              + (f"  -> {out}" if args.keep else ""), flush=True)


if __name__ == "__main__":
    main()
