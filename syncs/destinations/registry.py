"""Build the destination client a sync's configuration names (secrets read from the environment here).

Each destination's module is imported when a sync of that type needs it: a Klaviyo sync does not
import the file destination's Arrow writer, Braze's or Google's clients (~40 ms of a sync's start)."""
from __future__ import annotations

from importlib import import_module
from typing import Mapping

from syncs.config import SyncConfig
from syncs.destinations.base import MembershipClient

SUPPORTED = ("klaviyo", "mailchimp", "braze", "webhook", "file", "twilio", "meta", "google", "tiktok")


class UnsupportedDestination(ValueError):
    pass


def open_client(sync: SyncConfig, env: Mapping[str, str]) -> MembershipClient:
    dest = sync.destination
    module = _module(sync)
    if dest.type == "klaviyo":
        client = module.KlaviyoClient(dest.resolved_base_url(env), dest.api_key(env), dest.revision,
                                      rate_limits=dest.client_rate_limits, timeout_s=dest.timeout_s)
        return module.KlaviyoList(client, dest.list_name or sync.name)
    if dest.type == "braze":
        return module.from_config(dest, sync.source.audience or sync.name, env)
    if dest.type == "webhook":
        return module.WebhookClient(dest.resolved_base_url(env), dest.api_key(env), sync.name,
                                    timeout_s=dest.timeout_s)
    if dest.type == "file":
        return module.FileDestination(dest.resolved_base_url(env), sync.name, dest.format)
    if dest.type == "mailchimp":
        return module.MailchimpList(dest.resolved_base_url(env), dest.api_key(env), dest.list_id or "",
                                    timeout_s=dest.timeout_s)
    return module.from_config(dest, env)  # twilio (a MessageClient, trigger mode), meta, google, tiktok


# The client class of each destination type (in syncs.destinations.<type>): its documented limits,
# and the protocols it implements decide the modes it supports (syncs/modes.py).
CLIENT_CLASSES: dict[str, str] = {
    "klaviyo": "KlaviyoList", "mailchimp": "MailchimpList", "braze": "BrazeUsers", "webhook": "WebhookClient",
    "file": "FileDestination", "twilio": "TwilioMessages", "meta": "MetaAudience", "google": "GoogleAudience",
    "tiktok": "TikTokAudience",
}


def client_class_of(kind: str) -> type:
    """The client class of a destination type in CLIENT_CLASSES, its module imported now."""
    return getattr(import_module(f"syncs.destinations.{kind}"), CLIENT_CLASSES[kind])


def _module(sync: SyncConfig):
    """The module of the sync's destination type, imported now; UnsupportedDestination for a type
    without a client."""
    if sync.destination.type not in CLIENT_CLASSES:
        raise UnsupportedDestination(f"sync {sync.name}: destination type {sync.destination.type} has no client yet "
                                     f"(supported: {', '.join(SUPPORTED)})")
    return import_module(f"syncs.destinations.{sync.destination.type}")


def limits(sync: SyncConfig) -> type[MembershipClient]:
    """The client class, for its documented limits (dry-run estimates need no credentials)."""
    return getattr(_module(sync), CLIENT_CLASSES[sync.destination.type])
