"""Pure mappings from a platform's event to a raw `message_events` row (contract §1).

Every function returns a dict with exactly COLUMNS as keys (all text or None), or None when the
platform event has no message_events meaning (e.g. Twilio's `queued`).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

COLUMNS = ("message_id", "channel", "event", "occurred_at", "recipient", "campaign", "external_id")
EVENTS = frozenset({"sent", "delivered", "opened", "clicked", "bounced", "unsubscribed", "complained", "failed",
                    "opted_out"})
CHANNELS = frozenset({"email", "sms", "ads"})

# Twilio MessageStatus -> contract event; statuses not listed (queued, sending, accepted, scheduled,
# receiving, received, canceled) are intermediate or inbound and are not recorded.
TWILIO_STATUS = {"sent": "sent", "delivered": "delivered", "read": "opened", "undelivered": "bounced",
                 "failed": "failed", "partially_delivered": "delivered"}
# Twilio error codes that mean the recipient opted out (STOP) rather than a delivery fault.
TWILIO_OPT_OUT_CODES = frozenset({"21610"})

# Klaviyo metric name -> (channel, contract event).
KLAVIYO_METRICS = {
    "Received Email": ("email", "delivered"), "Opened Email": ("email", "opened"),
    "Clicked Email": ("email", "clicked"), "Bounced Email": ("email", "bounced"),
    "Dropped Email": ("email", "failed"), "Marked Email as Spam": ("email", "complained"),
    "Unsubscribed": ("email", "unsubscribed"), "Unsubscribed from Email Marketing": ("email", "unsubscribed"),
    "Received SMS": ("sms", "delivered"), "Clicked SMS": ("sms", "clicked"), "Failed to Deliver SMS": ("sms", "failed"),
    "Unsubscribed from SMS Marketing": ("sms", "opted_out"),
}


class FeedbackMappingError(ValueError):
    """An event that cannot become a message_events row; the message says which field is wrong."""


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def row(message_id: Any, channel: Any, event: Any, occurred_at: Any, recipient: Any = None,
        campaign: Any = None, external_id: Any = None) -> dict[str, str | None]:
    """A validated message_events row: message_id and occurred_at present, channel and event known."""
    out = dict(zip(COLUMNS, map(_text, (message_id, channel, event, occurred_at, recipient, campaign, external_id))))
    for required in ("message_id", "occurred_at"):
        if not out[required]:
            raise FeedbackMappingError(f"{required} is missing; every message event needs one")
    out["channel"] = (out["channel"] or "").lower()
    out["event"] = (out["event"] or "").lower()
    if out["channel"] not in CHANNELS:
        raise FeedbackMappingError(f"channel {out['channel']!r} is not one of {sorted(CHANNELS)}")
    if out["event"] not in EVENTS:
        raise FeedbackMappingError(f"event {out['event']!r} is not one of {sorted(EVENTS)}")
    return out


def twilio_status_row(params: Mapping[str, str], labels: Mapping[str, str], received_at: str) -> dict | None:
    """A Twilio status callback (form params) -> row. `labels` are the callback URL's query params
    (the project puts campaign and external_id there); `received_at` stamps the event, since Twilio's
    callback carries no timestamp."""
    sid = params.get("MessageSid") or params.get("SmsSid")
    if not sid:
        raise FeedbackMappingError("Twilio callback lacks MessageSid (and SmsSid)")
    status = (params.get("MessageStatus") or params.get("SmsStatus") or "").lower()
    event = TWILIO_STATUS.get(status)
    if status in ("failed", "undelivered") and str(params.get("ErrorCode") or "") in TWILIO_OPT_OUT_CODES:
        event = "opted_out"
    if event is None:
        return None
    return row(sid, "sms", event, received_at, params.get("To"), labels.get("campaign"), labels.get("external_id"))


def webhook_rows(payload: Any) -> list[dict]:
    """A signed webhook body: one message_events object, a list of them, or {"message_events": [...]}."""
    if isinstance(payload, Mapping) and "message_events" in payload:
        payload = payload["message_events"]
    items = payload if isinstance(payload, list) else [payload]
    rows = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise FeedbackMappingError(f"item {i} is not a JSON object with the message_events columns")
        try:
            rows.append(row(*(item.get(c) for c in COLUMNS)))
        except FeedbackMappingError as exc:
            raise FeedbackMappingError(f"item {i}: {exc}") from None
    return rows


def klaviyo_event_row(event: Mapping[str, Any], metrics: Mapping[str, str],
                      profiles: Mapping[str, Mapping[str, Any]]) -> dict | None:
    """One JSON:API `event` resource of GET /api/events -> row. `metrics` maps metric id -> name and
    `profiles` maps profile id -> attributes (both from `included`). message_id is per recipient:
    `klaviyo:<$message or event id>:<profile id>` (Klaviyo's `$message` is shared by a campaign's
    recipients)."""
    attrs = event.get("attributes") or {}
    rel = event.get("relationships") or {}
    metric_id = ((rel.get("metric") or {}).get("data") or {}).get("id")
    mapped = KLAVIYO_METRICS.get(metrics.get(metric_id or "", ""))
    if mapped is None:
        return None
    profile_id = ((rel.get("profile") or {}).get("data") or {}).get("id") or ""
    profile = profiles.get(profile_id) or {}
    props = attrs.get("event_properties") or {}
    channel, name = mapped
    recipient = profile.get("email") if channel == "email" else profile.get("phone_number")
    message = props.get("$message") or event.get("id")
    campaign = props.get("Campaign Name") or props.get("List")
    return row(f"klaviyo:{message}:{profile_id}", channel, name, attrs.get("datetime"), recipient, campaign,
               profile.get("external_id"))
