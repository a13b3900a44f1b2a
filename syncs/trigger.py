"""Trigger mode: one message per person per trigger occurrence, exactly once, across crashes.

An occurrence is (sync, profile_id, audience, entered_at) of a source row (audience_members,
holdout excluded, the sync's channel); its idempotency key is `<profile_id>:<sha256 of the four>`
(the profile_id prefix lets `lifeline forget` find the person's keys). A person who leaves and
re-enters the audience has a new entered_at, so a new occurrence and a new message. A row with a
null entered_at has one occurrence per person and audience, ever.

Per batch of due rows, `lifeline_state.trigger_keys`:
1. the keys are written 'pending' (destination_id holds `pending:<hash of To>:<hash of Body>`)
   and COMMITTED before any request;
2. the messages are sent, one request each;
3. each key becomes 'sent' (destination_id = Twilio's message sid, confirmed_at) or 'failed'
   (a permanent per-row error, also in lifeline_state.rejections with Twilio's code), committed.
Keys that are 'sent' or 'failed' are never sent again. A row whose message cannot be made (a
template field without a value, a body over the platform's limit) is a rejection without a key:
once the row or the template changes, it is tried again.

A run first resolves every 'pending' key among its source rows (left by a crash between 1 and 3,
or by a send whose outcome stayed unknown): it asks the platform for a message to that number with
exactly the body that was about to go out, created since the key was written. Found: the key
becomes 'sent' with that sid, nothing is sent. Not found: the message is sent now. A message sid
already tied to another key is never reused for a second key.

Residual risk, honestly: Twilio has no idempotency key, so "exactly once" rests on reading
Twilio's message list back. A duplicate is still possible if (a) Twilio accepted the request but
its list does not show the message yet when the next run checks (we have not seen such a lag;
it is not documented either way), or (b) the body Twilio stores differs from what we sent (Smart
Encoding or a Messaging Service rewriting characters), so the exact-body match fails. Missing a
message is possible, by design preferring that to a duplicate, if the same body went to the same
number from the same sender inside the clock margin for another reason, or if the person's phone
changed after the interrupted send (then the key is marked failed with code `phone_changed`, since
the old number cannot be checked without storing it). A pending key whose row left the source is
left pending (its number is unknown) and resolved if the row comes back.

Quiet hours (syncs/quiet_hours.py, per sync, default 21:00-08:00 in the recipient's zone): rows in
quiet hours are deferred (neither sent nor marked) and counted; a later run sends them.

A recipient who opted out (Twilio 21610) is a failed key and a rejection, and an `opted_out` sms
row is appended to raw.message_events through the feedback writer (message_id
`twilio-optout:<key>`, so it is written once), so int_consent_signals turns sms_consent off and the
next build drops the person from SMS audiences. The row is written after the run's warehouse
connection closes (DuckDB allows one configuration per file in a process); a crash before that is
repaired by the next run, which writes the opt-outs of every 21610 rejection still missing.
"""
from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

import sqlalchemy as sa
from tqdm import tqdm

from syncs.config import MissingSecret, SyncConfig, environment
from syncs.destinations.base import DestinationError, MessageClient, RowResult
from syncs.destinations.registry import UnsupportedDestination, limits, open_client
from syncs.destinations.twilio import CLOCK_MARGIN, OPTED_OUT, body_hash
from syncs.engine import SyncResult, limit_memory, record_result
from syncs.message_template import TemplateFieldMissing
from syncs.plan import SourceMissing, check_source
from syncs.quiet_hours import QuietClock
from syncs.state import (
    SyncLocked,
    acquire_lock,
    ensure_state,
    now,
    record_rejections,
    release_lock,
)
from syncs.warehouse import RAW_SCHEMA, STATE_SCHEMA, Warehouse

log = logging.getLogger(__name__)

