"""The parameters a suite run accepts (`params=` of run_suite / run_all), validated."""
from __future__ import annotations

from datetime import datetime, timezone

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class DQParams(BaseModel):
    """Unknown keys are rejected, so a misspelt threshold cannot be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    as_of: datetime = Field(default_factory=lambda: datetime.now(timezone.utc),
                            description="'now' for timestamp sanity (the dbt var as_of)")
    future_tolerance_days: float = Field(1.0, ge=0)
    contactability_min: float = Field(0.2, ge=0, le=1)
    contactability_max: float = Field(1.0, ge=0, le=1)
    max_size_change: float = Field(0.5, gt=0, description="allowed relative change of an audience's size")

    @field_validator("as_of")
    @classmethod
    def _utc_when_naive(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)

    @model_validator(mode="after")
    def _bounds_ordered(self) -> "DQParams":
        if self.contactability_min > self.contactability_max:
            raise ValueError("contactability_min must not exceed contactability_max")
        return self
