"""Which warehouse Lifeline talks to, and how to connect to it.

The contract (shared/contract.md §3): DuckDB at ``./warehouse.duckdb`` unless
``LIFELINE_DUCKDB_PATH`` names another file; ``LIFELINE_WAREHOUSE=postgres`` with the usual
``PG*`` variables (or ``LIFELINE_PG_DSN``) selects PostgreSQL.

Everything that needs the warehouse builds a :class:`Warehouse` from the environment
(``Warehouse.from_env()``) and passes it down; nothing here is global.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Mapping
from urllib.parse import quote_plus

import sqlalchemy as sa

WarehouseKind = Literal["duckdb", "postgres"]

RAW_SCHEMA = "raw"
STATE_SCHEMA = "lifeline_state"


def default_duckdb_memory_limit(share: float = 0.75) -> str:
    """DuckDB's memory limit: a share of this machine's RAM (DuckDB spills to disk beyond it)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return "4GB"
    return f"{max(1, int(total * share / 2**20))}MB"


class WarehouseConfigError(ValueError):
    """The environment names a warehouse we cannot use; the message says what to set."""


class WarehouseBusy(RuntimeError):
    """Another process holds the DuckDB file (DuckDB allows one writer process); nothing was changed."""


@dataclass(frozen=True)
class Warehouse:
    kind: WarehouseKind
    duckdb_path: Path | None = None
    pg: Mapping[str, str] = field(default_factory=dict)
    pg_dsn: str | None = None

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> "Warehouse":
        env = os.environ if env is None else env
        kind = env.get("LIFELINE_WAREHOUSE", "duckdb").strip().lower() or "duckdb"
        if kind == "duckdb":
            raw = env.get("LIFELINE_DUCKDB_PATH", "warehouse.duckdb")
            path = Path(raw).expanduser()
            if not path.is_absolute():
                path = (cwd or Path.cwd()) / path
            # normalised but symlinks kept: the path is what dbt's profile gets, and dbt's partial
            # parse is keyed on it (a warehouse reached through a link keeps one parse)
            return cls(kind="duckdb", duckdb_path=Path(os.path.normpath(path)))
        if kind in ("postgres", "postgresql"):
            dsn = env.get("LIFELINE_PG_DSN") or None
            pg = {
                "host": env.get("PGHOST", "localhost"),
                "port": env.get("PGPORT", "5432"),
                "user": env.get("PGUSER", env.get("USER", "postgres")),
                "password": env.get("PGPASSWORD", ""),
                "dbname": env.get("PGDATABASE", "lifeline"),
            }
            return cls(kind="postgres", pg=pg, pg_dsn=dsn)
        raise WarehouseConfigError(
            f"LIFELINE_WAREHOUSE={kind!r} is not supported: set it to 'duckdb' (the default) or 'postgres'."
        )

    # -- connections --------------------------------------------------------------------
    @property
    def sqlalchemy_url(self) -> str:
        if self.kind == "duckdb":
            return f"duckdb:///{self.duckdb_path}"
        if self.pg_dsn:
            dsn = self.pg_dsn
            if dsn.startswith("postgres://"):
                dsn = "postgresql://" + dsn[len("postgres://"):]
            return dsn.replace("postgresql://", "postgresql+psycopg2://", 1)
        p = self.pg
        auth = quote_plus(p["user"]) + (":" + quote_plus(p["password"]) if p.get("password") else "")
        return f"postgresql+psycopg2://{auth}@{p['host']}:{p['port']}/{p['dbname']}"

    def engine(self, **kwargs) -> sa.Engine:
        """A SQLAlchemy engine. DuckDB allows one writer process, so its pool holds one connection."""
        if self.kind == "duckdb":
            assert self.duckdb_path is not None
            self.duckdb_path.parent.mkdir(parents=True, exist_ok=True)
            return sa.create_engine(self.sqlalchemy_url, poolclass=sa.pool.SingletonThreadPool, **kwargs)
        return sa.create_engine(self.sqlalchemy_url, pool_pre_ping=True, **kwargs)

    def wait_until_available(self, wait_s: float = 0.0, poll_s: float = 0.5) -> None:
        """DuckDB lets one process open the file for writing. Wait up to `wait_s` seconds for another
        process to let go of it, then raise WarehouseBusy naming the file and the holder."""
        if self.kind != "duckdb" or self.duckdb_path is None or not self.duckdb_path.exists():
            return
        import duckdb

        deadline = time.monotonic() + wait_s
        while True:
            try:
                duckdb.connect(str(self.duckdb_path)).close()
                return
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise
                if time.monotonic() >= deadline:
                    holder = re.search(r"held in (.+?\(PID \d+\))", str(exc))
                    raise WarehouseBusy(
                        f"the DuckDB warehouse {self.duckdb_path} is in use by another process"
                        f"{' (' + holder.group(1) + ')' if holder else ''}; nothing was changed. Wait for it to "
                        f"finish (a lifeline command, a Dagster run or an open DuckDB shell) and rerun, or pass "
                        f"--wait SECONDS to wait for it.") from exc
                time.sleep(poll_s)

    # -- dbt ----------------------------------------------------------------------------
    @property
    def dbt_target(self) -> str:
        return self.kind

    def dbt_env(self) -> dict[str, str]:
        """Environment variables read by dbt_project/profiles.yml for this warehouse."""
        if self.kind == "duckdb":
            return {"LIFELINE_DUCKDB_PATH": str(self.duckdb_path), "LIFELINE_WAREHOUSE": "duckdb",
                    "LIFELINE_DUCKDB_MEMORY_LIMIT": os.environ.get("LIFELINE_DUCKDB_MEMORY_LIMIT")
                    or default_duckdb_memory_limit()}
        env = {"LIFELINE_WAREHOUSE": "postgres"}
        if self.pg_dsn:
            url = sa.engine.make_url(self.sqlalchemy_url)
            env.update(PGHOST=url.host or "localhost", PGPORT=str(url.port or 5432),
                       PGUSER=url.username or "", PGPASSWORD=url.password or "",
                       PGDATABASE=url.database or "")
        else:
            env.update(PGHOST=self.pg["host"], PGPORT=str(self.pg["port"]), PGUSER=self.pg["user"],
                       PGPASSWORD=self.pg.get("password", ""), PGDATABASE=self.pg["dbname"])
        return env

    @property
    def marts_schema(self) -> str:
        """Schema of the contract marts (the connection's default, so unqualified names work)."""
        return "main" if self.kind == "duckdb" else "public"

    def describe(self) -> str:
        if self.kind == "duckdb":
            return f"DuckDB at {self.duckdb_path}"
        return f"PostgreSQL {self.pg.get('host')}:{self.pg.get('port')}/{self.pg.get('dbname')}" if not self.pg_dsn else "PostgreSQL (LIFELINE_PG_DSN)"
