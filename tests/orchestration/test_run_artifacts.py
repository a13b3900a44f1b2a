"""Old dagster-dbt invocation folders are pruned from dbt_project/target; nothing else is."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from orchestration.config import ConfigError, load_config
from orchestration.run_artifacts import prune_invocation_folders

NOW = time.time()
HOUR = 3600.0


def _folder(root: Path, name: str, age_hours: float, inner_age_hours: float | None = None) -> Path:
    folder = root / name
    (folder / "compiled").mkdir(parents=True)
    log = folder / "dbt.log"
    log.write_text("x")
    written = NOW - age_hours * HOUR
    for path in (folder / "compiled", folder):
        os.utime(path, (written, written))
    inner = NOW - (inner_age_hours if inner_age_hours is not None else age_hours) * HOUR
    os.utime(log, (inner, inner))
    return folder


def test_keeps_the_newest_and_removes_older_invocation_folders(tmp_path):
    folders = [_folder(tmp_path, f"lifeline_dbt-{i:07x}-abc{i:04x}", age_hours=2 + i) for i in range(5)]
    events = _folder(tmp_path, "lifeline_dbt_events-1234567-89abcde", age_hours=30)
    split = _folder(tmp_path, "lifeline_dbt_2-1234567-89abcde", age_hours=40)

    removed = prune_invocation_folders(tmp_path, keep=2, now=NOW)

    assert removed == [split, events, folders[4], folders[3], folders[2]]  # oldest first
    assert [f.exists() for f in folders] == [True, True, False, False, False]
    assert not events.exists() and not split.exists()


def test_other_folders_of_target_are_never_touched(tmp_path):
    others = [_folder(tmp_path, name, age_hours=100) for name in
              ("lifeline_parsed", "compiled", "run", "parse-123-abcdef12", "bench_target", "other_op-1234567-89abcde")]
    (tmp_path / "manifest.json").write_text("{}")
    _folder(tmp_path, "lifeline_dbt-aaaaaaa-bbbbbbb", age_hours=100)

    removed = prune_invocation_folders(tmp_path, keep=1, now=NOW)

    assert removed == []  # one invocation folder, kept
    assert all(f.exists() for f in others) and (tmp_path / "manifest.json").exists()


def test_a_folder_written_recently_is_kept_whatever_its_rank(tmp_path):
    """A long step still writing in another process: its folder was created long ago, its log is fresh."""
    fresh = _folder(tmp_path, "lifeline_dbt-0000001-aaaaaaa", age_hours=1.5)
    running = _folder(tmp_path, "lifeline_dbt-0000002-bbbbbbb", age_hours=20, inner_age_hours=0.1)
    old = _folder(tmp_path, "lifeline_dbt-0000003-ccccccc", age_hours=10)
    recent_but_extra = _folder(tmp_path, "lifeline_dbt-0000004-ddddddd", age_hours=0.5)

    removed = prune_invocation_folders(tmp_path, keep=1, now=NOW)

    assert removed == [old, fresh]
    assert running.exists() and recent_but_extra.exists()


def test_a_missing_target_folder_is_nothing_to_prune(tmp_path):
    assert prune_invocation_folders(tmp_path / "absent", keep=3) == []


def test_keep_below_one_is_refused(tmp_path):
    folder = _folder(tmp_path, "lifeline_dbt-0000001-aaaaaaa", age_hours=5)
    with pytest.raises(ValueError, match="keep must be at least 1"):
        prune_invocation_folders(tmp_path, keep=0)
    assert folder.exists()


def test_the_setting_is_validated_with_file_line_and_field(tmp_path):
    path = tmp_path / "lifeline.yml"
    path.write_text("landing_dir: landing\ndbt_runs_kept: 0\n")
    with pytest.raises(ConfigError, match=r"lifeline\.yml:2: dbt_runs_kept: .*greater than or equal to 1"):
        load_config(path)
    path.write_text("dbt_runs_kept: 7\n")
    assert load_config(path).dbt_runs_kept == 7
