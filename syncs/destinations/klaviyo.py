"""Klaviyo list membership (https://a.klaviyo.com, revision 2026-07-15; shared/destinations.md §1).

Adding: `POST /api/profile-bulk-import-jobs` with relationships.lists, up to 10,000 profiles and
5 MB per job; the job is polled and its import-errors become per-row rejections. When the job's
counts account for every row (completed + failed = total) the other rows are acknowledged without
reading the job's profiles back (that read-back was 100 GETs per 10,000 rows, most of an initial
sync's calls); otherwise the profiles are read and only the rows found are acknowledged.
Upsert mode (profile attributes, no list): the same bulk import job without `relationships.lists`.
A payload field that is null is cleared at Klaviyo: each profile of the job names its null fields in
`meta.patch_properties.unset` ("remove a key or keys (and their values) completely from
properties", the profile object of the bulk import in stable.json [K1]; Klaviyo documents `null`
as clearing for PATCH /api/profiles and /api/profile-import only), so no extra call is needed. A
field the row carried before and no longer carries at all (gone from the payload, or removed from
the sync's `fields:` in syncs.yml) arrives here as a null field too and is unset the same way (the
engine remembers each row's fields: syncs/sent_fields.py); email, phone and names are never cleared.
Reading a list (mirror mode): `GET /api/lists/{id}/profiles`, 100 a page, cursor links (`links.next`).
Removing: `DELETE /api/lists/{id}/relationships/profiles`, up to 1,000 ids; rows without a stored
Klaviyo id are resolved first with `GET /api/profiles?filter=any(external_id,[...])`, 100 a call.
No subscription calls: list membership never changes consent, and so never triggers the
"not in the named list -> globally unsubscribed" trap of the subscription endpoints.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Iterable, Iterator, TypeVar
from urllib.parse import urlencode

import orjson
import requests

from syncs.destinations.base import (Acknowledged, ColumnPage, DestinationError, RowResult, page_payloads,
                                     payload_fields)
from syncs.http import limiter, session

# [K1] klaviyo/openapi stable.json; [K2] rate limits (tier M: 10/s burst, 150/min steady).
BULK_IMPORT_MAX_PROFILES = 10_000
BULK_IMPORT_MAX_BYTES = 5_000_000
LIST_RELATIONSHIP_MAX = 1_000
PROFILE_FILTER_MAX = 100  # values in one any(external_id,[...]) filter of GET /api/profiles
LIST_PROFILES_PAGE = 100  # page[size] maximum of GET /api/lists/{id}/profiles
RATE_S = [(3, 1), (60, 60)]  # data-privacy-deletion-jobs
RATE_M = [(10, 1), (150, 60)]
RATE_L = [(75, 1), (700, 60)]
NO_LIMIT = [(100_000, 1)]  # only for a sandbox run without rate limits
JSONAPI = "application/vnd.api+json"
BODY_OVERHEAD = 512  # the job document around its profiles, with a list relationship
PROFILE_FIELDS = (("email", "email"), ("phone", "phone_number"), ("first_name", "first_name"),
                  ("last_name", "last_name"))  # diff column -> profile attribute (sent when not empty)
T = TypeVar("T")


class KlaviyoClient:
    def __init__(self, base_url: str, api_key: str, revision: str, poll_seconds: float = 0.2,
                 job_timeout_s: float = 600, rate_limits: bool = True, timeout_s: float = 60):
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.http, self.retries = session()
        self.http.headers.update({"Authorization": f"Klaviyo-API-Key {api_key}", "revision": revision,
                                  "Accept": JSONAPI, "Content-Type": JSONAPI})
        # Klaviyo counts fixed windows per account (1 s burst, 1 min steady) [K2]: clock-aligned
        # windows reach ~94% of the allowed rate where rolling ones reached 79% (benchmarks/results.md).
        self.rate_m = limiter(RATE_M if rate_limits else NO_LIMIT, aligned=rate_limits)
        self.rate_l = limiter(RATE_L if rate_limits else NO_LIMIT, aligned=rate_limits)
        self.rate_s = limiter(RATE_S if rate_limits else NO_LIMIT, aligned=rate_limits)
        self.poll_seconds = poll_seconds
        self.job_timeout_s = job_timeout_s

    # -- plumbing ----------------------------------------------------------------------------
    def _call(self, method: str, path: str, rate, **kwargs) -> requests.Response:
        rate.try_acquire("klaviyo")
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        response = self.http.request(method, url, timeout=self.timeout_s, **kwargs)
        if response.status_code in (401, 403):
            raise DestinationError(f"Klaviyo refused the API key ({response.status_code}): check KLAVIYO_API_KEY")
        if response.status_code >= 400:
            raise DestinationError(f"Klaviyo {method} {path} failed with {response.status_code}: "
                                   f"{_error_detail(response)}")
        return response

    def _pages(self, path: str, rate) -> Iterable[dict]:
        url: str | None = path
        while url:
            body = self._call("GET", url, rate).json()
            yield from body.get("data", [])
            url = (body.get("links") or {}).get("next")

    # -- lists -------------------------------------------------------------------------------
    def find_list(self, name: str) -> str | None:
        quoted = json.dumps(name)
        found = self._call("GET", "/api/lists", self.rate_l, params={"filter": f"equals(name,{quoted})"}).json()
        for item in found.get("data", []):
            if item["attributes"]["name"] == name:
                return item["id"]
        return None

    def list_id(self, name: str) -> str:
        """The list's id, creating the list when there is none of that name."""
        found = self.find_list(name)
        if found:
            return found
        created = self._call("POST", "/api/lists", self.rate_m,
                             data=json.dumps({"data": {"type": "list", "attributes": {"name": name}}}))
        return created.json()["data"]["id"]

    # -- membership --------------------------------------------------------------------------
    def add(self, list_id: str | None, rows: list[dict]) -> list[RowResult]:
        """Import rows (key, email, phone, first_name, last_name, properties) into the list, or only
        as profiles when `list_id` is None (upsert mode): submit the job, then wait for its results."""
        return self.collect(self.submit([r["key"] for r in rows], import_body(list_id, [profile_json(r) for r in rows])))

    def submit(self, keys: list[str], body: bytes) -> ImportJob:
        """POST one import job (`body`: import_body, or import_document serialised) of the rows
        `keys`; returns at once with the job as Klaviyo answered it (often still queued). Nothing is
        acknowledged until `collect`."""
        answer = self._call("POST", "/api/profile-bulk-import-jobs", self.rate_m, data=body)
        return ImportJob(answer.json()["data"], keys, time.monotonic())

    def collect(self, job: ImportJob) -> list[RowResult] | Acknowledged:
        """Poll the job until Klaviyo finished it, then one RowResult per row: its import-errors
        become rejections; the rest are acknowledged from the job's counts (or read back). A job
        that imported every row by its counts gives base.Acknowledged of its keys."""
        job_id, data = job.data["id"], job.data
        deadline = job.submitted + self.job_timeout_s
        while data["attributes"]["status"] in ("queued", "processing"):
            if time.monotonic() > deadline:
                raise DestinationError(f"Klaviyo import job {job_id} did not finish in {self.job_timeout_s:.0f}s")
            time.sleep(self.poll_seconds)
            data = self._call("GET", f"/api/profile-bulk-import-jobs/{job_id}", self.rate_m).json()["data"]
        if data["attributes"]["status"] == "cancelled":
            raise DestinationError(f"Klaviyo cancelled import job {job_id}")
        rejected: dict[str, RowResult] = {}
        if data["attributes"].get("failed_count"):
            for err in self._pages(f"/api/profile-bulk-import-jobs/{job_id}/import-errors", self.rate_m):
                attrs = err["attributes"]
                key = (attrs.get("original_payload") or {}).get("external_id")
                if key:
                    rejected[key] = RowResult(key, False, code=attrs.get("code"),
                                              message=(attrs.get("detail") or attrs.get("title") or "")[:500])
        attrs, keys = data["attributes"], job.keys
        if (attrs.get("total_count") == len(keys) and attrs.get("status") == "complete"
                and attrs.get("completed_count", 0) + attrs.get("failed_count", 0) == len(keys)
                and len(rejected) == attrs.get("failed_count", 0)):
            # Every row is accounted for by the job's counts: all but the reported failures were
            # imported. Klaviyo ids are looked up only when a row is removed (few rows, later).
            if not rejected:
                return Acknowledged(keys)  # every row: the engine marks them without a result each
            return [rejected.get(k) or RowResult(k, True) for k in keys]
        ids = {p["attributes"].get("external_id"): p["id"]
               for p in self._pages(f"/api/profile-bulk-import-jobs/{job_id}/profiles?page[size]=100", self.rate_m)}
        results = []
        for k in keys:
            if k in rejected:
                results.append(rejected[k])
            elif k in ids:
                results.append(RowResult(k, True, destination_id=ids[k]))
            else:  # neither imported nor reported: not acknowledged, so retried next run
                results.append(RowResult(k, False, code="not_acknowledged",
                                         message="the import job neither imported nor rejected this profile"))
        return results

    def list_members(self, list_id: str) -> Iterator[dict]:
        """The list's members, a page (100) at a time: {"destination_id", "key", "email"}."""
        query = urlencode({"page[size]": LIST_PROFILES_PAGE, "fields[profile]": "email,external_id"})
        for profile in self._pages(f"/api/lists/{list_id}/profiles?{query}", self.rate_l):
            attrs = profile.get("attributes") or {}
            yield {"destination_id": profile["id"], "key": attrs.get("external_id"), "email": attrs.get("email")}

    def profile_ids(self, external_ids: list[str]) -> dict[str, str]:
        """Klaviyo profile ids of our profiles (external_id = profile_id), 100 per request."""
        found: dict[str, str] = {}
        for start in range(0, len(external_ids), PROFILE_FILTER_MAX):
            chunk = external_ids[start:start + PROFILE_FILTER_MAX]
            query = urlencode({"filter": f"any(external_id,{json.dumps(chunk)})", "page[size]": 100})
            for profile in self._pages(f"/api/profiles?{query}", self.rate_l):
                found[profile["attributes"].get("external_id")] = profile["id"]
        return found

    def remove(self, list_id: str, rows: list[dict]) -> list[RowResult]:
        """Rows without a Klaviyo id are looked up by key; mirror's strangers carry their id and no key."""
        missing = [r["key"] for r in rows if not r.get("destination_id") and r.get("key")]
        looked_up = self.profile_ids(missing) if missing else {}
        ids = [r.get("destination_id") or looked_up.get(r["key"]) for r in rows]
        with_ids = sorted({pid for pid in ids if pid})
        if with_ids:  # a profile Klaviyo no longer has is not in the list either
            body = {"data": [{"type": "profile", "id": pid} for pid in with_ids]}
            self._call("DELETE", f"/api/lists/{list_id}/relationships/profiles", self.rate_m, data=json.dumps(body))
        return [RowResult(r["key"], True, destination_id=pid) for r, pid in zip(rows, ids)]

    def forget(self, rows: list[dict]) -> list[RowResult]:
        """GDPR deletion: one `POST /api/data-privacy-deletion-jobs` per identifier Klaviyo accepts
        (profile id, email, phone_number; one per job). Profile ids not stored are looked up by
        external_id. A job for a profile Klaviyo does not have is accepted too (202)."""
        missing = [r["key"] for r in rows if not r.get("destination_id")]
        looked_up = self.profile_ids(missing) if missing else {}
        jobs: set[tuple[str, str]] = set()
        for row in rows:
            profile_id = row.get("destination_id") or looked_up.get(row["key"])
            jobs |= {(field, value) for field, value in (("id", profile_id), ("email", row.get("email")),
                                                          ("phone_number", row.get("phone"))) if value}
        for field, value in sorted(jobs):
            profile = {"type": "profile", "id": value} if field == "id" else \
                {"type": "profile", "attributes": {field: value}}
            body = {"data": {"type": "data-privacy-deletion-job", "attributes": {"profile": {"data": profile}}}}
            self._call("POST", "/api/data-privacy-deletion-jobs", self.rate_s, data=json.dumps(body))
        return [RowResult(r["key"], True, destination_id=r.get("destination_id") or looked_up.get(r["key"]))
                for r in rows]


