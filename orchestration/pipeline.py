"""The build: dbt models, the Python prediction step between them, and the data-quality checks.

Phases (so that the prediction step, which reads `customer_purchase_summary` and writes
`predictions.profile_predictions`, runs before the lifecycle models that read it):
  1. dbt build of customer_purchase_summary and everything upstream of it;
  2. the BG/NBD prediction step (orchestration/predictions);
  3. dbt build of everything else;
  4. the Great Expectations suites (expectations/), whose ERROR failures block syncs.
A user --select/--exclude runs exactly that selection in one dbt build (no prediction step
unless customer_purchase_summary is selected).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Mapping, Sequence

from orchestration.dbt_runner import DbtResult, run_dbt
from syncs.warehouse import Warehouse

SUMMARY_MODEL = "customer_purchase_summary"


@dataclass
class BuildSummary:
    dbt_runs: list[DbtResult] = field(default_factory=list)
    predictions: dict | None = None
    checks: list = field(default_factory=list)

    @property
    def blocking_failures(self) -> list:
        return [c for c in self.checks if not c.success]


def _selection_args(select: Sequence[str], exclude: Sequence[str], full_refresh: bool) -> list[str]:
    args: list[str] = []
    if select:
        args += ["--select", *select]
    if exclude:
        args += ["--exclude", *exclude]
    if full_refresh:
        args.append("--full-refresh")
    return args


def run_predictions(warehouse: Warehouse, as_of: datetime) -> dict:
    from orchestration.predictions.step import compute_profile_predictions

    return compute_profile_predictions(warehouse, as_of=as_of)


def run_checks(warehouse: Warehouse, as_of: datetime) -> list:
    from expectations.runner import run_all

    return run_all(warehouse, params={"as_of": as_of})


def build(warehouse: Warehouse, as_of: datetime, *, full_refresh: bool = False, select: Sequence[str] = (),
          exclude: Sequence[str] = (), checks: bool = True, stream: bool = False,
          extra_vars: Mapping[str, object] | None = None,
          echo: Callable[[str], None] = lambda _msg: None) -> BuildSummary:
    summary = BuildSummary()
    if select or exclude:
        echo(f"dbt build {' '.join(_selection_args(select, exclude, full_refresh))}")
        summary.dbt_runs.append(run_dbt(warehouse, "build", _selection_args(select, exclude, full_refresh),
                                        as_of=as_of, extra_vars=extra_vars, stream=stream))
        if any(SUMMARY_MODEL in s for s in select):
            summary.predictions = run_predictions(warehouse, as_of)
    else:
        echo("dbt build: staging, identity and purchase summary")
        # cautious: a test runs in the phase where all of its parents are built.
        summary.dbt_runs.append(run_dbt(warehouse, "build", _selection_args([f"+{SUMMARY_MODEL}"], [], full_refresh)
                                        + ["--indirect-selection", "cautious"], as_of=as_of, extra_vars=extra_vars, stream=stream))
        echo("prediction step: BG/NBD purchase cadence")
        summary.predictions = run_predictions(warehouse, as_of)
        echo("dbt build: profiles, lifecycle and audiences")
        summary.dbt_runs.append(run_dbt(warehouse, "build", _selection_args([], [f"+{SUMMARY_MODEL}"], full_refresh),
                                        as_of=as_of, extra_vars=extra_vars, stream=stream))
    if checks:
        echo("data-quality checks: Great Expectations suites")
        summary.checks = run_checks(warehouse, as_of)
    return summary
