"""The dbt project as Dagster assets (dagster-dbt): one DbtProject, @dbt_assets with a translator
that groups models by their folder (staging, identity, profiles, lifecycle, audiences, analytics,
quality) and names raw sources raw/<table>."""

import json
from pathlib import Path
from typing import Any, Mapping

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, DbtProject, dbt_assets

from orchestration.dbt_runner import dbt_executable, dbt_project_dir, dbt_vars, run_dbt
from syncs.warehouse import Warehouse

MODEL_GROUPS = ("staging", "identity", "profiles", "lifecycle", "audiences", "analytics", "quality")


class LifelineTranslator(DagsterDbtTranslator):
    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "source":
            return dbt_resource_props["source_name"]
        fqn = dbt_resource_props.get("fqn", [])
        folder = fqn[1] if len(fqn) > 2 else None
        if folder in MODEL_GROUPS:
            return folder
        return "reference" if dbt_resource_props["resource_type"] == "seed" else "lifeline"


class BuildConfig(dg.Config):
    as_of: str | None = None
    full_refresh: bool = False


def ensure_manifest(warehouse: Warehouse) -> Path:
    """Parse the project when its manifest is missing or older than a model, macro or seed."""
    project = dbt_project_dir()
    manifest = project / "target" / "manifest.json"
    newest = max((p.stat().st_mtime for sub in ("models", "macros", "seeds") for p in (project / sub).rglob("*")
                  if p.is_file()), default=0)
    newest = max(newest, (project / "dbt_project.yml").stat().st_mtime)
    if not manifest.exists() or manifest.stat().st_mtime < newest:
        run_dbt(warehouse, "parse")
    return manifest


def build_dbt_assets(warehouse: Warehouse) -> tuple[dg.AssetsDefinition, DbtCliResource, DbtProject]:
    project = DbtProject(project_dir=dbt_project_dir(), profiles_dir=dbt_project_dir(), target=warehouse.dbt_target)
    ensure_manifest(warehouse)
    translator = LifelineTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))

    @dbt_assets(manifest=project.manifest_path, project=project, dagster_dbt_translator=translator,
                name="lifeline_dbt")
    def lifeline_dbt(context: dg.AssetExecutionContext, dbt: DbtCliResource, config: BuildConfig):
        from orchestration.cli import parse_as_of

        as_of = config.as_of or context.run.tags.get("lifeline/as_of")
        args = ["build", "--vars", json.dumps(dbt_vars(parse_as_of(as_of)))]
        if config.full_refresh:
            args.append("--full-refresh")
        yield from dbt.cli(args, context=context).stream()

    resource = DbtCliResource(project_dir=project, profiles_dir=str(dbt_project_dir()), target=warehouse.dbt_target,
                              dbt_executable=dbt_executable())
    return lifeline_dbt, resource, project
