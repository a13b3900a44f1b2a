"""Klaviyo stand-in under `/klaviyo` (for https://a.klaviyo.com), revision-2026 JSON:API.

Auth `Authorization: Klaviyo-API-Key <token>` (or `Bearer <token>`) plus a required `revision`
header. Limits, bodies and errors follow destinations.md §1 / klaviyo/openapi stable.json:
bulk import <= 10,000 profiles, 5 MB, 100 KB per profile (a larger profile becomes an
import-error); list membership <= 1,000 ids; subscribe <= 1,000; unsubscribe <= 100; 150 list
creations per day. Rate limits are fixed burst (1 s) / steady (60 s) windows per endpoint class,
with `RateLimit-Limit/Remaining/Reset` on non-429 answers and only `Retry-After` on a 429.
Bulk-import jobs apply their rows at once; their status reads `queued` until
`klaviyo_job_delay_s` has passed, then `complete`. A profile's `meta.patch_properties.unset` (a
property name or a list of names) removes those keys from its stored properties (bulk import and
profile-import); a malformed one is that profile's import-error. `append` / `unappend` are not
modelled (ignored).
"""
from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from functools import partial
from itertools import chain, repeat
from typing import Any
from urllib.parse import urlencode

import orjson

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from syncs.sandbox import engagement
from syncs.sandbox.plain_import import NOT_STORED, PlainProfiles, plain_job, plain_profiles
from syncs.sandbox.profile_keys import IDENTIFIERS, NewKeys, ProfileKeys, next_rowids, profile_keys
from syncs.sandbox.store import insert_columns, insert_rows
from syncs.sandbox.common import (Context, ascending_ulids, chunked, decode_cursor, dumps, encode_cursor, now_iso,
                                  short_id, ulid, valid_e164, valid_email)

MEDIA = "application/vnd.api+json"
MAX_BULK_PROFILES = 10_000
MAX_BULK_BYTES = 5 * 1024 * 1024
MAX_PROFILE_BYTES = 100 * 1024
MAX_LIST_RELATIONSHIPS = 1_000
MAX_SUBSCRIBE = 1_000
MAX_UNSUBSCRIBE = 100
MAX_BODY = 10 * 1024 * 1024
Handler = Callable[[Request, Context], Awaitable[Response]]


class KlaviyoError(Exception):
    def __init__(self, status: int, code: str, title: str, detail: str, pointer: str | None = None,
                 parameter: str | None = None):
        super().__init__(detail)
        self.status, self.code, self.title, self.detail = status, code, title, detail
        self.pointer, self.parameter = pointer, parameter

    def response(self) -> JSONResponse:
        return error_response(self.status, self.code, self.title, self.detail, self.pointer, self.parameter)


def error_object(status: int, code: str, title: str, detail: str, pointer: str | None = None,
                 parameter: str | None = None) -> dict:
    source: dict[str, str] = {}
    if pointer:
        source["pointer"] = pointer
    if parameter:
        source["parameter"] = parameter
    return {"id": ulid().lower(), "status": status, "code": code, "title": title, "detail": detail, "source": source}


def error_response(status: int, code: str, title: str, detail: str, pointer: str | None = None,
                   parameter: str | None = None, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"errors": [error_object(status, code, title, detail, pointer, parameter)]},
                        status_code=status, media_type=MEDIA, headers=headers)


def throttled_response(retry_after: int = 1) -> JSONResponse:
    return error_response(429, "throttled", "Request was throttled.",
                          f"Request was throttled. Expected available in {retry_after} second.",
                          headers={"Retry-After": str(retry_after)})


def server_error_response() -> JSONResponse:
    return error_response(503, "service_unavailable", "Service unavailable.",
                          "Injected fault: the service is temporarily unavailable; retry with backoff.")


def invalid(detail: str, pointer: str | None = None, parameter: str | None = None) -> KlaviyoError:
    return KlaviyoError(400, "invalid", "Invalid input.", detail, pointer, parameter)


def not_found(detail: str) -> KlaviyoError:
    return KlaviyoError(404, "not_found", "Not found.", detail)


# ---------------------------------------------------------------- request plumbing

def endpoint(limit_class: str, handler: Handler, ctx: Context) -> Callable[[Request], Awaitable[Response]]:
    """Auth + revision + rate limit around a handler; adds RateLimit-* headers to non-429 answers."""

    async def wrapped(request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        scheme, _, key = auth.partition(" ")
        if not auth:
            return error_response(401, "not_authenticated", "Authentication credentials were not provided.",
                                  "Missing `Authorization: Klaviyo-API-Key <private key>` header.")
        if scheme not in ("Klaviyo-API-Key", "Bearer") or key.strip() != ctx.token:
            return error_response(401, "authentication_failed", "Incorrect authentication credentials.",
                                  "Incorrect authentication credentials.")
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}(\.[a-z0-9]+)?", request.headers.get("revision", "")):
            return error_response(400, "invalid", "Invalid input.",
                                  "The `revision` header is required (YYYY-MM-DD, e.g. 2026-07-15).",
                                  parameter="revision")
        verdict = ctx.limiter.check(f"klaviyo:{limit_class}")
        if not verdict.allowed:
            return throttled_response(verdict.reset_s)
        try:
            response = await handler(request, ctx)
        except KlaviyoError as exc:
            response = exc.response()
        response.headers["RateLimit-Limit"] = str(verdict.limit)
        response.headers["RateLimit-Remaining"] = str(verdict.remaining)
        response.headers["RateLimit-Reset"] = str(verdict.reset_s)
        return response

    return wrapped


async def body_bytes(request: Request, max_bytes: int = MAX_BODY) -> bytes:
    """The request body; a 413 past `max_bytes`."""
    from syncs.sandbox.common import read_body
    raw = await read_body(request, max_bytes)
    if raw is None:
        raise KlaviyoError(413, "request_too_large", "Request entity too large.",
                           f"The request body exceeds the {max_bytes // (1024 * 1024)} MB limit; send smaller batches.")
    return raw