SOURCE_TABLE = "_lifeline_trigger_source"
PAGE = 1_000
OPT_OUT_PREFIX = "twilio-optout:"
KEYS = f"{STATE_SCHEMA}.trigger_keys"


@dataclass
class TriggerResult(SyncResult):
    """SyncResult with trigger counts: adds = messages sent by this run."""
    deferred: int = 0       # in quiet hours: left for a later run
    confirmed: int = 0      # pending keys whose message Twilio already had (sent before a crash)
    already_sent: int = 0   # occurrences sent (or failed for good) by earlier runs
    pending_left: int = 0   # pending keys this run could not resolve
    opt_outs: int = 0       # opted_out rows appended to raw.message_events


@dataclass
class Occurrence:
    key: str
    row: dict
    status: str | None          # None (new), pending, sent, failed
    marker: str | None          # destination_id: the pending marker or the sid
    created_at: datetime | None


# -- keys ----------------------------------------------------------------------------------------
def canonical_time(value: object) -> str:
    """entered_at as naive-UTC ISO text with microseconds (the same instant, the same text)."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value.isoformat(timespec="microseconds")
    return str(value)


def occurrence_key(sync_name: str, profile_id: str, audience: str | None, entered_at: object) -> str:
    text = "\x1f".join([sync_name, profile_id, audience or "", canonical_time(entered_at)])
    return f"{profile_id}:{hashlib.sha256(text.encode()).hexdigest()[:40]}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def pending_marker(phone: str, body: str) -> str:
    return f"pending:{_digest(phone)[:16]}:{body_hash(body)}"


# -- source --------------------------------------------------------------------------------------
def stage_source(conn: sa.Connection, sync: SyncConfig) -> int:
    """The sync's rows, numbered in a stable order, in a temporary table read back page by page."""
    filters, params = ["not is_holdout", "channel = :channel", "phone is not null"], {"channel": sync.source.channel}
    if sync.source.audience:
        filters.append("audience = :audience")
        params["audience"] = sync.source.audience
    conn.execute(sa.text(f"drop table if exists {SOURCE_TABLE}"))
    conn.execute(sa.text(f"""
        create temporary table {SOURCE_TABLE} as
        select row_number() over (order by profile_id, audience, entered_at) as seq,
               profile_id, audience, entered_at, phone, payload
        from {sync.source.model} where {' and '.join(filters)}"""), params)
    return conn.execute(sa.text(f"select count(*) from {SOURCE_TABLE}")).scalar() or 0


def occurrences(conn: sa.Connection, sync: SyncConfig, total: int) -> Iterator[list[Occurrence]]:
    """Pages of source rows with their key's state (read fresh per page, after earlier commits)."""
    for start in range(1, total + 1, PAGE):
        rows = [dict(r) for r in conn.execute(sa.text(
            f"select profile_id, audience, entered_at, phone, payload from {SOURCE_TABLE} "
            f"where seq between :lo and :hi order by seq"), {"lo": start, "hi": start + PAGE - 1}).mappings()]
        keyed = {occurrence_key(sync.name, r["profile_id"], r["audience"], r["entered_at"]): r for r in rows}
        states = {k: (s, d, c) for k, s, d, c in conn.execute(
            sa.text(f"select idempotency_key, status, destination_id, created_at from {KEYS} "
                    "where sync_name = :n and idempotency_key in :keys").bindparams(
                sa.bindparam("keys", expanding=True)), {"n": sync.name, "keys": list(keyed)})}
        yield [Occurrence(k, r, *states.get(k, (None, None, None))) for k, r in keyed.items()]


def rejected_hashes(conn: sa.Connection, sync_name: str, keys: list[str]) -> dict[str, str]:
    if not keys:
        return {}
    return dict(conn.execute(sa.text(
        f"select key, payload_hash from {STATE_SCHEMA}.rejections where sync_name = :n and key in :keys").bindparams(
        sa.bindparam("keys", expanding=True)), {"n": sync_name, "keys": keys}).fetchall())


