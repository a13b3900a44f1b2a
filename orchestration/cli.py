"""The `lifeline` command (contract §3). Every command has --help."""
from __future__ import annotations

import importlib
import os
import socket
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import click
from sqlalchemy import exc as sa_exc

from orchestration.dbt_runner import PROJECT_ROOT, DbtError, telemetry_off_env
from syncs.warehouse import Warehouse, WarehouseBusy, WarehouseConfigError

DEMO_SEED = 42
DEMO_PEOPLE = 2_000


def lifeline_home() -> Path:
    """Project-local state: demo data, sandbox state, Dagster storage, check results."""
    return Path(os.environ.get("LIFELINE_HOME", Path.cwd() / ".lifeline")).resolve()


def parse_as_of(value: str | None) -> datetime:
    if not value:
        return datetime.now(timezone.utc).replace(microsecond=0)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an ISO-8601 timestamp (e.g. 2026-11-01T00:00:00Z)") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _warehouse() -> Warehouse:
    try:
        return Warehouse.from_env()
    except WarehouseConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def _available_warehouse(wait_s: float = 0.0) -> Warehouse:
    """The warehouse, once no other process holds its DuckDB file (waiting up to wait_s)."""
    warehouse = _warehouse()
    try:
        warehouse.wait_until_available(wait_s)
    except WarehouseBusy as exc:
        raise click.ClickException(str(exc)) from exc
    return warehouse


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class LazyGroup(click.Group):
    """A group whose `lazy` subcommands ({name: "module:attribute"}) are imported when named or
    listed (`--help`): `lifeline sync` does not import the feedback receiver and its clients
    (~0.1 s of CPU at each start)."""

    def __init__(self, *args, lazy: dict[str, str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy and name not in self.commands:
            module, attribute = self.lazy[name].split(":")
            self.add_command(getattr(importlib.import_module(module), attribute), name)
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, lazy={"feedback": "syncs.feedback.cli:feedback"},
             context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Lifeline: warehouse-native identity, lifecycle audiences and syncs (dbt + Dagster)."""
    for key, value in telemetry_off_env().items():
        os.environ.setdefault(key, value)


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--replace", is_flag=True, help="Replace the raw tables instead of appending to them.")
@click.option("--format", "fmt", type=click.Choice(["contract", "online_retail", "cdnow"]), default="contract",
              show_default=True, help="Input layout: contract tables, or a public dataset to convert first.")
def load(path: Path, replace: bool, fmt: str) -> None:
    """Load raw input files (CSV, Parquet, JSON Lines) into the warehouse `raw` schema."""
    from orchestration.load import LoadError, load as load_files

    warehouse = _available_warehouse()
    source = path
    if fmt != "contract":
        from seeds.adapters import AdapterError, convert

        source = lifeline_home() / "converted" / fmt
        try:
            counts = convert(fmt, path, source)
        except AdapterError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"converted {path} ({fmt}): " + ", ".join(f"{t} {n:,}" for t, n in counts.items()))
    try:
        results = load_files(warehouse, source, replace=replace)
    except LoadError as exc:
        raise click.ClickException(str(exc)) from exc
    for name, result in results.items():
        extra = f" (extra columns kept: {', '.join(result.extra_columns)})" if result.extra_columns else ""
        if result.erased_rows:
            extra += f" ({result.erased_rows:,} rows of erased people dropped, see `lifeline forget`)"
        click.echo(f"raw.{name}: {result.rows:,} rows from {len(result.files)} file(s){extra}")
    click.echo(f"loaded into {warehouse.describe()}")


@main.command()
@click.option("--as-of", "as_of", help="Treat this UTC timestamp as now (default: the current time).")
@click.option("--full-refresh", is_flag=True, help="Rebuild incremental models from scratch.")
@click.option("--select", "-s", multiple=True, help="dbt selection, passed through (repeatable).")
@click.option("--exclude", multiple=True, help="dbt exclusion, passed through (repeatable).")
@click.option("--skip-checks", is_flag=True, help="Do not run the Great Expectations suites.")
@click.option("--var", "dbt_var", multiple=True, metavar="NAME=VALUE",
              help="Set a dbt var (repeatable), e.g. --var at_risk_p_alive_below=0.3; VALUE is YAML.")
def build(as_of: str | None, full_refresh: bool, select: tuple[str, ...], exclude: tuple[str, ...],
          skip_checks: bool, dbt_var: tuple[str, ...]) -> None:
    """Run the dbt models and the data-quality checks."""
    from orchestration.pipeline import build as run_build

    warehouse = _available_warehouse()
    try:
        summary = run_build(warehouse, parse_as_of(as_of), full_refresh=full_refresh, select=select, exclude=exclude,
                            checks=not skip_checks, stream=True, extra_vars=parse_vars(dbt_var),
                            echo=lambda m: click.secho(f"==> {m}", bold=True))
    except DbtError as exc:
        raise click.ClickException(str(exc)) from exc
    _print_checks(summary.checks)
    if summary.blocking_failures:
        raise click.ClickException("data-quality checks failed: syncs are blocked until the data is fixed")


def parse_vars(pairs: tuple[str, ...]) -> dict[str, object]:
    import yaml

    values: dict[str, object] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--var")
        if name.strip() == "as_of":
            raise click.BadParameter("use --as-of for as_of", param_hint="--var")
        values[name.strip()] = yaml.safe_load(raw)
    return values


def _print_checks(checks: list) -> None:
    for check in checks:
        state = "pass" if check.success else "FAIL"
        warn = f", {len(check.warnings)} warning(s)" if getattr(check, "warnings", None) else ""
        click.echo(f"  check {check.suite}: {state}{warn}")
        for failure in getattr(check, "blocking_failures", [])[:5]:
            click.echo(f"    - {failure}")


@main.command()
@click.argument("names", nargs=-1)
@click.option("--dry-run", is_flag=True, help="Print each sync's plan and send nothing.")
@click.option("--force", is_flag=True, help="Override the safety limits on removals and additions.")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="syncs.yml to use (default: ./syncs.yml, else the project's).")
@click.option("--wait", "wait_s", default=0.0, type=click.FloatRange(0), metavar="SECONDS", show_default=True,
              help="If another run holds the warehouse or the sync's lock, wait this long before giving up.")
def sync(names: tuple[str, ...], dry_run: bool, force: bool, config_path: Path | None, wait_s: float) -> None:
    """Compute each sync's diff in the warehouse and push only the changes."""
    from syncs.engine import no_collections_at_exit, run_syncs

    no_collections_at_exit()
    warehouse = _available_warehouse(wait_s)
    try:
        results = run_syncs(warehouse, config_path or _default_syncs_file(), list(names) or None,
                            dry_run=dry_run, force=force, progress=sys.stderr.isatty(), wait_s=wait_s)
    except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
        raise _warehouse_lost(warehouse, exc) from exc
    _print_sync_results(results)
    if any(r.status in ("failed", "blocked") for r in results):
        raise click.ClickException("one or more syncs did not complete (see above)")


@main.command()
@click.option("--email", help="The person's email address.")
@click.option("--phone", help="The person's phone number in E.164 form (+447700900123).")
@click.option("--profile-id", "profile_id", help="The person's profile_id.")
@click.option("--dry-run", is_flag=True, help="Print what would be deleted where, and change nothing.")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="syncs.yml whose destinations are asked to delete the person (default: as for sync).")
@click.option("--wait", "wait_s", default=0.0, type=click.FloatRange(0), metavar="SECONDS", show_default=True,
              help="If another run holds the warehouse or a sync's lock, wait this long before giving up.")
def forget(email: str | None, phone: str | None, profile_id: str | None, dry_run: bool, config_path: Path | None,
           wait_s: float) -> None:
    """Erase one person (GDPR): raw rows, marts, sync state and every destination; keeps them out of later loads."""
    from orchestration.erasure import ErasureError, Subject, forget as run_forget
    from syncs.config import SyncConfigError
    from syncs.state import SyncLocked

    given = [(k, v) for k, v in (("email", email), ("phone", phone), ("profile_id", profile_id)) if v is not None]
    if len(given) != 1:
        raise click.UsageError("name the person with exactly one of --email, --phone or --profile-id")
    try:
        subject = Subject.parse(*given[0])
        report = run_forget(_available_warehouse(wait_s), subject, config_path or _default_syncs_file(),
                            dry_run=dry_run, wait_s=wait_s)
    except (ErasureError, SyncConfigError, SyncLocked) as exc:
        raise click.ClickException(str(exc)) from exc
    _print_erasure(report)
    if report.status == "partial":
        raise click.ClickException("erasure incomplete at some destinations (see above)")


def _print_erasure(report) -> None:
    click.echo(f"forget {report.subject_hash[:12]}: {report.status}"
               + (f" (request {report.request_id})" if report.request_id else "")
               + f", {report.profiles} profile(s), {report.identifiers} identifier(s)")
    for table, n in {**{f"raw.{t}": n for t, n in report.raw_rows.items()}, **report.other_rows}.items():
        if n:
            click.echo(f"  {table}: {n:,} row(s)")
    for outcome in report.destinations:
        click.echo(f"  destination {outcome.sync} ({outcome.type}): {outcome.status}"
                   + (f" - {outcome.detail}" if outcome.detail else ""))
    if report.message:
        click.echo(report.message)


def _warehouse_lost(warehouse: Warehouse, exc: Exception) -> click.ClickException:
    """A sync whose warehouse connection broke (server restarted, network gone): say what is safe."""
    reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0][:200]
    return click.ClickException(
        f"the sync lost its connection to the warehouse ({warehouse.describe()}): {reason}. Rows the destination "
        "acknowledged before were recorded; the batch in flight was not, and the next run resends it (a resend is "
        "idempotent). Check that the warehouse is reachable, then rerun `lifeline sync`.")


