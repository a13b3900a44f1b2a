"""A scenario of people placed just inside and just outside every stage boundary and audience window,
written as small raw CSVs (contract §1) relative to one as_of. Each person is a customer named by
their role (customer_id = role), so tests look people up by role."""
from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

AS_OF = datetime(2026, 6, 1)
EARLY_AS_OF = AS_OF - timedelta(days=100)
LIFT_ENTERED = AS_OF - timedelta(days=30)
LIFT_SNAPSHOT = AS_OF - timedelta(days=30)  # the run that saw them, as they entered
MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
LONG_AGO = AS_OF - timedelta(days=800)

COLUMNS = {
    "customers": ["customer_id", "email", "phone", "first_name", "last_name", "created_at", "country", "postal_code",
                  "email_consent", "sms_consent", "updated_at"],
    "events": ["event_id", "event_type", "occurred_at", "anonymous_id", "user_id", "email", "phone", "session_id",
               "product_id", "cart_id", "order_id", "value", "properties"],
    "orders": ["order_id", "ordered_at", "customer_id", "email", "phone", "anonymous_id", "status", "total", "currency"],
    "order_items": ["order_id", "product_id", "quantity", "unit_price"],
    "products": ["product_id", "name", "category", "price", "replenishment_days", "url", "image_url"],
    "message_events": ["message_id", "channel", "event", "occurred_at", "recipient", "campaign", "external_id"],
}

PRODUCTS = [
    {"product_id": "sku-coffee", "name": "House Coffee 1kg", "category": "coffee", "price": "30.00",
     "replenishment_days": "30", "url": "https://shop.example/p/sku-coffee", "image_url": "https://shop.example/i/c.jpg"},
    {"product_id": "sku-mug", "name": "Enamel Mug", "category": "kitchen", "price": "20.00", "replenishment_days": "",
     "url": "https://shop.example/p/sku-mug", "image_url": "https://shop.example/i/m.jpg"},
]


def ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def expected_holdout(profile_id: str, audience: str, percent: int = 10) -> bool:
    """The holdout rule of audience_members, recomputed in Python (lifeline.hash_bucket)."""
    return int(hashlib.md5(f"{profile_id}:{audience}".encode()).hexdigest()[:7], 16) % 100 < percent


