"""Which sync modes a destination supports, derived from the protocols its client class implements
(syncs/destinations/base.py): a client with add/remove supports add_remove, with members() as
well mirror, with upsert() upsert, with send() trigger. Adding a method to a client adds the mode."""
from __future__ import annotations

from typing import Protocol

from syncs.config import SyncConfig
from syncs.destinations.base import MembershipClient, MessageClient, MirrorableClient, ProfileClient
from syncs.destinations.registry import CLIENT_CLASSES, client_class_of

MODE_PROTOCOLS: dict[str, type] = {"add_remove": MembershipClient, "mirror": MirrorableClient,
                                   "upsert": ProfileClient, "trigger": MessageClient}


class UnsupportedMode(ValueError):
    """The sync's mode needs calls its destination's client does not have."""


def protocol_methods(protocol: type) -> set[str]:
    """The public methods a protocol (and the protocols it extends) declares."""
    return {name for klass in protocol.__mro__ if getattr(klass, "_is_protocol", False) and klass is not Protocol
            for name, value in vars(klass).items() if callable(value) and not name.startswith("_")}


def implements(client_class: type, protocol: type) -> bool:
    return all(callable(getattr(client_class, name, None)) for name in protocol_methods(protocol))


def modes_of(client_class: type) -> list[str]:
    return [mode for mode, protocol in MODE_PROTOCOLS.items() if implements(client_class, protocol)]


def destinations_for(mode: str) -> list[str]:
    return [kind for kind in CLIENT_CLASSES if implements(client_class_of(kind), MODE_PROTOCOLS[mode])]


def check_mode(sync: SyncConfig, client_class: type) -> None:
    """Raise UnsupportedMode naming the sync, the mode, what this destination can do and which can do it."""
    if implements(client_class, MODE_PROTOCOLS[sync.mode]):
        return
    raise UnsupportedMode(
        f"sync {sync.name}: destination type {sync.destination.type} does not support mode {sync.mode} "
        f"(it supports: {', '.join(modes_of(client_class)) or 'none'}); destinations supporting {sync.mode}: "
        f"{', '.join(destinations_for(sync.mode))}. Change the mode or the destination in syncs.yml.")
