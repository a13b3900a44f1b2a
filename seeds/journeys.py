"""Shopping journeys: people -> sessions -> event rows, orders and order items, all vectorised.

A session has a funnel depth (0 page views only, 1 product views, 2 add to cart, 3 checkout
started, 4 order completed) and a purpose: ordinary browsing, the identification session
(signup or newsletter subscribe), an order, a recency-scenario session at the end of a person's
history, a visit to the shared store kiosk, or a preference-centre unsubscribe. Sessions before
a person identifies use their first device's cookie; afterwards any of their cookies, and the
first session on a new cookie starts with an `identify` (login, or email-link click for guests).
Events inside a session follow the funnel order a few seconds to two minutes apart.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from seeds.catalog import CATEGORIES, COUNTRIES, Catalog
from seeds.people import (
    BROWSE, CART, DAY, HOUR, LAPSED, MEMBER, NEVER, NONE, REPLENISH, UNSUBSCRIBED, VISITOR, Cohort, Identifiers,
)
from seeds.textcols import hex_ids, iso_utc, nullable_float, pick

EVENT_TYPES = ("page_view", "identify", "subscribe", "unsubscribe", "product_view", "add_to_cart",
               "remove_from_cart", "checkout_started", "order_completed")
PAGE_VIEW, IDENTIFY, SUBSCRIBE, UNSUBSCRIBE, PRODUCT_VIEW, ADD, REMOVE, CHECKOUT, ORDER = range(len(EVENT_TYPES))
# session purposes
S_BROWSE, S_ID, S_ORDER, S_SCENARIO, S_KIOSK, S_UNSUB = range(6)
KIOSK_COOKIE = -1
BROWSE_DEPTH_SHARES = (0.30, 0.45, 0.15, 0.10)  # depth 0..3 for ordinary sessions
ORDER_STATUS = ("completed", "cancelled", "refunded")
ORDER_STATUS_SHARES = (0.93, 0.04, 0.03)

PAGE_PROPERTIES = tuple(['{"path": "/"}', '{"path": "/collections/all"}', '{"path": "/search", "query": "gift"}',
                         '{"path": "/blog/brewing-guide"}', '{"path": "/account"}', '{"path": "/cart"}']
                        + [f'{{"path": "/collections/{c[0]}"}}' for c in CATEGORIES])
IDENTIFY_PROPERTIES = ('{"method": "signup"}', '{"method": "checkout"}', '{"method": "login"}',
                       '{"method": "email_link"}', '{"method": "kiosk"}')
ID_SIGNUP, ID_CHECKOUT, ID_LOGIN, ID_EMAIL_LINK, ID_KIOSK = range(5)
SUBSCRIBE_PROPERTIES = ('{"channel": "email", "source": "signup"}', '{"channel": "email", "source": "checkout"}',
                        '{"channel": "sms", "source": "signup"}', '{"channel": "sms", "source": "checkout"}')
UNSUBSCRIBE_PROPERTIES = ('{"channel": "email", "source": "preference_center"}',)
QUANTITY_PROPERTIES = tuple(f'{{"quantity": {q}}}' for q in range(1, 4))
ITEMS_PROPERTIES = tuple(f'{{"items": {k}}}' for k in range(10))
ORDER_PROPERTIES = tuple(f'{{"currency": "{c[2]}", "items": {k}}}' for c in COUNTRIES for k in range(10))
EMAIL_VARIANT_SHARES = (0.55, 0.2, 0.15, 0.1)


@dataclass
class Sessions:
    person: np.ndarray
    t: np.ndarray
    purpose: np.ndarray
    depth: np.ndarray
    cookie: np.ndarray  # 0..n_cookies-1, or KIOSK_COOKIE
    logged_in: np.ndarray
    is_id: np.ndarray
    login_identify: np.ndarray
    key: np.ndarray  # unique: global person index << 10 | rank of the session within the person


@dataclass
class Journeys:
    events: pa.Table
    orders: pa.Table
    order_items: pa.Table
    event_person: np.ndarray  # chunk-local person of each event row
    event_time: np.ndarray
    event_cookie: np.ndarray
    emitted: dict[str, np.ndarray]  # per person: an identifier type appears on a usable row
    buyers: np.ndarray  # per person: placed at least one order


def order_times(rng: np.random.Generator, c: Cohort, catalog: Catalog) -> tuple[np.ndarray, np.ndarray]:
    """(person, time) of every order. Replenishers reorder one product every cycle (+-10%); people
    identified at checkout get t_id = their first order (c.t_id is updated in place)."""
    n_people = len(c)
    replen = c.replen_product >= 0
    cycle = np.where(replen, catalog.replenishment_days[np.maximum(c.replen_product, 0)], 1) * DAY
    lo = np.where(c.at_checkout, c.t0, c.t_id)
    hi = np.where(np.isin(c.scenario, (CART, BROWSE)), c.t_end - DAY, c.t_end)
    lo = np.minimum(lo, hi)
    fixed_last = np.isin(c.scenario, (REPLENISH, LAPSED))
    last = np.where(fixed_last, c.t_end, hi - (rng.random(n_people) * np.minimum(cycle, hi - lo)).astype(np.int64))
    n_replen = np.clip(1 + (last - lo) // (cycle * 11 // 10), 1, 20)
    n = np.where(c.n_orders > 0, np.where(replen, n_replen, c.n_orders), 0)
    person = np.repeat(np.arange(n_people), n)
    j = np.arange(len(person)) - np.repeat(np.cumsum(n) - n, n)  # 0 = the latest order
    jitter = rng.uniform(0.9, 1.1, len(person))
    random_t = lo[person] + (rng.random(len(person)) * (hi - lo)[person]).astype(np.int64)
    t = np.where(replen[person], last[person] - (j * cycle[person] * jitter).astype(np.int64), random_t)
    t = np.where(fixed_last[person] & (j == 0), c.t_end[person], t)
    first = np.full(n_people, np.iinfo(np.int64).max)
    np.minimum.at(first, person, t)
    c.t_id[:] = np.where(c.at_checkout & (n > 0), first, c.t_id)
    late = c.t_id + HOUR
    c.t_unsub[:] = np.maximum(c.t_unsub, late)
    c.t_sms_unsub[:] = np.maximum(c.t_sms_unsub, late)
    return person, t


def build_sessions(rng: np.random.Generator, c: Cohort, order_person: np.ndarray, order_t: np.ndarray,
                   as_of: int) -> Sessions:
    n = len(c)
    idx = np.arange(n)
    identified = c.identified
    # ordinary browsing, before the person's scenario moment
    nb = np.where(identified, 1 + rng.poisson(1.2, n), 1 + rng.poisson(1.0, n))
    bp = np.repeat(idx, nb)
    hi = np.where(c.scenario == NONE, c.t_end, c.t_end - HOUR)
    bt = c.t0[bp] + (rng.random(len(bp)) * np.maximum(hi - c.t0, 0)[bp]).astype(np.int64)
    bd = rng.choice(4, len(bp), p=BROWSE_DEPTH_SHARES)
    # identification session (signup / subscribe) for people not identified by an order
    ip = idx[identified & ~(c.at_checkout & (c.n_orders > 0))]
    idepth = rng.choice(2, len(ip))
    # recency scenarios with their own last session
    sp = idx[np.isin(c.scenario, (CART, BROWSE))]
    sdepth = np.where(c.scenario[sp] == CART, 2 + rng.choice(2, len(sp)), 1)
    # the kiosk visit: some time after identifying
    kp = idx[c.kiosk]
    kt = c.t_id[kp] + (rng.random(len(kp)) * np.maximum(c.t_end[kp] - c.t_id[kp] - HOUR, 0)).astype(np.int64)
    # preference-centre unsubscribe
    up = idx[(c.email_state == UNSUBSCRIBED) & ~c.unsub_by_message]

    person = np.concatenate([bp, ip, order_person, sp, kp, up])
    t = np.concatenate([bt, c.t_id[ip], order_t, c.t_end[sp], kt, np.minimum(c.t_unsub[up], as_of - HOUR)])
    purpose = np.repeat([S_BROWSE, S_ID, S_ORDER, S_SCENARIO, S_KIOSK, S_UNSUB],
                        [len(bp), len(ip), len(order_person), len(sp), len(kp), len(up)])
    depth = np.concatenate([bd, idepth, np.full(len(order_person), 4), sdepth, np.ones(len(kp), np.int64),
                            np.zeros(len(up), np.int64)])
    order = np.lexsort((purpose, t, person))
    person, t, purpose, depth = person[order], t[order], purpose[order], depth[order]

    t_id = c.t_id[person]
    is_id = ((purpose == S_ID) | ((purpose == S_ORDER) & c.at_checkout[person])) & (t == t_id)
    # only the first order at t_id is the identification session
    is_id &= np.concatenate([[True], (person[1:] != person[:-1]) | ~is_id[:-1]])
    after = (t > t_id) | (c.kind[person] == VISITOR)
    cookie = np.where(after, (rng.random(len(person)) * c.n_cookies[person]).astype(np.int64), 0)
    cookie = np.where(purpose == S_KIOSK, KIOSK_COOKIE, cookie)
    member = c.kind[person] == MEMBER
    logged_in = member & (t >= t_id) & (purpose != S_KIOSK) & (
        is_id | (rng.random(len(person)) < np.where(purpose == S_ORDER, 0.9, 0.75)))
    # first session on each later cookie: identify (login, or email-link click for guests)
    by_cookie = np.lexsort((t, cookie, person))
    pc_, cc_ = person[by_cookie], cookie[by_cookie]
    first_on_cookie = np.concatenate([[True], (pc_[1:] != pc_[:-1]) | (cc_[1:] != cc_[:-1])])
    login = np.zeros(len(person), bool)
    login[by_cookie] = first_on_cookie & (cc_ >= 1) & (c.kind[pc_] != VISITOR)
    logged_in |= login & member

    starts = np.concatenate([[0], np.flatnonzero(person[1:] != person[:-1]) + 1])
    counts = np.diff(np.append(starts, len(person)))
    rank = np.arange(len(person)) - np.repeat(starts, counts)
    if len(rank) and rank.max() >= 1 << 10:
        raise ValueError("a person has more than 1,024 sessions; session ids would collide")
    key = (c.gid[person].astype(np.uint64) << np.uint64(10)) | rank.astype(np.uint64)
    return Sessions(person=person, t=t, purpose=purpose, depth=depth, cookie=cookie, logged_in=logged_in,
                    is_id=is_id, login_identify=login, key=key)


def _expand(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For per-session counts: (session of each row, index within the session, first row of each session)."""
    starts = np.cumsum(counts) - counts
    session = np.repeat(np.arange(len(counts)), counts)
    return session, np.arange(len(session)) - starts[session], starts


