"""A sync's start-up imports what its destination needs: the engine and the registry import no
destination module until a sync names it, and phonenumbers (trigger syncs' quiet hours) only when a
phone's zone is asked for. Checked in a fresh interpreter, whose sys.modules holds only what the
imports brought in. And the `lifeline sync` process skips the interpreter's garbage collections
at exit (engine.no_collections_at_exit)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from syncs.destinations.registry import (CLIENT_CLASSES, SUPPORTED, UnsupportedDestination, client_class_of, limits,
                                        open_client)
from syncs.modes import destinations_for

ROOT = Path(__file__).resolve().parents[2]

LOADED = """
import json, sys
import syncs.engine
from syncs.config import Destination, Source, SyncConfig
from syncs.destinations.registry import limits, open_client
sync = SyncConfig(name="s", source=Source(audience="a", channel="email"),
                  destination=Destination(type="klaviyo", base_url="http://127.0.0.1:9/klaviyo", list_name="l",
                                          api_key_env="KEY"))
limits(sync)
open_client(sync, {"KEY": "k"})
print(json.dumps(sorted(m for m in sys.modules if m.startswith("syncs.destinations.") or m == "phonenumbers")))
"""


def test_a_klaviyo_sync_imports_no_other_destination():
    done = subprocess.run([sys.executable, "-c", LOADED], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert "syncs.destinations.klaviyo" in loaded
    others = {f"syncs.destinations.{kind}" for kind in SUPPORTED if kind != "klaviyo"}
    assert not loaded & others, f"imported for a Klaviyo sync: {sorted(loaded & others)}"
    assert "phonenumbers" not in loaded


def test_every_destination_type_has_its_client_class():
    assert tuple(CLIENT_CLASSES) == SUPPORTED
    for kind, name in CLIENT_CLASSES.items():
        klass = client_class_of(kind)
        assert isinstance(klass, type) and klass.__name__ == name
        assert klass.__module__ == f"syncs.destinations.{kind}"
    assert "klaviyo" in destinations_for("mirror") and "twilio" in destinations_for("trigger")
    assert "twilio" not in destinations_for("add_remove")


def test_the_cli_imports_the_feedback_commands_when_named():
    """`lifeline sync` starts without importing the feedback receiver and its clients; `--help`
    still lists `feedback`, and `lifeline feedback` still runs it."""
    from click.testing import CliRunner

    from orchestration.cli import main

    done = subprocess.run([sys.executable, "-c", "import sys, orchestration.cli; "
                           "print(sorted(m for m in sys.modules if m.startswith('syncs.feedback')))"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 0, done.stderr
    assert "syncs.feedback.cli" not in done.stdout
    listed = CliRunner().invoke(main, ["--help"])
    assert listed.exit_code == 0 and "feedback" in listed.output and "sync" in listed.output
    feedback = CliRunner().invoke(main, ["feedback", "--help"])
    assert feedback.exit_code == 0 and "pull" in feedback.output and "serve" in feedback.output


def test_a_destination_type_without_a_client_is_refused_by_name():
    """syncs.yml's validation refuses unknown types first; the registry says so too, naming the sync,
    the type and the supported ones, whether asked for limits (dry run) or a client."""
    sync = SimpleNamespace(name="weekly_fax", destination=SimpleNamespace(type="fax"))
    for ask in (lambda: limits(sync), lambda: open_client(sync, {})):
        with pytest.raises(UnsupportedDestination, match="sync weekly_fax: destination type fax has no client yet "
                                                         r"\(supported: klaviyo, mailchimp"):
            ask()


EXIT_AFTER_SYNC = """
import sys
from click.testing import CliRunner
from orchestration.cli import main

done = CliRunner().invoke(main, ["sync", "--config", sys.argv[1]])
print("exit code", done.exit_code)


class Cycle:
    def __init__(self):
        self.me = self  # freed only by the cyclic garbage collector

    def __del__(self):
        print("collected at exit")


Cycle()
"""


def test_the_sync_command_leaves_nothing_for_the_exit_collections(tmp_path):
    """After `lifeline sync` (here one that stops at a missing syncs.yml) the process's objects
    are frozen at exit: the interpreter's final collections, ~0.2 s of CPU after a Klaviyo sync,
    find nothing, so an object only they would free (a reference cycle) is left to the OS."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), LIFELINE_WAREHOUSE="duckdb",
               LIFELINE_DUCKDB_PATH=str(tmp_path / "warehouse.duckdb"))
    done = subprocess.run([sys.executable, "-c", EXIT_AFTER_SYNC, str(tmp_path / "missing.yml")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert "exit code 1" in done.stdout  # the command ran (and refused the missing file)
    assert "collected at exit" not in done.stdout
    plain = subprocess.run([sys.executable, "-c", EXIT_AFTER_SYNC.replace('"sync", ', '"sync", "--help", '),
                            str(tmp_path / "missing.yml")],
                           cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert "collected at exit" in plain.stdout  # --help ends before the sync: the collections ran