PROPERTY_NAMES_KEPT = 1_024  # payload field -> property name entries a `names` cache holds (a model has a few)


_PARSE = object()  # profile_json's `fields` when the caller has not parsed the payload


def profile_json(row: dict, names: dict[str, str] | None = None, fields: dict | None | object = _PARSE) -> bytes:
    """One profile of an import job body, serialised once (sized by `batches`, sent by `submit`):
    its payload fields as properties, the null ones unset (`meta.patch_properties.unset`). Only the
    attributes go through orjson; the fixed envelope around them is written as bytes (see
    profile_bytes). `names` (payload field -> `lifeline_<field>`), kept by the caller across rows,
    makes each property name once: a name built per row is a new string to hash, a third of this
    function's CPU. `fields`: the row's payload_fields when the caller has them
    (base.page_payloads), else parsed here."""
    attrs = {"external_id": row["key"]}
    get = row.get
    for field, target in PROFILE_FIELDS:
        value = get(field)
        if value:
            attrs[target] = value
    if fields is _PARSE:
        fields = payload_fields(row)
    if fields is not None:
        attrs["properties"], cleared = _properties(fields, _kept(names))
        if cleared:
            return orjson.dumps({"type": "profile", "attributes": attrs,
                                 "meta": {"patch_properties": {"unset": cleared}}})
    return b'{"type":"profile","attributes":' + orjson.dumps(attrs) + b"}"


