import hashlib
import hmac

from orchestration.alerts import Alert, send_alert
from orchestration.config import AlertChannels, SmtpChannel
from receivers import SmtpReceiver, WebhookReceiver

ALERT = Alert(kind="check_failed", title="profiles suite failed", where="asset profiles / check gx_profiles",
              details="profile_id is not unique: 3 duplicates", run_url="http://127.0.0.1:3000/runs/abc")


def test_alert_reaches_slack_webhook_and_smtp():
    with WebhookReceiver() as slack, WebhookReceiver() as generic, SmtpReceiver() as smtp:
        channels = AlertChannels(slack_webhook_url_env="SLACK_URL", webhook_url_env="HOOK_URL",
                                 webhook_secret_env="HOOK_SECRET",
                                 smtp=SmtpChannel(host="127.0.0.1", port=smtp.port, recipients=["oncall@example.com"]))
        env = {"SLACK_URL": slack.url + "/services/T/B/X", "HOOK_URL": generic.url + "/alerts", "HOOK_SECRET": "s3cret"}
        outcome = send_alert(ALERT, channels, env=env)

        assert outcome == {"slack": "sent", "webhook": "sent", "smtp": "sent"}
        slack_body = slack.json_bodies()[0]
        assert "profiles suite failed" in slack_body["text"] and "runs/abc" in slack_body["text"]
        generic_req = generic.requests[0]
        assert generic.json_bodies()[0]["where"] == "asset profiles / check gx_profiles"
        t, v1 = (part.split("=", 1)[1] for part in generic_req["headers"]["X-Lifeline-Signature"].split(","))
        expected = hmac.new(b"s3cret", f"{t}.".encode() + generic_req["body"], hashlib.sha256).hexdigest()
        assert v1 == expected
        assert smtp.messages[0]["to"] == ["oncall@example.com"]
        assert "profile_id is not unique" in smtp.messages[0]["data"]


def test_a_broken_channel_does_not_stop_the_others():
    with WebhookReceiver(status=500) as slack, WebhookReceiver() as generic:
        channels = AlertChannels(slack_webhook_url_env="SLACK_URL", webhook_url_env="HOOK_URL")
        outcome = send_alert(ALERT, channels, env={"SLACK_URL": slack.url, "HOOK_URL": generic.url})
        assert outcome["slack"].startswith("error: HTTPError")
        assert outcome["webhook"] == "sent" and len(generic.requests) == 1


def test_unconfigured_channels_send_nothing():
    assert send_alert(ALERT, AlertChannels(), env={}) == {}
