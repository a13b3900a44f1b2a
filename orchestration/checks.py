"""Great Expectations suites as Dagster asset checks.

One check per suite: raw.<table> on raw/<table>, profiles on profiles, and
audience.<audience>.<channel> on audience_members for every synced audience. A suite whose ERROR
expectation fails yields a failed check of severity ERROR; the checks are blocking, so the
downstream sync assets do not run (and the failed run alerts through the failure sensor). Failed
WARN expectations give a WARN result that blocks nothing. The full GE result is stored and linked
from the check's metadata.
"""
import dagster as dg

from orchestration.contract import RAW_TABLES
from syncs.warehouse import Warehouse


def suite_targets(synced_audiences: list[tuple[str, str]]) -> dict[str, dg.AssetKey]:
    targets = {f"raw.{t}": dg.AssetKey(["raw", t]) for t in RAW_TABLES}
    targets["profiles"] = dg.AssetKey(["profiles"])
    for audience, channel in sorted(set(synced_audiences)):
        targets[f"audience.{audience}.{channel}"] = dg.AssetKey(["audience_members"])
    return targets


def check_name(suite: str) -> str:
    return "gx_" + suite.replace(".", "_")


def build_dq_checks(warehouse: Warehouse, synced_audiences: list[tuple[str, str]], results_dir) -> dg.AssetChecksDefinition:
    targets = suite_targets(synced_audiences)
    specs = [dg.AssetCheckSpec(name=check_name(suite), asset=key, blocking=True,
                               description=f"Great Expectations suite {suite} (expectations/suites.py)")
             for suite, key in targets.items()]
    by_check = {check_name(s): s for s in targets}

    @dg.multi_asset_check(specs=specs, can_subset=True, name="great_expectations")
    def great_expectations(context: dg.AssetCheckExecutionContext):
        from expectations.runner import run_all

        from orchestration.cli import parse_as_of

        selected = [by_check[key.name] for key in context.selected_asset_check_keys]
        as_of = parse_as_of(context.run.tags.get("lifeline/as_of"))
        for result in run_all(warehouse, params={"as_of": as_of}, results_dir=results_dir, suite_names=selected):
            failed = result.blocking_failures or result.warnings
            yield dg.AssetCheckResult(
                asset_key=targets[result.suite], check_name=check_name(result.suite), passed=not failed,
                severity=dg.AssetCheckSeverity.ERROR if result.blocking_failures else dg.AssetCheckSeverity.WARN,
                metadata={
                    "suite": result.suite,
                    "blocking_failures": dg.MetadataValue.json([o.check for o in result.blocking_failures]),
                    "warnings": dg.MetadataValue.json([o.check for o in result.warnings]),
                    "observed": dg.MetadataValue.json({o.check: o.observed_value for o in result.outcomes}),
                    "result": dg.MetadataValue.path(str(result.result_path)),
                })

    return great_expectations