def json_document(raw: bytes) -> dict:
    """A request body parsed as a JSON:API document, or the 400 that says what is wrong with it."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise invalid("The request body is not valid JSON.", pointer="/data") from None
    if not isinstance(body, dict) or not isinstance(body.get("data"), (dict, list)):
        raise invalid("The request body must be a JSON:API document with a `data` member.", pointer="/data")
    return body


async def json_body(request: Request, max_bytes: int = MAX_BODY) -> dict:
    return json_document(await body_bytes(request, max_bytes))


def jsonapi(data: Any, status: int = 200, links: dict | None = None) -> JSONResponse:
    doc: dict[str, Any] = {"data": data}
    if links is not None:
        doc["links"] = links
    return JSONResponse(doc, status_code=status, media_type=MEDIA)


def api_url(request: Request, path: str) -> str:
    return f"{str(request.base_url).rstrip('/')}/klaviyo/api/{path.lstrip('/')}"


def page_params(request: Request, default: int, maximum: int) -> tuple[int, str | None]:
    raw = request.query_params.get("page[size]", str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise invalid(f"page[size] must be an integer between 1 and {maximum}.", parameter="page[size]")
    cursor = request.query_params.get("page[cursor]")
    try:
        return int(raw), decode_cursor(cursor) if cursor else None
    except ValueError as exc:
        raise invalid(str(exc), parameter="page[cursor]") from None


def next_link(request: Request, last_key: str | None) -> str | None:
    if last_key is None:
        return None
    params = dict(request.query_params)
    params["page[cursor]"] = encode_cursor(last_key)
    query = urlencode(params)
    return f"{str(request.url).split('?', 1)[0]}?{query}"


def keyset_page(request: Request, rows: list, size: int, render: Callable[[tuple], dict]) -> JSONResponse:
    """A JSON:API page from `size + 1` rows ordered by their first column (the cursor key)."""
    more = len(rows) > size
    rows = rows[:size]
    return jsonapi([render(r) for r in rows],
                   links={"self": str(request.url), "next": next_link(request, str(rows[-1][0]) if more else None),
                          "prev": None})


def filtered_page(request: Request, ctx: Context, select: str, flt: tuple[str, str] | None, size: int,
                  after: str | None, render: Callable[[tuple], dict]) -> JSONResponse:
    """A page of `select`'s rows after the cursor, filtered by `flt`; a filter on a profile
    identifier reads only the rows the identifier index names (by rowid), each checked by the filter."""
    sql, args = f"{select} where id > ?", [after or ""]
    values = flt[1] if flt and isinstance(flt[1], list) else [flt[1]] if flt else []
    keys = [match_key(flt[0], v) if flt[0] in IDENTIFIERS else v for v in values] if flt else []
    if flt:
        sql += f" and {flt[0]} in ({', '.join('?' * len(keys))})"
        args.extend(keys)
    with ctx.store.tx() as db:
        if flt and flt[0] in IDENTIFIERS:
            rowids = profile_keys(ctx.store).candidates({flt[0]: [k for k in keys if k is not None]})
            sql += " and rowid in (select value from json_each(?))"
            args.append(orjson.dumps(rowids).decode())
        rows = db.execute(sql + " order by id limit ?", [*args, size + 1]).fetchall()
    return keyset_page(request, rows, size, render)


# ---------------------------------------------------------------- profiles

def profile_resource(request: Request, row: tuple) -> dict:
    pid, attributes, email_consent, sms_consent, created, updated = row
    attrs = json.loads(attributes)
    attrs.update(created=created, updated=updated)
    email, sms = email_consent or "NEVER_SUBSCRIBED", sms_consent or "NEVER_SUBSCRIBED"
    # can_receive_* are required by the spec's EmailMarketing / SMSMarketing schemas
    attrs["subscriptions"] = {"email": {"marketing": {"consent": email,
                                                      "can_receive_email_marketing": email != "UNSUBSCRIBED"}},
                              "sms": {"marketing": {"consent": sms, "can_receive_sms_marketing": sms == "SUBSCRIBED"}}}
    return {"type": "profile", "id": pid, "attributes": attrs, "links": {"self": api_url(request, f"profiles/{pid}/")}}


PROFILE_COLS = "id, attributes, email_consent, sms_consent, created, updated"


def match_key(field: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    text = (value if type(value) is str else str(value)).strip()
    return text.lower() if field == "email" else text


def validated_keys(attrs: Any) -> tuple[dict[str, str], None] | tuple[None, tuple[str, str, str]]:
    """(identity keys, None) when the profile is acceptable, else (None, (code, detail, pointer
    suffix)) of the first problem: the checks of `validate_profile` and the keys of `identity_keys`
    in one pass over the identifiers, as a bulk import runs them for every profile."""
    if not isinstance(attrs, dict):
        return None, ("invalid", "Each profile needs an `attributes` object.", "")
    email, phone, external_id = attrs.get("email"), attrs.get("phone_number"), attrs.get("external_id")
    has_email, has_phone = email is not None and email != "", phone is not None and phone != ""
    has_external = external_id is not None and external_id != ""
    if not (has_email or has_phone or has_external):
        return None, ("invalid", "A profile needs at least one of email, phone_number or external_id.", "")
    keys: dict[str, str] = {}
    if has_email:
        if not valid_email(email):
            return None, ("invalid", "Invalid email address.", "/email")
        keys["email"] = email.strip().lower()
    if has_phone:
        if not valid_e164(phone):
            return None, ("invalid", "Invalid phone number format (Example of a valid format: +12345678901)",
                          "/phone_number")
        keys["phone_number"] = phone.strip()
    if has_external:
        key = (external_id if type(external_id) is str else str(external_id)).strip()
        if key:
            keys["external_id"] = key
    return keys, None


def validate_profile(attrs: Any, pointer: str) -> tuple[str, str, str] | None:
    """None when the profile is acceptable, else (code, detail, pointer) of the first problem."""
    _, problem = validated_keys(attrs)
    return None if problem is None else (problem[0], problem[1], pointer + problem[2])


def with_unset(attrs: dict, meta: object) -> dict | str:
    """`attrs` with the properties named by `meta.patch_properties.unset` set to null (which the
    merge removes; a property also given a value keeps it), or what is wrong with the patch."""
    patch = meta.get("patch_properties") if isinstance(meta, dict) else None
    unset = patch.get("unset") if isinstance(patch, dict) else None
    if unset is None:
        return attrs
    names = [unset] if isinstance(unset, str) else unset
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        return "`meta.patch_properties.unset` must be a property name or a non-empty list of property names."
    given = attrs.get("properties") if isinstance(attrs.get("properties"), dict) else {}
    return {**attrs, "properties": {**dict.fromkeys(names), **given}}


def identity_keys(attrs: dict) -> dict[str, str]:
    """The normalised identifiers Klaviyo matches on (email compared case-insensitively): what
    match_key gives for each identifier, written out because it runs for every imported profile."""
    keys = {}
    for field in IDENTIFIERS:
        value = attrs.get(field)
        if value is not None and value != "":
            key = (value if type(value) is str else str(value)).strip()
            if key:
                keys[field] = key.lower() if field == "email" else key
    return keys


def merged_attributes(base: dict, attrs: dict) -> dict:
    """`attrs` merged into the stored attributes `base`: a null clears, an omitted key is kept,
    `properties` merge key by key (a null property is removed); id/subscriptions/dates are not stored."""
    merged = dict(base)
    for key, value in attrs.items():
        if key in NOT_STORED:
            continue
        if key == "properties" and isinstance(value, dict):
            props = {**(merged.get("properties") or {}), **value}
            merged["properties"] = {k: v for k, v in props.items() if v is not None}
        elif value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def fresh_attributes(attrs: dict) -> dict:
    """merged_attributes({}, attrs), for a profile created by this import (the bulk of an initial sync).
    `attrs` itself when it has nothing to drop (no null, no key that is not stored): neither is changed later."""
    if None in attrs.values() or not NOT_STORED.isdisjoint(attrs):
        merged = {k: v for k, v in attrs.items() if v is not None and k not in NOT_STORED}
    else:
        merged = attrs
    props = merged.get("properties")
    if isinstance(props, dict) and None in props.values():
        merged = {**merged, "properties": {k: v for k, v in props.items() if v is not None}}
    return merged


def fresh_attributes_json(attrs: dict) -> bytes:
    """orjson.dumps(fresh_attributes(attrs)) (the stored text): `attrs` encoded as it is when it has no
    key that is not stored and its JSON no `null` (fresh_attributes has nothing to drop then; a text
    holding the word only takes the longer way)."""
    if NOT_STORED.isdisjoint(attrs):
        encoded = orjson.dumps(attrs)
        if b"null" not in encoded:
            return encoded
    return orjson.dumps(fresh_attributes(attrs))


PROFILE_INSERT = ("insert into kl_profiles (rowid, id, email, phone_number, external_id, attributes, email_consent, "
                  "sms_consent, created, updated)")


class ProfileIndex:
    """Resolves a batch of profiles to ids (the stored ones the identifier index names, read by
    rowid in one query and checked), merges them in memory and writes them back in one go,
    telling the index the rowids of new profiles and of identifiers that changed."""

    def __init__(self, db, index: ProfileKeys, wanted: list[dict], keys: list[dict[str, str]] | None = None):
        self.db, self.index = db, index
        self.by: dict[str, dict[str, str]] = {k: {} for k in IDENTIFIERS}
        self.rows: dict[str, dict] = {}
        # profiles a bulk import created and nothing touched again: (id, email, phone, external id, attributes
        # text) each, without a row dict; created and updated at `_fresh_at`, no consent
        self._fresh_rows: list[tuple | None] = []
        self._fresh_at = ""
        self._fresh_slots: dict[str, int] = {}  # id -> its _fresh_rows slot, filled only when one is looked for
        self._fresh_slotted = 0  # _fresh_rows indexed in _fresh_slots so far
        self._fresh_ids: list[str] = []
        self._batch = max(16, min(len(wanted), 10_000))  # ids made at once for new profiles
        keys = [identity_keys(a) for a in wanted] if keys is None else keys
        stored = index.rows(db, {field: {k[field] for k in keys if field in k} for field in IDENTIFIERS},
                            "rowid, id, attributes, email_consent, sms_consent, created")
        for email, phone, ext, rowid, pid, attributes, ec, sc, created in stored:
            self._remember(pid, rowid, {"email": email, "phone_number": phone, "external_id": ext},
                           attributes, ec, sc, created)

    def _remember(self, pid, rowid, keys, attributes, ec, sc, created) -> None:
        self.rows[pid] = {"attributes": attributes, "email_consent": ec, "sms_consent": sc, "rowid": rowid,
                          "created": created, "dirty": False, "new": False, "keys": keys, "stored_keys": keys}
        for field, key in keys.items():
            if key:
                self.by[field][key] = pid

    def resolve(self, attrs: dict, keys: dict[str, str] | None = None) -> tuple[str | None, str | None]:
        """(profile id or None, conflict detail or None)."""
        keys = identity_keys(attrs) if keys is None else keys
        found = None
        conflict = False
        for field, key in keys.items():
            pid = self.by[field].get(key)
            if pid is not None:
                if found is None:
                    found = pid
                elif pid != found:
                    conflict = True
        if attrs.get("id") and (self._row(attrs["id"]) is not None or self._load(attrs["id"])):
            return attrs["id"], None
        if conflict:
            return None, "The identifiers of this profile belong to different existing profiles."
        return found, None

    def _row(self, pid: str) -> dict | None:
        """The profile's row; a profile `import_profiles` created becomes one when something merges into it."""
        row = self.rows.get(pid)
        if row is None and self._fresh_rows:
            slots, seen = self._fresh_slots, self._fresh_slotted
            if pid not in slots and seen < len(self._fresh_rows):  # index the rows made since the last look
                slots.update((r[0], n) for n, r in enumerate(self._fresh_rows[seen:], seen) if r is not None)
                self._fresh_slotted = len(self._fresh_rows)
            slot = slots.get(pid)
            fresh = self._fresh_rows[slot] if slot is not None else None
            if fresh is not None:
                self._fresh_rows[slot] = None
                row = self.rows[pid] = {
                    "attributes": orjson.loads(fresh[4]), "text": fresh[4], "dirty": True, "new": True,
                    "keys": {f: k for f, k in zip(IDENTIFIERS, fresh[1:4]) if k is not None},
                    "email_consent": None, "sms_consent": None, "created": self._fresh_at, "stored_keys": {}}
        return row

    def _new_id(self) -> str:
        """A fresh profile id; the ids of one batch come out in ascending order (appended to the primary key)."""
        if not self._fresh_ids:
            self._fresh_ids = ascending_ulids(self._batch)[::-1]
        return self._fresh_ids.pop()

    def import_profiles(self, accepted: list[tuple[int, dict, dict[str, str]]], now: str,
                        max_bytes: int) -> tuple[list[str], list[tuple[int, dict, str | None]]]:
        """A bulk import's profiles, in order: each resolved and merged as `resolve` + `upsert` would.
        A profile no identifier matches (most of an initial sync) becomes an insert row straight away.
        Returns (the imported ids, failures as (position, attributes, the conflict's detail or None: over max_bytes))."""
        imported: list[str] = []
        failures: list[tuple[int, dict, str | None]] = []
        by, fresh_rows, ids = self.by, self._fresh_rows, self._fresh_ids
        self._fresh_at = now
        by_email, by_phone, by_ext = by["email"], by["phone_number"], by["external_id"]
        for i, attrs, keys in accepted:
            email, phone, ext = keys.get("email"), keys.get("phone_number"), keys.get("external_id")
            if "id" in attrs or (email is not None and email in by_email) or (phone is not None and phone in by_phone) \
                    or (ext is not None and ext in by_ext):
                pid, conflict = self.resolve(attrs, keys)
                if conflict:
                    failures.append((i, attrs, conflict))
                    continue
                if pid is not None or attrs.get("id"):
                    pid, _ = self.upsert(attrs, now, pid, keys, max_bytes, resolved=True)
                    if pid is None:
                        failures.append((i, attrs, None))
                    else:
                        imported.append(pid)
                    ids = self._fresh_ids  # upsert may have made the next batch of ids
                    continue
            encoded = fresh_attributes_json(attrs)
            if len(encoded) > max_bytes:
                failures.append((i, attrs, None))
                continue
            if not ids:
                ids = self._fresh_ids = ascending_ulids(self._batch)[::-1]
            pid = ids.pop()
            fresh_rows.append((pid, email, phone, ext, encoded.decode()))
            if email is not None:
                by_email[email] = pid
            if phone is not None:
                by_phone[phone] = pid
            if ext is not None:
                by_ext[ext] = pid
            imported.append(pid)
        return imported, failures

    def _insert(self, rows: list[tuple], shared: tuple) -> None:
        """New profiles (id, email, phone, external id, ...own columns) under the next rowids, which
        the identifier index learns."""
        rowids = next_rowids(self.db, len(rows))
        insert_rows(self.db, PROFILE_INSERT, [(r, *row) for r, row in zip(rowids, rows)], shared)
        self.index.add_columns(rowids, dict(zip(IDENTIFIERS, ([row[n] for row in rows] for n in (1, 2, 3)))))

    def _load(self, pid: str) -> bool:
        row = self.db.execute("select email, phone_number, external_id, rowid, attributes, email_consent, "
                              "sms_consent, created from kl_profiles where id = ?", (pid,)).fetchone()
        if row:
            self._remember(pid, row[3], dict(zip(IDENTIFIERS, row[:3])), *row[4:])
        return bool(row)

    def upsert(self, attrs: dict, now: str, pid: str | None = None, keys: dict[str, str] | None = None,
               max_bytes: int | None = None, resolved: bool = False) -> tuple[str | None, bool]:
        """Merge `attrs` into the profile `pid` (or the matched one, or a new one): null clears, an
        omitted key is kept. `resolved`: `pid` is what `resolve` gave (None: a new profile), so it is
        not resolved again. Returns (id, created); id is None when the merged profile is over max_bytes."""
        keys = identity_keys(attrs) if keys is None else keys
        if pid is None and not resolved:
            pid, _ = self.resolve(attrs, keys)
        row = self._row(pid) if pid else None
        created = row is None
        if created:
            merged = fresh_attributes(attrs)
        else:
            base = row["attributes"]
            merged = merged_attributes(orjson.loads(base) if isinstance(base, str) else base, attrs)
        encoded = orjson.dumps(merged)  # the stored text; its UTF-8 size is what the 100 KB limit counts
        if max_bytes is not None and len(encoded) > max_bytes:
            return None, False
        if created:
            pid = self._new_id()
            self.rows[pid] = {"attributes": merged, "text": encoded.decode(), "dirty": True, "keys": keys,
                              "email_consent": None, "sms_consent": None, "created": now, "new": True,
                              "stored_keys": {}}
            new_keys = keys
        else:
            new_keys = identity_keys(merged)
            row["attributes"], row["text"], row["dirty"], row["keys"] = merged, encoded.decode(), True, new_keys
        by = self.by
        for field, key in new_keys.items():
            by[field][key] = pid
        return pid, created

    def set_consent(self, pid: str, channel: str, consent: str) -> None:
        row = self._row(pid)
        row[f"{channel}_consent"], row["dirty"] = consent, True
        if "text" not in row:
            row["attributes"] = json.loads(row["attributes"]) if isinstance(row["attributes"], str) \
                else row["attributes"]
            row["text"] = dumps(row["attributes"])

    def flush(self, now: str) -> None:
        """Insert new profiles; update changed ones, touching the identifier columns (and so their
        indexes) only where an identifier changed."""
        fresh: list[tuple] = []
        moved, same = [], []
        for pid, row in self.rows.items():
            if not row["dirty"]:
                continue
            k = row["keys"]
            ids = (k.get("email"), k.get("phone_number"), k.get("external_id"))
            rest = (row["text"], row["email_consent"], row["sms_consent"])
            if row["new"]:
                fresh.append((pid, *ids, *rest, row["created"], now))
            elif ids == tuple(row["stored_keys"].get(f) for f in IDENTIFIERS):
                same.append((*rest, now, pid))
            else:
                moved.append((*ids, *rest, now, pid))
        # in id order (mostly already): appended to the primary key's index instead of spread over it
        self._insert(sorted(r for r in self._fresh_rows if r is not None), (None, None, self._fresh_at, now))
        self._insert(sorted(fresh), ())
        self.db.executemany("update kl_profiles set email = ?, phone_number = ?, external_id = ?, attributes = ?, "
                            "email_consent = ?, sms_consent = ?, updated = ? where id = ?", moved)
        rowids = [self.rows[r[-1]]["rowid"] for r in moved]
        self.index.add_columns(rowids, dict(zip(IDENTIFIERS, ([r[n] for r in moved] for n in range(3)))))
        self.db.executemany("update kl_profiles set attributes = ?, email_consent = ?, sms_consent = ?, updated = ? "
                            "where id = ?", same)


