"""One Dagster asset per sync in syncs.yml (key destinations/<sync name>), downstream of the
model it reads, plus the prediction step between the purchase summary and the lifecycle models.

A sync asset fails (and so alerts, through the failure sensor) when the sync is blocked by a
safety limit or fails; its metadata carries adds, updates, removes, rejections, retries and
duration. Blocking ERROR checks on its upstream assets stop it before it runs.
"""

import os
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg

from orchestration.config import LifelineConfig
from orchestration.dbt_runner import PROJECT_ROOT
from syncs.warehouse import Warehouse


def default_syncs_path() -> Path:
    env = os.environ.get("LIFELINE_SYNCS_FILE")
    if env:
        return Path(env)
    local = Path.cwd() / "syncs.yml"
    return local if local.exists() else PROJECT_ROOT / "syncs.yml"


def source_model(sync) -> str:
    """The dbt model a sync reads (audience syncs read audience_members)."""
    source = getattr(sync, "source", None)
    model = getattr(source, "model", None) if source is not None else None
    return model or "audience_members"


def build_sync_assets(warehouse: Warehouse, path: Path, config: LifelineConfig) -> list[dg.AssetsDefinition]:
    """One asset per sync; a project without a syncs.yml simply has no destinations yet."""
    if not path.exists():
        return []
    from syncs.config import load_syncs

    return [_sync_asset(warehouse, sync) for sync in load_syncs(path)]


def synced_audiences(path: Path) -> list[tuple[str, str]]:
    """(audience, channel) of every sync that reads an audience, for the audience checks."""
    if not path.exists():
        return []
    from syncs.config import load_syncs

    return [(s.source.audience, s.source.channel) for s in load_syncs(path) if s.source.audience]


def _sync_asset(warehouse: Warehouse, sync) -> dg.AssetsDefinition:
    destination = getattr(getattr(sync, "destination", None), "type", "destination")

    @dg.asset(key=["destinations", sync.name], deps=[dg.AssetKey([source_model(sync)])], group_name="syncs",
              kinds={str(destination)}, description=f"Sync {sync.name}: {source_model(sync)} -> {destination}")
    def _sync(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        from syncs.engine import run_sync

        result = run_sync(warehouse, sync, progress=False)
        metadata = {"adds": result.adds, "updates": result.updates, "removes": result.removes,
                    "rejections": result.rejections, "retries": getattr(result, "retries", 0),
                    "duration_s": round(result.duration_s, 3), "status": result.status}
        if result.status == "blocked":
            raise dg.Failure(description=f"sync {sync.name} stopped by a safety limit: {result.message}",
                             metadata=metadata)
        if result.status == "failed":
            raise dg.Failure(description=f"sync {sync.name} failed: {result.message}", metadata=metadata)
        return dg.MaterializeResult(metadata=metadata)

    return _sync


def build_prediction_asset(warehouse: Warehouse) -> dg.AssetsDefinition:
    @dg.asset(key=["predictions", "profile_predictions"], deps=[dg.AssetKey(["customer_purchase_summary"])],
              group_name="lifecycle", kinds={"python", "scipy"},
              description="BG/NBD probability alive and expected purchases per buyer (orchestration/predictions).")
    def profile_predictions(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        from orchestration.predictions.step import compute_profile_predictions

        as_of = context.run.tags.get("lifeline/as_of")
        when = datetime.fromisoformat(as_of) if as_of else datetime.now(timezone.utc)
        summary = compute_profile_predictions(warehouse, as_of=when)
        return dg.MaterializeResult(metadata={k: v for k, v in summary.items()
                                              if isinstance(v, (int, float, str, bool))})

    return profile_predictions
