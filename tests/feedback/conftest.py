"""Fixtures for the feedback loop: the real receiver under uvicorn on 127.0.0.1 (port 0) and the real sandbox."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa
from starlette.applications import Starlette
from uvicorn_thread import UvicornThread

from syncs.feedback.receiver import ReceiverSecrets, create_receiver
from syncs.feedback.writer import MessageEventWriter
from syncs.sandbox.server import SandboxThread, run_in_thread
from syncs.warehouse import Warehouse

TWILIO_TOKEN = "test-token"  # the sandbox signs Twilio callbacks with its token, as Twilio does with the auth token
WEBHOOK_SECRET = "webhook-secret"


class ServerThread(UvicornThread):
    """The feedback receiver (an ASGI app) served by uvicorn from a background thread on 127.0.0.1."""

    def __init__(self, app: Starlette):
        super().__init__(app, name="receiver")


SELECT_EVENTS = ("select message_id, channel, event, occurred_at, recipient, campaign, external_id "
                 "from raw.message_events order by message_id, event")


def message_events(warehouse: Warehouse) -> list[tuple]:
    """Rows of raw.message_events ([] when the table does not exist). DuckDB is read with the same
    connection configuration as orchestration.load, so it may run while the receiver writes."""
    if warehouse.kind == "duckdb":
        with duckdb.connect(str(warehouse.duckdb_path)) as con:
            found = con.execute("select count(*) from information_schema.tables where table_schema = 'raw' "
                                "and table_name = 'message_events'").fetchone()[0]
            return [tuple(r) for r in con.execute(SELECT_EVENTS).fetchall()] if found else []
    engine = warehouse.engine()
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("message_events", schema="raw"):
                return []
            return [tuple(r) for r in conn.execute(sa.text(SELECT_EVENTS))]
    finally:
        engine.dispose()


@pytest.fixture
def receiver(duck_warehouse: Warehouse) -> Iterator[ServerThread]:
    app = create_receiver(MessageEventWriter(duck_warehouse), ReceiverSecrets(TWILIO_TOKEN, WEBHOOK_SECRET))
    with ServerThread(app) as server:
        yield server


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SandboxThread]:
    started = run_in_thread(tmp_path / "sandbox", token=TWILIO_TOKEN)
    yield started
    started.stop()
