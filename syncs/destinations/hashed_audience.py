"""What the three ad-platform audience clients share (Meta, Google Data Manager, TikTok).

These platforms hold a set of *hashed* identifiers and have no read endpoint for them, so:

- the hashed identifiers sent for a row are its `destination_id` (`EMAIL=<hex>;PHONE=<hex>;...`),
  stored in lifeline_state.sync_state after the platform acknowledged them. A removed row has no
  source row any more (no email, no phone): its stored identifiers are what is removed, byte for
  byte as they were added. The hashes are personal data too (pseudonymous): `lifeline forget`
  deletes the state rows holding them.
- an `update` row whose hashed identifiers are unchanged (only the payload changed) sends
  nothing; one whose identifiers changed has its old identifiers removed first, then the new ones
  added (removing after adding would drop the person on a platform that matches on any key).
- a row that cannot be normalised is a permanent per-row rejection (code + reason, never the value).
- source rows: an ad sync reads `channel: ads` of audience_members unless syncs.yml names another
  (syncs.config): people with an identifier (email, phone) that has marketing consent on its own
  channel and no ad-targeting opt-out; a row carries only its consented identifiers, so a person
  with SMS consent alone is matched by phone. `channel: email` keeps the email rows as before.
- two profiles hashing to the same identifiers share one platform member: removing one removes it.
- throttling answered inside a 200/400 body (Meta code 17/613, TikTok 40100) is retried here with
  jittered exponential backoff (tenacity); HTTP 429/5xx are retried by syncs/http.py's session.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from syncs.destinations.base import DestinationError, RowResult

T = TypeVar("T")
Identity = dict[str, str]  # ordered key -> lowercase SHA-256 hex, e.g. {"EMAIL": "...", "PHONE": "..."}


class Throttled(Exception):
    """The platform asked us to slow down inside its response body; `wait_s` is its hint, if any."""

    def __init__(self, message: str, wait_s: float = 0.0):
        super().__init__(message)
        self.wait_s = wait_s


class Rejected(ValueError):
    """A row that cannot be sent: `code` goes to lifeline_state.rejections, the message names the field."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


Hasher = tuple[str, str, Callable[[str | None], str]]  # (row field, identity key, normalise-and-hash)


def contact_identity(row: dict, hashers: Sequence[Hasher], platform: str) -> Identity:
    """The row's hashed contact identifiers; Rejected when one is malformed or there is none."""
    ids: Identity = {}
    for name, key, hash_value in hashers:
        if row.get(name):
            try:
                ids[key] = hash_value(row[name])
            except ValueError as exc:
                raise Rejected(f"invalid_{name}", f"{name}: {exc}") from None
    if not ids:
        raise Rejected("no_identifier", f"the row has no {' or '.join(h[0] for h in hashers)}: {platform} cannot "
                                        "match it")
    return ids


def each_identity(row: dict, hashers: Sequence[Hasher]) -> list[Identity]:
    """Each contact identifier of the row hashed on its own (the malformed and missing left out)."""
    out = []
    for name, key, hash_value in hashers:
        try:
            out.append({key: hash_value(row.get(name))})
        except ValueError:
            continue
    return out


def encode(identity: Identity) -> str:
    return ";".join(f"{key}={value}" for key, value in identity.items())


def decode(destination_id: str | None) -> Identity:
    """The identifiers stored for a row ({} when none or not in this format)."""
    out: Identity = {}
    for part in (destination_id or "").split(";"):
        key, eq, value = part.partition("=")
        if eq and key and value:
            out[key] = value
    return out


@dataclass
class AddPlan:
    """One add batch sorted out: what to send, what to remove first, and rows already decided."""
    send: list[tuple[dict, Identity]] = field(default_factory=list)
    stale: list[Identity] = field(default_factory=list)   # previously sent identifiers to remove first
    done: list[RowResult] = field(default_factory=list)   # rejections and unchanged rows