def _kept(names: dict[str, str] | None) -> dict[str, str]:
    """The caller's property-name cache, or a new one when it has none or holds over PROPERTY_NAMES_KEPT."""
    return {} if names is None or len(names) > PROPERTY_NAMES_KEPT else names


def _properties(fields: dict, names: dict[str, str]) -> tuple[dict, list[str]]:
    """The payload fields as `lifeline_<field>` properties, and the names of the null ones (to unset)."""
    properties, cleared = {}, []
    for name, value in fields.items():
        prop = names.get(name)
        if prop is None:
            prop = names[name] = f"lifeline_{name}"
        if value is None:
            cleared.append(prop)
        else:
            properties[prop] = value
    return properties, cleared


def profile_bytes(profile: dict) -> bytes:
    """A profile object (profile_objects) serialised as profile_json writes it, to be kept with a
    job's others: the bytes orjson returns themselves, kept by the thousand, cost 2.6 instead of
    0.3 us each to make (10,000 kept: 26 ms against 3 ms); the envelope written around the
    attributes' JSON makes a new object of its own size. Only a profile with fields to unset (a
    few) is kept as orjson made it, as profile_json does."""
    if "meta" in profile:
        return orjson.dumps(profile)
    return b'{"type":"profile","attributes":' + orjson.dumps(profile["attributes"]) + b"}"


