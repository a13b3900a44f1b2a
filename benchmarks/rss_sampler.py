"""Memory of this process's children over time, so that a peak can be attributed to what ran then.

A dbt build is one process running many models on 2 threads; wait4 gives only its overall peak.
`ChildRssSampler` polls /proc (Linux) every `interval_s` for the resident memory of every
descendant of this process (dbt and anything it starts) and, optionally, the bytes in a spill
directory (DuckDB's `<database>.tmp`). `peak_between` then gives the peak while one model ran,
from the start and end times dbt records in run_results.json.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Sample:
    at: float  # time.time() (epoch seconds, comparable with dbt's UTC timestamps)
    rss_mb: float
    spill_mb: float


def _children(pid: int) -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def descendants_rss_mb(pid: int) -> float:
    """Sum of VmRSS of every descendant of `pid` (not `pid` itself), in MB."""
    tree = _children(pid)
    todo, total_kb = list(tree.get(pid, [])), 0
    while todo:
        child = todo.pop()
        todo.extend(tree.get(child, []))
        try:
            for line in Path(f"/proc/{child}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
                    break
        except OSError:
            continue
    return total_kb / 1024


def dir_mb(path: Path | None) -> float:
    if path is None or not path.exists():
        return 0.0
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total / 2**20


@dataclass
class ChildRssSampler:
    """Context manager: samples the descendants' RSS (and a spill directory) in a thread."""

    interval_s: float = 0.25
    spill_dir: Path | None = None
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def _loop(self) -> None:
        pid = os.getpid()
        while not self._stop.is_set():
            self.samples.append(Sample(time.time(), descendants_rss_mb(pid), dir_mb(self.spill_dir)))
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "ChildRssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def peak_between(self, start: float, end: float) -> float:
        """Peak RSS (MB) of the samples taken in [start, end], or the nearest sample if none fell in it."""
        inside = [s.rss_mb for s in self.samples if start <= s.at <= end]
        if inside:
            return max(inside)
        nearest = min(self.samples, key=lambda s: min(abs(s.at - start), abs(s.at - end)), default=None)
        return nearest.rss_mb if nearest else 0.0

    @property
    def peak_spill_mb(self) -> float:
        return max((s.spill_mb for s in self.samples), default=0.0)