@dataclass
class Scenario:
    rows: dict[str, list[dict]] = field(default_factory=lambda: {name: [] for name in COLUMNS})
    counter: int = 0

    def _id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def person(self, role: str, *, since: datetime | None = LONG_AGO, email_consent: str = "subscribed",
               sms: bool = False, sms_consent: str = "never_subscribed") -> str:
        phone = f"+1415555{len(self.rows['customers']):04d}" if sms else ""
        self.rows["customers"].append({
            "customer_id": role, "email": f"{role}@example.com", "phone": phone, "first_name": role.title(),
            "last_name": "Test", "created_at": ts(since) if since else "", "country": "US", "postal_code": "94105",
            "email_consent": email_consent, "sms_consent": sms_consent if sms else "never_subscribed",
            "updated_at": ts(since) if since else ""})
        return role

    def order(self, role: str, at: datetime, *, product: str = "sku-mug", total: float = 20.0) -> None:
        order_id = self._id("o")
        self.rows["orders"].append({"order_id": order_id, "ordered_at": ts(at), "customer_id": role, "email": "",
                                    "phone": "", "anonymous_id": "", "status": "completed", "total": f"{total:.2f}",
                                    "currency": "USD"})
        self.rows["order_items"].append({"order_id": order_id, "product_id": product, "quantity": "1",
                                         "unit_price": f"{total:.2f}"})

    def event(self, role: str, event_type: str, at: datetime, *, product: str = "sku-mug",
              anonymous_id: str = "") -> None:
        self.rows["events"].append({"event_id": self._id("e"), "event_type": event_type, "occurred_at": ts(at),
                                    "anonymous_id": anonymous_id, "user_id": "" if anonymous_id else role,
                                    "product_id": product if event_type in ("product_view", "add_to_cart") else "",
                                    "session_id": "s", "cart_id": "", "order_id": "", "value": "", "email": "",
                                    "phone": "", "properties": ""})

    def message(self, role: str, campaign: str, sent_at: datetime, *, opened: bool = False,
                clicked: bool = False) -> None:
        message_id = self._id("m")
        for event, offset, happened in (("sent", 0, True), ("opened", 1, opened or clicked), ("clicked", 2, clicked)):
            if happened:
                self.rows["message_events"].append({
                    "message_id": message_id, "channel": "email", "event": event,
                    "occurred_at": ts(sent_at + offset * HOUR), "recipient": f"{role}@example.com",
                    "campaign": campaign, "external_id": ""})

    def consent_event(self, role: str, event_type: str, at: datetime, channel: str) -> None:
        """A subscribe/unsubscribe event naming its channel in properties."""
        self.rows["events"].append({"event_id": self._id("e"), "event_type": event_type, "occurred_at": ts(at),
                                    "user_id": role, "session_id": "s", "properties": f'{{"channel": "{channel}"}}'})

    def ads_opt_out(self, role: str, at: datetime, *, by_phone: bool = False) -> None:
        """An ad-targeting opt-out echoed by an ad platform (message_events channel ads, event opted_out)."""
        [person] = [c for c in self.rows["customers"] if c["customer_id"] == role]
        self.rows["message_events"].append({
            "message_id": self._id("m"), "channel": "ads", "event": "opted_out", "occurred_at": ts(at),
            "recipient": person["phone"] if by_phone else person["email"], "campaign": "ads", "external_id": ""})

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        self.rows["products"] = PRODUCTS
        for table, columns in COLUMNS.items():
            with (folder / f"{table}.csv").open("w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=columns)
                writer.writeheader()
                for row in self.rows[table]:
                    writer.writerow({column: row.get(column, "") for column in columns})
        return folder


def stage_scenario(s: Scenario) -> None:
    """Stage boundaries (at_risk_days 90, lapsed_days 180, churned_days 365): *_in sits exactly on the
    threshold (already crossed), *_out one minute short of it."""
    for role, days in [("ar_in", 90), ("lp_in", 180), ("ch_in", 365)]:
        s.order(s.person(role), AS_OF - days * DAY)
    for role, days in [("ar_out", 90), ("lp_out", 180), ("ch_out", 365)]:
        s.order(s.person(role), AS_OF - days * DAY + MINUTE)
    # Reactivated: a gap longer than lapsed_days before the last order; exactly lapsed_days is not.
    s.order(s.person("re_in"), AS_OF - 190 * DAY - MINUTE)
    s.order("re_in", AS_OF - 10 * DAY)
    s.order(s.person("re_out"), AS_OF - 190 * DAY)
    s.order("re_out", AS_OF - 10 * DAY)
    s.order(s.person("rep_ar"), AS_OF - 150 * DAY)
    s.order("rep_ar", AS_OF - 100 * DAY)
    s.person("prospect")
    s.person("timeless", since=None)  # a customer record without any timestamp
    s.event("visitor", "page_view", AS_OF - 5 * DAY, anonymous_id="anon-visitor")
    # Predicted at_risk: same recency (21 days), different cadence; p_alive is hand-written by the test.
    for days in (42, 35, 28, 21):
        s.order(s.person("pa_weekly") if days == 42 else "pa_weekly", AS_OF - days * DAY)
    for days in (751, 386, 21):
        s.order(s.person("pa_yearly") if days == 751 else "pa_yearly", AS_OF - days * DAY)
    s.order(s.person("pa_future"), AS_OF - 42 * DAY)
    s.order("pa_future", AS_OF - 21 * DAY)


def audience_scenario(s: Scenario) -> None:
    """Audience windows, consent, sunset, priority, caps and steps (defaults of dbt_project.yml)."""
    s.person("wel_in", since=AS_OF - 7 * DAY + MINUTE)
    s.person("wel_out", since=AS_OF - 7 * DAY)
    s.event(s.person("br_in"), "product_view", AS_OF - 24 * HOUR + MINUTE)
    s.event(s.person("br_out"), "product_view", AS_OF - 24 * HOUR)
    s.event(s.person("br_ordered"), "product_view", AS_OF - 2 * HOUR)
    s.order("br_ordered", AS_OF - HOUR)
    s.event(s.person("br_cool_in"), "product_view", AS_OF - HOUR)
    s.message("br_cool_in", "browse_abandonment", AS_OF - 7 * DAY, opened=True)
    s.event(s.person("br_cool_out"), "product_view", AS_OF - HOUR)
    s.message("br_cool_out", "browse_abandonment", AS_OF - 7 * DAY + MINUTE, opened=True)
    s.event(s.person("ca_in_min"), "add_to_cart", AS_OF - 30 * MINUTE)
    s.event(s.person("ca_out_min"), "add_to_cart", AS_OF - 29 * MINUTE)
    s.event(s.person("ca_in_max"), "add_to_cart", AS_OF - 72 * HOUR + MINUTE)
    s.event(s.person("ca_out_max"), "add_to_cart", AS_OF - 72 * HOUR)
    s.event(s.person("ca_ordered"), "add_to_cart", AS_OF - 2 * HOUR)
    s.order("ca_ordered", AS_OF - HOUR)
    # Replenishment: sku-coffee every 30 days, window 7 days either side of as_of.
    s.order(s.person("rp_in_early"), AS_OF - 37 * DAY, product="sku-coffee")
    s.order(s.person("rp_out_early"), AS_OF - 37 * DAY - MINUTE, product="sku-coffee")
    s.order(s.person("rp_in_late"), AS_OF - 23 * DAY, product="sku-coffee")
    s.order(s.person("rp_out_late"), AS_OF - 23 * DAY + MINUTE, product="sku-coffee")
    s.order(s.person("rp_rebought"), AS_OF - 37 * DAY, product="sku-coffee")
    s.order("rp_rebought", AS_OF - 5 * DAY, product="sku-coffee")
    # Sunset: 4 unanswered sends (in) vs 3 (out); both also abandoned a cart.
    for role, sends in (("sun_in", 4), ("sun_out", 3)):
        s.person(role, sms=True, sms_consent="subscribed")
        for k in range(sends):
            s.message(role, "newsletter", AS_OF - (40 - 5 * k) * DAY)
        s.event(role, "add_to_cart", AS_OF - 2 * HOUR)
    # Consent: unsubscribed from email, subscribed to SMS.
    s.event(s.person("co_unsub", email_consent="unsubscribed", sms=True, sms_consent="subscribed"),
            "add_to_cart", AS_OF - 2 * HOUR)
    # Priority: welcome + browse + cart at once -> cart wins on email.
    s.event(s.person("pr_many", since=AS_OF - DAY), "product_view", AS_OF - 3 * HOUR)
    s.event("pr_many", "add_to_cart", AS_OF - 2 * HOUR)
    # Frequency caps: 3 email sends within 7 days -> capped; the oldest exactly 7 days ago -> not.
    for role, first in (("cap_in", 6), ("cap_out", 7)):
        s.event(s.person(role), "add_to_cart", AS_OF - 2 * HOUR)
        for days in (first, 5, 4):
            s.message(role, "newsletter", AS_OF - days * DAY, opened=True)
    # Steps: last order 200 days ago -> at_risk since 110 days, lapsed since 20 days; the win_back
    # episode runs from AS_OF - 110 days (at_risk -> lapsed continues it).
    steps = {"st_click": [(15, "clicked")], "st_open": [(15, "opened")], "st_ign2": [(15, ""), (12, "")],
             "st_ign3": [(18, ""), (15, ""), (12, "")], "st_ign5": [(19, ""), (17, ""), (15, ""), (13, ""), (11, "")],
             "st_before": [(111, "")], "st_across": [(100, ""), (15, "")]}
    for role, sends in steps.items():
        s.order(s.person(role), AS_OF - 200 * DAY)
        for days, response in sends:
            s.message(role, "win_back", AS_OF - days * DAY, opened=response == "opened", clicked=response == "clicked")
    # st_ign5 engaged with a newsletter afterwards, so is not sunset.
    s.message("st_ign5", "newsletter", AS_OF - 9 * DAY, opened=True)


def ads_scenario(s: Scenario) -> None:
    """Ad-targeting signals (message_events channel ads; events naming channel ads): everyone here
    carted 2 hours ago, so all are cart_abandonment candidates."""
    s.person("ad_out")  # email consent, then an ad-targeting opt-out
    s.ads_opt_out("ad_out", AS_OF - DAY)
    s.person("ad_sms_out", email_consent="unsubscribed", sms=True, sms_consent="subscribed")
    s.ads_opt_out("ad_sms_out", AS_OF - DAY, by_phone=True)  # an ads opt-out, not an SMS STOP
    s.person("ad_resub")  # opted out of ads, later subscribed to email again: still out of ads
    s.ads_opt_out("ad_resub", AS_OF - 10 * DAY)
    s.consent_event("ad_resub", "subscribe", AS_OF - DAY, "email")
    s.person("ad_back")  # opted out of ads, later subscribed to ads explicitly: back in
    s.ads_opt_out("ad_back", AS_OF - 10 * DAY)
    s.consent_event("ad_back", "subscribe", AS_OF - DAY, "ads")
    s.person("ad_unsub_event")  # an unsubscribe event naming channel ads: an ads signal, not an email one
    s.consent_event("ad_unsub_event", "unsubscribe", AS_OF - DAY, "ads")
    s.person("ad_both", sms=True, sms_consent="subscribed")
    s.person("ad_none", email_consent="unsubscribed", sms=True, sms_consent="unsubscribed")
    for role in ("ad_out", "ad_sms_out", "ad_resub", "ad_back", "ad_unsub_event", "ad_both", "ad_none"):
        s.event(role, "add_to_cart", AS_OF - 2 * HOUR)


def lift_scenario(s: Scenario) -> None:
    """Ten members (six convert within 14 days of entered_at, one a minute too late) and ten
    holdout people (two convert, one ordered before entering)."""
    for k in range(10):
        s.person(f"li_m{k}")
        s.person(f"li_h{k}")
    for k in range(5):
        s.order(f"li_m{k}", LIFT_ENTERED + DAY)
    s.order("li_m5", LIFT_ENTERED + 14 * DAY)
    s.order("li_m6", LIFT_ENTERED + 14 * DAY + MINUTE)
    s.order("li_h0", LIFT_ENTERED + 2 * DAY)
    s.order("li_h1", LIFT_ENTERED + 2 * DAY)
    s.order("li_h2", LIFT_ENTERED - DAY)
    # Entered 60 days before the first run that saw them; converts 1 day after that run.
    s.person("li_x0")
    s.order("li_x0", LIFT_SNAPSHOT + DAY)


def write_scenario(folder: Path) -> Path:
    s = Scenario()
    stage_scenario(s)
    audience_scenario(s)
    ads_scenario(s)
    lift_scenario(s)
    return s.write(folder)
