"""Who a login names: emails, external ids and the lookups they lead to."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

MAX_EMAIL_LENGTH = 254
MAX_EXTERNAL_ID_LENGTH = 256
MAX_NAME_LENGTH = 128

# Deliberately plain: one @, no spaces, a dot in the domain. Deliverability is
# the customer's business; this only keeps junk out of a unique index.
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


def normalize_email(raw: str) -> str | None:
    """Trimmed, lowercased email, or None when it is not one."""
    email = raw.strip().lower()
    if len(email) > MAX_EMAIL_LENGTH or not _EMAIL.match(email):
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
    if not value.strip() or len(value) > MAX_EXTERNAL_ID_LENGTH:
        return None
    return value


LookupField = Literal["external_id", "email", "external_id_or_id"]


@dataclass(frozen=True)
class Lookup:
    """How to find an existing end user of a project."""

    by: LookupField
    value: str
