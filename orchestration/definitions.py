"""Dagster definitions: `defs` (used by `lifeline ui` and `dagster dev -m orchestration.definitions`).

raw tables -> dbt models (grouped by folder) -> prediction step -> one asset per sync in syncs.yml
(the destination), with dbt tests and Great Expectations suites as asset checks.
"""
from __future__ import annotations

import os

import dagster as dg

from orchestration.dbt_assets import build_dbt_assets
from orchestration.dbt_runner import telemetry_off_env
from orchestration.sync_assets import build_prediction_asset, build_sync_assets, default_syncs_path
from syncs.warehouse import Warehouse


def build_defs(warehouse: Warehouse) -> dg.Definitions:
    # dbt runs as a subprocess of this code location and reads its connection from the environment.
    os.environ.update(warehouse.dbt_env())
    for key, value in telemetry_off_env().items():
        os.environ.setdefault(key, value)
    dbt_defs, dbt_resource, _project = build_dbt_assets(warehouse)
    sync_assets = build_sync_assets(warehouse, default_syncs_path())
    prediction = build_prediction_asset(warehouse)
    all_assets = [dbt_defs, prediction, *sync_assets]
    everything = dg.define_asset_job("lifeline_everything", selection=dg.AssetSelection.all())
    return dg.Definitions(assets=all_assets, jobs=[everything], resources={"dbt": dbt_resource})


defs = build_defs(Warehouse.from_env())
