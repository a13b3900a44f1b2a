"""`syncs.yml`: one entry per sync, validated on load with errors naming file, line and field.

    syncs:
      - name: klaviyo_welcome
        source: {audience: welcome, channel: email}     # rows of audience_members, holdout excluded
        destination:
          type: klaviyo
          list_name: welcome
          base_url: ${LIFELINE_KLAVIYO_BASE_URL:-http://127.0.0.1:8787/klaviyo}
          api_key_env: KLAVIYO_API_KEY                  # secrets only from the environment
        mode: add_remove
        safety: {max_remove_share: 0.2, max_add_multiple: 10}
      - name: braze_profiles
        source: {audience: welcome, channel: email}
        mode: upsert
        fields: {tier: loyalty_tier, country: country}   # attribute <- model column (a list: same names)
        destination: {type: braze, base_url: ..., api_key_env: BRAZE_API_KEY}

`fields` sends columns of the source model as attributes (`lifeline_<attribute>`), next to the
payload's fields. Lifeline remembers which fields each row last carried (syncs.sent_fields): in
upsert mode a field that is no longer sent (removed from `fields`, or gone from the payload) is
cleared at the destination like a field that became null.

`${VAR:-default}` in base_url is filled from the environment when the sync runs.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal, Mapping

import yaml
from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo, field_validator,
                      model_validator)

from syncs.message_template import MessageTemplate
from syncs.quiet_hours import QuietHours
from syncs.yaml_lines import line_of

DestinationType = Literal["klaviyo", "mailchimp", "braze", "twilio", "meta", "google", "tiktok", "webhook", "file"]
_ENV_REF = re.compile(r"\$\{([A-Z0-9_]+)(?::-([^}]*))?\}")


def _numeric_id(value: object) -> str:
    text = str(value).strip() if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
    if not text.isdigit():
        raise ValueError("must be the platform's numeric id (digits only), e.g. 23850000000000000")
    return text


def _google_customer_id(value: object) -> str:
    text = str(value).strip() if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
    if not re.fullmatch(r"\d{3}-?\d{3}-?\d{4}", text):
        raise ValueError("must be the 10-digit Google Ads customer id, e.g. 123-456-7890")
    return text.replace("-", "")


NumericId = Annotated[str, BeforeValidator(_numeric_id)]
GoogleCustomerId = Annotated[str, BeforeValidator(_google_customer_id)]
# The ids each ad platform's audience needs (field -> what it is), checked when syncs.yml is loaded.
AD_PLATFORM_IDS = {
    "meta": {"audience_id": "the custom audience id (Ads Manager > Audiences)"},
    "google": {"customer_id": "the Google Ads account id, e.g. 123-456-7890",
               "audience_id": "the Customer Match user list id"},
    "tiktok": {"advertiser_id": "the TikTok advertiser id", "audience_id": "the custom_audience_id"},
}


_FIELD_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


def _field_mapping(value: object) -> object:
    """`fields` as {attribute: column}: a list names columns sent under their own names."""
    if isinstance(value, list):
        return {name: name for name in value} if all(isinstance(n, str) for n in value) else value
    return value


def _check_field_names(value: dict[str, str] | None) -> dict[str, str] | None:
    for attribute, column in (value or {}).items():
        for what, name in (("attribute", attribute), ("column", column)):
            if not _FIELD_NAME.match(name):
                raise ValueError(f"fields: {what} {name!r} must be a lower-case identifier (letters, digits, _)")
    return value


FieldMapping = Annotated[dict[str, str], BeforeValidator(_field_mapping)]


class SyncConfigError(ValueError):
    pass


class MissingSecret(RuntimeError):
    pass


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Source(_Strict):
    model: str = "audience_members"
    audience: str | None = None
    # default: ads for the ad platforms (AD_PLATFORM_IDS), email for every other destination
    channel: Literal["email", "sms", "ads"] = "email"
    include_holdout: Literal[False] = False  # holdout members are never synced


def fill_env(text: str, env: Mapping[str, str]) -> str:
    """`text` with each `${VAR:-default}` replaced by the variable's value (else the default)."""
    return _ENV_REF.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), text)


