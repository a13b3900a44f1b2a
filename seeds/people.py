"""Who the shoppers are: one chunk of people as numpy arrays (kind, country, timeline, consent,
recency scenario) and their identifiers, canonical and as raw variants.

Identifiers are derived from the global person index, so they are unique without any
coordination between chunks: emails `first.last<index>@example.{com,net,org}`; US/CA phones
`+1 <area> 555 <4 digits>` (fake 555 exchange, area from the index), GB `+44 77xx xxxxxx`,
AU `+61 4xx xxx xxx`, DE `+49 151 xxxxxxxx`; user ids `cus_<8 digits>`; cookies UUID-shaped.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seeds.catalog import AU, CA, CATEGORIES, COUNTRIES, DE, EMAIL_DOMAINS, FIRST_NAMES, GB, LAST_NAMES, US, Catalog
from seeds.textcols import digits, join, pick, uuid_like

DAY = 86_400
HOUR = 3_600
HISTORY_DAYS = 730
MAX_PEOPLE = 7_000_000  # US/CA phone numbers are unique up to here (700 area codes x 10,000 lines)
MAX_COOKIES = 4
NEVER_TIME = np.iinfo(np.int64).max // 4  # t_id of people who never identify

# kinds of people
VISITOR, SUBSCRIBER, GUEST_BUYER, MEMBER = range(4)
KIND_SHARES = (0.22, 0.18, 0.15, 0.45)
# recency scenarios, guaranteed to be true at as_of for the people who get them
NONE, CART, BROWSE, WELCOME, REPLENISH, LAPSED = range(6)
SCENARIO_NAMES = ("none", "cart_abandonment", "browse_abandonment", "welcome", "replenishment_due", "lapsed_buyer")
SCENARIO_SHARES = (0.86, 0.03, 0.03, 0.025, 0.025, 0.03)  # among identified people
# consent states
NEVER, SUBSCRIBED, UNSUBSCRIBED = range(3)
CONSENT_VALUES = ("never_subscribed", "subscribed", "unsubscribed")

_AREA_CODES = np.array([a for a in range(201, 990) if a % 100 != 11 and a % 100 != 0 and a != 555][:700])


@dataclass
class Cohort:
    gid: np.ndarray  # global person index = ground-truth person_id
    country: np.ndarray
    kind: np.ndarray
    scenario: np.ndarray
    kiosk: np.ndarray  # shops once on the shared in-store kiosk device
    at_checkout: np.ndarray  # identified by the first order (else by a signup / subscribe session)
    has_phone: np.ndarray
    n_cookies: np.ndarray
    n_orders: np.ndarray
    replen_product: np.ndarray  # -1 when none
    fav: np.ndarray  # (n, 2) favourite category indices
    t0: np.ndarray  # first visit
    t_id: np.ndarray  # identification (huge for visitors)
    t_end: np.ndarray  # last activity on the site
    email_state: np.ndarray
    t_unsub: np.ndarray
    unsub_by_message: np.ndarray  # the unsubscribe comes from an email link (message_events), else an event
    sms_state: np.ndarray
    t_sms_unsub: np.ndarray
    engagement: np.ndarray  # email open probability (0 for people headed for sunset)
    first: np.ndarray
    last: np.ndarray
    domain: np.ndarray

    def __len__(self) -> int:
        return len(self.gid)

    @property
    def identified(self) -> np.ndarray:
        return self.kind != VISITOR


def kiosk_shopper_count(people: int) -> int:
    """200 kiosk shoppers from 1,000 people up; proportionally fewer below, never fewer than 6
    (so the device always links more emails than a household would)."""
    if people >= 1000:
        return 200
    return min(people, max(6, round(people * 0.2)))


def kiosk_gids(people: int) -> np.ndarray:
    n = kiosk_shopper_count(people)
    return (np.arange(n, dtype=np.int64) * people) // n


def build_cohort(rng: np.random.Generator, gid: np.ndarray, people: int, as_of: int, catalog: Catalog) -> Cohort:
    n = len(gid)
    start = as_of - HISTORY_DAYS * DAY
    u = lambda: rng.random(n)  # noqa: E731

    country = rng.choice(len(COUNTRIES), n, p=[c[1] for c in COUNTRIES])
    kind = rng.choice(4, n, p=KIND_SHARES)
    kiosk = np.isin(gid, kiosk_gids(people))
    kind = np.where(kiosk & (kind == VISITOR), SUBSCRIBER, kind)
    scenario = np.where(kind != VISITOR, rng.choice(6, n, p=SCENARIO_SHARES), NONE)
    scenario = np.where(kiosk, NONE, scenario)
    # welcome people are subscribers or members who never ordered; replenishment/lapsed people buy
    kind = np.where((scenario == WELCOME) & (kind == GUEST_BUYER), SUBSCRIBER, kind)
    kind = np.where(np.isin(scenario, (REPLENISH, LAPSED)) & (kind == SUBSCRIBER), GUEST_BUYER, kind)

    buyer = (kind == GUEST_BUYER) | ((kind == MEMBER) & (u() < 0.7)) | np.isin(scenario, (REPLENISH, LAPSED))
    buyer &= scenario != WELCOME
    at_checkout = (kind == GUEST_BUYER) | ((kind == MEMBER) & buyer & (u() < 0.4))
    replenisher = buyer & ((u() < 0.35) | (scenario == REPLENISH))
    replen_choices = catalog.replenishable
    replen_product = np.where(replenisher, replen_choices[rng.integers(0, len(replen_choices), n)], -1)
    n_orders = np.where(buyer, np.minimum(rng.geometric(0.5, n), 12), 0)

    has_phone = (kind != VISITOR) & (u() < np.where(kind == MEMBER, 0.55, 0.3))
    n_cookies = np.where(kind == VISITOR, 1 + (u() < 0.3), 1 + rng.binomial(MAX_COOKIES - 1, 0.4, n))
    fav = rng.integers(0, len(CATEGORIES), (n, 2))
    fav[:, 0] = np.where(replenisher, catalog.category[np.maximum(replen_product, 0)], fav[:, 0])

    # timeline
    t0 = start + (HISTORY_DAYS * DAY * u() ** 0.75).astype(np.int64)
    lifetime = (rng.exponential(240, n) * DAY).astype(np.int64) + HOUR
    t_end = np.minimum(t0 + lifetime, as_of - HOUR)
    t_end = np.select(
        [scenario == CART, scenario == BROWSE, scenario == WELCOME, scenario == LAPSED],
        [as_of - (2 * HOUR + u() * 68 * HOUR).astype(np.int64),
         as_of - (90 * 60 + u() * 20.5 * HOUR).astype(np.int64),
         as_of - (3 * HOUR + u() * 6.3 * DAY).astype(np.int64),
         as_of - ((185 + u() * 175) * DAY).astype(np.int64)],
        t_end)
    cycle = np.where(replenisher, catalog.replenishment_days[np.maximum(replen_product, 0)], 0) * DAY
    t_end = np.where(scenario == REPLENISH, as_of - cycle + ((u() - 0.5) * 12 * DAY).astype(np.int64), t_end)
    # a scenario person's history starts before the scenario moment
    span_before = np.maximum(t_end - start - DAY, DAY)
    t0 = np.where((scenario != NONE) & (t0 > t_end - DAY), t_end - DAY - (u() * span_before).astype(np.int64), t0)
    t0 = np.maximum(t0, start)
    # identification happens early enough that orders can follow it (no order in a cart/browse person's last day)
    order_bound = np.where(np.isin(scenario, (CART, BROWSE)), t_end - DAY, t_end)
    t_id = np.where(kind == VISITOR, NEVER_TIME, t0 + (np.maximum(order_bound - t0, 0) * u() * 0.5).astype(np.int64))
    t_id = np.where(scenario == WELCOME, t_end, t_id)  # subscribed in the last days, nothing since

    r = u()
    email_state = np.select(
        [kind == VISITOR,
         kind == SUBSCRIBER,
         kind == MEMBER,
         kind == GUEST_BUYER],
        [NEVER,
         np.where(r < 0.85, SUBSCRIBED, UNSUBSCRIBED),
         np.where(r < 0.60, SUBSCRIBED, np.where(r < 0.72, UNSUBSCRIBED, NEVER)),
         np.where(r < 0.40, SUBSCRIBED, np.where(r < 0.48, UNSUBSCRIBED, NEVER))])
    email_state = np.where(np.isin(scenario, (CART, BROWSE, WELCOME)), SUBSCRIBED, email_state)
    r = u()
    sms_state = np.where(has_phone, np.where(r < 0.45, SUBSCRIBED, np.where(r < 0.55, UNSUBSCRIBED, NEVER)), NEVER)
    msg_end = as_of - 2 * HOUR
    t_unsub = t_id + ((msg_end - t_id) * (0.2 + 0.8 * u())).astype(np.int64)
    t_sms_unsub = t_id + ((msg_end - t_id) * (0.2 + 0.8 * u())).astype(np.int64)
    engagement = np.where(u() < 0.12, 0.0, 0.1 + 0.5 * u())

    return Cohort(gid=gid, country=country, kind=kind, scenario=scenario, kiosk=kiosk, at_checkout=at_checkout,
                  has_phone=has_phone, n_cookies=n_cookies, n_orders=n_orders, replen_product=replen_product,
                  fav=fav, t0=t0, t_id=t_id, t_end=t_end, email_state=email_state, t_unsub=t_unsub,
                  unsub_by_message=u() < 0.5, sms_state=sms_state, t_sms_unsub=t_sms_unsub, engagement=engagement,
                  first=rng.integers(0, len(FIRST_NAMES), n), last=rng.integers(0, len(LAST_NAMES), n),
                  domain=rng.integers(0, len(EMAIL_DOMAINS), n))


@dataclass
class Identifiers:
    """Per-person identifier text. `*_raw` arrays hold variants person-major: row i*V+v is person i, variant v."""

    user_id: pa.Array
    email: pa.Array  # canonical: trimmed, lower-cased
    email_raw: pa.Array
    phone: pa.Array  # canonical E.164 (null without a phone)
    phone_raw: pa.Array  # international formats, valid anywhere
    phone_national: pa.Array  # the customer record's format: national where the country has one
    first_name: pa.Array
    last_name: pa.Array
    cookies: pa.Array  # person-major, MAX_COOKIES per person

    EMAIL_VARIANTS = 4
    PHONE_VARIANTS = 4


def _strs(values: tuple[str, ...], idx: np.ndarray) -> pa.Array:
    return pick(values, idx)


def _interleave(variants: list[pa.Array]) -> pa.Array:
    """Person-major interleaving of equally long arrays."""
    n, v = len(variants[0]), len(variants)
    order = (np.arange(n * v) % v) * n + np.arange(n * v) // v
    return pa.concat_arrays([a.cast(pa.string()) for a in variants]).take(pa.array(order))


def build_identifiers(c: Cohort, seed: int) -> Identifiers:
    first = _strs(FIRST_NAMES, c.first)
    last = _strs(LAST_NAMES, c.last)
    number = pc.cast(pa.array(c.gid + 1), pa.string())
    domain = _strs(EMAIL_DOMAINS, c.domain)
    local_first = pc.replace_substring(pc.utf8_lower(first), "'", "")
    local_last = pc.replace_substring(pc.utf8_lower(last), "'", "")
    email = join(local_first, ".", local_last, number, "@", domain)
    fancy_domain = join(pc.utf8_capitalize(pc.utf8_slice_codeunits(domain, 0, 7)), ".", pc.utf8_upper(
        pc.utf8_slice_codeunits(domain, 8, 11)))  # Example.COM
    email_raw = _interleave([
        email,
        join(pc.replace_substring(first, "'", ""), ".", pc.replace_substring(last, "'", ""), number, "@", fancy_domain),
        join("  ", email, " "),
        pc.utf8_upper(email),
    ])

    gid = c.gid.astype(np.int64)
    area = digits(_AREA_CODES[(gid // 10_000) % len(_AREA_CODES)], 3)
    line = digits(gid % 10_000, 4)
    gb = digits(gid % 100_000_000, 8)  # +44 77 + 8 digits
    au = digits(gid % 100_000_000, 8)  # +61 4 + 8 digits
    de = digits(gid % 100_000_000, 8)  # +49 151 + 8 digits
    s = pc.utf8_slice_codeunits
    nanp = [join("+1", area, "555", line), join("+1 (", area, ") 555-", line), join(area, ".555.", line),
            join(area, "555", line), join("1-", area, "-555-", line)]
    uk = [join("+4477", gb), join("+44 77", s(gb, 0, 2), " ", s(gb, 2, 8)),
          join("+44-77", s(gb, 0, 2), "-", s(gb, 2, 8)), join("0044 77", s(gb, 0, 2), " ", s(gb, 2, 8)),
          join("+44 77", gb),
          join("077", s(gb, 0, 2), " ", s(gb, 2, 8))]
    aus = [join("+614", au), join("+61 4", s(au, 0, 2), " ", s(au, 2, 5), " ", s(au, 5, 8)),
           join("+61 4", s(au, 0, 2), s(au, 2, 8)), join("0061 4", s(au, 0, 2), " ", s(au, 2, 5), " ", s(au, 5, 8)),
           join("+61-4", s(au, 0, 2), "-", s(au, 2, 8)),
           join("04", s(au, 0, 2), " ", s(au, 2, 5), " ", s(au, 5, 8))]
    ger = [join("+49151", de), join("+49 151 ", de), join("+49-151-", de), join("0049 151 ", de),
           join("+49 151", de), join("0151 ", de)]
    # canonical, then 4 international variants, then the national form
    table = {US: nanp + [join("(", area, ") 555-", line)], CA: nanp + [join(area, "-555-", line)],
             GB: uk, AU: aus, DE: ger}

    def by_country(pos: int) -> pa.Array:
        out = table[US][pos]
        for code in (GB, CA, AU, DE):
            out = pc.if_else(pa.array(c.country == code), table[code][pos], out)
        return out

    no_phone = pa.array(~c.has_phone)
    null = pa.scalar(None, pa.string())
    phone = pc.if_else(no_phone, null, by_country(0))
    phone_raw = _interleave([pc.if_else(no_phone, null, by_country(p)) for p in range(1, 5)])
    phone_national = pc.if_else(no_phone, null, by_country(5))
    cookie_keys = (np.uint64(1) << np.uint64(61)) | (gid.astype(np.uint64)[:, None] << np.uint64(3)
                                                    | np.arange(MAX_COOKIES, dtype=np.uint64)[None, :]).ravel()
    return Identifiers(user_id=join("cus_", digits(gid + 1, 8)), email=email, email_raw=email_raw, phone=phone,
                       phone_raw=phone_raw, phone_national=phone_national, first_name=first, last_name=last,
                       cookies=uuid_like(cookie_keys, seed))