def profile_entries(body: dict, maximum: int, what: str) -> list:
    attributes = body["data"].get("attributes") if isinstance(body["data"], dict) else None
    entries = (((attributes or {}).get("profiles") or {}).get("data"))
    if not isinstance(entries, list) or not entries:
        raise invalid("`data.attributes.profiles.data` must be a non-empty array of profiles.",
                      pointer="/data/attributes/profiles/data")
    if len(entries) > maximum:
        raise invalid(f"{what} accepts at most {maximum:,} profiles per request; got {len(entries):,}. "
                      f"Split the batch.", pointer="/data/attributes/profiles/data")
    return entries


def require_list(db, list_id: str) -> tuple:
    row = db.execute("select id, name, created, updated, opt_in_process from kl_lists where id = ?",
                     (list_id,)).fetchone()
    if row is None:
        raise not_found(f"A list with id {list_id} does not exist.")
    return row


def add_members(db, list_id: str, profile_ids: list[str] | str, now: str) -> None:
    """Put the profiles in the list (those already in it stay as they were), in the given order:
    the ids passed as one JSON array (SQLite reads it in C; half the CPU of binding a row each),
    given as its text when the caller has it already."""
    ids_json = profile_ids if isinstance(profile_ids, str) else orjson.dumps(profile_ids).decode()
    db.execute("insert or ignore into kl_list_members (list_id, profile_id, added) select ?, value, ? "
               "from json_each(?)", (list_id, now, ids_json))