def _default_syncs_file() -> Path:
    local = Path.cwd() / "syncs.yml"
    return local if local.exists() else PROJECT_ROOT / "syncs.yml"


def _print_sync_results(results: list) -> None:
    for r in results:
        click.echo(f"  sync {r.name}: {r.status} (+{r.adds} ~{r.updates} -{r.removes}, {r.rejections} rejected, "
                   f"{r.duration_s:.1f}s){' - ' + r.message if r.message else ''}")


@main.command()
@click.option("--port", default=8787, show_default=True, type=int)
@click.option("--reset", is_flag=True, help="Start with empty destinations.")
@click.option("--no-rate-limits", is_flag=True, help="Turn the platforms' documented rate limits off.")
@click.option("--faults", default=None, metavar="SPEC",
              help="Inject faults, e.g. 'klaviyo:error_rate=0.1,latency_ms=20;twilio:drop_rate=0.05' "
                   "(default: LIFELINE_SANDBOX_FAULTS).")
def sandbox(port: int, reset: bool, no_rate_limits: bool, faults: str | None) -> None:
    """Serve the sandbox destinations (Klaviyo, Mailchimp, Braze, Twilio, Meta, Google, TikTok, webhook) on loopback."""
    from syncs.sandbox.server import serve

    state_dir = lifeline_home() / "sandbox"
    click.echo(f"sandbox on http://127.0.0.1:{port} (state in {state_dir}); Ctrl-C stops it")
    from syncs.sandbox.faults import parse_faults

    try:
        spec = parse_faults(faults) if faults else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--faults") from exc
    serve(host="127.0.0.1", port=port, state_dir=state_dir, reset=reset, rate_limits=not no_rate_limits, faults=spec)


