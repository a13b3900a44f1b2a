"""An ad-targeting signal (message_events channel ads, event opted_out; a subscribe/unsubscribe
event naming channel ads) is an `ads` consent signal in int_consent_signals, never an SMS or email
one: before, an ads opt-out counted as an SMS STOP and an ads unsubscribe event as an email one.
On the lifecycle scenario built at AS_OF (lifecycle_scenario.ads_scenario)."""
from __future__ import annotations

import pytest


def consent(scenario, role: str) -> tuple:
    return scenario.rows("select email_consent, sms_consent from profiles where profile_id = :p",
                         p=scenario.pid(role))[0]


def signals(scenario, role: str) -> list[tuple]:
    return scenario.rows("select channel, status, source from intermediate.int_consent_signals where profile_id = :p "
                         "and channel = 'ads' order by signaled_at", p=scenario.pid(role))


def members(scenario, role: str) -> set[tuple]:
    return set(scenario.rows("select audience, channel from audience_members where profile_id = :p",
                             p=scenario.pid(role)))


def test_an_ads_opt_out_by_phone_is_no_sms_stop(duck_scenario):
    assert consent(duck_scenario, "ad_sms_out") == (False, True)
    assert ("cart_abandonment", "sms") in members(duck_scenario, "ad_sms_out")
    assert signals(duck_scenario, "ad_sms_out") == [("ads", "unsubscribed", "message_events")]


def test_an_ads_opt_out_by_email_leaves_email_consent(duck_scenario):
    assert consent(duck_scenario, "ad_out")[0] is True
    assert ("cart_abandonment", "email") in members(duck_scenario, "ad_out")
    assert signals(duck_scenario, "ad_out") == [("ads", "unsubscribed", "message_events")]


def test_a_consent_event_naming_channel_ads_is_an_ads_signal(duck_scenario):
    assert consent(duck_scenario, "ad_unsub_event")[0] is True
    assert ("cart_abandonment", "email") in members(duck_scenario, "ad_unsub_event")
    assert signals(duck_scenario, "ad_unsub_event") == [("ads", "unsubscribed", "events")]
    assert signals(duck_scenario, "ad_back") == [("ads", "unsubscribed", "message_events"),
                                                 ("ads", "subscribed", "events")]


@pytest.mark.postgres
def test_ads_signals_identical_on_postgres(duck_scenario, pg_scenario):
    sql = ("select profile_id, channel, status, signaled_at, source from intermediate.int_consent_signals "
           "where channel = 'ads' order by 1, 4")
    assert pg_scenario.rows(sql) == duck_scenario.rows(sql) != []
