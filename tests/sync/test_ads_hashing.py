"""What each ad-platform client hashes for a row: SHA-256 digests computed here independently with
hashlib from the normalised strings each platform documents, plus Google's published vectors
(googleads/data-manager-python formatter_test) and the planning of adds/updates from stored hashes."""
from __future__ import annotations

import hashlib

import pytest

from syncs.destinations import google, meta, tiktok
from syncs.destinations.hashed_audience import Rejected, decode, encode, plan_adds


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def meta_ids(**row) -> dict:
    return meta.MetaAudience("http://127.0.0.1:9", "t", "1", "K", rate_limits=False).identify({"key": "k", **row})


def google_ids(**row) -> dict:
    return google.GoogleAudience("http://127.0.0.1:9", "t", "1234567890", "1", "K",
                                 rate_limits=False).identify({"key": "k", **row})


def tiktok_ids(**row) -> dict:
    client = tiktok.TikTokAudience("http://127.0.0.1:9", "t", "1", "1", "K", rate_limits=False)
    return client.identify({"key": "k", **row})


@pytest.mark.parametrize("row, expected", [
    ({"email": "  Test@Example.COM "}, {"EMAIL": sha("test@example.com")}),
    # no Gmail rule at Meta: dots and +tags stay
    ({"email": "Jane.Doe+x@gmail.com"}, {"EMAIL": sha("jane.doe+x@gmail.com")}),
    # phones: symbols and leading zeros stripped, the country code kept (ours are E.164)
    ({"phone": "+1 (650) 555-1212"}, {"PHONE": sha("16505551212")}),
    ({"phone": "0044 20 7946 0958"}, {"PHONE": sha("442079460958")}),
    # names: lowercase letters only, UTF-8 letters kept, punctuation and spaces dropped
    ({"email": "a@b.co", "first_name": " Mary-Ann ", "last_name": "Zoë O'Neil"},
     {"EMAIL": sha("a@b.co"), "FN": sha("maryann"), "LN": sha("zoëoneil")}),
    ({"email": "a@b.co", "first_name": "--", "last_name": None}, {"EMAIL": sha("a@b.co")}),
])
def test_meta_hashes_normalised_values(row, expected):
    assert meta_ids(**row) == expected


def test_meta_published_example_and_row_layout():
    assert meta_ids(email="test@example.com")["EMAIL"] == \
        "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b"
    # the multi-key schema's order, "" for a missing key
    assert meta.row_values(meta_ids(email="a@b.co", last_name="Lee")) == [sha("a@b.co"), "", "", sha("lee")]


@pytest.mark.parametrize("row, expected", [
    # Google's published formatter vectors
    ({"email": "  ALEXZ@example.com   "},
     {"EMAIL": "509e933019bb285a134a9334b8bb679dff79d0ce023d529af4bd744d47b4fd8a"}),
    ({"phone": "   +1-800-555-0100"}, {"PHONE": "fb4f73a6ec5fdb7077d564cdd22c3554b43ce49168550c3b12c547b78c517b30"}),
    # Gmail and Googlemail: every dot and any +suffix of the local part removed; other domains keep them
    ({"email": "Jefferson.Loves.hiking@gmail.com"}, {"EMAIL": sha("jeffersonloveshiking@gmail.com")}),
    ({"email": "Cloudy.SanFrancisco+shopping@googlemail.com"}, {"EMAIL": sha("cloudysanfrancisco@googlemail.com")}),
    ({"email": "user.name+NYC@Example.com"}, {"EMAIL": sha("user.name+nyc@example.com")}),
    # phones: digits with a leading +
    ({"email": "a@b.co", "phone": "+44 20 7946 0958"}, {"EMAIL": sha("a@b.co"), "PHONE": sha("+442079460958")}),
])
def test_google_hashes_with_its_formatter_rules(row, expected):
    assert google_ids(**row) == expected


def test_tiktok_hashes_the_trimmed_lowercased_email_only():
    assert tiktok_ids(email=" A.B@Example.com", phone="+15550001111") == {"EMAIL": sha("a.b@example.com")}
    with pytest.raises(Rejected) as missing:
        tiktok_ids(email=None, phone="+15550001111")
    assert missing.value.code == "no_identifier"


@pytest.mark.parametrize("identify", [meta_ids, google_ids, tiktok_ids])
@pytest.mark.parametrize("email, code", [("no-at-sign", "invalid_email"), ("a b@x.com", "invalid_email"),
                                         ("a@@x.com", "invalid_email"), (None, "no_identifier")])
def test_unusable_rows_are_rejected_with_a_code_and_no_value(identify, email, code):
    with pytest.raises(Rejected) as rejected:
        identify(email=email)
    assert rejected.value.code == code and (email is None or email not in str(rejected.value))


def test_stored_identifiers_decide_what_an_update_sends():
    ids = {"EMAIL": sha("a@b.co"), "PHONE": sha("+1555")}
    assert decode(encode(ids)) == ids and decode(None) == {} and decode("legacy-id") == {}
    same = {"key": "1", "destination_id": encode(ids)}
    moved = {"key": "2", "destination_id": encode({"EMAIL": sha("old@b.co")})}
    new = {"key": "3", "destination_id": None}
    plan = plan_adds([same, moved, new], lambda row: ids)
    assert [(r.key, r.ok) for r in plan.done] == [("1", True)]           # payload-only change: nothing sent
    assert plan.stale == [{"EMAIL": sha("old@b.co")}]                      # removed before the new row is added
    assert [row["key"] for row, _ in plan.send] == ["2", "3"]
