"""Pruning of the per-invocation dbt target folders that dagster-dbt leaves behind.

Every dbt step of a Dagster run writes its artifacts and dbt.log into a folder of its own under
dbt_project/target, named `<op>-<run id, 7>-<uuid, 7>` (DbtCliResource's unique target path), and
never removes it: about 4 MB an invocation, so a landing sensor that fires every few minutes fills
a disk within weeks. After each step, the folders of Lifeline's dbt ops beyond the newest `keep`
are removed; a folder with a file written in the last `min_age` is kept whatever its rank (a step
still running in another process). Other folders of target/ (lifeline_parsed, compiled, run, the
CLI's own) are never touched.
"""
from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

# dagster-dbt's name for an invocation folder of one of the @dbt_assets ops in orchestration/dbt_assets.py
# (Dagster may split lifeline_dbt into steps lifeline_dbt_2, lifeline_dbt_3, ...).
INVOCATION_FOLDER = re.compile(r"^lifeline_dbt(_events|_\d+)?-[0-9a-f]{7}-[0-9a-f-]{7}$")


def _newest_write(folder: Path) -> float:
    """The newest modification time of the folder or anything in it."""
    newest = folder.stat().st_mtime
    for path in folder.rglob("*"):
        try:
            newest = max(newest, path.stat().st_mtime)
        except FileNotFoundError:  # removed while we looked
            continue
    return newest


def prune_invocation_folders(target_root: Path, keep: int, min_age_seconds: float = 3600.0,
                             now: float | None = None) -> list[Path]:
    """Removes the invocation folders of Lifeline's dbt ops in target_root beyond the `keep`
    newest (by their newest write), except those written within min_age_seconds; returns the
    removed folders, oldest first."""
    if keep < 1:
        raise ValueError(f"keep must be at least 1 (the folder of the step that just ran), not {keep}")
    if not target_root.is_dir():
        return []
    now = time.time() if now is None else now
    folders = [(p, _newest_write(p)) for p in target_root.iterdir() if p.is_dir() and INVOCATION_FOLDER.match(p.name)]
    folders.sort(key=lambda item: item[1], reverse=True)
    removed = []
    for folder, written in folders[keep:]:
        if now - written < min_age_seconds:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return list(reversed(removed))