class OAuthRefresh(_Strict):
    """google: exchange a refresh token for short-lived access tokens at the token endpoint. Each
    `*_env` names the environment variable holding that value (never the value itself)."""
    client_id_env: str
    client_secret_env: str
    refresh_token_env: str
    token_url: str = "https://oauth2.googleapis.com/token"  # ${VAR:-default} filled like base_url

    def resolved_token_url(self, env: Mapping[str, str]) -> str:
        return fill_env(self.token_url, env)


class Destination(_Strict):
    type: DestinationType
    base_url: str
    api_key_env: str | None = None
    list_name: str | None = None   # klaviyo: the list, found by name or created; braze: the lifeline_audiences value
    list_id: str | None = None     # mailchimp: the audience (list) id
    # meta: custom audience id; google: Customer Match user list id; tiktok: custom_audience_id
    audience_id: NumericId | None = None
    customer_id: GoogleCustomerId | None = None   # google: the Google Ads account (operating account)
    advertiser_id: NumericId | None = None        # tiktok: the advertiser account
    format: Literal["csv", "parquet"] = "csv"  # file: base_url is the output folder
    revision: str = "2026-07-15"
    # false only against a sandbox started without rate limits (tests); real platforms need them
    client_rate_limits: bool = True
    # seconds an HTTP call to the destination may wait for the connection or the next byte of the answer
    timeout_s: float = Field(60, gt=0)
    # twilio: account_sid_env and api_key_env (the auth token) name variables; one sender of the two
    account_sid_env: str | None = None
    from_number: str | None = Field(None, pattern=r"^\+[1-9]\d{6,14}$")
    messaging_service_sid: str | None = Field(None, pattern=r"^MG[0-9a-fA-F]{32}$")
    status_callback: str | None = None
    # meta: the variable holding the app secret; when set, every call carries appsecret_proof
    app_secret_env: str | None = None
    # google: refresh credentials instead of a fixed access token in api_key_env
    oauth: OAuthRefresh | None = None

    def resolved_base_url(self, env: Mapping[str, str]) -> str:
        return fill_env(self.base_url, env).rstrip("/")

    def api_key(self, env: Mapping[str, str]) -> str:
        if not self.api_key_env:
            raise MissingSecret(f"destination {self.type} needs api_key_env naming the variable that holds its key")
        return self.secret(env, self.api_key_env, "API key")

    def secret(self, env: Mapping[str, str], variable: str, what: str) -> str:
        """The value of the environment variable `variable` (named in syncs.yml); MissingSecret when unset."""
        value = env.get(variable)
        if not value:
            raise MissingSecret(f"environment variable {variable} is not set: export it with the {self.type} "
                                f"{what} (secrets are never read from syncs.yml)")
        return value


class Safety(_Strict):
    max_remove_share: float = Field(0.2, ge=0, le=1)
    max_add_multiple: float = Field(10.0, gt=0)


