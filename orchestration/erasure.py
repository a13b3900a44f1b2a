"""`lifeline forget`: erase one person (GDPR art. 17) from the warehouse and every destination.

1. Resolve the person through `identity_map`: the profile_id of the given email, phone or
   profile_id, ALL identifiers of that profile, and the profile_ids it had before a merge.
2. Record the request in `lifeline_state.erasure_requests` and the hashes of every identifier in
   `lifeline_state.erased_identifiers` (orchestration/erased.py), committed first: from then on a
   load drops their rows, even if the rest fails.
3. Ask each sync's destination to delete them (syncs/erasure.py; clients with `forget()`).
4. Delete, in one transaction, their rows from the raw tables (events, customers, their orders and
   those orders' items, message_events), from every other table of the warehouse (marts,
   incremental intermediates and staging models, lifeline_state) and record the outcome.

Raw rows are found by identifier (normalised as staging does) and, where the staging models exist,
by the keys of staged rows whose normalised identifiers are the person's (a phone written
'07700 900123' in a GB customer's row is matched through its E.164 form). Other tables are cleaned
by value: every text column equal to the person's email, phone or profile_id, and id-like columns
(user/customer/anonymous ids, identifier values, order ids) equal to their ids.
Nothing here logs or prints an identifier; the report holds counts and hashes only.
"""
from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Mapping

import sqlalchemy as sa

from orchestration.erased import DDL, IDENTIFIERS, REQUESTS, identifier_hash
from syncs.config import SyncConfig, environment, load_syncs
from syncs.erasure import DestinationOutcome, forget_everywhere
from syncs.state import acquire_lock, ensure_state, now, release_lock
from syncs.warehouse import RAW_SCHEMA, STATE_SCHEMA, Warehouse

SubjectKind = Literal["email", "phone", "profile_id"]
TEMP = "_lifeline_forget"
STAGING = "staging"
KINDS = ("email", "phone", "phone_digits", "user_id", "anonymous_id", "profile_id", "order_id")
ID_COLUMN = re.compile(r"(user_id|customer_id|anonymous_id|identifier_value|anchor_value)")
SKIP = {(STATE_SCHEMA, "erasure_requests"), (STATE_SCHEMA, "erased_identifiers"), (STATE_SCHEMA, "sync_locks")}


class ErasureError(ValueError):
    """The request cannot be carried out; the message says why and what to do. Nothing was changed."""


@dataclass(frozen=True)
class Subject:
    kind: SubjectKind
    value: str  # normalised: email trimmed/lower-cased, phone E.164, profile_id trimmed

    @classmethod
    def parse(cls, kind: SubjectKind, raw: str) -> "Subject":
        value = raw.strip()
        if kind == "email":
            value = value.lower()
            if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
                raise ErasureError("--email is not an email address (local@domain.tld)")
        elif kind == "phone":
            digits = re.sub(r"[\s().-]", "", value)
            if not re.fullmatch(r"\+[1-9][0-9]{7,14}", digits):
                raise ErasureError("--phone must be in E.164 form, '+' then country code and number "
                                   "(e.g. +447700900123), as identity_map stores phones")
            value = digits
        elif not value:
            raise ErasureError("--profile-id is empty")
        return cls(kind, value)

    @property
    def hash(self) -> str:
        return identifier_hash(self.kind, self.value)


@dataclass
class Person:
    profile_id: str
    profile_ids: set[str]
    identifiers: dict[str, set[str]]  # email, phone (E.164), user_id, anonymous_id

    def values(self, kind: str) -> set[str]:
        if kind == "profile_id":
            return set(self.profile_ids)
        if kind == "phone_digits":
            return {re.sub(r"[^0-9]", "", p) for p in self.identifiers.get("phone", set())}
        return set(self.identifiers.get(kind, set()))


@dataclass
class ErasureReport:
    request_id: str | None
    status: str  # done | partial | dry_run | already_erased
    subject_hash: str
    profiles: int = 0
    identifiers: int = 0
    raw_rows: dict[str, int] = field(default_factory=dict)
    other_rows: dict[str, int] = field(default_factory=dict)
    destinations: list[DestinationOutcome] = field(default_factory=list)
    message: str = ""


# -- reading ---------------------------------------------------------------------------------
def _exists(conn: sa.Connection, schema: str, table: str) -> bool:
    return bool(conn.execute(sa.text("select count(*) from information_schema.tables where table_schema = :s "
                                     "and table_name = :t"), {"s": schema, "t": table}).scalar())


