"""Pure normalise-and-hash functions for the ad platforms (shared/destinations.md §2, §3b, §7).

Each platform matches hashed identifiers, so a byte of difference in normalisation means a
missed match. The rules follow the vendors' own formatters; tests use their published vectors.
Invalid input raises ValueError with the reason (never the value: it is PII).
"""
from __future__ import annotations

import hashlib
import re

_GOOGLE_MAIL_DOMAINS = ("gmail.com", "googlemail.com")
_WHITESPACE = re.compile(r"\s+")


def sha256_hex(value: str) -> str:
    if not value or not value.strip():
        raise ValueError("cannot hash an empty value")
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def _email_parts(email: str | None) -> tuple[str, str]:
    text = (email or "").strip().lower()
    if _WHITESPACE.search(text):
        raise ValueError("email contains whitespace")
    local, at, domain = text.partition("@")
    if not at or not local or not domain or "@" in domain:
        raise ValueError("email must have exactly one @ with text on both sides")
    return local, domain


# -- Google Data Manager API (§3b, googleads/data-manager-python format.py) -----------------------
def google_email(email: str | None) -> str:
    """Trim, lowercase; for gmail.com/googlemail.com drop dots and any +suffix from the local part."""
    local, domain = _email_parts(email)
    if domain in _GOOGLE_MAIL_DOMAINS:
        local = local.split("+", 1)[0].replace(".", "")
        if not local:
            raise ValueError("gmail address has an empty local part after removing dots")
    return f"{local}@{domain}"


def google_phone(phone: str | None) -> str:
    """Digits only, prefixed with +."""
    digits = re.sub(r"\D", "", phone or "")
    if not digits:
        raise ValueError("phone number has no digits")
    return f"+{digits}"


def google_name(name: str | None) -> str:
    text = (name or "").strip().lower()
    if not text:
        raise ValueError("name is empty")
    return text


def google_hash(normalised: str) -> str:
    """Data Manager hashing: remove all whitespace, SHA-256, lowercase hex (encoding HEX)."""
    return sha256_hex(_WHITESPACE.sub("", normalised))


# -- Meta custom audiences (§2, multi-key schema EMAIL/PHONE) ------------------------------------
def meta_email(email: str | None) -> str:
    local, domain = _email_parts(email)
    return f"{local}@{domain}"


def meta_phone(phone: str | None) -> str:
    """Digits only, no leading zeros; our phones are E.164, so the country code is already there."""
    digits = re.sub(r"\D", "", phone or "").lstrip("0")
    if not digits:
        raise ValueError("phone number has no digits")
    return digits


def meta_name(name: str | None) -> str:
    """Lowercase letters only (UTF-8 letters kept), no punctuation or spaces."""
    text = "".join(ch for ch in (name or "").strip().lower() if ch.isalpha())
    if not text:
        raise ValueError("name has no letters")
    return text


# -- TikTok customer files (§7, current help page: E.164 phones) ---------------------------------
def tiktok_email(email: str | None) -> str:
    return meta_email(email)


def tiktok_phone(phone: str | None) -> str:
    return google_phone(phone)