def payload_hash(row: Mapping, sync: SyncConfig) -> str:
    """What a rejection was about: the row and the template (fixing either retries the row)."""
    template = sync.message.body if sync.message else ""
    return _digest(f"{row.get('phone') or ''}|{row.get('payload') or ''}|{template}")


# -- state ---------------------------------------------------------------------------------------
def mark_pending(conn: sa.Connection, sync_name: str, due: list[tuple[Occurrence, str]]) -> None:
    """Write the keys 'pending' (keeping an earlier created_at: the check looks back from it)."""
    conn.execute(sa.text(
        f"""insert into {KEYS} (sync_name, idempotency_key, status, destination_id, created_at, confirmed_at)
            values (:n, :k, 'pending', :m, :t, null)
            on conflict (sync_name, idempotency_key) do update set status = 'pending',
                destination_id = excluded.destination_id"""),
        [{"n": sync_name, "k": o.key, "m": pending_marker(o.row["phone"], body), "t": now()} for o, body in due])


def mark_done(conn: sa.Connection, sync_name: str, key: str, status: str, destination_id: str | None) -> None:
    conn.execute(sa.text(f"update {KEYS} set status = :s, destination_id = :d, confirmed_at = :t "
                         "where sync_name = :n and idempotency_key = :k"),
                 {"s": status, "d": destination_id, "t": now(), "n": sync_name, "k": key})


def claimed(conn: sa.Connection, sids: list[str]) -> set[str]:
    if not sids:
        return set()
    return {s for (s,) in conn.execute(sa.text(f"select destination_id from {KEYS} where destination_id in :s")
                                       .bindparams(sa.bindparam("s", expanding=True)), {"s": sids})}


# -- the run -------------------------------------------------------------------------------------
class _Stop(Exception):
    """The platform stopped acknowledging: end the run after committing what was acknowledged."""


def unsupported(sync: SyncConfig) -> str | None:
    """Why this sync cannot run in trigger mode, or None."""
    try:
        spec = limits(sync)
    except UnsupportedDestination as exc:
        return str(exc)
    if not hasattr(spec, "send"):
        return (f"sync {sync.name}: mode trigger is not implemented for destination {sync.destination.type} (it does "
                "not send messages); use a twilio destination, or mode add_remove")
    if sync.destination.type == "twilio" and sync.source.channel != "sms":
        return f"sync {sync.name}: a twilio trigger sends SMS; set source.channel: sms"
    if sync.message is None:
        return f"sync {sync.name}: a trigger sync needs message: {{body: \"...\"}} in syncs.yml (the text sent)"
    return None


def run_trigger(warehouse: Warehouse, sync: SyncConfig, *, dry_run: bool = False, force: bool = False,
                progress: bool = True, env: Mapping[str, str] | None = None, wait_s: float = 0.0,
                clock: Callable[[], datetime] | None = None) -> SyncResult:
    """Send each due occurrence's message once. `clock` (UTC now) decides quiet hours; tests inject it."""
    problem = unsupported(sync)
    if problem:
        return TriggerResult(sync.name, "failed", message=problem)
    env = environment(env)
    quiet = QuietClock(sync.quiet_hours, (clock or (lambda: datetime.now(timezone.utc)))())
    started, started_at = time.perf_counter(), now()
    result = TriggerResult(sync.name, "failed")
    opt_outs: list[dict] = []
    engine = warehouse.engine()
    try:
        with engine.connect() as conn:
            limit_memory(conn, env)
            ensure_state(conn)
            try:
                acquire_lock(conn, sync.name, wait_s=wait_s)
            except SyncLocked as exc:
                return TriggerResult(sync.name, "blocked", message=str(exc))
            try:
                check_source(conn, sync, warehouse.marts_schema)
                _execute(conn, sync, env, quiet, result, opt_outs, dry_run=dry_run, force=force, progress=progress)
            except _Stop as exc:
                result.message = f"{exc}; {_summary(result)}"
            except (DestinationError, MissingSecret, SourceMissing) as exc:
                result.message = str(exc)
            except Exception as exc:  # recorded in sync_runs, then re-raised for the caller
                result.message = f"{type(exc).__name__}: {exc}"
                raise
            finally:
                result.duration_s = time.perf_counter() - started
                conn.rollback()
                record_result(conn, result, started_at)
                release_lock(conn, sync.name)
    finally:
        engine.dispose()
    if opt_outs:
        _write_opt_outs(warehouse, opt_outs, result)
    log.info("sync %s: %s, sent %d, deferred %d, confirmed %d, rejected %d", sync.name, result.status, result.adds,
             result.deferred, result.confirmed, result.rejections)
    return result


