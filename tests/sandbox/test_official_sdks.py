"""The platforms' official SDKs, unchanged except for the base URL, against the sandbox.

The SDKs' generated models encode the vendors' OpenAPI specs (klaviyo-api validates every response
with pydantic models), so a response the sandbox shapes wrongly fails here. Packages: klaviyo-api,
twilio, mailchimp-marketing, facebook-business (the test extras; a missing one is an error, not a skip).
"""
from __future__ import annotations

import httpx
import pytest

from syncs.sandbox.server import SandboxThread
from tests.sandbox.conftest import TOKEN

import facebook_business  # noqa: E402,F401 - the official SDKs (test extras)
import klaviyo_api  # noqa: E402
import mailchimp_marketing  # noqa: E402
import twilio.base.exceptions as twilio_exceptions  # noqa: E402
import twilio.rest as twilio_rest  # noqa: E402
from facebook_business.adobjects.customaudience import CustomAudience  # noqa: E402
from facebook_business.api import FacebookAdsApi  # noqa: E402
from facebook_business.exceptions import FacebookRequestError  # noqa: E402
from facebook_business.session import FacebookSession  # noqa: E402
from mailchimp_marketing.api_client import ApiClientError  # noqa: E402
from openapi_client.exceptions import UnauthorizedException  # noqa: E402

ACCOUNT = "AC" + "0" * 32


@pytest.fixture
def quiet_sandbox(start_sandbox) -> SandboxThread:
    return start_sandbox(rate_limits=False)


def klaviyo(sandbox: SandboxThread, key: str = TOKEN):
    return klaviyo_api.KlaviyoAPI(key, max_delay=0.1, max_retries=0, test_host=f"{sandbox.base_url}/klaviyo")


def profile(attrs: dict) -> dict:
    return {"type": "profile", "attributes": attrs}


def test_klaviyo_sdk_parses_lists_bulk_import_errors_relationships_events_and_deletion(quiet_sandbox):
    k = klaviyo(quiet_sandbox)
    created = k.Lists.create_list({"data": {"type": "list", "attributes": {"name": "welcome"}}})
    lid = created.data.id
    assert created.data.attributes.name == "welcome"
    found = k.Lists.get_lists(filter='equals(name,"welcome")')
    assert [item.id for item in found.data] == [lid]
    assert k.Lists.get_list(lid).data.id == lid

    job = k.Profiles.bulk_import_profiles({"data": {
        "type": "profile-bulk-import-job",
        "attributes": {"profiles": {"data": [
            profile({"email": "a@x.com", "external_id": "42", "first_name": "Sarah", "properties": {"tier": "gold"}}),
            profile({"email": "not-an-email"})]}},
        "relationships": {"lists": {"data": [{"type": "list", "id": lid}]}}}})
    jid = job.data.id
    status = k.Profiles.get_bulk_import_profiles_job(jid).data.attributes
    assert (status.status, status.total_count, status.completed_count, status.failed_count) == ("complete", 2, 1, 1)
    errors = k.Profiles.get_errors_for_bulk_import_profiles_job(jid).data
    assert len(errors) == 1 and errors[0].attributes.source.pointer.endswith("/1/attributes/email")
    assert [item.id for item in k.Profiles.get_list_ids_for_bulk_import_profiles_job(jid).data] == [lid]
    pid = k.Profiles.get_profile_ids_for_bulk_import_profiles_job(jid).data[0].id
    imported = k.Profiles.get_profiles_for_bulk_import_profiles_job(jid).data[0].attributes
    assert imported.email == "a@x.com" and imported.subscriptions.email.marketing.can_receive_email_marketing
    assert k.Profiles.get_profile(pid).data.attributes.external_id == "42"
    assert [p.id for p in k.Profiles.get_profiles(filter='equals(email,"a@x.com")').data] == [pid]
    assert [m.id for m in k.Lists.get_profiles_for_list(lid).data] == [pid]

    k.Lists.remove_profiles_from_list(lid, {"data": [{"type": "profile", "id": pid}]})
    k.Lists.add_profiles_to_list(lid, {"data": [{"type": "profile", "id": pid}]})
    upserted = k.Profiles.create_or_update_profile({"data": {"type": "profile",
                                                             "attributes": {"email": "b@x.com", "external_id": "7"}}})
    assert upserted.data.attributes.email == "b@x.com"

    httpx.post(f"{quiet_sandbox.base_url}/_sandbox/simulate/engagement",
               json={"seed": 1, "open_rate": 1, "click_rate": 1}).raise_for_status()
    events = k.Events.get_events(include=["metric", "profile"], sort="datetime",
                                 filter="greater-or-equal(datetime,2020-01-01T00:00:00Z)")
    assert events.data and all(e.relationships.profile.data.id == pid for e in events.data)

    k.Data_Privacy.request_profile_deletion({"data": {"type": "data-privacy-deletion-job", "attributes": {
        "profile": {"data": {"type": "profile", "attributes": {"email": "b@x.com"}}}}}})
    assert k.Profiles.get_profiles(filter='equals(email,"b@x.com")').data == []