def list_ids_of(body: dict, key: str = "lists") -> list[str]:
    rel = ((body["data"].get("relationships") or {}).get(key) or {}).get("data") or []
    rel = [rel] if isinstance(rel, dict) else rel
    return [r["id"] for r in rel if isinstance(r, dict) and r.get("id")]


# ---------------------------------------------------------------- lists

def list_resource(request: Request, row: tuple) -> dict:
    lid, name, created, updated, opt_in = row
    return {"type": "list", "id": lid,
            "attributes": {"name": name, "created": created, "updated": updated, "opt_in_process": opt_in},
            "relationships": {"profiles": {"links": {"self": api_url(request, f"lists/{lid}/relationships/profiles/"),
                                                     "related": api_url(request, f"lists/{lid}/profiles/")}}},
            "links": {"self": api_url(request, f"lists/{lid}/")}}


FILTER_RE = re.compile(r'^equals\((\w+),\s*"((?:[^"\\]|\\.)*)"\)$')
ANY_FILTER_RE = re.compile(r'^any\((\w+),\s*(\[.*\])\)$')
ANY_MAX_VALUES = 100


def parse_filter(request: Request, allowed: tuple[str, ...]) -> tuple[str, Any] | None:
    """`equals(field,"value")`, or `any(field,["a","b"])` (at most 100 values) on the allowed fields."""
    raw = request.query_params.get("filter")
    if not raw:
        return None
    many = ANY_FILTER_RE.match(raw.strip())
    if many and many.group(1) in allowed:
        try:
            values = json.loads(many.group(2))
        except json.JSONDecodeError:
            values = None
        if not isinstance(values, list) or not values or len(values) > ANY_MAX_VALUES \
                or not all(isinstance(v, str) for v in values):
            raise invalid(f"any({many.group(1)},[...]) takes 1 to {ANY_MAX_VALUES} quoted strings.", parameter="filter")
        return many.group(1), values
    m = FILTER_RE.match(raw.strip())
    if not m or m.group(1) not in allowed:
        raise invalid(f"Unsupported filter {raw!r}; supported: equals(<field>,\"value\") or any(<field>,[\"a\",...]) on "
                      f"{', '.join(allowed)}.", parameter="filter")
    return m.group(1), m.group(2)


