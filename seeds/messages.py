"""`message_events`: what the email and SMS platforms report back about what they sent.

Everyone with email consent gets a welcome email right after subscribing, then roughly one email
every 45 days (at most 12) from the other campaigns; SMS subscribers a welcome text and one every
60 days (at most 6). Per email: sent, then delivered (97%) or bounced, opened with the person's
open rate (12% of subscribers never open: sunset candidates), clicked after 30% of opens. Per SMS:
sent, delivered (98%) or failed, clicked 8%. People whose consent ends by a message get
`unsubscribed` (or `complained`, 10%) on their last email, or `opted_out` on their last SMS,
at their unsubscribe time. recipient is the email as typed or the phone (E.164 or as typed);
external_id is left empty (no platform echoes a profile id back for demo sends).
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seeds.people import DAY, HOUR, NEVER, UNSUBSCRIBED, Cohort, Identifiers
from seeds.textcols import hex_ids, iso_utc, pick

CAMPAIGNS = ("welcome", "browse_abandonment", "cart_abandonment", "post_purchase_replenishment", "win_back", "sunset")
WELCOME, BROWSE_AB, CART_AB, REPLEN, WIN_BACK, SUNSET = range(len(CAMPAIGNS))
EVENTS = ("sent", "delivered", "opened", "clicked", "bounced", "unsubscribed", "complained", "failed", "opted_out")
SENT, DELIVERED, OPENED, CLICKED, BOUNCED, UNSUBSCRIBED_EV, COMPLAINED, FAILED, OPTED_OUT = range(len(EVENTS))
EMAIL, SMS = 0, 1


def _schedule(rng: np.random.Generator, people: np.ndarray, start: np.ndarray, stop: np.ndarray, every_days: int,
              cap: int, at_least_one: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(person, index within person, send time) of messages between start and stop, in time order."""
    span = np.maximum(stop - start, 0)
    n = np.minimum(1 + rng.poisson(span / (every_days * DAY)), cap)
    n = np.where((span < HOUR) & ~at_least_one, 0, n)
    person = np.repeat(people, n)
    first = np.repeat(np.cumsum(n) - n, n)
    j = np.arange(len(person)) - first  # 0 = the welcome message, within the first hour
    room = np.maximum(np.repeat(span, n) - 60, 0)
    offset = np.where(j == 0, rng.integers(60, HOUR, len(person)),
                      HOUR + (rng.random(len(person)) * room).astype(np.int64))
    t = np.repeat(start, n) + np.minimum(offset, room)
    order = np.lexsort((t, j > 0, person))
    t = t[order]
    return person, j, t


def _rows(*parts: tuple[np.ndarray, np.ndarray, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate (message index, time, event code) blocks."""
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            np.concatenate([np.full(len(p[0]), p[2]) for p in parts]))


def build_message_events(rng: np.random.Generator, c: Cohort, ids: Identifiers, buyers: np.ndarray, as_of: int,
                         seed: int) -> pa.Table:
    stop_at = as_of - 2 * HOUR
    idx = np.arange(len(c))
    tables = []
    for channel in (EMAIL, SMS):
        state = c.email_state if channel == EMAIL else c.sms_state
        t_unsub = c.t_unsub if channel == EMAIL else c.t_sms_unsub
        by_message = (state == UNSUBSCRIBED) & (c.unsub_by_message if channel == EMAIL else True)
        who = idx[state != NEVER]
        stop = np.where(state[who] == UNSUBSCRIBED, np.minimum(t_unsub[who], stop_at), stop_at)
        person, j, t = _schedule(rng, who, c.t_id[who], stop, 45 if channel == EMAIL else 60,
                                 12 if channel == EMAIL else 6, by_message[who])
        m = len(person)
        if channel == EMAIL:
            campaign = rng.choice([BROWSE_AB, CART_AB, REPLEN, WIN_BACK, SUNSET], m, p=[0.3, 0.25, 0.2, 0.15, 0.1])
            campaign = np.where(np.isin(campaign, (REPLEN, WIN_BACK)) & ~buyers[person], BROWSE_AB, campaign)
            campaign = np.where((campaign == SUNSET) & (c.engagement[person] > 0), BROWSE_AB, campaign)
        else:
            campaign = rng.choice([CART_AB, REPLEN, WIN_BACK], m, p=[0.4, 0.3, 0.3])
            campaign = np.where(np.isin(campaign, (REPLEN, WIN_BACK)) & ~buyers[person], CART_AB, campaign)
        campaign = np.where(j == 0, WELCOME, campaign)
        msg = np.arange(m)
        delivered = rng.random(m) < (0.97 if channel == EMAIL else 0.98)
        lag = rng.integers(2, 60, m)
        if channel == EMAIL:
            opened = delivered & (rng.random(m) < c.engagement[person])
            t_open = t + rng.integers(300, 2 * DAY, m)
            clicked = opened & (rng.random(m) < 0.3)
            parts = [(msg, t, SENT), (msg[delivered], (t + lag)[delivered], DELIVERED),
                     (msg[~delivered], (t + lag)[~delivered], BOUNCED), (msg[opened], t_open[opened], OPENED),
                     (msg[clicked], (t_open + rng.integers(5, 600, m))[clicked], CLICKED)]
        else:
            clicked = delivered & (rng.random(m) < 0.08)
            parts = [(msg, t, SENT), (msg[delivered], (t + lag)[delivered], DELIVERED),
                     (msg[~delivered], (t + lag)[~delivered], FAILED),
                     (msg[clicked], (t + rng.integers(60, HOUR, m))[clicked], CLICKED)]
        last = np.flatnonzero(np.append(person[1:] != person[:-1], True)) if m else np.array([], np.int64)
        last = last[by_message[person[last]]]
        if channel == EMAIL:
            complained = rng.random(len(last)) < 0.1
            parts += [(last[~complained], t_unsub[person[last[~complained]]], UNSUBSCRIBED_EV),
                      (last[complained], t_unsub[person[last[complained]]], COMPLAINED)]
        else:
            parts.append((last, t_unsub[person[last]], OPTED_OUT))
        row_msg, row_t, row_event = _rows(*parts)
        keep = row_t < as_of
        row_msg, row_t, row_event = row_msg[keep], row_t[keep], row_event[keep]
        order = np.lexsort((row_event, row_t, row_msg))
        row_msg, row_t, row_event = row_msg[order], row_t[order], row_event[order]
        rp = person[row_msg]
        key = (c.gid[person].astype(np.uint64) << np.uint64(8)) | np.uint64(channel << 6) | j.astype(np.uint64)
        message_ids = hex_ids("msg_", key | np.uint64(1 << 60), seed)
        # the recipient as this platform stores it: one spelling per message
        if channel == EMAIL:
            recipient = pick(ids.email_raw, person * ids.EMAIL_VARIANTS + rng.choice(4, m, p=(0.7, 0.1, 0.1, 0.1)))
        else:
            recipient = pc.if_else(pa.array(rng.random(m) < 0.7), ids.phone.take(pa.array(person)),
                                   ids.phone_raw.take(pa.array(person * ids.PHONE_VARIANTS + rng.integers(0, 4, m))))
        tables.append(pa.table({
            "message_id": message_ids.take(pa.array(row_msg)),
            "channel": pick(("email", "sms"), np.full(len(rp), channel)),
            "event": pick(EVENTS, row_event),
            "occurred_at": iso_utc(row_t),
            "recipient": recipient.take(pa.array(row_msg)),
            "campaign": pick(CAMPAIGNS, campaign[row_msg]),
            "external_id": pa.nulls(len(rp), pa.string()),
        }))
    return pa.concat_tables(tables)
