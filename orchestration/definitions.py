"""Dagster definitions: `defs`, used by `lifeline ui` and `dagster dev -m orchestration.definitions`.

raw tables -> dbt models (grouped by folder) -> prediction step -> one asset per sync in syncs.yml
(the destination), with dbt tests and Great Expectations suites as asset checks, schedules, the
landing-folder sensor, freshness checks and failure alerts. The warehouse comes from the
environment (contract §3), everything else from lifeline.yml (orchestration/config.py).
"""
from orchestration.assembly import build_defs
from orchestration.config import load_config
from syncs.warehouse import Warehouse

defs = build_defs(Warehouse.from_env(), load_config())