def profile_objects(keys: list[str], emails: list, phones: list, first_names: list, last_names: list,
                    payloads: list[dict | None], names: dict[str, str] | None = None) -> list[dict]:
    """The profile objects of an import job, from columns (what profile_json writes for a row): the
    identifiers and names that are not empty, the payload fields as properties and the null ones
    unset. One loop for a page, without a call per row but for its properties."""
    names = _kept(names)
    profiles = []
    for key, email, phone, first_name, last_name, fields in zip(keys, emails, phones, first_names, last_names,
                                                                payloads):
        attrs = {"external_id": key}
        if email:
            attrs["email"] = email
        if phone:
            attrs["phone_number"] = phone
        if first_name:
            attrs["first_name"] = first_name
        if last_name:
            attrs["last_name"] = last_name
        profile = {"type": "profile", "attributes": attrs}
        if fields is not None:
            attrs["properties"], cleared = _properties(fields, names)
            if cleared:
                profile["meta"] = {"patch_properties": {"unset": cleared}}
        profiles.append(profile)
    return profiles


def column_profiles(page: ColumnPage, names: dict[str, str] | None = None) -> list[dict]:
    """profile_objects of a page read as columns (the engine's base.ColumnPage)."""
    return profile_objects(page.keys, page.column("email"), page.column("phone"), page.column("first_name"),
                           page.column("last_name"), page.payloads, names)