class SyncConfig(_Strict):
    name: str = Field(pattern=r"^[a-z0-9_]+$")
    source: Source
    mode: Literal["add_remove", "upsert", "mirror", "trigger"] = "add_remove"  # before destination: its check reads it
    destination: Destination
    # attribute -> column of the source model, sent as `lifeline_<attribute>` (a list: same names)
    fields: FieldMapping | None = None
    schedule: str | None = None
    safety: Safety = Safety()
    message: MessageTemplate | None = None         # trigger mode: the text sent
    quiet_hours: QuietHours | None = QuietHours()  # trigger mode: recipient's local time; null = any hour

    @field_validator("destination")
    @classmethod
    def _klaviyo_needs_list(cls, value: Destination, info: ValidationInfo) -> Destination:
        if value.type == "klaviyo" and not value.list_name and info.data.get("mode") != "upsert":
            raise ValueError("a klaviyo destination needs list_name (upsert mode, which writes profiles only, "
                             "does not)")
        if value.type == "mailchimp" and not value.list_id:
            raise ValueError("a mailchimp destination needs list_id (the audience id from Audience settings)")
        if value.type == "twilio" and not (value.account_sid_env and value.api_key_env):
            raise ValueError("a twilio destination needs account_sid_env and api_key_env (the variables holding the "
                             "account SID and the auth token)")
        if value.type == "twilio" and bool(value.from_number) == bool(value.messaging_service_sid):
            raise ValueError("a twilio destination needs exactly one of from_number (E.164) and messaging_service_sid")
        return value

    @field_validator("destination")
    @classmethod
    def _fields_of_other_platforms(cls, value: Destination) -> Destination:
        if value.app_secret_env and value.type != "meta":
            raise ValueError("app_secret_env is for meta destinations (the app secret behind appsecret_proof)")
        if value.oauth and value.type != "google":
            raise ValueError("oauth (refresh-token credentials) is for google destinations")
        if value.oauth and value.api_key_env:
            raise ValueError("give a google destination either api_key_env (a fixed access token) or oauth "
                             "(refresh credentials), not both")
        return value

    @field_validator("fields")
    @classmethod
    def _fields_are_identifiers(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return _check_field_names(value)

    @model_validator(mode="after")
    def _ad_platforms_read_the_ads_channel(self) -> "SyncConfig":
        """An ad sync without `channel` reads channel ads of audience_members: identifiers with consent
        on their own channel, without an ad-targeting opt-out. `channel: email` keeps the email rows."""
        if self.destination.type in AD_PLATFORM_IDS and "channel" not in self.source.model_fields_set:
            self.source.channel = "ads"
        return self

    @model_validator(mode="after")
    def _trigger_needs_message(self) -> "SyncConfig":
        if self.mode == "trigger" and self.destination.type == "twilio" and self.message is None:
            raise ValueError(f"trigger sync {self.name} needs message: {{body: \"...\"}} (the text sent, with "
                             "{payload_field} placeholders)")
        if self.mode == "trigger" and self.fields:
            raise ValueError(f"sync {self.name}: fields is for syncs that send profile attributes (upsert, add_remove, "
                             "mirror); a trigger's message uses the payload's fields: remove fields")
        if self.destination.type == "twilio" and self.mode != "trigger":
            raise ValueError(f"sync {self.name}: a twilio destination sends messages; set mode: trigger")
        return self

    @field_validator("destination")
    @classmethod
    def _ad_platform_needs_ids(cls, value: Destination) -> Destination:
        missing = [f"{name} ({meaning})" for name, meaning in AD_PLATFORM_IDS.get(value.type, {}).items()
                   if not getattr(value, name)]
        if value.type in AD_PLATFORM_IDS and not value.api_key_env and not value.oauth:
            missing.append("api_key_env (the variable holding the access token)" + (
                " or oauth: {client_id_env, client_secret_env, refresh_token_env}" if value.type == "google" else ""))
        if missing:
            raise ValueError(f"a {value.type} destination needs {', '.join(missing)}")
        return value


class SyncsFile(_Strict):
    syncs: list[SyncConfig]

    @field_validator("syncs")
    @classmethod
    def _unique(cls, value: list[SyncConfig]) -> list[SyncConfig]:
        names = [s.name for s in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"sync names must be unique: {', '.join(dupes)}")
        return value


def load_syncs(path: Path) -> list[SyncConfig]:
    path = Path(path)
    if not path.exists():
        raise SyncConfigError(f"{path}: no such file. Create a syncs.yml (see README, 'Syncs').")
    text = path.read_text()
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise SyncConfigError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return SyncsFile.model_validate(data or {}).syncs
    except ValidationError as exc:
        problems = [f"{path}:{line_of(root, err['loc']) or '?'}: {'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
                    for err in exc.errors()]
        raise SyncConfigError("invalid syncs configuration:\n  " + "\n  ".join(problems)) from exc


def environment(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env