def _execute(conn: sa.Connection, sync: SyncConfig, env: Mapping[str, str], quiet: QuietClock,
             result: TriggerResult, opt_outs: list[dict], *, dry_run: bool, force: bool, progress: bool) -> None:
    """Plan, then (unless a dry run or a safety stop) resolve pending keys and send, page by page."""
    total = stage_source(conn, sync)
    plan = _plan(conn, sync, total, quiet)
    result.plan.adds, result.plan.current = plan["due"], plan["sent_before"]
    result.deferred, result.already_sent = plan["deferred"], plan["done"]
    if dry_run:
        result.status, result.adds = "dry_run", plan["due"]
        result.message = (f"would send up to {plan['due']} message(s) ({plan['pending']} of them interrupted earlier: "
                          f"checked with {sync.destination.type} first), defer {plan['deferred']} (quiet hours); "
                          f"{plan['done']} occurrence(s) already handled")
        return
    multiple = sync.safety.max_add_multiple
    if not force and plan["sent_before"] and plan["due"] > multiple * plan["sent_before"]:
        result.status = "blocked"
        result.message = (f"safety limit: would send {plan['due']} messages, more than {multiple:g}x the "
                          f"{plan['sent_before']} sent so far; check the audience, then rerun with --force")
        return
    if plan["due"]:
        result.deferred = result.already_sent = 0  # counted again, page by page
        client: MessageClient = open_client(sync, env)  # type: ignore[assignment]
        bar = tqdm(total=plan["due"], desc=sync.name, unit="msg", disable=not progress)
        try:
            for page in occurrences(conn, sync, total):
                _run_page(conn, sync, client, page, quiet, result, opt_outs, bar)
        finally:
            bar.close()
            result.retries = client.retries[0]
    opt_outs += _missing_opt_outs(conn, sync, {o["message_id"] for o in opt_outs})
    result.status = "success"
    result.message = _summary(result)


def _plan(conn: sa.Connection, sync: SyncConfig, total: int, quiet: QuietClock) -> dict[str, int]:
    """Counts without any request: due now, deferred, pending to check, already handled."""
    counts = {"due": 0, "deferred": 0, "pending": 0, "done": 0}
    for page in occurrences(conn, sync, total):
        rejected = rejected_hashes(conn, sync.name, [o.key for o in page if o.status is None])
        for o in page:
            if _handled(o, rejected, sync):
                counts["done"] += 1
            elif quiet.quiet(o.row["phone"]):
                counts["deferred"] += 1
            else:
                counts["due"] += 1
                counts["pending"] += o.status == "pending"
    counts["sent_before"] = conn.execute(sa.text(f"select count(*) from {KEYS} where sync_name = :n and status = 'sent'"),
                                         {"n": sync.name}).scalar() or 0
    return counts


def _handled(o: Occurrence, rejected: Mapping[str, str], sync: SyncConfig) -> bool:
    """Sent or failed for good, or rejected before sending and unchanged since."""
    return o.status in ("sent", "failed") or (o.status is None and rejected.get(o.key) == payload_hash(o.row, sync))


