"""The `customers` table: one row per registered person (MEMBER), as a shop platform exports it.

customer_id = the user_id their events carry; email and phone in the formats people typed (the
phone in national form where the country has one, e.g. `07700 900123` for GB); consent values
subscribed | unsubscribed | never_subscribed as of updated_at (the last consent change).
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seeds.catalog import AU, CA, COUNTRIES, GB
from seeds.people import CONSENT_VALUES, MEMBER, UNSUBSCRIBED, Cohort, Identifiers
from seeds.textcols import digits, iso_utc, pick

GB_POSTCODES = ("SW1A 1AA", "EC1A 1BB", "W1A 0AX", "M1 1AE", "B33 8TH", "CR2 6XH", "DN55 1PT", "LS1 4AP")
CA_POSTCODES = ("K1A 0B1", "M5V 3L9", "H2X 1Y4", "V6B 4Y8", "T2P 2M5")


def build_customers(rng: np.random.Generator, c: Cohort, ids: Identifiers) -> tuple[pa.Table, np.ndarray]:
    """(customers table, chunk-local person index of each row)."""
    m = np.flatnonzero(c.kind == MEMBER)
    n = len(m)
    country = c.country[m]
    national = rng.random(n) < 0.4
    phone = pc.if_else(pa.array(national), ids.phone_national.take(pa.array(m)),
                       ids.phone_raw.take(pa.array(m * ids.PHONE_VARIANTS + rng.integers(0, 4, n))))
    codes = [x[0] for x in COUNTRIES] + [x[4] for x in COUNTRIES]
    country_text = pick(codes, country + np.where(rng.random(n) < 0.1, len(COUNTRIES), 0))
    zip5 = digits(  # US and DE: 5 digits; AU: 4
        rng.integers(10_000, 99_999, n), 5)
    postal = zip5
    for code, options in ((GB, GB_POSTCODES), (CA, CA_POSTCODES)):
        postal = pc.if_else(pa.array(country == code), pick(options, rng.integers(0, len(options), n)), postal)
    postal = pc.if_else(pa.array(country == AU), pc.utf8_slice_codeunits(zip5, 1, 5), postal)
    email_unsub = c.email_state[m] == UNSUBSCRIBED
    sms_unsub = c.sms_state[m] == UNSUBSCRIBED
    created = c.t_id[m]
    updated = np.maximum.reduce([created, np.where(email_unsub, c.t_unsub[m], created),
                                 np.where(sms_unsub, c.t_sms_unsub[m], created)])
    table = pa.table({
        "customer_id": ids.user_id.take(pa.array(m)),
        "email": ids.email_raw.take(pa.array(m * ids.EMAIL_VARIANTS + rng.choice(4, n, p=(0.6, 0.2, 0.1, 0.1)))),
        "phone": phone,
        "first_name": ids.first_name.take(pa.array(m)),
        "last_name": ids.last_name.take(pa.array(m)),
        "created_at": iso_utc(created),
        "country": country_text,
        "postal_code": postal,
        "email_consent": pick(CONSENT_VALUES, c.email_state[m]),
        "sms_consent": pick(CONSENT_VALUES, c.sms_state[m]),
        "updated_at": iso_utc(updated),
    })
    return table, m
