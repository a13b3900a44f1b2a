"""Ad syncs (Meta, Google, TikTok) read channel `ads` of audience_members unless syncs.yml names a
channel; other destinations keep email. Against the Meta sandbox and a real DuckDB warehouse: the
ads rows are sent (a phone-only row included), the email rows of the same audience are not."""
from __future__ import annotations

import pytest
from ads_helpers import TOKEN, held, write_config
from sync_helpers import set_audience
from test_meta_sync import AUDIENCE, expected_row

from syncs.config import load_syncs
from syncs.engine import run_sync

AD_DESTINATIONS = {
    "meta": '{type: meta, audience_id: "1", base_url: "http://127.0.0.1:1/meta", api_key_env: T}',
    "google": '{type: google, customer_id: "123-456-7890", audience_id: "2", base_url: "http://127.0.0.1:1/google", '
              'api_key_env: T}',
    "tiktok": '{type: tiktok, advertiser_id: "3", audience_id: "4", base_url: "http://127.0.0.1:1/tiktok", '
              'api_key_env: T}',
}


@pytest.mark.parametrize("platform", sorted(AD_DESTINATIONS))
def test_an_ad_sync_without_channel_reads_ads_and_a_named_channel_is_kept(tmp_path, platform):
    [default] = load_syncs(write_config(tmp_path / "a.yml", "ads", AD_DESTINATIONS[platform],
                                        source="{audience: cart_abandonment}"))
    [named] = load_syncs(write_config(tmp_path / "b.yml", "ads", AD_DESTINATIONS[platform]))  # channel: email
    assert (default.source.channel, named.source.channel) == ("ads", "email")


def test_other_destinations_still_default_to_email(tmp_path):
    [sync] = load_syncs(write_config(tmp_path / "s.yml", "kl", '{type: klaviyo, list_name: l, base_url: '
                                     '"http://127.0.0.1:1/klaviyo", api_key_env: T}', source="{audience: welcome}"))
    assert sync.source.channel == "email"


def test_a_meta_sync_sends_the_ads_rows_phone_only_included_and_not_the_email_rows(duck_warehouse, sandbox, tmp_path):
    ads = [{"profile_id": "p_sms", "email": None, "phone": "+14155550100", "channel": "ads"},
           {"profile_id": "p_mail", "email": "mail@example.com", "channel": "ads"}]
    email_only = [{"profile_id": "p_other", "email": "other@example.com", "channel": "email"}]
    set_audience(duck_warehouse, ads + email_only)
    [sync] = load_syncs(write_config(tmp_path / "syncs.yml", "meta_ads", (
        f'{{type: meta, audience_id: "{AUDIENCE}", base_url: "{sandbox.base_url}/meta", api_key_env: META_TOKEN, '
        f"client_rate_limits: false}}"), source="{audience: cart_abandonment}"))
    result = run_sync(duck_warehouse, sync, env={"META_TOKEN": TOKEN}, progress=False)
    assert (result.status, result.adds, result.rejections) == ("success", 2, 0), result.message
    assert held(sandbox.base_url, "meta", AUDIENCE) == {expected_row(m) for m in ads}
