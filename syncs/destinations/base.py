"""What every destination returns per row."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RowResult:
    key: str
    ok: bool
    destination_id: str | None = None
    code: str | None = None
    message: str | None = None


class DestinationError(RuntimeError):
    """A whole request failed permanently (auth, bad configuration): the run stops, nothing is marked."""