def resolve(conn: sa.Connection, marts: str, subject: Subject) -> Person | None:
    """The person the subject names, with all their identifiers; None if identity_map lacks them."""
    if not _exists(conn, marts, "identity_map"):
        raise ErasureError("the warehouse has no identity_map yet: run `lifeline build`, then `lifeline forget`")
    if subject.kind == "profile_id":
        found = conn.execute(sa.text(f"select max(profile_id) from {marts}.identity_map where profile_id = :v"),
                             {"v": subject.value}).scalar()
        if found is None and _exists(conn, marts, "profile_merges"):
            found = conn.execute(sa.text(f"select max(new_profile_id) from {marts}.profile_merges "
                                         "where old_profile_id = :v"), {"v": subject.value}).scalar()
    else:
        found = conn.execute(sa.text(f"select max(profile_id) from {marts}.identity_map where identifier_type = :k "
                                     "and identifier_value = :v"), {"k": subject.kind, "v": subject.value}).scalar()
    if found is None:
        return None
    identifiers: dict[str, set[str]] = {}
    for kind, value in conn.execute(sa.text(f"select identifier_type, identifier_value from {marts}.identity_map "
                                            "where profile_id = :p"), {"p": found}):
        identifiers.setdefault(kind, set()).add(value)
    return Person(found, {found} | _former_ids(conn, marts, found, identifiers), identifiers)


def _former_ids(conn: sa.Connection, marts: str, profile_id: str, identifiers: dict[str, set[str]]) -> set[str]:
    """profile_ids the person had before merges (profile_merges, int_profile_id_history)."""
    ids: set[str] = set()
    if _exists(conn, marts, "profile_merges"):
        ids |= {r for (r,) in conn.execute(sa.text(f"select old_profile_id from {marts}.profile_merges "
                                                   "where new_profile_id = :p"), {"p": profile_id})}
    if _exists(conn, "intermediate", "int_profile_id_history"):
        for kind, values in identifiers.items():
            for value in values:
                ids |= {r for (r,) in conn.execute(sa.text(
                    "select previous_profile_id from intermediate.int_profile_id_history where identifier_type = :k "
                    "and identifier_value = :v and previous_profile_id is not null"), {"k": kind, "v": value})}
    return ids


def _stage(conn: sa.Connection, person: Person) -> None:
    """The person's values in a temporary table `_lifeline_forget(kind, value)` the SQL below joins."""
    conn.execute(sa.text(f"create temporary table if not exists {TEMP} (kind varchar, value varchar)"))
    conn.execute(sa.text(f"delete from {TEMP}"))
    rows = [{"k": kind, "v": v} for kind in KINDS if kind != "order_id" for v in sorted(person.values(kind))]
    if rows:
        conn.execute(sa.text(f"insert into {TEMP} values (:k, :v)"), rows)
    orders = {r for (r,) in conn.execute(sa.text(_orders_sql(conn))) if r is not None}
    if orders:
        conn.execute(sa.text(f"insert into {TEMP} values ('order_id', :v)"), [{"v": o} for o in sorted(orders)])


def _in(kind: str) -> str:
    return f"in (select value from {TEMP} where kind = '{kind}')"


def _digits(column: str) -> str:
    return f"regexp_replace({column}, '[^0-9]', '', 'g')"


def _staged(conn: sa.Connection, table: str, key: str, where: str) -> str:
    """` or <key> in (keys of the staged rows matching where)`, if the staging model exists."""
    if not _exists(conn, STAGING, table):
        return ""
    return f" or trim({key}) in (select {key} from {STAGING}.{table} where {where})"


def _orders_sql(conn: sa.Connection) -> str:
    return (f"select trim(order_id) from {RAW_SCHEMA}.orders where trim(customer_id) {_in('user_id')} "
            f"or lower(trim(email)) {_in('email')} or trim(anonymous_id) {_in('anonymous_id')} "
            f"or {_digits('phone')} {_in('phone_digits')}"
            + (f" union select order_id from {STAGING}.stg_orders where customer_id {_in('user_id')} or email "
               f"{_in('email')} or phone {_in('phone')} or anonymous_id {_in('anonymous_id')}"
               if _exists(conn, STAGING, "stg_orders") else ""))


