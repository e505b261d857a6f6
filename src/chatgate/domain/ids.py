"""Opaque ids that sort by creation time: 6 bytes of milliseconds, 6 random."""

from __future__ import annotations

import os
import re
import time

ID_PATTERN = re.compile(r"^[0-9a-f]{24}$")


def new_id() -> str:
    millis = int(time.time() * 1000)
    return millis.to_bytes(6, "big").hex() + os.urandom(6).hex()


def looks_like_id(value: str) -> bool:
    return bool(ID_PATTERN.match(value))
