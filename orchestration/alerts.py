"""Alerts: a failed run, a failed ERROR check or a tripped sync safety limit, sent to the
configured channels (a Slack-compatible webhook, email over SMTP, a generic signed webhook) with
what failed, where, and a link to the run. A channel that fails is reported, never fatal, so
one broken channel cannot hide the alert from the others."""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import smtplib
import time
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from typing import Mapping

import requests

from orchestration.config import AlertChannels

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alert:
    kind: str            # run_failed | check_failed | sync_blocked
    title: str
    details: str
    where: str           # asset, check or sync
    run_url: str | None = None
    severity: str = "error"
    extra: dict = field(default_factory=dict)

    def text(self) -> str:
        link = f"\nRun: {self.run_url}" if self.run_url else ""
        return f"[Lifeline {self.severity.upper()}] {self.title}\nWhere: {self.where}\n{self.details}{link}"


def sign(secret: str, body: bytes, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def send_alert(alert: Alert, channels: AlertChannels, env: Mapping[str, str] | None = None,
               timeout: float = 10.0) -> dict[str, str]:
    """Send to every configured channel; returns {channel: 'sent' | 'error: ...'}."""
    env = os.environ if env is None else env
    outcome: dict[str, str] = {}

    def attempt(name: str, fn) -> None:
        try:
            fn()
            outcome[name] = "sent"
        except Exception as exc:  # a broken channel must not stop the others
            outcome[name] = f"error: {type(exc).__name__}: {exc}"
            log.warning("alert channel %s failed: %s", name, type(exc).__name__)

    if channels.slack_webhook_url_env and env.get(channels.slack_webhook_url_env):
        url = env[channels.slack_webhook_url_env]
        body = {"text": alert.text(), "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{alert.title}*\n`{alert.where}`\n{alert.details}"}},
            *([{"type": "section", "text": {"type": "mrkdwn", "text": f"<{alert.run_url}|Open the run>"}}]
              if alert.run_url else []),
        ]}
        attempt("slack", lambda: requests.post(url, json=body, timeout=timeout).raise_for_status())

    if channels.webhook_url_env and env.get(channels.webhook_url_env):
        url = env[channels.webhook_url_env]
        payload = json.dumps(asdict(alert), sort_keys=True).encode()
        headers = {"Content-Type": "application/json"}
        secret = env.get(channels.webhook_secret_env or "", "")
        if secret:
            headers["X-Lifeline-Signature"] = sign(secret, payload, int(time.time()))
        attempt("webhook", lambda: requests.post(url, data=payload, headers=headers, timeout=timeout).raise_for_status())

    if channels.smtp is not None:
        smtp = channels.smtp

        def send_mail() -> None:
            msg = EmailMessage()
            msg["Subject"] = f"[Lifeline] {alert.title}"
            msg["From"] = smtp.sender
            msg["To"] = ", ".join(smtp.recipients)
            msg.set_content(alert.text())
            with smtplib.SMTP(smtp.host, smtp.port, timeout=timeout) as client:
                if smtp.starttls:
                    client.starttls()
                if smtp.username_env and env.get(smtp.username_env):
                    client.login(env[smtp.username_env], env.get(smtp.password_env or "", ""))
                client.send_message(msg)

        attempt("smtp", send_mail)
    return outcome