def raw_predicates(conn: sa.Connection) -> dict[str, str]:
    """Per raw table: the SQL condition of the person's rows (after _stage)."""
    person_cols = (f"email {_in('email')} or phone {_in('phone')} or user_id {_in('user_id')} "
                   f"or anonymous_id {_in('anonymous_id')}")
    return {
        "events": (f"lower(trim(email)) {_in('email')} or trim(user_id) {_in('user_id')} or trim(anonymous_id) "
                   f"{_in('anonymous_id')} or {_digits('phone')} {_in('phone_digits')} or trim(order_id) "
                   f"{_in('order_id')}" + _staged(conn, "stg_events", "event_id", person_cols)),
        "customers": (f"trim(customer_id) {_in('user_id')} or lower(trim(email)) {_in('email')} or "
                      f"{_digits('phone')} {_in('phone_digits')}"
                      + _staged(conn, "stg_customers", "customer_id",
                                f"email {_in('email')} or phone {_in('phone')} or customer_id {_in('user_id')}")),
        "orders": f"trim(order_id) {_in('order_id')}",
        "order_items": f"trim(order_id) {_in('order_id')}",
        "message_events": (f"lower(trim(recipient)) {_in('email')} or {_digits('recipient')} {_in('phone_digits')} "
                           f"or trim(external_id) {_in('profile_id')}"
                           + _staged(conn, "stg_message_events", "message_id",
                                     f"recipient_email {_in('email')} or recipient_phone {_in('phone')} "
                                     f"or external_id {_in('profile_id')}")),
    }


def _text_columns(conn: sa.Connection) -> dict[tuple[str, str], list[str]]:
    """Text columns of every base table (temporary and system tables aside)."""
    rows = conn.execute(sa.text(
        "select c.table_schema, c.table_name, c.column_name from information_schema.columns c "
        "join information_schema.tables t on t.table_schema = c.table_schema and t.table_name = c.table_name "
        "and t.table_catalog = c.table_catalog "
        "where t.table_type = 'BASE TABLE' and t.table_catalog = current_database() "
        "and c.table_schema not in ('information_schema', 'pg_catalog') and c.table_schema not like 'pg_%' "
        "and lower(c.data_type) in ('varchar', 'text', 'character varying') "
        "order by c.table_schema, c.table_name, c.ordinal_position"))
    out: dict[tuple[str, str], list[str]] = {}
    for schema, table, column in rows:
        out.setdefault((schema, table), []).append(column)
    return out


def derived_predicates(conn: sa.Connection) -> dict[tuple[str, str], str]:
    """Per non-raw table holding text: the condition of rows that name the person."""
    out: dict[tuple[str, str], str] = {}
    distinctive = f"in (select value from {TEMP} where kind in ('email', 'phone', 'profile_id'))"
    for (schema, table), columns in _text_columns(conn).items():
        if schema == RAW_SCHEMA or (schema, table) in SKIP or table == TEMP:
            continue
        terms = [f'"{c}" {distinctive}' for c in columns]
        terms += [f"\"{c}\" in (select value from {TEMP} where kind in ('user_id', 'anonymous_id'))"
                  for c in columns if ID_COLUMN.search(c.lower())]
        terms += [f'"{c}" {_in("order_id")}' for c in columns if "order_id" in c.lower()]
        if schema == STATE_SCHEMA:  # keys that embed a profile_id (trigger idempotency keys)
            embedded = " or ".join(f'position(p.value in "{c}") > 0' for c in columns)
            terms.append(f"exists (select 1 from {TEMP} p where p.kind = 'profile_id' and ({embedded}))")
        out[(schema, table)] = " or ".join(terms)
    return out


def _apply(conn: sa.Connection, table: str, where: str, delete: bool) -> int:
    count = conn.execute(sa.text(f"select count(*) from {table} where {where}")).scalar() or 0
    if delete and count:
        conn.execute(sa.text(f"delete from {table} where {where}"))
    return int(count)


def raw_phone_forms(conn: sa.Connection, predicates: dict[str, str], person: Person) -> set[str]:
    """Digits of the phones as the raw files wrote them (e.g. 07700900123 for +447700900123), so a
    re-load of the same files is recognised."""
    columns = {"events": "phone", "customers": "phone", "orders": "phone", "message_events": "recipient"}
    full = person.values("phone_digits")
    forms: set[str] = set()
    for table, column in columns.items():
        if not _exists(conn, RAW_SCHEMA, table):
            continue
        for (value,) in conn.execute(sa.text(f"select distinct {column} from {RAW_SCHEMA}.{table} "
                                             f"where {predicates[table]}")):
            digits = re.sub(r"[^0-9]", "", value or "")
            if len(digits) >= 7 and any(f.endswith(digits.lstrip("0")) for f in full):
                forms.add(digits)
    return forms


