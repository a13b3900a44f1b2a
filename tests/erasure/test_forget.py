"""`lifeline forget` against real warehouses (DuckDB, PostgreSQL), the real dbt build of the mini
fixture and the sandbox's Klaviyo, Mailchimp and webhook on loopback plus a file destination.

After a forget no text column of any table (raw, staging, intermediate, marts, lifeline_state)
contains the person's email, phone, profile_id or ids, in any spelling the raw files used; the
destinations no longer hold them; a rebuild and a re-load of the same files keep them out; other
people are untouched. Unknown people, dry runs and bad input change nothing."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from erasure_helpers import (ALICE, AS_OF, CAROL, ENV, MINI, build, klaviyo_list_emails, klaviyo_profiles,
                             mailchimp_status, row_counts, scalar, traces, write_syncs)
from orchestration.dbt_runner import run_dbt
from orchestration.erased import identifier_hash
from orchestration.erasure import Subject, forget
from orchestration.load import load
from syncs.destinations.file import FileDestination
from syncs.engine import run_syncs
from syncs.sandbox.server import run_in_thread
from syncs.warehouse import Warehouse

ROOT = Path(__file__).resolve().parents[2]
LIFELINE = [sys.executable, "-m", "orchestration.cli"]
TOKEN = ENV["TEST_KLAVIYO_KEY"]


@pytest.fixture(scope="module")
def built_file(tmp_path_factory) -> Path:
    """The mini fixture built once on DuckDB; each test works on its own copy."""
    path = tmp_path_factory.mktemp("built") / "warehouse.duckdb"
    build(Warehouse(kind="duckdb", duckdb_path=path))
    return path


@pytest.fixture
def duck(built_file: Path, duck_warehouse: Warehouse) -> Warehouse:
    shutil.copy(built_file, duck_warehouse.duckdb_path)
    return duck_warehouse


@pytest.fixture
def sandbox(tmp_path: Path):
    with run_in_thread(tmp_path / "sandbox", port=0, token=TOKEN, rate_limits=False) as server:
        yield server


def cli(args: list[str], warehouse: Warehouse, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    full = dict(os.environ, PYTHONPATH=str(ROOT), **warehouse.dbt_env(), **env)
    return subprocess.run(LIFELINE + args, cwd=cwd, env=full, capture_output=True, text=True, timeout=120)


def needles(person: dict, profile_id: str) -> list[str]:
    return [person["email"], person["phone"], profile_id, *person["raw"]]


def profile_of(warehouse: Warehouse, email: str) -> str:
    return scalar(warehouse, "select profile_id from identity_map where identifier_type = 'email' "
                             "and identifier_value = :v", v=email)


def test_forget_erases_everywhere_and_a_reload_keeps_them_out(duck: Warehouse, sandbox, tmp_path: Path):
    config = write_syncs(tmp_path / "syncs.yml", sandbox.base_url, tmp_path / "files")
    assert all(r.status == "success" for r in run_syncs(duck, config, env=ENV, progress=False))
    alice, carol = profile_of(duck, ALICE["email"]), profile_of(duck, CAROL["email"])
    assert klaviyo_list_emails(sandbox.base_url, "browse") == {ALICE["email"]}
    assert mailchimp_status(sandbox.base_url, "browse", ALICE["email"]) == 200
    assert scalar(duck, "select count(*) from lifeline_state.sync_state where key = :k", k=alice) == 4
    before = row_counts(duck)

    done = cli(["forget", "--email", " Alice.Smith@Example.COM ", "--config", str(config)], duck, tmp_path, **ENV)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "done" in done.stdout and "alice" not in (done.stdout + done.stderr).lower()

    # Nowhere in the warehouse, in any spelling; nothing of anyone else went with her.
    assert traces(duck, needles(ALICE, alice)) == []
    after = row_counts(duck)
    assert after["raw.events"] == before["raw.events"] - 7  # e1..e7 are hers, the other 13 events stay
    assert after["raw.orders"] == before["raw.orders"] - 2 and after["raw.order_items"] == before["raw.order_items"] - 1
    assert after["raw.customers"] == before["raw.customers"] - 1
    assert scalar(duck, "select count(*) from profiles") == 11  # of 12
    # Nowhere at the destinations; Bob's list untouched.
    assert klaviyo_profiles(sandbox.base_url, ALICE["email"]) == []
    assert klaviyo_list_emails(sandbox.base_url, "browse") == set()
    assert klaviyo_list_emails(sandbox.base_url, "cart") == {"bob@example.net"}
    assert mailchimp_status(sandbox.base_url, "browse", ALICE["email"]) == 404
    files = list((tmp_path / "files").iterdir())
    assert files and not any("alice" in f.read_text().lower() for f in files)
    deliveries = requests.get(f"{sandbox.base_url}/_sandbox/webhook/crm", timeout=10).json()["deliveries"]
    assert [d["body"]["op"] for d in deliveries] == ["add", "forget"]  # signed: the sandbox verified it
    assert deliveries[1]["body"]["rows"][0]["key"] == alice
    # The request: hashes and per-destination outcomes, no identifier.
    status, subject_hash, destinations = (scalar(duck, f"select {c} from lifeline_state.erasure_requests")
                                          for c in ("status", "subject_hash", "destinations"))
    assert (status, subject_hash) == ("done", identifier_hash("email", ALICE["email"]))
    assert {k: v["status"] for k, v in json.loads(destinations).items()} == {
        "klaviyo_browse": "deleted", "klaviyo_cart": "deleted", "mailchimp_browse": "deleted",
        "webhook_browse": "deleted", "file_browse": "deleted"}

    # Carol by phone: the raw files write it 07700 900123 (GB), identity_map +447700900123.
    report = forget(duck, Subject.parse("phone", "+44 7700 900123"), None)
    assert report.status == "done" and report.raw_rows["customers"] == 1 and report.raw_rows["message_events"] == 4
    assert traces(duck, needles(CAROL, carol)) == []

    # The same raw files again: their rows are dropped at load and counted; a rebuild leaves no trace.
    loaded = load(duck, MINI, replace=True)
    assert {t: r.erased_rows for t, r in loaded.items()} == {
        "customers": 2, "events": 7, "message_events": 4, "order_items": 3, "orders": 4, "products": 0}
    rebuilt = run_dbt(duck, "build", as_of=AS_OF)
    assert traces(duck, needles(ALICE, alice) + needles(CAROL, carol)) == []
    # int_profile_id_history lost rows of others too (previous_profile_id hers): its run compares in full.
    assert "int_profile_id_history (incremental): no run recorded" in rebuilt.output
    assert scalar(duck, "select count(*) from profiles") == 10
    assert scalar(duck, "select count(*) from profiles where email = 'bob@example.net'") == 1
    # and the next sync does not send her again
    assert all(r.status == "success" for r in run_syncs(duck, config, env=ENV, progress=False))
    assert klaviyo_list_emails(sandbox.base_url, "browse") == set()


def test_forget_on_postgres(pg_warehouse: Warehouse, sandbox, tmp_path: Path):
    build(pg_warehouse)
    config = write_syncs(tmp_path / "syncs.yml", sandbox.base_url, tmp_path / "files")
    assert all(r.status == "success" for r in run_syncs(pg_warehouse, config, env=ENV, progress=False))
    alice = profile_of(pg_warehouse, ALICE["email"])
    done = cli(["forget", "--profile-id", alice, "--config", str(config)], pg_warehouse, tmp_path, **ENV)
    assert done.returncode == 0, done.stdout + done.stderr
    assert traces(pg_warehouse, needles(ALICE, alice)) == []
    assert klaviyo_profiles(sandbox.base_url, ALICE["email"]) == []
    assert mailchimp_status(sandbox.base_url, "browse", ALICE["email"]) == 404
    assert scalar(pg_warehouse, "select count(*) from profiles") == 11
    loaded = load(pg_warehouse, MINI, replace=True)
    assert loaded["events"].erased_rows == 7 and loaded["events"].rows == 13
    assert traces(pg_warehouse, needles(ALICE, alice)) == []


def test_unknown_person_dry_run_and_bad_input_change_nothing(duck: Warehouse, tmp_path: Path):
    empty = tmp_path / "syncs.yml"
    empty.write_text("syncs: []\n")
    before = row_counts(duck)
    unknown = cli(["forget", "--email", "nobody@example.com", "--config", str(empty)], duck, tmp_path)
    assert unknown.returncode == 1 and "no person with this email in identity_map; nothing was changed" in unknown.stderr
    dry = cli(["forget", "--phone", "+14155550101", "--dry-run", "--config", str(empty)], duck, tmp_path)
    assert dry.returncode == 0 and "dry run: nothing was changed" in dry.stdout, dry.stderr
    assert "raw.events: 7 row(s)" in dry.stdout and "main.identity_map: 7 row(s)" in dry.stdout
    two = cli(["forget", "--email", ALICE["email"], "--phone", ALICE["phone"]], duck, tmp_path)
    assert two.returncode == 2 and "exactly one of --email, --phone or --profile-id" in two.stderr
    national = cli(["forget", "--phone", "(415) 555-0101", "--config", str(empty)], duck, tmp_path)
    assert national.returncode == 1 and "E.164" in national.stderr
    assert "Traceback" not in unknown.stderr + dry.stderr + national.stderr
    assert row_counts(duck) == before  # no erasure_requests table either


def test_failed_destination_is_recorded_and_a_rerun_retries_it(duck: Warehouse, sandbox, tmp_path: Path):
    config = write_syncs(tmp_path / "syncs.yml", sandbox.base_url, tmp_path / "files")
    assert all(r.status == "success" for r in run_syncs(duck, config, env=ENV, progress=False))
    wrong = dict(ENV, TEST_KLAVIYO_KEY="revoked-key")
    first = cli(["forget", "--email", ALICE["email"], "--config", str(config)], duck, tmp_path, **wrong)
    assert first.returncode == 1 and "partial" in first.stdout and "rerun the same `lifeline forget`" in first.stdout
    assert "klaviyo_browse (klaviyo): failed - DestinationError: Klaviyo refused the API key" in first.stdout
    assert traces(duck, [ALICE["email"], ALICE["phone"]]) == []  # the warehouse part is done regardless
    assert mailchimp_status(sandbox.base_url, "browse", ALICE["email"]) == 404
    assert len(klaviyo_profiles(sandbox.base_url, ALICE["email"])) == 1  # still there: the key was refused
    again = cli(["forget", "--email", ALICE["email"], "--config", str(config)], duck, tmp_path, **ENV)
    assert again.returncode == 0 and "retried" in again.stdout, again.stdout + again.stderr
    assert klaviyo_profiles(sandbox.base_url, ALICE["email"]) == []
    assert scalar(duck, "select status from lifeline_state.erasure_requests") == "done"
    third = cli(["forget", "--email", ALICE["email"], "--config", str(config)], duck, tmp_path, **ENV)
    assert third.returncode == 0 and "already erased" in third.stdout


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_file_destination_forget_rewrites_files_without_them(tmp_path: Path, file_format: str):
    dest = FileDestination(str(tmp_path), "s1", file_format)
    rows = [{"key": f"p{i}", "email": f"u{i}@example.com", "phone": None} for i in range(3)]
    dest.add(rows)
    dest.add(rows[1:])
    other = FileDestination(str(tmp_path), "s2", file_format)
    other.add(rows)
    assert all(r.ok for r in dest.forget([{"key": "p1", "email": "U1@example.com", "phone": None}]))
    kept = {r["key"] for path in tmp_path.glob("s1-*") for r in _read(path)}
    assert kept == {"p0", "p2"}
    assert {r["key"] for path in tmp_path.glob("s2-*") for r in _read(path)} == {"p0", "p1", "p2"}  # other sync
    assert not list(tmp_path.glob(".tmp-*"))


def _read(path: Path) -> list[dict]:
    from syncs.destinations.file import _read as read_file

    return read_file(path)