@dataclass
class Funnel:
    """What happens inside each session: event counts per type (session-major, funnel order), the
    products viewed and carted, and the cart each session ends with."""

    counts: np.ndarray  # (sessions, len(EVENT_TYPES))
    email_sub: np.ndarray
    pv_prod: np.ndarray  # flat, per product_view row
    add_prod: np.ndarray  # flat, per add_to_cart row
    add_qty: np.ndarray
    add_session: np.ndarray
    rm_row: np.ndarray  # index into add_* of each removed line
    kept: np.ndarray  # add rows still in the cart at the end
    cart_total: np.ndarray
    cart_items: np.ndarray


@dataclass
class EventRows:
    """One entry per event row, in (person, session, funnel) order."""

    session: np.ndarray
    type: np.ndarray
    product: np.ndarray  # -1 for none
    quantity: np.ndarray
    time: np.ndarray
    person: np.ndarray


def _funnel(rng: np.random.Generator, c: Cohort, s: Sessions, catalog: Catalog) -> Funnel:
    S = len(s.person)
    p = s.person
    member = c.kind[p] == MEMBER
    counts = np.zeros((S, len(EVENT_TYPES)), np.int64)
    counts[:, PAGE_VIEW] = np.where(s.purpose == S_UNSUB, 1, 1 + rng.poisson(0.8, S))
    counts[:, IDENTIFY] = (s.is_id & member) | s.login_identify | (s.purpose == S_KIOSK)
    email_sub = s.is_id & (c.email_state[p] != NEVER)
    counts[:, SUBSCRIBE] = email_sub.astype(np.int64) + (s.is_id & (c.sms_state[p] != NEVER))
    counts[:, UNSUBSCRIBE] = s.purpose == S_UNSUB
    n_add = np.where(s.depth >= 2, 1 + rng.binomial(2, 0.3, S), 0)
    counts[:, ADD] = n_add
    counts[:, PRODUCT_VIEW] = np.where(s.depth >= 1, np.maximum(1 + rng.poisson(1.2, S), n_add), 0)
    counts[:, REMOVE] = (n_add >= 2) & (rng.random(S) < 0.25)
    counts[:, CHECKOUT] = s.depth >= 3
    counts[:, ORDER] = s.depth == 4

    # products viewed: mostly from the person's favourite categories; replenishers re-buy their product
    pv_s, pv_j, pv_start = _expand(counts[:, PRODUCT_VIEW])
    cat = np.where(rng.random(len(pv_s)) < 0.7, c.fav[p[pv_s], rng.integers(0, 2, len(pv_s))],
                   rng.integers(0, len(CATEGORIES), len(pv_s)))
    pv_prod = catalog.category_start[cat] + (rng.random(len(pv_s)) * catalog.category_size[cat]).astype(np.int64)
    rebuy = (s.depth[pv_s] == 4) & (pv_j == 0) & (c.replen_product[p[pv_s]] >= 0)
    pv_prod = np.where(rebuy, c.replen_product[p[pv_s]], pv_prod)
    add_s, add_j, add_start = _expand(n_add)
    add_prod = pv_prod[pv_start[add_s] + add_j]
    add_qty = rng.choice([1, 2, 3], len(add_s), p=[0.8, 0.15, 0.05])
    rm_s, _, _ = _expand(counts[:, REMOVE])
    kept = add_j < (n_add - counts[:, REMOVE])[add_s]
    line_total = catalog.price[add_prod] * add_qty
    return Funnel(counts=counts, email_sub=email_sub, pv_prod=pv_prod, add_prod=add_prod, add_qty=add_qty,
                  add_session=add_s, rm_row=add_start[rm_s] + n_add[rm_s] - 1, kept=kept,
                  cart_total=np.round(np.bincount(add_s[kept], weights=line_total[kept], minlength=S), 2),
                  cart_items=np.bincount(add_s[kept], minlength=S))