# -- the request -----------------------------------------------------------------------------
def _register(conn: sa.Connection, request_id: str, subject: Subject, person: Person, phone_forms: set[str]) -> int:
    for statement in DDL:
        conn.execute(sa.text(statement))
    hashes = {identifier_hash(kind if kind != "phone_digits" else "phone", v): kind
              for kind in ("email", "phone_digits", "user_id", "anonymous_id", "profile_id")
              for v in person.values(kind)}
    hashes |= {identifier_hash("phone", v): "phone" for v in phone_forms}
    hashes |= {identifier_hash("order_id", v): "order_id" for (v,) in
               conn.execute(sa.text(f"select value from {TEMP} where kind = 'order_id'"))}
    stamp = now()
    conn.execute(sa.text(f"insert into {REQUESTS} (request_id, subject_type, subject_hash, requested_at, status, "
                         "identifiers) values (:r, :k, :h, :t, 'in_progress', :n)"),
                 {"r": request_id, "k": subject.kind, "h": subject.hash, "t": stamp, "n": len(hashes)})
    conn.execute(sa.text(f"insert into {IDENTIFIERS} values (:h, :k, :r, :t) on conflict do nothing"),
                 [{"h": h, "k": "phone" if k == "phone_digits" else k, "r": request_id, "t": stamp}
                  for h, k in hashes.items()])
    return len(hashes)


def _previous(conn: sa.Connection, subject: Subject) -> tuple | None:
    if not _exists(conn, STATE_SCHEMA, "erasure_requests"):
        return None
    return conn.execute(sa.text(f"select request_id, requested_at, status, destinations from {REQUESTS} "
                                "where subject_hash = :h order by requested_at desc limit 1"),
                        {"h": subject.hash}).fetchone()


def _destination_rows(conn: sa.Connection, person: Person, syncs: list[SyncConfig]) -> dict[str, list[dict]]:
    """Per sync: one row per profile_id it holds (with its destination id) plus one per email/phone."""
    emails, phones = sorted(person.values("email")), sorted(person.values("phone"))
    base = [{"key": person.profile_id, "email": emails[0] if emails else None,
             "phone": phones[0] if phones else None, "destination_id": None}]
    base += [{"key": person.profile_id, "email": e, "phone": None, "destination_id": None} for e in emails[1:]]
    base += [{"key": person.profile_id, "email": None, "phone": p, "destination_id": None} for p in phones[1:]]
    state: dict[tuple[str, str], str | None] = {}
    if _exists(conn, STATE_SCHEMA, "sync_state"):
        for name, key, dest in conn.execute(sa.text(
                f"select sync_name, key, destination_id from {STATE_SCHEMA}.sync_state "
                f"where key {_in('profile_id')}")):
            state[(name, key)] = dest
    out = {}
    for sync in syncs:
        rows = [dict(r) for r in base]
        rows[0]["destination_id"] = state.get((sync.name, person.profile_id))
        rows += [{"key": k, "email": None, "phone": None, "destination_id": d}
                 for (n, k), d in state.items() if n == sync.name and k != person.profile_id]
        out[sync.name] = rows
    return out


def forget(warehouse: Warehouse, subject: Subject, syncs_file: Path | None, *, dry_run: bool = False,
           wait_s: float = 0.0, env: Mapping[str, str] | None = None) -> ErasureReport:
    syncs = load_syncs(syncs_file) if syncs_file else []
    engine = warehouse.engine()
    try:
        with engine.connect() as conn:
            person = resolve(conn, warehouse.marts_schema, subject)
            if person is None:
                return _unknown_or_retry(conn, subject, syncs, dry_run, environment(env))
            if dry_run:
                return _plan(conn, subject, person, syncs)
            return _erase(conn, subject, person, syncs, wait_s, environment(env))
    finally:
        engine.dispose()


def _plan(conn: sa.Connection, subject: Subject, person: Person, syncs: list[SyncConfig]) -> ErasureReport:
    _stage(conn, person)
    raw = {t: _apply(conn, f"{RAW_SCHEMA}.{t}", w, False) for t, w in raw_predicates(conn).items()
           if _exists(conn, RAW_SCHEMA, t)}
    other = {f"{s}.{t}": _apply(conn, f'"{s}"."{t}"', w, False) for (s, t), w in derived_predicates(conn).items()}
    conn.rollback()
    return ErasureReport(None, "dry_run", subject.hash, len(person.profile_ids),
                         sum(len(v) for v in person.identifiers.values()), raw, {k: v for k, v in other.items() if v},
                         [DestinationOutcome(s.name, s.destination.type, "would_forget") for s in syncs],
                         "dry run: nothing was changed")


