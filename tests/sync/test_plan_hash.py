"""The row hash is computed in SQL; DuckDB and PostgreSQL must agree byte for byte, or a
warehouse move would resend everyone."""
from __future__ import annotations

import sqlalchemy as sa
from sync_helpers import people, set_audience

from syncs.config import SyncConfig
from syncs.plan import source_sql

SYNC = SyncConfig.model_validate({"name": "s", "source": {"audience": "cart_abandonment"},
                                  "destination": {"type": "webhook", "base_url": "http://127.0.0.1:1/x"}})


def hashes(warehouse) -> dict[str, str]:
    sql, params = source_sql(SYNC)
    engine = warehouse.engine()
    with engine.connect() as conn:
        out = dict(conn.execute(sa.text(f"select key, row_hash from ({sql}) s"), params).fetchall())
    engine.dispose()
    return out


def test_row_hash_is_identical_on_duckdb_and_postgres(duck_warehouse, pg_warehouse):
    members = people(5) + [{"profile_id": "p_x", "email": None, "phone": "+447700900123", "first_name": "Zoë",
                            "payload": '{"product": "Café crème", "step": 2}'}]
    for warehouse in (duck_warehouse, pg_warehouse):
        set_audience(warehouse, members)
    duck, pg = hashes(duck_warehouse), hashes(pg_warehouse)
    assert duck == pg and len(duck) == 6
    assert len(set(duck.values())) == 6  # null and empty fields still give distinct rows distinct hashes
