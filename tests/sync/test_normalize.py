"""Normalise-and-hash functions against the platforms' own published test vectors."""
from __future__ import annotations

import pytest

from syncs.destinations import normalize as n

# googleads/data-manager-python tests/formatter_test.py
GOOGLE_EMAIL_HASH = "509e933019bb285a134a9334b8bb679dff79d0ce023d529af4bd744d47b4fd8a"  # alexz@example.com
GOOGLE_PHONE_HASH = "fb4f73a6ec5fdb7077d564cdd22c3554b43ce49168550c3b12c547b78c517b30"  # +18005550100
GOOGLE_GIVEN_HASH = "128a07bfe2df877c52076e60d7774cf5baaa046c5a6c48daf30ff43ecca2f814"  # givenname
GOOGLE_FAMILY_HASH = "77762c287e61ce065bee5c15464012c6fbe088398b8057627d5577249430d574"  # familyname


@pytest.mark.parametrize("raw, expected", [
    ("QuinnY@example.com", "quinny@example.com"),
    ("QuinnY@EXAMPLE.com", "quinny@example.com"),
    ("Jefferson.Loves.hiking@gmail.com", "jeffersonloveshiking@gmail.com"),
    ("Jefferson.LOVES.Hiking@googlemail.com", "jeffersonloveshiking@googlemail.com"),
    ("Cloudy.SanFrancisco+shopping@gmail.com", "cloudysanfrancisco@gmail.com"),
    ("user.name+NYC@Example.com", "user.name+nyc@example.com"),
])
def test_google_email_normalisation(raw, expected):
    assert n.google_email(raw) == expected


@pytest.mark.parametrize("raw", [None, "", "  ", "quinn", " @googlemail.com", " ...@gmail.com", "a b@x.com"])
def test_google_email_rejects_invalid(raw):
    with pytest.raises(ValueError):
        n.google_email(raw)


@pytest.mark.parametrize("raw", ["alexz@example.com", "  ALEXZ@example.com   ", "  alexz@EXAMPLE.com   "])
def test_google_email_hash_vector(raw):
    assert n.google_hash(n.google_email(raw)) == GOOGLE_EMAIL_HASH


@pytest.mark.parametrize("raw, expected", [
    ("1 800 555 0100", "+18005550100"), ("18005550100", "+18005550100"), ("+1 800-555-0100", "+18005550100"),
    ("441134960987", "+441134960987"), ("+44-113-496-0987", "+441134960987"),
])
def test_google_phone_normalisation(raw, expected):
    assert n.google_phone(raw) == expected


def test_google_phone_and_name_hash_vectors():
    assert n.google_hash(n.google_phone("   +1-800-555-0100")) == GOOGLE_PHONE_HASH
    assert n.google_hash(n.google_name("  GivenName  ")) == GOOGLE_GIVEN_HASH
    assert n.google_hash(n.google_name("  FamilyName ")) == GOOGLE_FAMILY_HASH
    with pytest.raises(ValueError):
        n.google_phone(" +A BCD EFG ")


def test_meta_normalisation():
    assert n.meta_email("  Jane.Doe@Example.COM ") == "jane.doe@example.com"  # no gmail dot rule at Meta
    assert n.meta_phone("+1 (650) 555-1212") == "16505551212"
    assert n.meta_phone("0044 20 7946 0958") == "442079460958"
    assert n.meta_name(" Mary-Ann ") == "maryann"
    assert n.meta_name("Zoë") == "zoë"  # UTF-8 letters are allowed by Meta's table
    assert n.sha256_hex(n.meta_email("test@example.com")) == \
        "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b"
    with pytest.raises(ValueError):
        n.sha256_hex("  ")


def test_tiktok_phone_is_e164():
    assert n.tiktok_phone("+44 20 7946 0958") == "+442079460958"
    assert n.tiktok_email(" A@B.com") == "a@b.com"
