"""Build the destination client a sync's configuration names (secrets read from the environment here)."""
from __future__ import annotations

from typing import Mapping

from syncs.config import SyncConfig
from syncs.destinations import file, klaviyo, mailchimp, twilio, webhook
from syncs.destinations import google, meta, tiktok
from syncs.destinations.base import MembershipClient

SUPPORTED = ("klaviyo", "mailchimp", "webhook", "file", "twilio", "meta", "google", "tiktok")


class UnsupportedDestination(ValueError):
    pass


def open_client(sync: SyncConfig, env: Mapping[str, str]) -> MembershipClient:
    dest = sync.destination
    if dest.type == "klaviyo":
        client = klaviyo.KlaviyoClient(dest.resolved_base_url(env), dest.api_key(env), dest.revision,
                                       rate_limits=dest.client_rate_limits)
        return klaviyo.KlaviyoList(client, dest.list_name or sync.name)
    if dest.type == "webhook":
        return webhook.WebhookClient(dest.resolved_base_url(env), dest.api_key(env), sync.name)
    if dest.type == "file":
        return file.FileDestination(dest.resolved_base_url(env), sync.name, dest.format)
    if dest.type == "mailchimp":
        return mailchimp.MailchimpList(dest.resolved_base_url(env), dest.api_key(env), dest.list_id or "")
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


def limits(sync: SyncConfig) -> type[MembershipClient]:
    """The client class, for its documented limits (dry-run estimates need no credentials)."""
    if sync.destination.type == "klaviyo":
        return klaviyo.KlaviyoList
    if sync.destination.type == "webhook":
        return webhook.WebhookClient
    if sync.destination.type == "mailchimp":
        return mailchimp.MailchimpList
    if sync.destination.type == "file":
        return file.FileDestination
    if sync.destination.type == "twilio":
        return twilio.TwilioMessages
    if sync.destination.type == "meta":
        return meta.MetaAudience
    if sync.destination.type == "google":
        return google.GoogleAudience
    if sync.destination.type == "tiktok":
        return tiktok.TikTokAudience
    raise UnsupportedDestination(f"sync {sync.name}: destination type {sync.destination.type} has no client yet "
                                 f"(supported: {', '.join(SUPPORTED)})")
