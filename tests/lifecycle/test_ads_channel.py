"""Channel `ads` of audience_members (what ad syncs read: Meta, Google, TikTok): a member has an
identifier with marketing consent on that identifier's channel and no ad-targeting opt-out
(message_events channel ads, event opted_out) that a later explicit ads subscribe has not undone;
an ads row carries only the consented identifiers; sunset rules as for email; an ads opt-out is not
an SMS opt-out. On the lifecycle scenario built at AS_OF (lifecycle_scenario.ads_scenario)."""
from __future__ import annotations

import pytest
from test_audience_rules import audiences_of

ADS = ("ads",)


def identifiers(scenario, role: str, audience: str = "cart_abandonment") -> tuple:
    return tuple(scenario.rows("select email is not null, phone is not null from audience_members "
                               "where channel = 'ads' and audience = :a and profile_id = :p",
                               a=audience, p=scenario.pid(role))[0])


def test_an_ads_opt_out_keeps_the_person_out_of_ads_only(duck_scenario):
    members = duck_scenario.members()
    assert audiences_of(members, "ad_out", ADS) == set()
    assert audiences_of(members, "ad_out") == {("cart_abandonment", "email")}
    # opted out of ads by phone: SMS consent stands (an ads opt-out is no SMS STOP)
    assert audiences_of(members, "ad_sms_out", ("email", "sms", "ads")) == {("cart_abandonment", "sms")}


def test_only_an_explicit_ads_subscribe_undoes_an_ads_opt_out(duck_scenario):
    members = duck_scenario.members()
    assert audiences_of(members, "ad_resub", ADS) == set()  # an email re-subscribe is no ad-targeting consent
    assert audiences_of(members, "ad_back", ADS) == {("cart_abandonment", "ads")}


def test_an_ads_row_carries_only_identifiers_with_consent(duck_scenario):
    members = duck_scenario.members()
    assert audiences_of(members, "co_unsub", ADS) == {("cart_abandonment", "ads")}  # sms consent only
    assert identifiers(duck_scenario, "co_unsub") == (False, True)  # phone only: the email has no consent
    assert identifiers(duck_scenario, "ad_both") == (True, True)
    assert identifiers(duck_scenario, "ad_back") == (True, False)  # email only: no phone
    assert audiences_of(members, "ad_none", ("email", "sms", "ads")) == set()


def test_sunset_members_get_no_other_ads_audience_and_priority_holds(duck_scenario):
    members = duck_scenario.members()
    assert audiences_of(members, "sun_in", ADS) == {("sunset", "ads")}
    assert audiences_of(members, "sun_out", ADS) == {("cart_abandonment", "ads")}
    assert audiences_of(members, "pr_many", ADS) == {("cart_abandonment", "ads")}  # one audience per channel
    ads = [(a, m["profile_id"]) for (a, c, _), m in members.items() if c == "ads"]
    assert len({p for _, p in ads}) == len(ads)


def test_ads_holdout_is_the_audience_holdout(duck_scenario):
    """The same person is held out of an audience on every channel (hash of profile_id and audience)."""
    members = duck_scenario.members()
    pairs = [(m["is_holdout"], members[(a, "email", r)]["is_holdout"])
             for (a, c, r), m in members.items() if c == "ads" and (a, "email", r) in members]
    assert pairs and all(ads == email for ads, email in pairs)


@pytest.mark.postgres
def test_ads_rows_identical_on_postgres(duck_scenario, pg_scenario):
    sql = ("select audience, profile_id, email, phone, is_holdout from audience_members where channel = 'ads' "
           "order by 1, 2")
    assert pg_scenario.rows(sql) == duck_scenario.rows(sql)