async def get_lists(request: Request, ctx: Context) -> Response:
    size, after = page_params(request, 10, 10)
    return filtered_page(request, ctx, "select id, name, created, updated, opt_in_process from kl_lists",
                         parse_filter(request, ("name", "id")), size, after, lambda r: list_resource(request, r))


async def create_list(request: Request, ctx: Context) -> Response:
    body = await json_body(request)
    name = (body["data"].get("attributes") or {}).get("name") if isinstance(body["data"], dict) else None
    if not isinstance(name, str) or not name.strip():
        raise invalid("A list needs a non-empty `name`.", pointer="/data/attributes/name")
    now = now_iso()
    with ctx.store.tx() as db:
        today = now[:10]
        made = db.execute("select n from daily_counters where name = 'klaviyo:lists' and day = ?",
                          (today,)).fetchone()
        if ctx.rate_limits and made and made[0] >= ctx.klaviyo_lists_per_day:
            raise KlaviyoError(429, "throttled", "Request was throttled.",
                               f"The daily limit of {ctx.klaviyo_lists_per_day} list creations was reached; "
                               f"reuse existing lists (GET /api/lists?filter=equals(name,\"...\")).")
        db.execute("insert into daily_counters (name, day, n) values ('klaviyo:lists', ?, 1) "
                   "on conflict (name, day) do update set n = n + 1", (today,))
        lid = short_id()
        db.execute("insert into kl_lists (id, name, created, updated) values (?,?,?,?)", (lid, name, now, now))
        row = require_list(db, lid)
    return jsonapi(list_resource(request, row), status=201)


async def get_list(request: Request, ctx: Context) -> Response:
    with ctx.store.tx() as db:
        row = require_list(db, request.path_params["list_id"])
    return jsonapi(list_resource(request, row))


async def list_profiles(request: Request, ctx: Context) -> Response:
    size, after = page_params(request, 20, 100)
    lid = request.path_params["list_id"]
    with ctx.store.tx() as db:
        require_list(db, lid)
        rows = db.execute(f"select {', '.join('p.' + c.strip() for c in PROFILE_COLS.split(','))}, m.added "
                          "from kl_list_members m join kl_profiles p on p.id = m.profile_id "
                          "where m.list_id = ? and m.profile_id > ? order by m.profile_id limit ?",
                          (lid, after or "", size + 1)).fetchall()
    return keyset_page(request, rows, size, lambda r: member_resource(request, r))


def member_resource(request: Request, row: tuple) -> dict:
    """A list member: a profile plus `joined_group_at` (required by the spec's list-member schema)."""
    resource = profile_resource(request, row[:-1])
    resource["attributes"]["joined_group_at"] = row[-1]
    return resource


async def list_relationships(request: Request, ctx: Context) -> Response:
    body = await json_body(request)
    data = body["data"] if isinstance(body["data"], list) else [body["data"]]
    if len(data) > MAX_LIST_RELATIONSHIPS:
        raise invalid(f"At most {MAX_LIST_RELATIONSHIPS:,} profiles per request; got {len(data):,}.", pointer="/data")
    ids = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or item.get("type") != "profile" or not item.get("id"):
            raise invalid("Each item must be {\"type\": \"profile\", \"id\": ...}.", pointer=f"/data/{i}")
        ids.append(item["id"])
    lid = request.path_params["list_id"]
    now = now_iso()
    with ctx.store.tx() as db:
        require_list(db, lid)
        known = set()
        for part in chunked(list(set(ids))):
            known |= {r[0] for r in db.execute(
                f"select id from kl_profiles where id in ({','.join('?' * len(part))})", part)}
        missing = [i for i in ids if i not in known]
        if missing:
            raise invalid(f"{len(missing)} profile id(s) do not exist, e.g. {missing[0]}; nothing was changed.",
                          pointer="/data")
        if request.method == "POST":
            add_members(db, lid, ids, now)
        else:
            db.executemany("delete from kl_list_members where list_id = ? and profile_id = ?",
                           [(lid, pid) for pid in ids])
    return Response(status_code=204)


# ---------------------------------------------------------------- bulk import jobs

def job_resource(request: Request, ctx: Context, jid: str, body: dict, created_ts: float) -> dict:
    attrs = dict(body["attributes"])
    done = time.time() >= created_ts + ctx.klaviyo_job_delay_s
    if not done:
        attrs.update(status="queued", completed_count=0, failed_count=0, started_at=None, completed_at=None)
    base = f"profile-bulk-import-jobs/{jid}"
    return {"type": "profile-bulk-import-job", "id": jid, "attributes": attrs,
            "relationships": {
                "lists": {"data": [{"type": "list", "id": lid} for lid in body["lists"]],
                          "links": {"self": api_url(request, f"{base}/relationships/lists/"),
                                    "related": api_url(request, f"{base}/lists/")}},
                "profiles": {"links": {"self": api_url(request, f"{base}/relationships/profiles/"),
                                       "related": api_url(request, f"{base}/profiles/")}},
                "import-errors": {"links": {"related": api_url(request, f"{base}/import-errors/")}}},
            "links": {"self": api_url(request, f"{base}/")}}


