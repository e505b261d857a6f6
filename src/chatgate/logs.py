"""Logging for ``chatgate serve``: uvicorn's set-up, with query strings kept out of the access log."""

from __future__ import annotations

import copy
import logging
from typing import Any

from uvicorn.config import LOGGING_CONFIG

REDACTED_QUERY = "?<redacted>"


class RedactQueryStrings(logging.Filter):
    """Sign-in codes and emails travel in query strings (``/?externalAuthCode=…``): log the path only."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        # uvicorn's access record: (client address, method, path with query string, HTTP version, status).
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str) and "?" in args[2]:
            path = args[2].split("?", 1)[0]
            record.args = (*args[:2], path + REDACTED_QUERY, *args[3:])
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's default logging with the redacting filter on the access logger (worker processes apply it too)."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"redact_query_strings": {"()": f"{__name__}.{RedactQueryStrings.__name__}"}}
    config["loggers"]["uvicorn.access"]["filters"] = ["redact_query_strings"]
    return config