def import_document(list_id: str | None, profiles: list[dict]) -> dict:
    """The bulk import job document of profile objects, which orjson serialises to import_body's bytes."""
    job: dict = {"type": "profile-bulk-import-job", "attributes": {"profiles": {"data": profiles}}}
    if list_id is not None:
        job["relationships"] = {"lists": {"data": [{"type": "list", "id": list_id}]}}
    return {"data": job}


def import_body(list_id: str | None, profiles: list[bytes]) -> bytes:
    """The bulk import job document around already serialised profiles (the list relationship
    only when a list is named)."""
    lists = (b',"relationships":{"lists":{"data":[' + orjson.dumps({"type": "list", "id": list_id}) + b"]}}"
             if list_id is not None else b"")
    return (b'{"data":{"type":"profile-bulk-import-job","attributes":{"profiles":{"data":['
            + b",".join(profiles) + b"]}}" + lists + b"}}")


def _error_detail(response: requests.Response) -> str:
    try:
        errors = response.json().get("errors", [])
        return "; ".join(f"{e.get('code')}: {e.get('detail') or e.get('title')}" for e in errors)[:500]
    except ValueError:
        return response.text[:200]


def _empty_body(list_id: str | None) -> bytes:
    return orjson.dumps(import_document(list_id, []))


BATCH_BUDGET = BULK_IMPORT_MAX_BYTES * 0.95 - BODY_OVERHEAD  # bytes of profiles (and their commas) in one job


def batches(rows: list[dict], names: dict[str, str] | None = None) -> Iterable[list[tuple[dict, bytes]]]:
    """Split rows into import jobs within the profile count and payload size limits, as
    (row, profile JSON) pairs: each profile is serialised once, for its size and for the body.
    `names`: profile_json's property names, kept across calls; the payloads parsed once with the
    page when `rows` is a base.Page."""
    names = {} if names is None else names
    return split_jobs((row, profile_json(row, names, fields)) for row, fields in zip(rows, page_payloads(rows)))


def split_jobs(pairs: Iterable[tuple[T, bytes]]) -> Iterator[list[tuple[T, bytes]]]:
    """(item, profile JSON) pairs in jobs of at most BULK_IMPORT_MAX_PROFILES and BATCH_BUDGET bytes."""
    batch: list[tuple[T, bytes]] = []
    size = 0
    for item, profile in pairs:
        if batch and (len(batch) >= BULK_IMPORT_MAX_PROFILES or size + len(profile) + 1 > BATCH_BUDGET):
            yield batch
            batch, size = [], 0
        batch.append((item, profile))
        size += len(profile) + 1
    if batch:
        yield batch


@dataclass
class ImportJob:
    """A submitted bulk import job: Klaviyo's job resource as last read and the keys it carries."""

    data: dict
    keys: list[str]
    submitted: float  # time.monotonic() when submitted


