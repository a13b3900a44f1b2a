"""The text of a trigger message: a template in syncs.yml filled from the row's payload fields.

    message:
      body: "Hi {first_name}, {product_name} is still in your cart: {product_url} Reply STOP to opt out."

Fields are the keys of audience_members.payload plus first_name and last_name; `{{` and `}}` are
literal braces; `{first_name|there}` falls back to the text after `|` when the row has no value.
Only plain names are allowed (no attribute access, indexing or format specs), so a template can
never reach anything but the row. A field without a fallback that is missing or empty in a row
makes that row a per-row rejection rather than a message with a hole in it. The body embeds nothing secret:
it is exactly what the recipient reads, and trigger mode matches it when it asks the platform
whether a message was already sent.
"""
from __future__ import annotations

import json
import string
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

_FORMATTER = string.Formatter()


class TemplateFieldMissing(ValueError):
    """The row has no value for a field the template names."""


class MessageTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    body: str

    @field_validator("body")
    @classmethod
    def _plain_fields(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the message body is empty")
        try:
            parts = list(_FORMATTER.parse(value))
        except ValueError as exc:
            raise ValueError(f"the message body is not a valid template ({exc}); write literal braces as {{{{ and }}}}") from None
        for _, field, spec, conversion in parts:
            if field is None:
                continue
            name, _, fallback = field.partition("|")
            if not name.isidentifier() or spec or conversion:
                raise ValueError(f"template field {{{field}{'!' + conversion if conversion else ''}"
                                 f"{':' + spec if spec else ''}}} is not a plain payload field name such as "
                                 "{first_name} or {first_name|there}")
        return value

    @property
    def fields(self) -> list[str]:
        """The placeholders as written: `name` or `name|fallback`."""
        return [field for _, field, _, _ in _FORMATTER.parse(self.body) if field]

    def render(self, row: Mapping[str, Any]) -> str:
        """The body for one source row (payload JSON text plus first_name/last_name columns)."""
        values = row_fields(row)
        filled: dict[str, str] = {}
        missing: set[str] = set()
        for field in self.fields:
            name, has_fallback, fallback = field.partition("|")
            value = values.get(name)
            if value in (None, "") and not has_fallback:
                missing.add(name)
            filled[field] = fallback if value in (None, "") else _text(value)
        if missing:
            raise TemplateFieldMissing(f"no value for template field(s) {', '.join(sorted(missing))}")
        return _FORMATTER.vformat(self.body, (), filled)


def row_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    try:
        payload = json.loads(row.get("payload") or "{}")
    except (TypeError, ValueError):
        payload = {}
    fields = {k: row.get(k) for k in ("first_name", "last_name") if row.get(k) is not None}
    if isinstance(payload, dict):
        fields.update({k: v for k, v in payload.items() if v is not None})
    return fields


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
