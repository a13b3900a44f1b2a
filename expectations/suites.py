"""Data-quality suites as code: each function returns a Great Expectations ExpectationSuite.

Every expectation carries ``meta = {"check": <name unique in the suite>, "severity": ...}``:
``error`` failures block downstream syncs, ``warn`` failures are only reported. Raw tables may
hold every contract column as text (plus extra columns); bad rows there are quarantined
downstream, so id and timestamp checks tolerate a small share (``mostly``) before they block.
Accepted values and thresholds come from shared/contract.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Collection, Literal

import great_expectations as gx
from great_expectations.core import ExpectationSuite
from great_expectations.expectations import Expectation

from expectations.sql import is_iso_timestamp, quote_ident, share_above_query

Severity = Literal["error", "warn"]
ERROR: Severity = "error"
WARN: Severity = "warn"

EVENT_TYPES = ["page_view", "product_view", "add_to_cart", "remove_from_cart", "checkout_started",
               "order_completed", "identify", "subscribe", "unsubscribe"]
CONSENT_VALUES = ["subscribed", "unsubscribed", "never_subscribed"]
ORDER_STATUSES = ["completed", "cancelled", "refunded"]
MESSAGE_EVENTS = ["sent", "delivered", "opened", "clicked", "bounced", "unsubscribed", "complained",
                  "failed", "opted_out"]
MESSAGE_CHANNELS = ["email", "sms", "ads"]
LIFECYCLE_STAGES = ["visitor", "prospect", "new_customer", "repeat_customer", "reactivated", "at_risk",
                    "lapsed", "churned"]

# Share of rows that may be bad before a raw check blocks (they are quarantined downstream).
RAW_MOSTLY = 0.99


@dataclass(frozen=True)
class RawTableSpec:
    required: tuple[str, ...]
    ids: tuple[str, ...]
    timestamps: tuple[str, ...] = ()            # required timestamp columns (null counts as bad)
    optional_timestamps: tuple[str, ...] = ()
    accepted: dict[str, tuple[list[str], Severity]] = field(default_factory=dict)


RAW_TABLES: dict[str, RawTableSpec] = {
    "events": RawTableSpec(
        required=("event_id", "event_type", "occurred_at"), ids=("event_id",), timestamps=("occurred_at",),
        accepted={"event_type": (EVENT_TYPES, WARN)}),
    "customers": RawTableSpec(
        required=("customer_id",), ids=("customer_id",), optional_timestamps=("created_at", "updated_at"),
        accepted={"email_consent": (CONSENT_VALUES, ERROR), "sms_consent": (CONSENT_VALUES, ERROR)}),
    "orders": RawTableSpec(
        required=("order_id", "ordered_at"), ids=("order_id",), timestamps=("ordered_at",),
        accepted={"status": (ORDER_STATUSES, ERROR)}),
    "order_items": RawTableSpec(required=("order_id", "product_id"), ids=("order_id", "product_id")),
    "products": RawTableSpec(required=("product_id",), ids=("product_id",)),
    "message_events": RawTableSpec(
        required=("message_id", "channel", "event", "occurred_at"), ids=("message_id",),
        timestamps=("occurred_at",),
        accepted={"channel": (MESSAGE_CHANNELS, ERROR), "event": (MESSAGE_EVENTS, ERROR)}),
}


def _tag(expectation: Expectation, check: str, severity: Severity, notes: str = "") -> Expectation:
    expectation.meta = {"check": check, "severity": severity}
    if notes:
        expectation.notes = notes
    return expectation


def _suite(name: str, expectations: list[Expectation]) -> ExpectationSuite:
    checks = [e.meta["check"] for e in expectations]
    if len(set(checks)) != len(checks):
        raise ValueError(f"suite {name}: check names must be unique, got {checks}")
    return ExpectationSuite(name=name, expectations=expectations)


def severity_of(expectation_meta: dict | None) -> Severity:
    """An untagged expectation counts as an error: a check nobody classified must not pass silently."""
    return WARN if (expectation_meta or {}).get("severity") == WARN else ERROR


def raw_suite(table: str, *, as_of: datetime, columns: Collection[str] | None = None,
              future_tolerance: timedelta = timedelta(days=1)) -> ExpectationSuite:
    """Contract checks for `raw.<table>`. `columns` (present in the warehouse) lets optional
    columns that are absent be skipped; required columns are always checked (the schema check
    names the missing ones)."""
    try:
        spec = RAW_TABLES[table]
    except KeyError:
        raise ValueError(f"no raw suite for table {table!r}; known: {sorted(RAW_TABLES)}") from None
    present = set(spec.required) | set(columns if columns is not None else _all_columns(spec))
    future_limit = (as_of + future_tolerance).date().isoformat()
    max_bad = round(1 - RAW_MOSTLY, 6)
    ex: list[Expectation] = [_tag(
        gx.expectations.ExpectTableColumnsToMatchSet(column_set=list(spec.required), exact_match=False),
        "required_columns_exist", ERROR, "Extra columns are allowed; every required column must exist.")]
    for column in spec.ids:
        ex.append(_tag(gx.expectations.ExpectColumnValuesToNotBeNull(column=column, mostly=RAW_MOSTLY),
                       f"{column}_not_null", ERROR))
    for column, (values, severity) in spec.accepted.items():
        if column in present:
            ex.append(_tag(gx.expectations.ExpectColumnValuesToBeInSet(
                column=column, value_set=values, mostly=1.0 if severity == WARN else RAW_MOSTLY),
                f"{column}_accepted_values", severity))
    for column, required in [(c, True) for c in spec.timestamps] + [(c, False) for c in spec.optional_timestamps]:
        if column not in present:
            continue
        severity = ERROR if required else WARN
        unparseable = f"not {is_iso_timestamp(column)}"
        if required:
            unparseable = f"({quote_ident(column)} is null or {unparseable})"
        else:
            unparseable = f"({quote_ident(column)} is not null and {unparseable})"
        ex.append(_tag(gx.expectations.UnexpectedRowsExpectation(
            unexpected_rows_query=share_above_query(unparseable, max_bad),
            description=f"{column} parses as ISO-8601 in at least {RAW_MOSTLY:.0%} of rows"),
            f"{column}_parseable", severity))
        in_future = f"({is_iso_timestamp(column)} and substr(cast({quote_ident(column)} as varchar), 1, 10) > '{future_limit}')"
        ex.append(_tag(gx.expectations.UnexpectedRowsExpectation(
            unexpected_rows_query=share_above_query(in_future, max_bad),
            description=f"{column} is not after {future_limit} (as_of + {future_tolerance.days} day) "
                        f"in at least {RAW_MOSTLY:.0%} of rows"),
            f"{column}_not_in_future", severity))
    return _suite(f"raw.{table}", ex)


def _all_columns(spec: RawTableSpec) -> set[str]:
    return set(spec.required) | set(spec.accepted) | set(spec.timestamps) | set(spec.optional_timestamps)


def profiles_suite(*, contactability_min: float = 0.2, contactability_max: float = 1.0) -> ExpectationSuite:
    """The `profiles` mart (contract §2)."""
    contactable = "(email is not null or phone is not null)"
    ex: list[Expectation] = [
        _tag(gx.expectations.ExpectColumnValuesToNotBeNull(column="profile_id"), "profile_id_not_null", ERROR),
        _tag(gx.expectations.ExpectColumnValuesToBeUnique(column="profile_id"), "profile_id_unique", ERROR),
    ]
    for column in ("email_consent", "sms_consent"):
        ex.append(_tag(gx.expectations.ExpectColumnValuesToNotBeNull(column=column), f"{column}_not_null", ERROR))
        ex.append(_tag(gx.expectations.ExpectColumnValuesToBeInSet(column=column, value_set=[True, False]),
                       f"{column}_boolean", ERROR))
    ex += [
        _tag(gx.expectations.UnexpectedRowsExpectation(
            unexpected_rows_query="select profile_id from {batch} where email_consent and email is null",
            description="no email_consent without an email"), "email_consent_has_email", ERROR),
        _tag(gx.expectations.UnexpectedRowsExpectation(
            unexpected_rows_query="select profile_id from {batch} where sms_consent and phone is null",
            description="no sms_consent without a phone"), "sms_consent_has_phone", ERROR),
        _tag(gx.expectations.UnexpectedRowsExpectation(
            unexpected_rows_query=(
                "select contactable_share from (select avg(case when " + contactable + " then 1.0 else 0.0 end)"
                f" as contactable_share from {{batch}}) s where contactable_share < {contactability_min!r}"
                f" or contactable_share > {contactability_max!r}"),
            description=f"share of profiles with an email or phone is within [{contactability_min}, {contactability_max}]"),
            "contactability_share", WARN),
        _tag(gx.expectations.ExpectColumnValuesToBeBetween(column="orders_count", min_value=0),
             "orders_count_non_negative", ERROR),
        _tag(gx.expectations.ExpectColumnValuesToNotBeNull(column="lifecycle_stage"), "lifecycle_stage_not_null", ERROR),
        _tag(gx.expectations.ExpectColumnValuesToBeInSet(column="lifecycle_stage", value_set=LIFECYCLE_STAGES),
             "lifecycle_stage_accepted_values", ERROR),
    ]
    return _suite("profiles", ex)


SIZE_CHECK = "size_within_bounds"


def audience_suite_name(audience: str, channel: str) -> str:
    return f"audience.{audience}.{channel}"


def audience_suite(audience: str, channel: str, *, previous_size: int | None,
                   max_size_change: float = 0.5) -> ExpectationSuite:
    """Synced members of one audience on one channel (columns of expectations.sql.audience_query).
    The size may move by at most `max_size_change` (a share) from `previous_size`, the last
    accepted size. The first run (None) and a previously empty audience (0, where no share of
    change is defined) only need a non-negative size. To accept a legitimate jump, run once with
    a larger `max_size_change`: the passing run becomes the new baseline."""
    if not previous_size:
        size = gx.expectations.ExpectTableRowCountToBeBetween(min_value=0)
        size_note = ("first run: no previous size to compare with" if previous_size is None
                     else "previous accepted size 0: no relative bound")
    else:
        size = gx.expectations.ExpectTableRowCountToBeBetween(
            min_value=max(0, math.ceil(previous_size * (1 - max_size_change))),
            max_value=math.floor(previous_size * (1 + max_size_change)))
        size_note = f"previous accepted size {previous_size}, at most {max_size_change:.0%} change"
    ex: list[Expectation] = [
        _tag(gx.expectations.ExpectColumnValuesToBeInSet(column="has_consent", value_set=[True]),
             "members_have_consent", ERROR, f"every member has {channel} consent on profiles"),
        _tag(gx.expectations.ExpectColumnValuesToNotBeNull(column="contact"), "contact_present", ERROR,
             f"the {channel} contact field is present"),
        _tag(size, SIZE_CHECK, ERROR, size_note),
        _tag(gx.expectations.ExpectColumnValuesToBeInSet(column="payload_is_json", value_set=[True]),
             "payload_is_json", WARN),
    ]
    return _suite(audience_suite_name(audience, channel), ex)