class KlaviyoList:
    """One Klaviyo list as a membership destination (found by name, created on first use); in
    upsert mode the list is never touched: profiles are imported without it."""

    add_batch_size = BULK_IMPORT_MAX_PROFILES
    upsert_batch_size = BULK_IMPORT_MAX_PROFILES
    remove_batch_size = LIST_RELATIONSHIP_MAX
    calls_per_second = RATE_M[1][0] / RATE_M[1][1]
    calls_per_add_batch = 2  # create the job, poll it (its profiles are read only if its counts don't add up)
    in_flight = 3  # import jobs the engine keeps running at once (Klaviyo runs jobs concurrently)
    forget_batch_size = PROFILE_FILTER_MAX

    def __init__(self, client: KlaviyoClient, list_name: str):
        self.client = client
        self.list_name = list_name
        self.retries = client.retries
        self._list_id: str | None = None
        self._list_lock = threading.Lock()  # add() runs in several engine threads at once
        self._property_names: dict[str, str] = {}  # profile_json's, shared by those threads (only grows)

    def _id(self) -> str:
        with self._list_lock:
            if self._list_id is None:
                self._list_id = self.client.list_id(self.list_name)
            return self._list_id

    def add(self, rows: list[dict]) -> list[RowResult]:
        return self._import(self._id(), rows)

    def upsert(self, rows: list[dict]) -> list[RowResult]:
        return self._import(None, rows)

    def _import(self, list_id: str | None, rows: list[dict]) -> list[RowResult] | Acknowledged:
        """Every job of the page is submitted before the first is waited for, so the jobs of a
        page larger than one job (none from the engine today) run concurrently at Klaviyo. A page
        of one job gives that job's results as they are (Acknowledged when it imported every row)."""
        return self._results(self._submit(list_id, batches(rows, self._property_names)))

    def _submit(self, list_id: str | None, jobs: Iterable[list[tuple[dict | str, bytes]]]) -> list[ImportJob]:
        """Each job of (row or key, profile JSON) pairs submitted."""
        return [self.client.submit([item if isinstance(item, str) else item["key"] for item, _ in batch],
                                   import_body(list_id, [p for _, p in batch])) for batch in jobs]

    def add_columns(self, page: ColumnPage) -> list[RowResult] | Acknowledged:
        """add() of a page read as columns (base.ColumnPage): the job document with its profiles
        serialised in one orjson call when the page fits one job (the engine's pages do: 10,000
        rows), else the profiles serialised one by one and split as add() does."""
        list_id = self._id()
        profiles = column_profiles(page, self._property_names)
        body = orjson.dumps(import_document(list_id, profiles))
        # the profiles' JSON array is the body less the document around it; split_jobs counts it less its "]"
        if len(profiles) <= BULK_IMPORT_MAX_PROFILES and len(body) - len(_empty_body(list_id)) + 1 <= BATCH_BUDGET:
            return self._results([self.client.submit(page.keys, body)])
        pairs = ((key, profile_bytes(profile)) for key, profile in zip(page.keys, profiles))
        return self._results(self._submit(list_id, split_jobs(pairs)))

    def _results(self, jobs: list[ImportJob]) -> list[RowResult] | Acknowledged:
        results = [self.client.collect(job) for job in jobs]
        return results[0] if len(results) == 1 else [result for job in results for result in job]

    def remove(self, rows: list[dict]) -> list[RowResult]:
        return self.client.remove(self._id(), rows)

    def members(self) -> Iterator[dict]:
        """The list's members (none when the list does not exist yet: reading creates nothing)."""
        list_id = self._list_id or self.client.find_list(self.list_name)
        return self.client.list_members(list_id) if list_id else iter(())

    def forget(self, rows: list[dict]) -> list[RowResult]:
        return self.client.forget(rows)
