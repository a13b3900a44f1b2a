"""GDPR erasure at the destinations: call `forget()` on every sync's client that has one
(the ForgetClient protocol of syncs/destinations/base.py) and report, per sync, what happened.

Outcomes: `deleted` (the platform accepted the deletion of every row), `failed` (an error; the
detail says which, without identifiers), `no_deletion_api` (the client has no forget(): delete the
person in that platform by hand). A platform's deletion call is idempotent, so a retry is safe.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import requests

from syncs.config import MissingSecret, SyncConfig
from syncs.destinations.base import DestinationError, ForgetClient
from syncs.destinations.registry import UnsupportedDestination, open_client


@dataclass(frozen=True)
class DestinationOutcome:
    sync: str
    type: str
    status: str  # deleted | failed | no_deletion_api | would_forget
    detail: str = ""


def forget_one(sync: SyncConfig, rows: list[dict], env: Mapping[str, str]) -> DestinationOutcome:
    kind = sync.destination.type
    try:
        client = open_client(sync, env)
    except (UnsupportedDestination, MissingSecret) as exc:
        return DestinationOutcome(sync.name, kind, "failed", str(exc))
    if not isinstance(client, ForgetClient):
        return DestinationOutcome(sync.name, kind, "no_deletion_api",
                                  f"the {kind} client has no deletion call: delete the person in {kind} by hand")
    try:
        results = [r for start in range(0, len(rows), client.forget_batch_size)
                   for r in client.forget(rows[start:start + client.forget_batch_size])]
    except (DestinationError, requests.RequestException, OSError) as exc:
        return DestinationOutcome(sync.name, kind, "failed", f"{type(exc).__name__}: {str(exc)[:300]}")
    refused = [r for r in results if not r.ok]
    if refused:
        return DestinationOutcome(sync.name, kind, "failed",
                                  f"{len(refused)} of {len(results)} deletions refused ({refused[0].code})")
    return DestinationOutcome(sync.name, kind, "deleted", f"{len(results)} deletion(s) accepted")


def forget_everywhere(syncs: list[SyncConfig], rows: Mapping[str, list[dict]],
                      env: Mapping[str, str]) -> list[DestinationOutcome]:
    """forget() on each sync's destination with that sync's rows (key, email, phone, destination_id)."""
    return [forget_one(sync, rows.get(sync.name, []), env) for sync in syncs]
