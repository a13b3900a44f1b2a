"""Quiet hours by the recipient's local time (trigger mode): no message between `start` and `end`.

The recipient's time zone comes from the phone number (the `phonenumbers` package, which maps a
number's country calling code and, where the numbering plan tells it, its area code to IANA
zones; the models carry no profile time zone):

1. the number's own zones (`+1 212 ...` -> America/New_York, `+49 151 ...` -> Europe/Berlin);
2. when the number says nothing (an unassigned range), the zones of its country calling code
   (`+44` -> Europe/London, the Channel Islands and the Isle of Man; `+1` -> all of NANP);
3. otherwise `default_timezone`.

A number with several candidate zones (Australian mobiles span UTC+7 to UTC+11) is quiet when it
is quiet in any of them, so nobody is woken up; if the zones are so far apart that they share no
sending hour at all (all of North America for an unknown `+1` number), `default_timezone` is used
instead, since "quiet in any" would defer that person forever.

Rows in quiet hours are deferred, neither sent nor marked, and a later run sends them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_DAY = timedelta(hours=24)


class QuietHours(BaseModel):
    """`quiet_hours: {start: "21:00", end: "08:00", default_timezone: UTC}` in syncs.yml (the
    default for every trigger sync); `quiet_hours: null` sends at any hour."""

    model_config = ConfigDict(extra="forbid")
    start: str = "21:00"
    end: str = "08:00"
    default_timezone: str = "UTC"  # for numbers whose zone the number does not tell

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not isinstance(value, str) or not _HHMM.match(value):
            raise ValueError(f"{value!r} is not a 24-hour time HH:MM such as \"21:00\" (quote it in YAML)")
        return value

    @field_validator("default_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone such as UTC or Europe/London") from None
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("quiet_hours start and end are equal; write `quiet_hours: null` to send at any hour")
        return self

    @property
    def window(self) -> tuple[time, time]:
        return time.fromisoformat(self.start), time.fromisoformat(self.end)

    @property
    def quiet_length(self) -> timedelta:
        start, end = (datetime.combine(datetime.min, t) for t in self.window)
        return (end - start) % _DAY

    def quiet_at(self, local: time) -> bool:
        start, end = self.window
        local = local.replace(second=0, microsecond=0, tzinfo=None)
        return start <= local < end if start < end else local >= start or local < end


def zones_for_phone(phone: str) -> tuple[str, ...]:
    """IANA zones the number may be in (empty when neither the number nor its country tells).
    phonenumbers is imported here, by the trigger syncs that need it: every other sync imports this
    module (syncs.config) and would pay ~20 ms for its tables."""
    import phonenumbers
    from phonenumbers import timezone as phone_zones

    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return ()
    zones = tuple(z for z in phone_zones.time_zones_for_number(number) if z != phone_zones.UNKNOWN_TIMEZONE)
    if zones:
        return zones
    # the zones of the whole calling code (the library's table keyed by prefix; "1" is all of NANP)
    country = phone_zones.TIMEZONE_DATA.get(str(number.country_code)) or ()
    return tuple(z for z in country if z != phone_zones.UNKNOWN_TIMEZONE)


@dataclass
class QuietClock:
    """Decides, for one run at one instant `now` (UTC), whether a phone number is in quiet hours.
    Keeps a per-run cache of each number's zones."""

    rules: QuietHours | None
    now: datetime
    _cache: dict[str, tuple[ZoneInfo, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.now = self.now if self.now.tzinfo else self.now.replace(tzinfo=timezone.utc)

    def zones(self, phone: str) -> tuple[ZoneInfo, ...]:
        assert self.rules is not None
        if phone not in self._cache:
            candidates = [ZoneInfo(z) for z in zones_for_phone(phone)]
            offsets = [self.now.astimezone(z).utcoffset() or timedelta(0) for z in candidates]
            sendable = _DAY - self.rules.quiet_length
            if not candidates or max(offsets) - min(offsets) > sendable:
                candidates = [ZoneInfo(self.rules.default_timezone)]
            self._cache[phone] = tuple(candidates)
        return self._cache[phone]

    def quiet(self, phone: str) -> bool:
        if self.rules is None:
            return False
        return any(self.rules.quiet_at(self.now.astimezone(zone).time()) for zone in self.zones(phone))