async def create_bulk_import(request: Request, ctx: Context) -> Response:
    raw = await body_bytes(request, MAX_BULK_BYTES)
    fast = plain_job(raw, MAX_BULK_PROFILES, MAX_PROFILE_BYTES)
    if fast is not None:  # an initial sync's job: read as columns, its profiles parsed only if one is known already
        plain, lists = fast.profiles, list_ids_of({"data": {"relationships": fast.relationships}})
        entries: Callable[[], list] = partial(parsed_entries, raw)
    else:
        body = json_document(raw)
        parsed, lists = bulk_entries(body), list_ids_of(body)
        plain = plain_profiles(parsed)
        entries = partial(list, parsed)
    checked = None if plain is not None else checked_profiles(entries())  # on the event loop, as the last job is written
    jid, job, created_ts = await run_in_threadpool(apply_bulk_import, ctx, entries, lists, plain, checked)
    return jsonapi(job_resource(request, ctx, jid, job, created_ts), status=202)


def bulk_entries(body: dict) -> list:
    return profile_entries(body, MAX_BULK_PROFILES, "A bulk import job")


def parsed_entries(raw: bytes) -> list:
    """The profiles of a bulk import body that plain_import.plain_job read (valid: it decoded)."""
    return bulk_entries(json_document(raw))


Accepted = list[tuple[int, dict, dict[str, str]]]  # (position in the job, attributes to import, identity keys)


def checked_profiles(entries: list) -> tuple[Accepted, list[dict]]:
    """The bulk import's profiles checked one by one: (the accepted ones, import-errors of the others)."""
    errors: list[dict] = []
    accepted: Accepted = []
    for i, entry in enumerate(entries):
        attrs = entry.get("attributes") if isinstance(entry, dict) else None
        keys, problem = validated_keys(attrs)  # pointers are built only for the profiles that fail
        patched = attrs if problem else with_unset(attrs, entry.get("meta"))
        if isinstance(patched, str):
            problem = ("invalid", patched, f"/data/attributes/profiles/data/{i}/meta/patch_properties/unset")
        elif problem:
            problem = (problem[0], problem[1], f"/data/attributes/profiles/data/{i}/attributes{problem[2]}")
        if problem:
            errors.append(import_error(problem[0], "Invalid input.", problem[1], problem[2],
                                       attrs if isinstance(attrs, dict) else entry))
        else:
            accepted.append((i, patched, keys))
    return accepted, errors


def all_new(db, index: ProfileKeys, plain: PlainProfiles) -> NewKeys | None:
    """The lookups of the job's identifiers (for `insert_new_profiles`) when no two profiles of the
    job share an identifier and none matches a stored profile; else None."""
    return index.new_keys(db, dict(zip(IDENTIFIERS, plain_columns(plain))))


def plain_columns(plain: PlainProfiles) -> tuple[list, list, list]:
    """The job's identifier columns, in IDENTIFIERS' order."""
    return plain.emails, plain.phones, plain.external_ids


_MARK = "\x1eprofile\x1e"  # between the profiles of attribute_texts' one document (orjson escapes the \x1e)
_MARK_JSON = orjson.dumps(_MARK).decode()


def attribute_texts(attributes: list[dict]) -> list[str] | None:
    """The attributes text each profile stores (fresh_attributes_json, decoded), or None when one is
    over MAX_PROFILE_BYTES in UTF-8. When no profile has a key that is not stored: all encoded by one
    orjson call, the profiles separated by the string _MARK, the document decoded once and split at
    the marker. Only its separators hold the marker when the pieces are as many as the profiles (a
    profile's own JSON cannot run into a separator: it starts with "{" and ends with "}"), so each
    piece is that profile's JSON; a profile holding the marker, a `null` anywhere or a key that is
    not stored: each profile encoded on its own (fresh_attributes_json)."""
    if all(map(NOT_STORED.isdisjoint, attributes)):
        doc = orjson.dumps(list(chain.from_iterable(zip(attributes, repeat(_MARK)))))
        if b"null" not in doc:
            texts = doc.decode()[1:-len(_MARK_JSON) - 2].split(f",{_MARK_JSON},")
            if len(texts) == len(attributes):
                longest = max(map(len, texts)) if doc.isascii() else max(len(t.encode()) for t in texts)
                return texts if longest <= MAX_PROFILE_BYTES else None
    encoded = list(map(fresh_attributes_json, attributes))
    return list(map(bytes.decode, encoded)) if max(map(len, encoded)) <= MAX_PROFILE_BYTES else None


def insert_new_profiles(db, index: ProfileKeys, plain: PlainProfiles, new: NewKeys, now: str) -> list[str] | None:
    """The job's profiles inserted as new ones (`new`: what `all_new` found), as
    `ProfileIndex.import_profiles` would make them: ids ascending in job order; None (nothing
    written) when one is over the size limit."""
    texts = plain.texts if plain.texts is not None else attribute_texts(plain.attributes)
    if texts is None:
        return None
    ids = ascending_ulids(len(texts))
    rowids = next_rowids(db, len(texts))
    insert_columns(db, PROFILE_INSERT, [rowids, ids, *plain_columns(plain), texts], shared=(None, None, now, now))
    index.add_new(new, rowids)
    return ids


def apply_bulk_import(ctx: Context, entries: Callable[[], list], lists: list[str], plain: PlainProfiles | None,
                      checked: tuple[Accepted, list[dict]] | None) -> tuple[str, dict, float]:
    """The write half of a bulk import (runs in a worker thread: SQLite releases the GIL, so the
    server parses the next request meanwhile). A job of `plain` profiles none of which is known yet
    (an initial sync) is inserted from its columns; any other is merged profile by profile from
    `checked` (`checked_profiles` of `entries()`, the job's profiles: made here when the job was
    plain, and parsed here when it was read by plain_import.plain_job)."""
    now, jid = now_iso(), ulid()
    with ctx.store.tx() as db:
        for lid in lists:
            require_list(db, lid)
        index = profile_keys(ctx.store)
        new = all_new(db, index, plain) if plain is not None else None
        imported = insert_new_profiles(db, index, plain, new, now) if new is not None else None
        errors: list[dict] = []
        if imported is None:
            accepted, errors = checked or checked_profiles(entries())
            imported = merge_profiles(db, index, accepted, errors, now)
        imported_json = orjson.dumps(imported).decode()  # one JSON array for the members and the job's profiles
        for lid in lists:
            add_members(db, lid, imported_json, now)
        total = len(plain.emails) if plain is not None else len(entries())
        expires = (datetime.now(timezone.utc) + timedelta(days=7)).isoformat(timespec="seconds").replace("+00:00", "Z")
        job = {"lists": lists, "attributes": {
            "status": "complete", "total_count": total, "completed_count": len(imported),
            "failed_count": total - len(imported), "created_at": now, "started_at": now,
            "completed_at": now, "expires_at": expires}}
        created_ts = time.time()
        db.execute("insert into kl_jobs (id, kind, body, created_ts) values (?,?,?,?)",
                   (jid, "profile-bulk-import-job", dumps(job), created_ts))
        db.execute("insert into kl_job_profiles (job_id, profile_ids) values (?,?)",
                   (jid, imported_json))
        db.executemany("insert into kl_import_errors (job_id, seq, body) values (?,?,?)",
                       [(jid, n, dumps(e)) for n, e in enumerate(errors)])
    return jid, job, created_ts


