"""The dbt project as Dagster assets (dagster-dbt): one DbtProject, two @dbt_assets with a translator
that groups models by their folder (staging, identity, profiles, lifecycle, audiences, analytics,
quality) and names raw sources raw/<table>.

- `lifeline_dbt_events`: the event-windowed incremental models (those built with the
  `incremental_slice` macro: base/stg events and message events), partitioned by UTC day, one
  run per backfill (BackfillPolicy.single_run). A run's partition time window (one day, or the
  range of a backfill) becomes the dbt vars partition_start / partition_end.
- `lifeline_dbt`: every other node, unpartitioned. The other incremental models (identity graph,
  profile events, histories) do not read the window vars: they follow their own state, so a day
  partition would claim something they do not do.
"""

import json
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, NamedTuple

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, DbtProject, dbt_assets

from orchestration.dbt_runner import dbt_executable, dbt_invocation, dbt_project_dir, dbt_vars, run_dbt
from orchestration.partitions import window_vars
from orchestration.run_artifacts import prune_invocation_folders
from syncs.warehouse import Warehouse

# The macros that bound a model's rows by the partition window (vars partition_start / partition_end):
# base_* read raw rows through incremental_slice, stg_* read base rows through staged_slice.
WINDOW_MACROS = ("macro.lifeline.incremental_slice", "macro.lifeline.staged_slice")
# Where ensure_manifest keeps the manifest the Dagster definitions are built from (in the dbt project).
PARSED_DIR = "target/lifeline_parsed"
# Run tags read by every dbt step. A tag, not op config: Dagster splits lifeline_dbt into several
# steps (lifeline_dbt, lifeline_dbt_2: its nodes sit both upstream and downstream of the events
# models), and a tag reaches them all.
AS_OF_TAG = "lifeline/as_of"
FULL_REFRESH_TAG = "lifeline/full_refresh"
# Set by the landing sensor (orchestration/automation.py) and by Dagster on scheduled runs.
TRIGGER_TAG = "lifeline/trigger"
SCHEDULE_TAG = "dagster/schedule_name"
NO_PARTITION = ("this run builds the daily-partitioned events models but names no partition: choose a day "
                "(execute_in_process(partition_key='YYYY-MM-DD'), `dagster job launch --partition`, the UI's "
                "partition picker) or a range (a backfill); the hourly schedule picks today's UTC day")

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
    """Parse the project when its manifest is missing or older than a model, macro or seed.

    The manifest lives in its own folder (PARSED_DIR) and is moved into place whole: every other dbt
    run of the checkout rewrites target/manifest.json, and a reader of that file could see it half
    written (two test workers, or the UI beside a CLI build)."""
    project = dbt_project_dir()
    manifest = project / PARSED_DIR / "manifest.json"
    newest = max((p.stat().st_mtime for sub in ("models", "macros", "seeds") for p in (project / sub).rglob("*")
                  if p.is_file()), default=0)
    newest = max(newest, (project / "dbt_project.yml").stat().st_mtime)
    if not manifest.exists() or manifest.stat().st_mtime < newest:
        scratch = project / "target" / f"parse-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            # --write-json: the manifest is this parse's product, whatever DBT_WRITE_JSON says.
            run_dbt(warehouse, "parse", ["--target-path", str(scratch), "--write-json"])
            manifest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(scratch / "manifest.json", manifest)
            # dagster-dbt starts each invocation from target/partial_parse.msgpack: with this parse
            # (no --vars, like the builds: per-run vars travel in the environment) a build re-parses
            # only what changed.
            os.replace(scratch / "partial_parse.msgpack", project / "target" / "partial_parse.msgpack")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return manifest


def windowed_models(manifest_path: Path) -> list[str]:
    """Models whose rows are bounded by the partition window (they call one of WINDOW_MACROS)."""
    nodes = json.loads(Path(manifest_path).read_text())["nodes"].values()
    return sorted(n["name"] for n in nodes
                  if n["resource_type"] == "model" and set(WINDOW_MACROS) & set(n["depends_on"]["macros"]))


def new_rows_var(tags: Mapping[str, str]) -> dict[str, bool]:
    """Landing and scheduled runs process the raw rows loaded since the last run when they all lie in
    the partition window (dbt var partition_new_rows, macros/incremental_events.sql); a run launched
    on partitions by hand (a backfill, a re-run of a day) reprocesses the whole window."""
    automatic = tags.get(TRIGGER_TAG) == "landing" or SCHEDULE_TAG in tags
    return {"partition_new_rows": True} if automatic else {}