def _event_rows(rng: np.random.Generator, s: Sessions, f: Funnel) -> EventRows:
    """Scatter each event type's rows straight to their place (session, then funnel order): no sort."""
    per_session = f.counts.sum(axis=1)  # every session has at least one page view
    R = int(per_session.sum())
    row_start = np.cumsum(per_session) - per_session
    type_offset = np.cumsum(f.counts, axis=1) - f.counts
    session = np.repeat(np.arange(len(per_session), dtype=np.int32), per_session)
    typ = np.empty(R, np.int8)
    product = np.full(R, -1, np.int16)
    quantity = np.zeros(R, np.int8)
    for code in range(len(EVENT_TYPES)):
        bs, bj, _ = _expand(f.counts[:, code])
        dest = row_start[bs] + type_offset[bs, code] + bj
        typ[dest] = code
        if code == PRODUCT_VIEW:
            product[dest] = f.pv_prod
        elif code == ADD:
            product[dest], quantity[dest] = f.add_prod, f.add_qty
        elif code == REMOVE:
            product[dest], quantity[dest] = f.add_prod[f.rm_row], f.add_qty[f.rm_row]
    gaps = rng.integers(3, 120, R)
    gaps[row_start] = 0
    csum = np.cumsum(gaps)
    time = s.t[session] + csum - csum[row_start[session]]
    return EventRows(session=session, type=typ, product=product, quantity=quantity, time=time,
                     person=s.person[session])