def test_klaviyo_sdk_raises_its_own_auth_error_on_a_wrong_key(quiet_sandbox):
    with pytest.raises(UnauthorizedException) as raised:
        klaviyo(quiet_sandbox, key="wrong").Lists.get_lists()
    assert raised.value.status == 401


def twilio_client(sandbox: SandboxThread, token: str = TOKEN):
    client = twilio_rest.Client(ACCOUNT, token)
    client.api.base_url = f"{sandbox.base_url}/twilio"
    return client


def test_twilio_sdk_creates_lists_and_gets_21610_for_an_opted_out_recipient(quiet_sandbox):
    client = twilio_client(quiet_sandbox)
    sent = client.messages.create(to="+15005550006", from_="+15005550001", body="Welcome back")
    assert sent.sid.startswith("SM") and sent.status == "queued" and sent.num_segments == "1"
    assert sent.account_sid == ACCOUNT and sent.to == "+15005550006" and sent.error_code is None
    assert [m.sid for m in client.messages.list(to="+15005550006")] == [sent.sid]
    assert client.messages(sent.sid).fetch().body == "Welcome back"

    httpx.post(f"{quiet_sandbox.base_url}/_sandbox/twilio/optouts", json={"numbers": ["+15005550009"]})
    with pytest.raises(twilio_exceptions.TwilioRestException) as raised:
        client.messages.create(to="+15005550009", from_="+15005550001", body="hi")
    assert (raised.value.status, raised.value.code) == (400, 21610)


def test_twilio_sdk_raises_20003_on_a_wrong_token(quiet_sandbox):
    with pytest.raises(twilio_exceptions.TwilioRestException) as raised:
        twilio_client(quiet_sandbox, token="wrong").messages.create(to="+15005550006", from_="+1500555", body="x")
    assert (raised.value.status, raised.value.code) == (401, 20003)


def mailchimp(sandbox: SandboxThread, key: str = TOKEN):
    client = mailchimp_marketing.Client()
    client.set_config({"api_key": f"{key}-us1", "server": "us1"})
    client.api_client.host = f"{sandbox.base_url}/mailchimp/3.0"
    return client


def test_mailchimp_sdk_batch_put_and_permanent_delete(quiet_sandbox):
    client = mailchimp(quiet_sandbox)
    result = client.lists.batch_list_members("abc123", {"update_existing": True, "members": [
        {"email_address": "a@x.com", "status": "subscribed", "merge_fields": {"FNAME": "A"}},
        {"email_address": "nope", "status": "subscribed"}]})
    assert (result["total_created"], result["error_count"]) == (1, 1)
    assert result["errors"][0]["email_address"] == "nope"
    put = client.lists.set_list_member("abc123", "a@x.com", {"email_address": "a@x.com", "status_if_new": "subscribed",
                                                            "merge_fields": {"LNAME": "B"}})
    assert put["merge_fields"] == {"FNAME": "A", "LNAME": "B"}
    client.lists.delete_list_member_permanent("abc123", put["id"])
    with pytest.raises(ApiClientError) as raised:
        client.lists.get_list_member("abc123", put["id"])
    assert raised.value.status_code == 404


def test_mailchimp_sdk_raises_its_error_on_a_wrong_key(quiet_sandbox):
    with pytest.raises(ApiClientError) as raised:
        mailchimp(quiet_sandbox, key="wrong").lists.get_list_member("abc123", "a@x.com")
    assert raised.value.status_code == 401


def meta_audience(sandbox: SandboxThread, token: str = TOKEN) -> CustomAudience:
    session = FacebookSession(access_token=token)
    session.GRAPH = f"{sandbox.base_url}/meta"
    return CustomAudience("123456", api=FacebookAdsApi(session))


def test_meta_sdk_adds_and_removes_hashed_users(quiet_sandbox):
    audience = meta_audience(quiet_sandbox)
    added = audience.add_users(CustomAudience.Schema.email_hash, ["A@x.com ", "b@x.com"], is_raw=True)
    assert (added.status(), added.json()["num_received"], added.json()["num_invalid_entries"]) == (200, 2, 0)
    removed = audience.remove_users(CustomAudience.Schema.email_hash, ["a@x.com"], is_raw=True)
    assert removed.json()["num_received"] == 1
    held = httpx.get(f"{quiet_sandbox.base_url}/_sandbox/meta/audiences").json()["audiences"]["123456"]
    assert held["count"] == 1  # the SDK's normalisation (trim, lowercase) made "A@x.com " match "a@x.com"


def test_meta_sdk_raises_code_190_on_a_wrong_token(quiet_sandbox):
    with pytest.raises(FacebookRequestError) as raised:
        meta_audience(quiet_sandbox, token="wrong").add_users(CustomAudience.Schema.email_hash, ["a@x.com"],
                                                              is_raw=True)
    assert raised.value.api_error_code() == 190


def test_klaviyo_sdk_reads_the_sandbox_429_and_its_integer_retry_after(start_sandbox):
    sandbox = start_sandbox(faults={"klaviyo": {"burst_429": 1.0}})
    with pytest.raises(klaviyo_api.openapi_client.ApiException) as raised:
        klaviyo(sandbox).Lists.get_lists()
    assert raised.value.status == 429 and int(raised.value.headers["Retry-After"]) >= 1
    assert raised.value.data.errors[0].code == "throttled"
