"""The raw input contract (shared/contract.md §1): table names, their columns, which are required."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RawTable:
    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return self.required + self.optional


RAW_TABLES: dict[str, RawTable] = {
    t.name: t
    for t in (
        RawTable("events", ("event_id", "event_type", "occurred_at"),
                 ("anonymous_id", "user_id", "email", "phone", "session_id", "product_id", "cart_id",
                  "order_id", "value", "properties")),
        RawTable("customers", ("customer_id",),
                 ("email", "phone", "first_name", "last_name", "created_at", "country", "postal_code",
                  "email_consent", "sms_consent", "updated_at")),
        RawTable("orders", ("order_id", "ordered_at"),
                 ("customer_id", "email", "phone", "anonymous_id", "status", "total", "currency")),
        RawTable("order_items", ("order_id", "product_id"), ("quantity", "unit_price")),
        RawTable("products", ("product_id",),
                 ("name", "category", "price", "replenishment_days", "url", "image_url")),
        RawTable("message_events", ("message_id", "channel", "event", "occurred_at"),
                 ("recipient", "campaign", "external_id")),
    )
}

CONTRACT_MARTS = ("identity_map", "identity_exclusions", "profiles", "lifecycle_stage_history",
                  "audience_members")
