"""Small helpers shared by the sync and diff benchmarks: medians with their spread, a section
appended to benchmarks/results.md, and a child process measured by wall time and peak RSS (wait4)."""
from __future__ import annotations

import os
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path


def spread(values: list[float]) -> dict:
    """Median of repeats plus min, max and the relative spread ((max-min)/median): the noise."""
    med = statistics.median(values)
    return {"median": round(med, 3), "min": round(min(values), 3), "max": round(max(values), 3),
            "spread": round((max(values) - min(values)) / med, 3) if med else None, "n": len(values)}


def append_markdown(path: Path | None, title: str, lines: list[str]) -> None:
    if path is None:
        return
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    load = os.getloadavg()[0]
    with path.open("a") as handle:
        handle.write("\n".join(["", f"## {title}", "", f"Run {stamp}, {os.cpu_count()} cores, load average "
                                f"{load:.1f} at the end (shared machine: medians of repeats).", "", *lines, ""]))


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_rss_mb: float
    returncode: int
    output: str
    timed_out: bool = False


def run_measured(args: list[str], env: dict[str, str], cwd: Path, timeout_s: float = 3600) -> Measured:
    """Run a child process; its wall time and peak RSS (ru_maxrss from wait4, so only this child).
    A child still running after `timeout_s` is killed; its peak RSS up to then is still reported.
    The child's figure is at least this process's RSS when it started the child (Linux carries the
    larger across fork and exec): build large inputs in a child of their own (sync_children audience)."""
    started = time.perf_counter()
    with open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen(args, env=env, cwd=cwd, stdin=devnull, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    timer = threading.Timer(timeout_s, proc.kill)
    timer.start()
    try:
        output = proc.stdout.read().decode("utf-8", "replace")  # the children print little; EOF at exit
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    return Measured(seconds, usage.ru_maxrss / 1024, proc.returncode, output, timed_out=seconds >= timeout_s)
