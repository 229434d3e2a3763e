"""Log lines for operators: one line per event, secrets removed, patients' words never written.

python-telegram-bot logs the Bot API URL (with the token) at DEBUG, httpx logs every
request URL at INFO, and at DEBUG the library logs whole updates and request
parameters: patients' names, phone numbers and messages. The formatter removes the
secrets; the filter replaces the library's payloads by their shape (ids and lengths),
so even a DEBUG log can be shared with a vendor.
"""

from __future__ import annotations

import datetime as dtm
import json
import logging
import sys
from collections.abc import Mapping
from typing import Any, Literal, TextIO

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Containers deeper than this are summarised by their size alone.
SHAPE_DEPTH = 4


def shape(value: Any, depth: int = 0) -> Any:
    """``value`` with every text inside replaced by its length; ids, numbers and keys kept."""
    if isinstance(value, str):
        return f"<{len(value)} chars>"
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if depth >= SHAPE_DEPTH:
        return f"<{type(value).__name__}>"
    if isinstance(value, Mapping):
        return {str(k): shape(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [shape(v, depth + 1) for v in value]
    to_dict = getattr(value, "to_dict", None)  # python-telegram-bot's objects (Update, Message...)
    if callable(to_dict):
        try:
            return {type(value).__name__: shape(to_dict(), depth + 1)}
        except Exception:  # noqa: BLE001 - a log line must never fail
            return f"<{type(value).__name__}>"
    return f"<{type(value).__name__}>"


class WithoutPatientWords(logging.Filter):
    """Shapes the arguments of python-telegram-bot's log records (see module docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("telegram") and record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            # A bare string argument is an endpoint's or a method's name; anything else may carry words.
            record.args = tuple(a if isinstance(a, str) and len(a) <= 64 else shape(a) for a in args)
        return True


class RedactingFormatter(logging.Formatter):
    """Removes secrets from every formatted line, tracebacks included; optionally as JSON."""

    def __init__(self, secrets: list[str], *, style: Literal["text", "json"] = "text") -> None:
        super().__init__(TEXT_FORMAT)
        self._secrets = [s for s in secrets if s]
        self._json = style == "json"

    def format(self, record: logging.LogRecord) -> str:
        if self._json:
            entry = {
                "time": dtm.datetime.fromtimestamp(record.created, dtm.timezone.utc).isoformat(timespec="milliseconds"),
                "level": record.levelname,
                "logger": record.name,
                "message": record.getMessage(),
            }
            if record.exc_info:
                entry["exception"] = self.formatException(record.exc_info)
            text = json.dumps(entry, ensure_ascii=False)
        else:
            text = super().format(record)
        for secret in self._secrets:
            text = text.replace(secret, "<redacted>")
        return text


def configure_logging(level: str, secrets: list[str], *, style: Literal["text", "json"] = "text", stream: TextIO | None = None) -> None:
    """One handler on the root logger: every library's records go through the filter and the formatter."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(RedactingFormatter(secrets, style=style))
    handler.addFilter(WithoutPatientWords())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