def merge_profiles(db, keys: ProfileKeys, accepted: Accepted, errors: list[dict], now: str) -> list[str]:
    """The accepted profiles resolved and merged one by one (`ProfileIndex.import_profiles`); appends
    per-profile failures to `errors`. Returns the imported ids in job order."""
    index = ProfileIndex(db, keys, [attrs for _, attrs, _ in accepted], [k for _, _, k in accepted])
    imported, failures = index.import_profiles(accepted, now, MAX_PROFILE_BYTES)
    for i, attrs, conflict in failures:
        pointer = f"/data/attributes/profiles/data/{i}/attributes"
        if conflict:
            errors.append(import_error("duplicate_profile", "Conflicting identifiers.", conflict, pointer, attrs))
        else:
            errors.append(import_error("invalid", "Invalid input.", "The profile exceeds the 100 KB per-profile "
                                       "limit.", pointer, {k: attrs.get(k) for k in IDENTIFIERS}))
    index.flush(now)
    return imported


def import_error(code: str, title: str, detail: str, pointer: str, payload: object) -> dict:
    return {"type": "import-error", "id": ulid(), "attributes": {"code": code, "title": title, "detail": detail,
                                                                 "source": {"pointer": pointer},
                                                                 "original_payload": payload}}


def load_job(db, jid: str) -> tuple[dict, float]:
    row = db.execute("select body, created_ts from kl_jobs where id = ? and kind = 'profile-bulk-import-job'",
                     (jid,)).fetchone()
    if row is None:
        raise not_found(f"A profile bulk import job with id {jid} does not exist.")
    return json.loads(row[0]), row[1]


async def get_bulk_import(request: Request, ctx: Context) -> Response:
    jid = request.path_params["job_id"]
    with ctx.store.tx() as db:
        job, created_ts = load_job(db, jid)
    return jsonapi(job_resource(request, ctx, jid, job, created_ts))


async def job_import_errors(request: Request, ctx: Context) -> Response:
    size, after = page_params(request, 100, 100)
    jid = request.path_params["job_id"]
    start = int(after) if after and after.isdigit() else -1
    with ctx.store.tx() as db:
        load_job(db, jid)
        rows = db.execute("select seq, body from kl_import_errors where job_id = ? and seq > ? order by seq limit ?",
                          (jid, start, size + 1)).fetchall()
    return keyset_page(request, rows, size, lambda r: json.loads(r[1]))


async def job_profiles(request: Request, ctx: Context) -> Response:
    size, after = page_params(request, 20, 100)
    jid = request.path_params["job_id"]
    start = int(after) if after and after.isdigit() else 0
    full = not request.url.path.rstrip("/").endswith("relationships/profiles")
    with ctx.store.tx() as db:
        load_job(db, jid)
        ids = json.loads(db.execute("select profile_ids from kl_job_profiles where job_id = ?",
                                    (jid,)).fetchone()[0])[start:start + size]
        data = [{"type": "profile", "id": pid} for pid in ids]
        if full and ids:
            rows = {r[0]: r for r in db.execute(f"select {PROFILE_COLS} from kl_profiles where id in "
                                                f"({','.join('?' * len(ids))})", ids)}
            data = [profile_resource(request, rows[pid]) for pid in ids if pid in rows]
    more = len(ids) == size
    return jsonapi(data, links={"self": str(request.url),
                                "next": next_link(request, str(start + size) if more else None), "prev": None})


async def job_lists(request: Request, ctx: Context) -> Response:
    with ctx.store.tx() as db:
        job, _ = load_job(db, request.path_params["job_id"])
        rows = [require_list(db, lid) for lid in job["lists"]
                if db.execute("select 1 from kl_lists where id = ?", (lid,)).fetchone()]
    if request.url.path.rstrip("/").endswith("relationships/lists"):
        return jsonapi([{"type": "list", "id": r[0]} for r in rows])
    return jsonapi([list_resource(request, r) for r in rows])


# ---------------------------------------------------------------- single profiles

async def profile_import(request: Request, ctx: Context) -> Response:
    body = await json_body(request, MAX_PROFILE_BYTES)
    attrs = dict(body["data"].get("attributes") or {}) if isinstance(body["data"], dict) else None
    if isinstance(body["data"], dict) and body["data"].get("id"):
        attrs = {**(attrs or {}), "id": body["data"]["id"]}
    problem = validate_profile(attrs, "/data/attributes")
    if problem and not (attrs or {}).get("id"):
        raise invalid(problem[1], pointer=problem[2])
    patched = with_unset(attrs, body["data"].get("meta"))
    if isinstance(patched, str):
        raise invalid(patched, pointer="/data/meta/patch_properties/unset")
    attrs = patched
    now = now_iso()
    with ctx.store.tx() as db:
        index = ProfileIndex(db, profile_keys(ctx.store), [attrs])
        _, conflict = index.resolve(attrs)
        if conflict:
            raise KlaviyoError(409, "duplicate_profile", "Conflict.", conflict, pointer="/data/attributes")
        pid, created = index.upsert(attrs, now)
        index.flush(now)
        row = db.execute(f"select {PROFILE_COLS} from kl_profiles where id = ?", (pid,)).fetchone()
    return jsonapi(profile_resource(request, row), status=201 if created else 200)


async def get_profiles(request: Request, ctx: Context) -> Response:
    size, after = page_params(request, 20, 100)
    return filtered_page(request, ctx, f"select {PROFILE_COLS} from kl_profiles",
                         parse_filter(request, ("email", "phone_number", "external_id", "id")), size, after,
                         lambda r: profile_resource(request, r))


async def get_profile(request: Request, ctx: Context) -> Response:
    with ctx.store.tx() as db:
        row = db.execute(f"select {PROFILE_COLS} from kl_profiles where id = ?",
                         (request.path_params["profile_id"],)).fetchone()
    if row is None:
        raise not_found(f"A profile with id {request.path_params['profile_id']} does not exist.")
    return jsonapi(profile_resource(request, row))


# ---------------------------------------------------------------- subscriptions and deletion

CONSENT_VALUES = {"SUBSCRIBED", "UNSUBSCRIBED"}


def consents_of(attrs: dict, default: str) -> dict[str, str]:
    subs = attrs.get("subscriptions") or {}
    out = {}
    for channel in ("email", "sms"):
        consent = ((subs.get(channel) or {}).get("marketing") or {}).get("consent")
        if consent is not None:
            out[channel] = consent
    if not out:
        out = {c: default for c, f in (("email", "email"), ("sms", "phone_number")) if attrs.get(f)}
    return out


