"""What every destination client offers the engine, and what it returns per row.

Rows handed to a client are dicts read from the warehouse diff: key (the profile_id), row_hash,
email, phone, first_name, last_name, payload (JSON text of personalisation fields),
destination_id (what the platform returned when the row was first acknowledged, or None) and op
(add | update | remove). Trigger rows carry idempotency_key as well. A client never logs raw PII.

Which protocol a client implements decides which sync modes it supports:
- MembershipClient: add_remove and mirror (mirror also needs `members()` to read the destination);
- ProfileClient: upsert (profile attributes, no membership);
- MessageClient: trigger (one message per idempotency key);
- ForgetClient: GDPR deletion through the platform's deletion API.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Iterator, Mapping, NamedTuple, Protocol, runtime_checkable

import orjson


class RowResult(NamedTuple):
    """What the destination said about one row. Immutable; a NamedTuple, not a frozen dataclass:
    a 10,000-row import job makes one per row (2.2 instead of 5.8 ms a page)."""
    key: str
    ok: bool
    destination_id: str | None = None
    code: str | None = None
    message: str | None = None


class Acknowledged(Sequence):
    """Every row of a send acknowledged, none with a destination id: RowResult(key, True) for each
    of `keys`, in order, made only when read. A client returns it for rows it can acknowledge whole
    (Klaviyo: an import job whose counts account for every row, none failed), and the engine marks
    such a page from the keys without a result per row (syncs.engine.sort_page: a RowResult per row
    and matching it to its row were ~6 ms of a 10,000-row page). Reads as a list of RowResults."""

    __slots__ = ("keys",)

    def __init__(self, keys: list[str]):
        self.keys = keys

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [RowResult(k, True) for k in self.keys[index]]
        return RowResult(self.keys[index], True)

    def __iter__(self) -> Iterator[RowResult]:
        return (RowResult(k, True) for k in self.keys)

    def __eq__(self, other) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"Acknowledged({self.keys!r})"


def payload_fields(row: Mapping) -> dict | None:
    """The row's payload (JSON text of personalisation fields) as a dict; None when there is no
    payload or it is not a JSON object."""
    return parse_payload(row.get("payload"))


def parse_payload(text: str | None) -> dict | None:
    """payload_fields of a payload text."""
    if not text:
        return None
    try:
        payload = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return payload if isinstance(payload, dict) else None


class Page(list):
    """A page of diff rows (a list of dicts, as every client takes) that also carries each row's
    parsed payload by position (`payloads`: payload_fields of each row), parsed once by the engine
    (syncs.engine.with_sent_fields) for it and the client: the Klaviyo client parsed every payload
    a second time (~4 ms of a 10,000-row page)."""

    def __init__(self, rows: list[dict], payloads: list[dict | None]):
        super().__init__(rows)
        self.payloads = payloads


class ColumnPage:
    """A page of diff rows as the Arrow table read from the warehouse (plan.arrow_pages), with each
    row's parsed payload (`payloads`) and the encoded list of fields it carries (`sent_fields`), by
    position: a client that builds its request from columns (KlaviyoList.add_columns) and the
    engine's state write read the columns, without a dict per row (~15 ms of a 10,000-row page to
    make them). `rows()` gives the dicts (a base.Page) for what needs them: results of single
    rows, rejections."""

    __slots__ = ("table", "payloads", "sent_fields", "_columns")

    def __init__(self, table, payloads: list[dict | None], sent_fields: list[str]):
        self.table = table
        self.payloads = payloads
        self.sent_fields = sent_fields
        self._columns: dict[str, list] = {}

    def __len__(self) -> int:
        return self.table.num_rows

    def column(self, name: str) -> list:
        """The column's values as Python objects (made once)."""
        values = self._columns.get(name)
        if values is None:
            values = self._columns[name] = self.table.column(name).to_pylist()
        return values

    @property
    def keys(self) -> list[str]:
        return self.column("key")

    def rows(self) -> Page:
        """The page as dicts, each with its sent_fields, carrying the parsed payloads."""
        rows = self.table.to_pylist()
        for row, text in zip(rows, self.sent_fields):
            row["sent_fields"] = text
        return Page(rows, self.payloads)


def page_payloads(rows: list[dict]) -> list[dict | None]:
    """payload_fields of each row, by position: the page's own when it is a Page of the same length,
    else parsed now."""
    payloads = getattr(rows, "payloads", None)
    if payloads is not None and len(payloads) == len(rows):
        return payloads
    return [payload_fields(row) for row in rows]


def payload_attributes(row: dict, keep_nulls: bool = False) -> dict | None:
    """The row's payload fields as `lifeline_<field>` attributes, null values left out unless
    `keep_nulls` (a null is a field to clear at the destination); None without a payload object."""
    payload = payload_fields(row)
    if payload is None:
        return None
    return {f"lifeline_{k}": v for k, v in payload.items() if keep_nulls or v is not None}


class DestinationError(RuntimeError):
    """A whole request failed permanently (auth, bad configuration): the run stops, nothing is marked."""


@runtime_checkable
class MembershipClient(Protocol):
    """A destination holding a set of members (add_remove mode)."""

    add_batch_size: int      # rows per add call (the platform's documented maximum)
    remove_batch_size: int   # rows per remove call
    calls_per_second: float  # steady rate the platform documents, for the dry-run estimate
    calls_per_add_batch: int  # requests one add batch costs (e.g. job create + polls + result pages)
    retries: list[int]       # transient retries made so far (one-element counter)

    def add(self, rows: list[dict]) -> list[RowResult]: ...

    def remove(self, rows: list[dict]) -> list[RowResult]: ...


@runtime_checkable
class MirrorableClient(MembershipClient, Protocol):
    """A membership destination whose members can be read back (mirror mode removes strangers)."""

    def members(self) -> Iterator[dict]:
        """Every current member, page by page, as {"destination_id": the platform's id, "key": the
        profile_id it carries or None, "email": its email or None} (mirror mode: members matching
        neither the state nor the model by key, id or email are removed)."""
        ...


@runtime_checkable
class ProfileClient(Protocol):
    """A destination of profile attributes (upsert mode): rows are created or updated, never removed."""

    upsert_batch_size: int
    calls_per_second: float
    retries: list[int]

    def upsert(self, rows: list[dict]) -> list[RowResult]: ...


@runtime_checkable
class MessageClient(Protocol):
    """A destination that sends one message per row (trigger mode). `send` must return a RowResult for
    every row: ok with the platform's message id, or a permanent per-row failure (code, message)."""

    send_batch_size: int
    calls_per_second: float
    retries: list[int]

    def send(self, rows: list[dict]) -> list[RowResult]: ...


@runtime_checkable
class ForgetClient(Protocol):
    """GDPR erasure: delete people from the platform through its deletion API. Rows carry key,
    email, phone and destination_id; the client picks the identifiers the platform accepts."""

    forget_batch_size: int
    retries: list[int]

    def forget(self, rows: list[dict]) -> list[RowResult]: ...
