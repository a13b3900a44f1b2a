"""`lifeline feedback serve|pull`: run the receiver on loopback, or pull Klaviyo events once.

Secrets come from the environment variables that lifeline.yml's `feedback:` section names
(defaults: TWILIO_AUTH_TOKEN, LIFELINE_WEBHOOK_SECRET, KLAVIYO_API_KEY); they are never printed.
"""
from __future__ import annotations

import os

import click

from orchestration.config import ConfigError, Feedback, load_config
from syncs.feedback.cursors import CursorStore
from syncs.feedback.klaviyo_pull import KlaviyoPullError, pull_klaviyo_events
from syncs.feedback.receiver import ReceiverSecrets, create_receiver
from syncs.feedback.writer import MessageEventWriter
from syncs.warehouse import Warehouse, WarehouseConfigError


def _settings() -> Feedback:
    try:
        return load_config().feedback
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def _warehouse() -> Warehouse:
    try:
        return Warehouse.from_env()
    except WarehouseConfigError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
def feedback() -> None:
    """Record platform delivery and engagement events in raw.message_events."""


@feedback.command()
@click.option("--port", type=int, default=None, help="Loopback port (default: feedback.port in lifeline.yml, 8788).")
@click.option("--public-url", default=None, help="Base URL the platforms call, when a proxy forwards to this port.")
def serve(port: int | None, public_url: str | None) -> None:
    """Receive signed Twilio status callbacks (POST /twilio/status) and webhooks (POST /webhook) on 127.0.0.1."""
    import uvicorn

    settings = _settings()
    secrets = ReceiverSecrets(os.environ.get(settings.twilio_auth_token_env),
                              os.environ.get(settings.webhook_secret_env), settings.webhook_tolerance_s)
    for name, value in ((settings.twilio_auth_token_env, secrets.twilio_auth_token),
                        (settings.webhook_secret_env, secrets.webhook_secret)):
        if not value:
            click.echo(f"warning: {name} is not set; requests needing it are refused with 403", err=True)
    app = create_receiver(MessageEventWriter(_warehouse()), secrets, public_url or settings.public_url)
    port = settings.port if port is None else port
    click.echo(f"feedback receiver on http://127.0.0.1:{port} (POST /twilio/status, POST /webhook); Ctrl-C stops it")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


@feedback.command()
@click.option("--base-url", default=None, help="Klaviyo base URL (default: feedback.klaviyo_base_url).")
@click.option("--page-size", type=click.IntRange(1, 200), default=100, show_default=True)
def pull(base_url: str | None, page_size: int) -> None:
    """Pull Klaviyo events since the stored cursor into raw.message_events."""
    settings = _settings()
    api_key = os.environ.get(settings.klaviyo_api_key_env)
    if not api_key:
        raise click.ClickException(f"environment variable {settings.klaviyo_api_key_env} is not set: export the "
                                   "Klaviyo private API key there (or name another in feedback.klaviyo_api_key_env)")
    warehouse = _warehouse()
    try:
        result = pull_klaviyo_events(MessageEventWriter(warehouse), CursorStore(warehouse),
                                     base_url or settings.klaviyo_base_url, api_key, page_size=page_size)
    except KlaviyoPullError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"klaviyo: {result.events} event(s) on {result.pages} page(s), {result.written} new; "
               f"cursor {result.cursor}")