def _run_page(conn: sa.Connection, sync: SyncConfig, client: MessageClient, page: list[Occurrence],
              quiet: QuietClock, result: TriggerResult, opt_outs: list[dict], bar) -> None:
    rejected = rejected_hashes(conn, sync.name, [o.key for o in page if o.status is None])
    due: list[tuple[Occurrence, str]] = []
    render_failures: list[dict] = []
    for o in page:
        if _handled(o, rejected, sync):
            result.already_sent += 1
            continue
        if quiet.quiet(o.row["phone"]):
            result.deferred += 1
            continue
        if o.status == "pending" and _resolve_pending(conn, sync, client, o, result):
            bar.update(1)
            continue
        problem = None
        try:
            body = sync.message.render(o.row) if sync.message else ""
            limit = getattr(client, "max_body_chars", None)
            if limit and len(body) > limit:
                problem = ("body_too_long", f"the message is {len(body)} characters; {sync.destination.type} "
                                            f"takes at most {limit}")
        except TemplateFieldMissing as exc:
            problem = ("template_field_missing", str(exc))
        if problem:  # not marked: a fixed row or template is tried again
            render_failures.append({"key": o.key, "code": problem[0], "message": problem[1],
                                    "payload_hash": payload_hash(o.row, sync)})
            continue
        due.append((o, body))
    record_rejections(conn, sync.name, render_failures)
    result.rejections += len(render_failures)
    conn.commit()  # resolved pending keys and render rejections
    for start in range(0, len(due), client.send_batch_size):
        _send_batch(conn, sync, client, due[start:start + client.send_batch_size], result, opt_outs)
        bar.update(len(due[start:start + client.send_batch_size]))


def _resolve_pending(conn: sa.Connection, sync: SyncConfig, client: MessageClient, o: Occurrence,
                     result: TriggerResult) -> bool:
    """True when the pending key is settled without sending (found at the platform, or unverifiable)."""
    _, to_hash, sent_body_hash = (o.marker or "pending::").split(":", 2)
    if to_hash and to_hash != _digest(o.row["phone"])[:16]:
        mark_done(conn, sync.name, o.key, "failed", None)
        record_rejections(conn, sync.name, [{
            "key": o.key, "code": "phone_changed", "payload_hash": payload_hash(o.row, sync),
            "message": "the phone number changed after an interrupted send; not sent again, since the earlier "
                       "number cannot be checked for the message"}])
        result.rejections += 1
        return True
    if not sent_body_hash:
        return False
    since = (o.created_at or now()) - CLOCK_MARGIN
    sids = client.find(o.row["phone"], sent_body_hash, since)  # type: ignore[attr-defined]
    free = [s for s in sids if s not in claimed(conn, sids)]
    if not free:
        return False
    mark_done(conn, sync.name, o.key, "sent", free[0])
    result.confirmed += 1
    return True


def _send_batch(conn: sa.Connection, sync: SyncConfig, client: MessageClient, due: list[tuple[Occurrence, str]],
                result: TriggerResult, opt_outs: list[dict]) -> None:
    mark_pending(conn, sync.name, due)
    conn.commit()  # the keys are pending before any request leaves
    rows = [{"key": o.key, "phone": o.row["phone"], "body": body, "profile_id": o.row["profile_id"],
             "campaign": o.row.get("audience") or sync.name} for o, body in due]
    by_key = {o.key: o for o, _ in due}
    results: list[RowResult] = client.send(rows)
    bad: list[dict] = []
    stalled: list[RowResult] = []
    for r in results:
        if r.ok:
            mark_done(conn, sync.name, r.key, "sent", r.destination_id)
            result.adds += 1
        elif r.code == "not_acknowledged":
            stalled.append(r)
        else:
            mark_done(conn, sync.name, r.key, "failed", None)
            o = by_key[r.key]
            bad.append({"key": r.key, "code": r.code, "message": r.message, "payload_hash": payload_hash(o.row, sync)})
            if r.code == OPTED_OUT:
                opt_outs.append(opt_out_row(r.key, o.row["phone"], o.row.get("audience") or sync.name,
                                            o.row["profile_id"], now()))
    record_rejections(conn, sync.name, bad)
    result.rejections += len(bad)
    conn.commit()
    if stalled:
        result.pending_left += len(stalled)
        raise _Stop(f"{sync.destination.type} stopped acknowledging messages ({stalled[0].message}); "
                    f"{len(stalled)} left pending: the next run checks {sync.destination.type} for them before "
                    "sending, so none is sent twice")