def valid_entries(entries: list) -> list[dict]:
    """The profiles' attributes; the whole request fails (400, nothing applied) on the first bad one."""
    wanted = []
    for i, e in enumerate(entries):
        attrs = e.get("attributes") if isinstance(e, dict) else None
        problem = validate_profile(attrs, f"/data/attributes/profiles/data/{i}/attributes")
        if problem:
            raise invalid(problem[1], pointer=problem[2])
        wanted.append(attrs)
    return wanted


async def subscribe(request: Request, ctx: Context) -> Response:
    body = await json_body(request)
    entries = profile_entries(body, MAX_SUBSCRIBE, "A subscription job")
    attributes = body["data"].get("attributes") or {}
    if attributes.get("historical_import"):
        for i, e in enumerate(entries):
            consented = ((e.get("attributes") or {}).get("subscriptions") or {})
            stamps = [((consented.get(c) or {}).get("marketing") or {}).get("consented_at") for c in ("email", "sms")]
            stamps = [s for s in stamps if s]
            if not stamps or any(s > now_iso() for s in stamps):
                raise invalid("With historical_import, consented_at is required and must be in the past.",
                              pointer=f"/data/attributes/profiles/data/{i}/attributes/subscriptions")
    wanted = valid_entries(entries)
    for i, attrs in enumerate(wanted):
        for channel, consent in consents_of(attrs, "SUBSCRIBED").items():
            if consent != "SUBSCRIBED":
                raise invalid("Subscribe jobs take consent SUBSCRIBED.", pointer=f"/data/attributes/profiles/"
                              f"data/{i}/attributes/subscriptions/{channel}/marketing/consent")
    lists = list_ids_of(body, "list")
    now = now_iso()
    with ctx.store.tx() as db:
        for lid in lists:
            require_list(db, lid)
        index = ProfileIndex(db, profile_keys(ctx.store), wanted)
        pids = []
        for attrs in wanted:
            pid, _ = index.upsert({k: attrs[k] for k in ("email", "phone_number") if attrs.get(k)}, now)
            for channel in consents_of(attrs, "SUBSCRIBED"):
                index.set_consent(pid, channel, "SUBSCRIBED")
            pids.append(pid)
        index.flush(now)
        for lid in lists:
            add_members(db, lid, pids, now)
    return Response(status_code=202)


async def unsubscribe(request: Request, ctx: Context) -> Response:
    """The documented trap: a profile not in the named list is unsubscribed globally."""
    body = await json_body(request)
    entries = profile_entries(body, MAX_UNSUBSCRIBE, "An unsubscribe job")
    lists = list_ids_of(body, "list")
    wanted = valid_entries(entries)
    now = now_iso()
    with ctx.store.tx() as db:
        for lid in lists:
            require_list(db, lid)
        index = ProfileIndex(db, profile_keys(ctx.store), wanted)
        for attrs in wanted:
            pid, _ = index.resolve(attrs)
            if pid is None:
                continue
            in_list = [lid for lid in lists if db.execute(
                "select 1 from kl_list_members where list_id = ? and profile_id = ?", (lid, pid)).fetchone()]
            if in_list:
                db.executemany("delete from kl_list_members where list_id = ? and profile_id = ?",
                               [(lid, pid) for lid in in_list])
            else:
                for channel in consents_of(attrs, "UNSUBSCRIBED"):
                    index.set_consent(pid, channel, "UNSUBSCRIBED")
        index.flush(now)
    return Response(status_code=202)


async def privacy_delete(request: Request, ctx: Context) -> Response:
    body = await json_body(request)
    profile = (((body["data"].get("attributes") or {}).get("profile") or {}).get("data") or {}) \
        if isinstance(body["data"], dict) else {}
    attrs = dict(profile.get("attributes") or {})
    if profile.get("id"):
        attrs["id"] = profile["id"]
    if not any(attrs.get(k) for k in (*IDENTIFIERS, "id")):
        raise invalid("Name the profile by id, email, phone_number or external_id.",
                      pointer="/data/attributes/profile/data")
    with ctx.store.tx() as db:
        index = ProfileIndex(db, profile_keys(ctx.store), [attrs])
        pid, _ = index.resolve(attrs)
        if pid:
            db.execute("delete from kl_list_members where list_id in (select id from kl_lists) and profile_id = ?",
                       (pid,))  # by the (list_id, profile_id) key, list by list
            db.execute("delete from kl_profiles where id = ?", (pid,))
    return Response(status_code=202)


def routes(ctx: Context) -> Mount:
    def r(path: str, handler: Handler, cls: str, methods: list[str]) -> Route:
        return Route(path, endpoint(cls, handler, ctx), methods=methods)

    table = [
        ("/lists", get_lists, "L", ["GET"]), ("/lists", create_list, "M", ["POST"]),
        ("/lists/{list_id}", get_list, "L", ["GET"]),
        ("/lists/{list_id}/profiles", list_profiles, "L", ["GET"]),
        ("/lists/{list_id}/relationships/profiles", list_relationships, "M", ["POST", "DELETE"]),
        ("/profile-bulk-import-jobs", create_bulk_import, "M", ["POST"]),
        ("/profile-bulk-import-jobs/{job_id}", get_bulk_import, "M", ["GET"]),
        ("/profile-bulk-import-jobs/{job_id}/import-errors", job_import_errors, "M", ["GET"]),
        ("/profile-bulk-import-jobs/{job_id}/profiles", job_profiles, "M", ["GET"]),
        ("/profile-bulk-import-jobs/{job_id}/relationships/profiles", job_profiles, "M", ["GET"]),
        ("/profile-bulk-import-jobs/{job_id}/lists", job_lists, "M", ["GET"]),
        ("/profile-bulk-import-jobs/{job_id}/relationships/lists", job_lists, "M", ["GET"]),
        ("/profile-import", profile_import, "L", ["POST"]),
        ("/profiles", get_profiles, "XL", ["GET"]),
        ("/profiles/{profile_id}", get_profile, "XL", ["GET"]),
        ("/profile-subscription-bulk-create-jobs", subscribe, "L", ["POST"]),
        ("/profile-subscription-bulk-delete-jobs", unsubscribe, "L", ["POST"]),
        ("/data-privacy-deletion-jobs", privacy_delete, "S", ["POST"]),
        ("/events", engagement.klaviyo_events, "XL", ["GET"]),  # opens/clicks of simulate/engagement
    ]
    api = [r(p, h, c, m) for p, h, c, m in table] + [r(p + "/", h, c, m) for p, h, c, m in table]
    return Mount("/klaviyo", routes=[Mount("/api", routes=api)])


def summary(db) -> dict:
    lists = {name: n for name, n in db.execute(
        "select l.name, count(m.profile_id) from kl_lists l left join kl_list_members m on m.list_id = l.id "
        "group by l.id, l.name order by l.name")}
    profiles = db.execute("select count(*) from kl_profiles").fetchone()[0]
    return {"profiles": profiles, "lists": lists}