class DbtAssets(NamedTuple):
    unpartitioned: dg.AssetsDefinition
    partitioned: dg.AssetsDefinition
    resource: DbtCliResource
    project: DbtProject


def _build_args(context: dg.AssetExecutionContext, config: BuildConfig,
                window: Mapping[str, object]) -> tuple[list[str], dict[str, str]]:
    """The dbt arguments of one build step, and the environment that carries its per-run vars."""
    from orchestration.cli import parse_as_of

    as_of = config.as_of or context.run.tags.get(AS_OF_TAG)
    var_args, run_env = dbt_invocation(dbt_vars(parse_as_of(as_of), window))
    full_refresh = config.full_refresh or context.run.tags.get(FULL_REFRESH_TAG, "").lower() == "true"
    return ["build", *var_args, *(["--full-refresh"] if full_refresh else [])], run_env


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Sets `values` in this process's environment while dbt's subprocess starts (DbtCliResource.cli
    copies os.environ and takes no env of its own), then restores it. Each Dagster step runs in a
    process of its own (multiprocess executor) or one after another (in-process executor)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _run_build(dbt: DbtCliResource, context: dg.AssetExecutionContext, config: BuildConfig,
               window: Mapping[str, object], keep_runs: int) -> Iterator[Any]:
    args, run_env = _build_args(context, config, window)
    with _environment(run_env):
        invocation = dbt.cli(args, context=context)
    yield from _stream_and_prune(invocation, context, keep_runs)


def _stream_and_prune(invocation: Any, context: dg.AssetExecutionContext, keep_runs: int) -> Iterator[Any]:
    """Streams a dbt invocation's events, then removes old invocation folders (orchestration/run_artifacts.py)."""
    try:
        yield from invocation.stream()
    finally:
        removed = prune_invocation_folders(Path(invocation.target_path).parent, keep=keep_runs)
        if removed:
            context.log.info(f"removed {len(removed)} old dbt invocation folder(s) from dbt_project/target "
                             f"(keeping the newest {keep_runs}: dbt_runs_kept in lifeline.yml)")


def build_dbt_assets(warehouse: Warehouse, partitions_def: dg.PartitionsDefinition, keep_runs: int = 50) -> DbtAssets:
    """keep_runs: how many dbt invocation folders (artifacts and dbt.log of one step) stay in dbt_project/target."""
    project = DbtProject(project_dir=dbt_project_dir(), profiles_dir=dbt_project_dir(), target=warehouse.dbt_target)
    manifest = ensure_manifest(warehouse)
    translator = LifelineTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))
    windowed = " ".join(windowed_models(manifest))
    if not windowed:
        raise RuntimeError(f"no dbt model in {manifest} uses {' or '.join(WINDOW_MACROS)}: the partitioned dbt assets would be "
                           "empty; run `dbt parse` in dbt_project and check macros/incremental_events.sql")

    @dbt_assets(manifest=manifest, project=project, dagster_dbt_translator=translator,
                name="lifeline_dbt", exclude=windowed)
    def lifeline_dbt(context: dg.AssetExecutionContext, dbt: DbtCliResource, config: BuildConfig):
        yield from _run_build(dbt, context, config, {}, keep_runs)

    @dbt_assets(manifest=manifest, project=project, dagster_dbt_translator=translator,
                name="lifeline_dbt_events", select=windowed, partitions_def=partitions_def,
                backfill_policy=dg.BackfillPolicy.single_run())
    def lifeline_dbt_events(context: dg.AssetExecutionContext, dbt: DbtCliResource, config: BuildConfig):
        # One partition, or a single-run backfill's whole range (partition_time_window spans it).
        if not (context.has_partition_key or context.has_partition_key_range):
            raise dg.Failure(description=NO_PARTITION)
        window = {**window_vars(context.partition_time_window), **new_rows_var(context.run.tags)}
        context.log.info(f"event window from the partitions: {window}")
        yield from _run_build(dbt, context, config, window, keep_runs)

    resource = DbtCliResource(project_dir=project, profiles_dir=str(dbt_project_dir()), target=warehouse.dbt_target,
                              dbt_executable=dbt_executable())
    return DbtAssets(lifeline_dbt, lifeline_dbt_events, resource, project)
