"""Shared by the erasure tests: build the mini fixture, scan every text column, sandbox reads."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import requests
import sqlalchemy as sa

from orchestration.dbt_runner import run_dbt
from orchestration.load import load
from syncs.destinations.mailchimp import subscriber_hash
from syncs.warehouse import Warehouse

MINI = Path(__file__).resolve().parents[1] / "fixtures" / "mini"
AS_OF = datetime(2026, 11, 1)
TOKEN = "sandbox-token"
KLAVIYO_HEADERS = {"Authorization": f"Klaviyo-API-Key {TOKEN}", "revision": "2026-07-15"}

# Alice of tests/fixtures/mini: her email written three ways, her phone three ways, four cookies.
ALICE = {"email": "alice.smith@example.com", "phone": "+14155550101", "user_id": "u-alice",
         "raw": ["555-0101", "5550101", "alice.smith@example", "u-alice", "cookie-a1", "cookie-a2", "cookie-a3",
                 "cookie-a4"]}
# Carol: a GB customer whose phone the raw files write in national form (07700 900123).
CAROL = {"email": "carol@example.org", "phone": "+447700900123", "user_id": "u-carol",
         "raw": ["07700 900123", "7700900123", "u-carol", "carol@example"]}


def build(warehouse: Warehouse, source: Path = MINI) -> None:
    load(warehouse, source, replace=True)
    run_dbt(warehouse, "build", as_of=AS_OF)


def text_columns(conn: sa.Connection) -> list[tuple[str, str, str]]:
    return [tuple(r) for r in conn.execute(sa.text(
        "select c.table_schema, c.table_name, c.column_name from information_schema.columns c "
        "join information_schema.tables t on t.table_schema = c.table_schema and t.table_name = c.table_name "
        "and t.table_catalog = c.table_catalog where t.table_type = 'BASE TABLE' "
        "and t.table_catalog = current_database() and c.table_schema not in ('information_schema', 'pg_catalog') "
        "and lower(c.data_type) in ('varchar', 'text', 'character varying')"))]


def traces(warehouse: Warehouse, needles: list[str]) -> list[str]:
    """Every (table.column: needle) where a text column contains a needle, case-insensitively."""
    found = []
    engine = warehouse.engine()
    with engine.connect() as conn:
        for schema, table, column in text_columns(conn):
            for needle in needles:
                n = conn.execute(sa.text(f'select count(*) from "{schema}"."{table}" '
                                         f'where lower("{column}") like :p'), {"p": f"%{needle.lower()}%"}).scalar()
                if n:
                    found.append(f"{schema}.{table}.{column}: {needle} ({n})")
    engine.dispose()
    return found


def row_counts(warehouse: Warehouse) -> dict[str, int]:
    engine = warehouse.engine()
    with engine.connect() as conn:
        tables = sorted({(s, t) for s, t, _ in text_columns(conn)})
        out = {f"{s}.{t}": conn.execute(sa.text(f'select count(*) from "{s}"."{t}"')).scalar() for s, t in tables}
    engine.dispose()
    return out


def scalar(warehouse: Warehouse, sql: str, **params):
    engine = warehouse.engine()
    with engine.connect() as conn:
        value = conn.execute(sa.text(sql), params).scalar()
    engine.dispose()
    return value


def klaviyo_profiles(base_url: str, email: str) -> list[dict]:
    return requests.get(f"{base_url}/klaviyo/api/profiles", headers=KLAVIYO_HEADERS, timeout=10,
                        params={"filter": f'equals(email,"{email}")'}).json()["data"]


def klaviyo_list_emails(base_url: str, name: str) -> set[str]:
    lists = requests.get(f"{base_url}/klaviyo/api/lists", headers=KLAVIYO_HEADERS, timeout=10).json()["data"]
    [target] = [item for item in lists if item["attributes"]["name"] == name]
    body = requests.get(f"{base_url}/klaviyo/api/lists/{target['id']}/profiles", headers=KLAVIYO_HEADERS,
                        timeout=10).json()
    return {p["attributes"]["email"] for p in body["data"]}


def mailchimp_status(base_url: str, list_id: str, email: str) -> int:
    return requests.get(f"{base_url}/mailchimp/3.0/lists/{list_id}/members/{subscriber_hash(email)}",
                        auth=("x", TOKEN), timeout=10).status_code


def write_syncs(path: Path, base_url: str, folder: Path) -> Path:
    """Alice's audience to Klaviyo, Mailchimp, the webhook and a file; Bob's to another Klaviyo list."""
    def entry(name: str, audience: str, destination: str) -> str:
        return (f"  - name: {name}\n    source: {{audience: {audience}, channel: email}}\n"
                f"    destination:\n{destination}    safety: {{max_add_multiple: 100}}\n")
    path.write_text("syncs:\n"
                    + entry("klaviyo_browse", "browse_abandonment",
                            f"      type: klaviyo\n      list_name: browse\n      base_url: {base_url}/klaviyo\n"
                            "      api_key_env: TEST_KLAVIYO_KEY\n      client_rate_limits: false\n")
                    + entry("klaviyo_cart", "cart_abandonment",
                            f"      type: klaviyo\n      list_name: cart\n      base_url: {base_url}/klaviyo\n"
                            "      api_key_env: TEST_KLAVIYO_KEY\n      client_rate_limits: false\n")
                    + entry("mailchimp_browse", "browse_abandonment",
                            f"      type: mailchimp\n      list_id: browse\n      base_url: {base_url}/mailchimp\n"
                            "      api_key_env: TEST_MAILCHIMP_KEY\n")
                    + entry("webhook_browse", "browse_abandonment",
                            f"      type: webhook\n      base_url: {base_url}/webhook/crm\n"
                            "      api_key_env: TEST_WEBHOOK_SECRET\n")
                    + entry("file_browse", "browse_abandonment",
                            f"      type: file\n      base_url: {folder}\n"))
    return path


ENV = {"TEST_KLAVIYO_KEY": TOKEN, "TEST_MAILCHIMP_KEY": TOKEN, "TEST_WEBHOOK_SECRET": TOKEN}