def _events_table(rng: np.random.Generator, c: Cohort, ids: Identifiers, catalog: Catalog, s: Sessions, f: Funnel,
                  r: EventRows, seed: int, kiosk_anonymous_id: str) -> tuple[pa.Table, dict[str, np.ndarray]]:
    R = len(r.type)
    sess, typ, ep = r.session, r.type, r.person
    first_row = np.concatenate([[0], np.flatnonzero(ep[1:] != ep[:-1]) + 1])
    rank = np.arange(R) - np.repeat(first_row, np.diff(np.append(first_row, R)))
    if R and rank.max() >= 1 << 16:
        raise ValueError("a person has more than 65,536 events; lower the session counts")

    # who is on each row
    e_member = c.kind[ep] == MEMBER
    is_identify = typ == IDENTIFY
    # a session's subscribe rows: the email one (when there is one) comes first
    first_subscribe = np.concatenate([[True], (sess[1:] != sess[:-1]) | (typ[:-1] != SUBSCRIBE)])
    sub_email = (typ == SUBSCRIBE) & first_subscribe & f.email_sub[sess]
    sub_sms = (typ == SUBSCRIBE) & ~sub_email
    has_user = s.logged_in[sess] | (is_identify & e_member & (s.purpose[sess] != S_KIOSK))
    login_row = is_identify & s.login_identify[sess]
    has_email = ((is_identify & ~(login_row & e_member & (rng.random(R) < 0.5))) | sub_email
                 | (typ == UNSUBSCRIBE) | (typ == ORDER))
    has_phone = c.has_phone[ep] & (sub_sms | (is_identify & s.is_id[sess] & (rng.random(R) < 0.6))
                                   | ((typ == ORDER) & (rng.random(R) < 0.3)))
    cookie = s.cookie[sess]
    anon_index = np.where(cookie == KIOSK_COOKIE, len(ids.cookies), ep * 4 + np.maximum(cookie, 0))
    cookies = pa.concat_arrays([ids.cookies, pa.array([kiosk_anonymous_id])])

    # properties: one dictionary of every text, one index per row
    id_method = np.select([s.purpose[sess] == S_KIOSK, login_row & e_member, login_row,
                           s.purpose[sess] == S_ORDER], [ID_KIOSK, ID_LOGIN, ID_EMAIL_LINK, ID_CHECKOUT], ID_SIGNUP)
    sub_prop = np.where(sub_email, 0, 2) + (s.purpose[sess] == S_ORDER)
    items = np.minimum(f.cart_items[sess], 9)
    dictionary = [PAGE_PROPERTIES, IDENTIFY_PROPERTIES, SUBSCRIBE_PROPERTIES, UNSUBSCRIBE_PROPERTIES,
                  QUANTITY_PROPERTIES, ITEMS_PROPERTIES, ORDER_PROPERTIES]
    base = np.cumsum([0] + [len(d) for d in dictionary])
    prod = r.product.astype(np.int64)
    prop_index = np.select(
        [typ == PAGE_VIEW, typ == IDENTIFY, typ == SUBSCRIBE, typ == UNSUBSCRIBE, (typ == ADD) | (typ == REMOVE),
         typ == CHECKOUT, typ == ORDER],
        [base[0] + rng.integers(0, len(PAGE_PROPERTIES), R), base[1] + id_method, base[2] + sub_prop, base[3],
         base[4] + np.maximum(r.quantity - 1, 0), base[5] + items, base[6] + c.country[ep] * 10 + items],
        base[-1] + np.maximum(prod, 0))  # product_view: the product's own properties
    all_properties = pa.concat_arrays([pa.array([x for d in dictionary for x in d], pa.string()),
                                       catalog.view_properties])
    price = catalog.price[np.maximum(prod, 0)]
    value = np.select([typ == PRODUCT_VIEW, (typ == ADD) | (typ == REMOVE), (typ == CHECKOUT) | (typ == ORDER)],
                      [price, price * r.quantity, f.cart_total[sess]], np.nan)
    has_cart = (s.depth[sess] >= 2) & (typ >= ADD)
    is_order = typ == ORDER
    skey = s.key[sess]
    events = pa.table({
        "event_id": hex_ids("evt_", (c.gid[ep].astype(np.uint64) << np.uint64(16)) | rank.astype(np.uint64), seed),
        "event_type": pick(EVENT_TYPES, typ),
        "occurred_at": iso_utc(r.time),
        "anonymous_id": cookies.take(pa.array(anon_index)),
        "user_id": pick(ids.user_id, ep, has_user),
        "email": pick(ids.email_raw, ep * ids.EMAIL_VARIANTS + rng.choice(
            len(EMAIL_VARIANT_SHARES), R, p=EMAIL_VARIANT_SHARES), has_email),
        "phone": pick(ids.phone_raw, ep * ids.PHONE_VARIANTS + rng.integers(0, ids.PHONE_VARIANTS, R), has_phone),
        "session_id": hex_ids("ses_", skey | np.uint64(1 << 57), seed),
        "product_id": pick(catalog.product_ids, np.maximum(prod, 0), prod >= 0),
        "cart_id": _sparse_ids("cart_", skey | np.uint64(1 << 58), has_cart, seed),
        "order_id": _sparse_ids("ord_", skey | np.uint64(1 << 59), is_order, seed),
        "value": nullable_float(np.round(value, 2), ~np.isnan(value)),
        "properties": all_properties.take(pa.array(prop_index)),
    })
    n = len(c)
    emitted = {"email": np.bincount(ep[has_email], minlength=n) > 0,
               "user_id": np.bincount(ep[has_user], minlength=n) > 0,
               "phone": np.bincount(ep[has_phone], minlength=n) > 0}
    return events, emitted


