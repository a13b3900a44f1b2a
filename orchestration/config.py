"""`lifeline.yml`: the one place for schedules, alert channels, thresholds and the landing folder.

Looked up at LIFELINE_CONFIG, else ./lifeline.yml, else the project's own; every key is optional.
The warehouse itself is chosen by the environment (contract §3), so credentials never sit in a
file. Validation errors name the file, the line and the field.
"""
from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from orchestration.dbt_runner import PROJECT_ROOT
from syncs.yaml_lines import line_of


class ConfigError(ValueError):
    pass


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SmtpChannel(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(25, ge=1, le=65535)
    sender: str = "lifeline@localhost"
    recipients: list[str] = Field(min_length=1)
    username_env: str | None = None
    password_env: str | None = None
    starttls: bool = False


class AlertChannels(_Strict):
    slack_webhook_url_env: str | None = Field(None, description="env var holding a Slack-compatible incoming webhook URL")
    webhook_url_env: str | None = Field(None, description="env var holding a generic webhook URL (JSON POST)")
    webhook_secret_env: str | None = Field(None, description="env var holding the HMAC secret for the generic webhook")
    smtp: SmtpChannel | None = None
    ui_base_url: str = "http://127.0.0.1:3000"


def _valid_cron(value: str) -> str:
    from dagster._utils.schedules import is_valid_cron_string

    if not is_valid_cron_string(value):
        raise ValueError(f"{value!r} is not a valid cron expression")
    return value


Cron = Annotated[str, AfterValidator(_valid_cron)]


class Schedules(_Strict):
    incremental_cron: Cron = "0 * * * *"
    nightly_check_cron: Cron = "30 2 * * *"
    timezone: str = "UTC"
    enabled: bool = False



class Thresholds(_Strict):
    max_remove_share: float = Field(0.2, ge=0, le=1)
    max_add_multiple: float = Field(10.0, gt=0)
    raw_freshness_hours: float = Field(26.0, gt=0)


class Feedback(_Strict):
    """The feedback loop (syncs/feedback): secrets come only from the environment variables named here."""
    port: int = Field(8788, ge=1, le=65535, description="loopback port of `lifeline feedback serve`")
    public_url: str | None = Field(None, description="the public base URL Twilio calls, when behind a proxy")
    twilio_auth_token_env: str = "TWILIO_AUTH_TOKEN"
    webhook_secret_env: str = "LIFELINE_WEBHOOK_SECRET"
    webhook_tolerance_s: int = Field(300, ge=1)
    klaviyo_api_key_env: str = "KLAVIYO_API_KEY"
    klaviyo_base_url: str = "http://127.0.0.1:8787/klaviyo"
    enabled: bool = Field(False, description="run the Dagster schedule `feedback_pull` by default")
    pull_cron: Cron = Field("*/15 * * * *", description="when the Dagster schedule `feedback_pull` pulls Klaviyo events")


class Partitions(_Strict):
    """Daily UTC partitions of the incremental (event-derived) dbt models."""
    start_date: date = Field(date(2024, 1, 1), description="first daily partition (YYYY-MM-DD, UTC)")


class LifelineConfig(_Strict):
    landing_dir: Path = Path("landing")
    sensor_interval_seconds: int = Field(10, ge=5, description="how often the landing sensor looks for new files "
                                         "(a directory listing; the wait adds half of it to freshness on average)")
    dbt_runs_kept: int = Field(50, ge=1, description="how many dbt invocation folders (artifacts and dbt.log of one "
                               "Dagster step) stay in dbt_project/target; older ones are removed after each step")
    schedules: Schedules = Schedules()
    alerts: AlertChannels = AlertChannels()
    thresholds: Thresholds = Thresholds()
    feedback: Feedback = Feedback()
    partitions: Partitions = Partitions()


def config_path(env: dict[str, str] | None = None) -> Path | None:
    env = dict(os.environ) if env is None else env
    for candidate in (env.get("LIFELINE_CONFIG"), Path.cwd() / "lifeline.yml", PROJECT_ROOT / "lifeline.yml"):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    return None


def load_config(path: Path | None = None) -> LifelineConfig:
    path = path or config_path()
    if path is None:
        return LifelineConfig()
    text = Path(path).read_text()
    try:
        data = yaml.safe_load(text) or {}
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    try:
        config = LifelineConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            line = line_of(root, err["loc"])
            problems.append(f"{path}:{line or '?'}: {field}: {err['msg']}")
        raise ConfigError("invalid Lifeline configuration:\n  " + "\n  ".join(problems)) from exc
    if not config.landing_dir.is_absolute():
        config.landing_dir = (Path(path).parent / config.landing_dir).resolve()
    return config
