"""Build the destination client a sync's configuration names (secrets read from the environment here)."""
from __future__ import annotations

from typing import Mapping

from syncs.config import SyncConfig
from syncs.destinations import braze, file, klaviyo, mailchimp, twilio, webhook
from syncs.destinations import google, meta, tiktok
from syncs.destinations.base import MembershipClient

SUPPORTED = ("klaviyo", "mailchimp", "braze", "webhook", "file", "twilio", "meta", "google", "tiktok")


class UnsupportedDestination(ValueError):
    pass


def open_client(sync: SyncConfig, env: Mapping[str, str]) -> MembershipClient:
    dest = sync.destination
    if dest.type == "klaviyo":
        client = klaviyo.KlaviyoClient(dest.resolved_base_url(env), dest.api_key(env), dest.revision,
                                       rate_limits=dest.client_rate_limits, timeout_s=dest.timeout_s)
        return klaviyo.KlaviyoList(client, dest.list_name or sync.name)
    if dest.type == "braze":
        return braze.from_config(dest, sync.source.audience or sync.name, env)
    if dest.type == "webhook":
        return webhook.WebhookClient(dest.resolved_base_url(env), dest.api_key(env), sync.name,
                                     timeout_s=dest.timeout_s)
    if dest.type == "file":
        return file.FileDestination(dest.resolved_base_url(env), sync.name, dest.format)
    if dest.type == "mailchimp":
        return mailchimp.MailchimpList(dest.resolved_base_url(env), dest.api_key(env), dest.list_id or "",
                                       timeout_s=dest.timeout_s)
    if dest.type == "twilio":
        return twilio.from_config(dest, env)  # a MessageClient (trigger mode)
    if dest.type == "meta":
        return meta.from_config(dest, env)
    if dest.type == "google":
        return google.from_config(dest, env)
    if dest.type == "tiktok":
        return tiktok.from_config(dest, env)
    raise UnsupportedDestination(f"sync {sync.name}: destination type {dest.type} has no client yet "
                                 f"(supported: {', '.join(SUPPORTED)})")


# The client class of each destination type: its documented limits, and the protocols it implements
# decide the modes it supports (syncs/modes.py).
CLIENT_CLASSES: dict[str, type] = {
    "klaviyo": klaviyo.KlaviyoList, "mailchimp": mailchimp.MailchimpList, "braze": braze.BrazeUsers,
    "webhook": webhook.WebhookClient, "file": file.FileDestination, "twilio": twilio.TwilioMessages,
    "meta": meta.MetaAudience, "google": google.GoogleAudience, "tiktok": tiktok.TikTokAudience,
}


def limits(sync: SyncConfig) -> type[MembershipClient]:
    """The client class, for its documented limits (dry-run estimates need no credentials)."""
    if sync.destination.type in CLIENT_CLASSES:
        return CLIENT_CLASSES[sync.destination.type]
    raise UnsupportedDestination(f"sync {sync.name}: destination type {sync.destination.type} has no client yet "
                                 f"(supported: {', '.join(SUPPORTED)})")