@main.command()
@click.option("--port", default=3000, show_default=True, type=int)
def ui(port: int) -> None:
    """Start the Dagster UI on loopback, with instance storage in .lifeline/dagster."""
    home = lifeline_home() / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, DAGSTER_HOME=str(home), **telemetry_off_env())
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    webserver = Path(sys.executable).parent / "dagster-webserver"
    cmd = [str(webserver), "-h", "127.0.0.1", "-p", str(port), "-m", "orchestration.definitions"]
    click.echo(f"Dagster UI on http://127.0.0.1:{port}")
    raise SystemExit(subprocess.call(cmd, env=env, cwd=PROJECT_ROOT))


@main.command()
@click.option("--out", "out_path", type=click.Path(path_type=Path), default=None,
              help="Where to write the HTML file (default: .lifeline/report.html).")
def report(out_path: Path | None) -> None:
    """Write a self-contained HTML report (stage funnel, transitions, cohorts, audiences, holdout lift)."""
    from orchestration.report import write_report

    target = out_path or lifeline_home() / "report.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    written = write_report(_available_warehouse(), target)
    click.echo(f"report written to {written} (open it in a browser; it works offline)")


@main.command()
@click.option("--people", default=DEMO_PEOPLE, show_default=True, type=click.IntRange(1_000, 5_000_000))
@click.option("--seed", default=DEMO_SEED, show_default=True, type=int)
@click.option("--port", default=8787, show_default=True, type=int, help="Sandbox port (a free one if taken).")
@click.option("--regenerate", is_flag=True, help="Generate the demo data again even if present.")
def demo(people: int, seed: int, port: int, regenerate: bool) -> None:
    """Load the bundled demo data into DuckDB, build, check, sync to the sandbox, and summarise."""
    from orchestration.demo import run_demo

    try:
        run_demo(_available_warehouse(), home=lifeline_home(), people=people, seed=seed,
                 port=port if _port_free(port) else 0, regenerate=regenerate, echo=click.echo)
    except DbtError as exc:
        raise click.ClickException(str(exc)) from exc


if __name__ == "__main__":
    main()