# -- opt-outs back to the warehouse --------------------------------------------------------------
def opt_out_row(key: str, phone: str, campaign: str, profile_id: str, at: datetime) -> dict[str, str]:
    """A raw.message_events row that int_consent_signals reads as an SMS opt-out."""
    return {"message_id": f"{OPT_OUT_PREFIX}{key}", "channel": "sms", "event": "opted_out",
            "occurred_at": at.replace(microsecond=0).isoformat() + "Z", "recipient": phone, "campaign": campaign,
            "external_id": profile_id}


def _missing_opt_outs(conn: sa.Connection, sync: SyncConfig, written: set[str]) -> list[dict]:
    """Opt-outs of earlier runs whose message_events row is missing (a crash before the write)."""
    rows = conn.execute(sa.text(
        f"select key, first_seen from {STATE_SCHEMA}.rejections where sync_name = :n and code = :c"),
        {"n": sync.name, "c": OPTED_OUT}).fetchall()
    wanted = {f"{OPT_OUT_PREFIX}{k}": (k, seen) for k, seen in rows if f"{OPT_OUT_PREFIX}{k}" not in written}
    if not wanted:
        return []
    if sa.inspect(conn).has_table("message_events", schema=RAW_SCHEMA):
        present = {m for (m,) in conn.execute(sa.text(
            f"select message_id from {RAW_SCHEMA}.message_events where message_id in :ids").bindparams(
            sa.bindparam("ids", expanding=True)), {"ids": list(wanted)})}
        wanted = {m: v for m, v in wanted.items() if m not in present}
    out = []
    for key, seen in wanted.values():
        profile_id = key.rsplit(":", 1)[0]
        found = conn.execute(sa.text(f"select phone, audience from {SOURCE_TABLE} where profile_id = :p limit 1"),
                             {"p": profile_id}).fetchone()
        if found:  # a person no longer in the source is not sent to by this sync either
            out.append(opt_out_row(key, found[0], found[1] or sync.name, profile_id, seen or now()))
    return out


def _write_opt_outs(warehouse: Warehouse, rows: list[dict], result: TriggerResult) -> None:
    import duckdb

    from orchestration.load import LoadError
    from syncs.feedback.writer import MessageEventWriter

    try:
        result.opt_outs = MessageEventWriter(warehouse).append(rows)
    except (LoadError, duckdb.Error, sa.exc.SQLAlchemyError, OSError) as exc:  # the rejections keep them
        log.warning("sync %s: could not record %d SMS opt-out(s) in raw.message_events: %s", result.name, len(rows),
                    type(exc).__name__)
        result.message += (f"; could not record {len(rows)} SMS opt-out(s) in raw.message_events "
                           f"({type(exc).__name__}); the next run writes them")
        return
    if result.opt_outs:
        result.message += f"; {result.opt_outs} opt-out(s) written to raw.message_events (rebuild to apply them)"


def _summary(result: TriggerResult) -> str:
    parts = [f"sent {result.adds}", f"deferred {result.deferred} (quiet hours)"]
    if result.confirmed:
        parts.append(f"{result.confirmed} interrupted send(s) found already delivered")
    if result.pending_left:
        parts.append(f"{result.pending_left} left pending")
    parts.append(f"{result.already_sent} handled before")
    return ", ".join(parts)