def plan_adds(rows: Iterable[dict], identify: Callable[[dict], Identity]) -> AddPlan:
    plan = AddPlan()
    for row in rows:
        try:
            identity = identify(row)
        except Rejected as exc:
            plan.done.append(RowResult(row["key"], False, code=exc.code, message=str(exc)))
            continue
        old = decode(row.get("destination_id"))
        if old == identity:
            plan.done.append(RowResult(row["key"], True, destination_id=encode(identity)))
            continue
        if old:
            plan.stale.append(old)
        plan.send.append((row, identity))
    return plan


def forget_identities(rows: Iterable[dict], identify_each: Callable[[dict], list[Identity]]) -> list[Identity]:
    """What forget() removes: each row's stored identifiers (exactly as added), plus every identifier
    its email/phone hash to on their own (the platforms match any key; this also covers a retry
    that has no stored identifiers). Duplicates dropped, order kept."""
    seen: dict[str, Identity] = {}
    for row in rows:
        candidates = [decode(row.get("destination_id"))] + identify_each(row)
        for identity in candidates:
            if identity:
                seen.setdefault(encode(identity), identity)
    return list(seen.values())


class HashedAudience:
    """add / remove / forget for a platform holding hashed members; a subclass says how to put
    identities in (`_put`, acknowledging rows) and take them out (`_drop`), and which contact
    fields it hashes (`contact`; `identify` may add more keys)."""

    platform: str
    contact: list[Hasher]

    def identify(self, row: dict) -> Identity:
        return contact_identity(row, self.contact, self.platform)

    def _put(self, pairs: list[tuple[dict, Identity]]) -> list[RowResult]:
        raise NotImplementedError

    def _drop(self, identities: list[Identity]) -> None:
        raise NotImplementedError

    def add(self, rows: list[dict]) -> list[RowResult]:
        plan = plan_adds(rows, self.identify)
        self._drop(plan.stale)  # changed identifiers: the old ones go before the new ones come
        return plan.done + (self._put(plan.send) if plan.send else [])

    def remove(self, rows: list[dict]) -> list[RowResult]:
        self._drop([ids for ids in (decode(r.get("destination_id")) for r in rows) if ids])
        return [RowResult(r["key"], True, destination_id=r.get("destination_id")) for r in rows]

    def forget(self, rows: list[dict]) -> list[RowResult]:
        """GDPR: take each person out of the audience (these platforms have no other deletion call).
        A row with neither stored identifiers nor a contact field cannot be found: not ok."""
        self._drop(forget_identities(rows, lambda r: each_identity(r, self.contact)))
        return [RowResult(r["key"], True, destination_id=r.get("destination_id"))
                if decode(r.get("destination_id")) or each_identity(r, self.contact) else
                RowResult(r["key"], False, code="no_identifier",
                          message=f"no stored identifiers and no {' or '.join(h[0] for h in self.contact)}: "
                                  f"remove the person in {self.platform} by hand")
                for r in rows]


def with_backoff(call: Callable[[], T], retries: list[int], platform: str, attempts: int = 8,
                 initial_s: float = 0.5, max_s: float = 60.0) -> T:
    """Run `call`, retrying Throttled with jittered exponential backoff (at least the platform's hint);
    after `attempts` tries raise DestinationError saying to rerun later. Counts retries in `retries`."""
    backoff = wait_exponential_jitter(initial=initial_s, max=max_s, jitter=initial_s)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        hint = exc.wait_s if isinstance(exc, Throttled) else 0.0
        return max(backoff(state), min(hint, max_s))

    def count(_state: RetryCallState) -> None:
        retries[0] += 1

    try:
        for attempt in Retrying(retry=retry_if_exception_type(Throttled), wait=wait, stop=stop_after_attempt(attempts),
                                before_sleep=count, reraise=True):
            with attempt:
                return call()
    except Throttled as exc:
        raise DestinationError(f"{platform} kept throttling after {attempts} attempts ({exc}); nothing more was "
                               f"sent and unacknowledged rows stay pending: rerun the sync later") from exc
    raise AssertionError("unreachable")  # pragma: no cover
