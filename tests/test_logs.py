"""Log lines: secrets removed, patients' words never written, JSON for log collectors."""

from __future__ import annotations

import io
import json
import logging

from telegram import Update

from bot.logs import configure_logging

TOKEN = "123456:SECRET-token"
UPDATE = {
    "update_id": 7,
    "message": {
        "message_id": 3, "date": 0, "chat": {"id": 42, "type": "private", "first_name": "Mina"},
        "from": {"id": 42, "is_bot": False, "first_name": "Mina"}, "text": "my phone is 010 1234 5678",
    },
}


def logged(style: str = "text") -> str:
    out = io.StringIO()
    configure_logging("DEBUG", [TOKEN], style=style, stream=out)  # type: ignore[arg-type]
    try:
        # As python-telegram-bot logs at DEBUG: the whole update, the request's parameters.
        logging.getLogger("telegram.ext.Application").debug("Processing update %s", Update.de_json(UPDATE, None))
        logging.getLogger("telegram.ext.ExtBot").debug(
            "Calling Bot API endpoint `%s` with parameters `%s`", "sendMessage", {"chat_id": 42, "text": "Mina, your consult is at 3"}
        )
        logging.getLogger("httpx").info("POST https://api.telegram.org/bot%s/sendMessage", TOKEN)
    finally:
        configure_logging("WARNING", [])
    return out.getvalue()


def test_no_patient_words_names_or_numbers_even_at_debug() -> None:
    text = logged()
    assert "010 1234 5678" not in text and "Mina" not in text and "consult" not in text
    assert "sendMessage" in text and "'chat_id': 42" in text and "<26 chars>" in text  # ids and lengths stay
    assert TOKEN not in text and "<redacted>" in text


def test_json_lines_for_log_collectors() -> None:
    lines = [json.loads(line) for line in logged("json").splitlines()]
    assert [line["logger"] for line in lines] == ["telegram.ext.Application", "telegram.ext.ExtBot", "httpx"]
    assert {"time", "level", "message"} <= set(lines[0])
    assert all("Mina" not in line["message"] and TOKEN not in line["message"] for line in lines)
