"""Who a login names: emails, external ids and the lookups they lead to.

One normal form for emails: trimmed, NFC, lowercased. Identifiers must mean
one thing, so characters that hide or fake other characters are refused:
controls, bidirectional and other invisible format characters, and any
non-ASCII character that case folding or compatibility normalisation turns
into ASCII (the KELVIN SIGN ``K`` would otherwise reach ``k``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

MAX_EMAIL_LENGTH = 254
MAX_EXTERNAL_ID_LENGTH = 255
MAX_NAME_LENGTH = 128

# Deliberately plain: one @, no spaces, a dot in the domain. Deliverability is
# the customer's business; this only keeps junk out of a unique index.
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
# Controls, format characters (bidi overrides, zero-width joiners), surrogates.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


def has_hidden_characters(text: str) -> bool:
    """True when ``text`` holds a control, bidi/format, surrogate or unassigned character."""
    if text.isascii() and text.isprintable():
        return False
    return any(unicodedata.category(ch) in _HIDDEN_CATEGORIES for ch in text)


def _fakes_ascii(ch: str) -> bool:
    """A non-ASCII character that folds or normalises to ASCII: KELVIN SIGN, LONG S, fullwidth letters."""
    variants = ch.casefold() + ch.lower() + unicodedata.normalize("NFKC", ch)
    return any(v.isascii() for v in variants)


def normalize_email(raw: str) -> str | None:
    """The email in its normal form (trimmed, NFC, lowercased), or None when it is not one."""
    email = raw.strip()
    if not email.isascii():
        # Checked before NFC, which itself turns the KELVIN SIGN into ``K``.
        if any(_fakes_ascii(ch) for ch in email if not ch.isascii()):
            return None
        email = unicodedata.normalize("NFC", email)
    email = email.lower()
    if len(email) > MAX_EMAIL_LENGTH or not _EMAIL.match(email):
        return None
    domain = email.rpartition("@")[2]
    if domain.startswith(".") or domain.endswith(".") or ".." in domain:
        return None
    if has_hidden_characters(email):
        return None
    return email


def external_id_from(value: object) -> str | None:
    """An id as the customer's system gives it: a string, or a whole number as its decimal string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        return None
    if not value.strip() or len(value) > MAX_EXTERNAL_ID_LENGTH or has_hidden_characters(value):
        return None
    return value


# "id": Chatgate's own id of an account still in use (neither merged nor displaced), for a sign-in that has
# already identified it (a password checked against it).
LookupField = Literal["external_id", "email", "external_id_or_id", "id"]


@dataclass(frozen=True)
class Lookup:
    """How to find an existing end user of a project."""

    by: LookupField
    value: str
