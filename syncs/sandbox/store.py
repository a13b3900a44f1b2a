"""The sandbox's memory: one SQLite file (rollback journal) under the state dir, shared by every platform.

Platform modules own their rows; this module only opens the database, creates the tables and
hands out one transaction per request (`with store.tx() as db:`), serialised by a lock so the
single connection can be used from the server's event loop and from background threads.
"""
from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from itertools import repeat
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

SCHEMA = """
create table if not exists kl_profiles (
    id text primary key, email text, phone_number text, external_id text,
    attributes text not null, email_consent text, sms_consent text,
    created text not null, updated text not null);
-- profiles are found by their identifiers through an in-memory index (profile_keys.py), not SQLite
-- indexes that random identifiers made the bulk import's main cost
drop index if exists kl_profiles_email;
drop index if exists kl_profiles_phone;
drop index if exists kl_profiles_ext;
create table if not exists kl_lists (id text primary key, name text not null, created text not null,
    updated text not null, opt_in_process text not null default 'single_opt_in');
create table if not exists kl_list_members (list_id text not null, profile_id text not null,
    added text not null, primary key (list_id, profile_id)) without rowid;
-- members are found by (list, profile): a profile's memberships through the few lists, without an index
-- on profile_id that every imported member would update
drop index if exists kl_list_members_profile;
create table if not exists kl_jobs (id text primary key, kind text not null, body text not null,
    created_ts real not null);
create table if not exists kl_job_profiles (job_id text primary key, profile_ids text not null);
create table if not exists kl_import_errors (job_id text not null, seq integer not null, body text not null,
    primary key (job_id, seq)) without rowid;
create table if not exists daily_counters (name text not null, day text not null, n integer not null,
    primary key (name, day)) without rowid;
create table if not exists members (platform text not null, audience text not null, member_key text not null,
    data text not null, updated text not null, primary key (platform, audience, member_key)) without rowid;
create table if not exists audiences (platform text not null, id text not null, data text not null,
    primary key (platform, id)) without rowid;
create table if not exists tw_messages (sid text primary key, account_sid text not null, recipient text not null,
    data text not null, created text not null);
create table if not exists tw_optouts (phone text primary key, added text not null);
create table if not exists webhook_deliveries (id integer primary key autoincrement, name text not null,
    body text not null, received text not null);
create table if not exists message_events (message_id text not null, channel text not null, event text not null,
    occurred_at text not null, recipient text, campaign text, external_id text,
    primary key (message_id, event)) without rowid;
"""

PAGE_CACHE_KIB = 256 * 1024  # at most 256 MB of cached pages, used only as the store grows
JOURNAL_LIMIT_BYTES = 64 * 1024 * 1024  # the journal file a large transaction (a reset) leaves is cut to this

TABLES = ("kl_profiles", "kl_lists", "kl_list_members", "kl_jobs", "kl_job_profiles", "kl_import_errors",
          "daily_counters", "members", "audiences", "tw_messages", "tw_optouts", "webhook_deliveries",
          "message_events")


ROWS_PER_STATEMENT = 1_000  # rows of one multi-row insert (x columns bound parameters; SQLite allows 32,766)


def insert_rows(db: sqlite3.Connection, insert: str, rows: list[tuple], shared: tuple = ()) -> None:
    """`insert` ("insert [or ignore] into t (a, b, c)") of every row, as insert_columns does (the rows
    turned into columns first). Rows are inserted in the given order."""
    if rows:
        insert_columns(db, insert, list(zip(*rows)), shared)


def insert_columns(db: sqlite3.Connection, insert: str, columns: list[Sequence], shared: tuple = ()) -> None:
    """`insert` of the rows the columns make (row i: item i of each column), as multi-row VALUES
    statements of ROWS_PER_STATEMENT rows: a tenth of the bulk-import insert's CPU less than
    executemany's one statement step per row. A statement's parameters are written column by column
    (slice assignment, in C), so no row tuple is made or walked (-4 ms of a 10,000-profile import).
    `shared` holds the values of the last columns, the same for every row: bound once a statement
    instead of once a row (a bound value costs more than the row's storage)."""
    count, width, first = len(columns[0]), len(columns), len(shared)
    for start in range(0, count, ROWS_PER_STATEMENT):
        size = min(ROWS_PER_STATEMENT, count - start)
        params = [*shared, *repeat(None, size * width)]
        for c, column in enumerate(columns):
            params[first + c::width] = column[start:start + size]
        db.execute(f"{insert} values {_row_marks(width, first, size)}", params)


@lru_cache(maxsize=16)
def _row_marks(width: int, shared: int, count: int) -> str:
    """The VALUES list of `count` rows of `width` own values then `shared` values; the shared ones
    are the statement's first parameters (?1..?shared), each row's own follow (?NNN, numbered)."""
    if not shared:
        return ",".join(["(" + ",".join("?" * width) + ")"] * count)
    tail = "".join(f",?{n}" for n in range(1, shared + 1))
    first = shared + 1
    return ",".join("(" + ",".join(f"?{first + r * width + c}" for c in range(width)) + tail + ")"
                    for r in range(count))


class Store:
    """One SQLite database at `<state_dir>/sandbox.sqlite3`; `reset=True` empties it."""

    def __init__(self, state_dir: Path, reset: bool = False):
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / "sandbox.sqlite3"
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("pragma page_size=16384")  # a new database only: fewer, larger index pages (-10% per import)
        # A rollback journal, kept between transactions: a commit writes the new pages once, into the
        # database, where WAL wrote them to the log and a checkpoint copied them again (a 10,000-profile
        # bulk import at 1M profiles: 46-47.5 ms of CPU against 52.5-55). An interrupted write is still
        # rolled back when the store is next opened; other processes may read between requests. The
        # price is per transaction: the journal's header is read to see it is not hot (a transaction
        # of one small read ~24 us of CPU against WAL's ~9; one small write ~50 against ~20).
        self._db.execute("pragma journal_mode=persist")
        self._db.execute(f"pragma journal_size_limit={JOURNAL_LIMIT_BYTES}")
        # No fsync: the sandbox's state must survive its process being killed (the OS keeps what was
        # written), not a power cut; an fsync stalled bulk imports on a busy disk.
        self._db.execute("pragma synchronous=off")
        # A bulk import touches the profiles' table and primary key: with SQLite's
        # default 2 MB page cache those pages are re-read from the OS once a list nears 1M profiles.
        self._db.execute(f"pragma cache_size={-PAGE_CACHE_KIB}")
        self._db.executescript(SCHEMA)
        self._derived: dict[str, Any] = {}
        if reset:
            self.reset()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        with self._lock:
            self._db.execute("begin immediate")
            try:
                yield self._db
            except BaseException:
                self._db.execute("rollback")
                raise
            self._db.execute("commit")

    def derived(self, name: str, build: Callable[[sqlite3.Connection], Any]) -> Any:
        """An in-memory structure a platform module derives from its tables (e.g. profile_keys'
        identifier index): `build(db)` on first use, kept while the store is open, dropped by reset.
        The module keeps it in step with its own writes."""
        with self._lock:
            if name not in self._derived:
                self._derived[name] = build(self._db)
            return self._derived[name]

    def reset(self) -> None:
        with self.tx() as db:
            for table in TABLES:
                db.execute(f"delete from {table}")  # noqa: S608 - fixed table names
            self._derived.clear()

    def close(self) -> None:
        with self._lock:
            self._db.close()
