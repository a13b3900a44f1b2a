"""What every destination client offers the engine, and what it returns per row."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class RowResult:
    key: str
    ok: bool
    destination_id: str | None = None
    code: str | None = None
    message: str | None = None


class DestinationError(RuntimeError):
    """A whole request failed permanently (auth, bad configuration): the run stops, nothing is marked."""


class MembershipClient(Protocol):
    """A destination holding a set of members (add_remove mode)."""

    add_batch_size: int      # rows per add call (the platform's documented maximum)
    remove_batch_size: int   # rows per remove call
    calls_per_second: float  # steady rate the platform documents, for the dry-run estimate
    calls_per_add_batch: int  # requests one add batch costs (e.g. job create + polls + result pages)
    retries: list[int]       # transient retries made so far (one-element counter)

    def add(self, rows: list[dict]) -> list[RowResult]: ...

    def remove(self, rows: list[dict]) -> list[RowResult]: ...