def _erase(conn: sa.Connection, subject: Subject, person: Person, syncs: list[SyncConfig], wait_s: float,
           env: Mapping[str, str]) -> ErasureReport:
    ensure_state(conn)
    locked = []
    try:
        for sync in syncs:  # no sync may send them again while they are erased
            acquire_lock(conn, sync.name, wait_s=wait_s)
            locked.append(sync.name)
        request_id = str(uuid.uuid4())
        _stage(conn, person)
        raw_where = {t: w for t, w in raw_predicates(conn).items() if _exists(conn, RAW_SCHEMA, t)}
        count = _register(conn, request_id, subject, person, raw_phone_forms(conn, raw_where, person))
        rows = _destination_rows(conn, person, syncs)
        conn.commit()  # the register first: whatever fails next, a re-load keeps them out
        outcomes = forget_everywhere(syncs, rows, env)
        raw = {t: _apply(conn, f"{RAW_SCHEMA}.{t}", w, True) for t, w in raw_where.items()}
        other = {f"{s}.{t}": _apply(conn, f'"{s}"."{t}"', w, True) for (s, t), w in derived_predicates(conn).items()}
        _forget_history_run(conn)
        status = "done" if all(o.status == "deleted" for o in outcomes) else "partial"
        _finish(conn, request_id, status, sum(raw.values()) + sum(other.values()), outcomes)
        conn.commit()
    finally:
        conn.rollback()
        for name in locked:
            release_lock(conn, name)
    return ErasureReport(request_id, status, subject.hash, len(person.profile_ids), count, raw,
                         {k: v for k, v in other.items() if v}, outcomes, _status_message(status))


def _forget_history_run(conn: sa.Connection) -> None:
    """int_profile_id_history's incremental run trusts that every identity_map row has its profile_id
    there and compares only identity_map's list of changes; the erasure also deletes the rows of
    other identifiers whose previous_profile_id was the person's, so its last run is forgotten and
    its next run compares every identity_map row (dbt_project/models/identity/README.md, section 5)."""
    if _exists(conn, "intermediate", "int_profile_id_history__last_run"):
        conn.execute(sa.text("delete from intermediate.int_profile_id_history__last_run"))


def _finish(conn: sa.Connection, request_id: str, status: str, deleted: int,
            outcomes: list[DestinationOutcome]) -> None:
    conn.execute(sa.text(f"update {REQUESTS} set status = :s, completed_at = :t, rows_deleted = :n, "
                         "destinations = :d where request_id = :r"),
                 {"s": status, "t": now(), "n": deleted, "r": request_id,
                  "d": json.dumps({o.sync: {"type": o.type, "status": o.status, "detail": o.detail}
                                   for o in outcomes})})


def _status_message(status: str) -> str:
    if status == "done":
        return "erased from the warehouse and every destination"
    return ("erased from the warehouse; some destinations did not confirm (see above): fix them and rerun the same "
            "`lifeline forget` to retry those destinations")


def _unknown_or_retry(conn: sa.Connection, subject: Subject, syncs: list[SyncConfig], dry_run: bool,
                      env: Mapping[str, str]) -> ErasureReport:
    previous = _previous(conn, subject)
    if previous is None:
        raise ErasureError(f"no person with this {subject.kind.replace('_', ' ')} in identity_map; nothing was "
                           "changed. Check the value (phones in E.164), or run `lifeline build` if their data "
                           "was loaded after the last build.")
    request_id, requested_at, status, destinations = previous
    failed = [s for s in syncs if (json.loads(destinations or "{}").get(s.name) or {}).get("status") != "deleted"]
    if status == "done" or not failed or dry_run:
        return ErasureReport(request_id, "already_erased", subject.hash,
                             message=f"already erased by request {request_id} on {requested_at:%Y-%m-%d %H:%M} UTC"
                                     f" ({status}); nothing to do" + (f"; would retry {len(failed)} destination(s)"
                                                                      if dry_run and failed and status != 'done'
                                                                      else ""))
    row = {"key": request_id, "email": subject.value if subject.kind == "email" else None,
           "phone": subject.value if subject.kind == "phone" else None, "destination_id": None}
    outcomes = forget_everywhere(failed, {s.name: [row] for s in failed}, env)
    merged = {**json.loads(destinations or "{}"), **{o.sync: {"type": o.type, "status": o.status, "detail": o.detail}
                                                     for o in outcomes}}
    status = "done" if all(v["status"] == "deleted" for v in merged.values()) else "partial"
    conn.execute(sa.text(f"update {REQUESTS} set status = :s, completed_at = :t, destinations = :d "
                         "where request_id = :r"), {"s": status, "t": now(), "d": json.dumps(merged), "r": request_id})
    conn.commit()
    return ErasureReport(request_id, status, subject.hash, destinations=outcomes,
                         message="retried the destinations that had not confirmed; " + _status_message(status))