def _sparse_ids(prefix: str, keys: np.ndarray, valid: np.ndarray, seed: int) -> pa.Array:
    """hex ids only where valid (null elsewhere), without building text for the null rows."""
    where = np.flatnonzero(valid)
    index = np.zeros(len(keys), np.int64)
    index[where] = np.arange(len(where))
    return hex_ids(prefix, keys[where], seed).take(pa.array(index, mask=~valid))


def _orders_tables(rng: np.random.Generator, c: Cohort, ids: Identifiers, catalog: Catalog, s: Sessions, f: Funnel,
                   r: EventRows, seed: int) -> tuple[pa.Table, pa.Table, dict[str, np.ndarray]]:
    os_ = np.flatnonzero(s.depth == 4)
    op = s.person[os_]
    m = len(os_)
    status = rng.choice(len(ORDER_STATUS), m, p=ORDER_STATUS_SHARES)
    status = np.where(np.isin(c.scenario[op], (REPLENISH, LAPSED)), 0, status)  # their last orders must count
    o_phone = c.has_phone[op] & (rng.random(m) < 0.4)
    o_anon = rng.random(m) < 0.95
    order_ids = hex_ids("ord_", s.key[os_] | np.uint64(1 << 59), seed)
    orders = pa.table({
        "order_id": order_ids,
        "ordered_at": iso_utc(r.time[r.type == ORDER]),
        "customer_id": pick(ids.user_id, op, s.logged_in[os_]),
        "email": pick(ids.email_raw, op * ids.EMAIL_VARIANTS + rng.choice(4, m, p=EMAIL_VARIANT_SHARES)),
        "phone": pick(ids.phone_raw, op * ids.PHONE_VARIANTS + rng.integers(0, 4, m), o_phone),
        "anonymous_id": pick(ids.cookies, op * 4 + np.maximum(s.cookie[os_], 0), o_anon),
        "status": pick(ORDER_STATUS, status),
        "total": pa.array(f.cart_total[os_], pa.float64()),
        "currency": pick([x[2] for x in COUNTRIES], c.country[op]),
    })
    position = np.full(len(s.person), -1)
    position[os_] = np.arange(m)
    item_rows = np.flatnonzero(f.kept & (s.depth[f.add_session] == 4))
    order_items = pa.table({
        "order_id": order_ids.take(pa.array(position[f.add_session[item_rows]])),
        "product_id": pick(catalog.product_ids, f.add_prod[item_rows]),
        "quantity": pa.array(f.add_qty[item_rows], pa.int64()),
        "unit_price": pa.array(catalog.price[f.add_prod[item_rows]], pa.float64()),
    })
    n = len(c)
    emitted = {"email": np.bincount(op, minlength=n) > 0,
               "user_id": np.bincount(op[s.logged_in[os_]], minlength=n) > 0,
               "phone": np.bincount(op[o_phone], minlength=n) > 0}
    return orders, order_items, emitted


def build_journeys(rng: np.random.Generator, c: Cohort, ids: Identifiers, catalog: Catalog, as_of: int,
                   seed: int, kiosk_anonymous_id: str) -> Journeys:
    order_person, order_t = order_times(rng, c, catalog)
    s = build_sessions(rng, c, order_person, order_t, as_of)
    f = _funnel(rng, c, s, catalog)
    r = _event_rows(rng, s, f)
    events, from_events = _events_table(rng, c, ids, catalog, s, f, r, seed, kiosk_anonymous_id)
    orders, order_items, from_orders = _orders_tables(rng, c, ids, catalog, s, f, r, seed)
    emitted = {k: from_events[k] | from_orders[k] for k in from_events}
    return Journeys(events=events, orders=orders, order_items=order_items, event_person=r.person,
                    event_time=r.time, event_cookie=s.cookie[r.session], emitted=emitted,
                    buyers=np.bincount(s.person[s.depth == 4], minlength=len(c)) > 0)
