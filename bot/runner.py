"""Composition root: configuration, knowledge, store, dialogue and Telegram wired together."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from bot.config import Config, ConfigError
from bot.core.dialogue import Dialogue
from bot.core.knowledge import ClinicFacts
from bot.knowledge_files import load_knowledge
from bot.storage import Store

NO_TOKEN_NOTICE = (
    "No Telegram token configured, so this is the console chat. To run in Telegram, copy "
    "config.example.yaml to config.yaml and set telegram.token and telegram.staff_chat_id "
    "(or set TELEGRAM_BOT_TOKEN)."
)


class RedactingFormatter(logging.Formatter):
    """Removes secrets from every formatted log line, tracebacks included.

    python-telegram-bot logs the Bot API URL at DEBUG and httpx logs every
    request URL at INFO; both contain the token.
    """

    def __init__(self, fmt: str, secrets: list[str]) -> None:
        super().__init__(fmt)
        self._secrets = [s for s in secrets if s]

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        for secret in self._secrets:
            text = text.replace(secret, "<redacted>")
        return text


def configure_logging(config: Config, stream: TextIO | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    secrets = [config.telegram.token, config.telegram.webhook.secret_token]
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(config.log_level)


def build_dialogue(config: Config) -> Dialogue:
    """The dialogue for this deployment: its FAQ, phone region and clinic facts (checked against the FAQ's languages)."""
    knowledge = load_knowledge(config.faq_path)
    for name in ClinicFacts.CONTACT_FIELDS:
        for code in getattr(config.clinic, name):
            if code != "*" and code not in knowledge.languages:
                spoken = ", ".join(knowledge.languages)
                raise ConfigError(config.source, f"clinic.{name}.{code}", f"the FAQ has no language {code!r} (it has {spoken})")
    return Dialogue(knowledge, phone_region=config.phone_region, clinic=config.clinic)


def run_telegram(config: Config) -> int:
    """Run until SIGINT/SIGTERM; returns the process exit code."""
    from telegram.error import InvalidToken, TelegramError

    from bot.telegram_app import ALLOWED_UPDATES, SetupError, build_application

    configure_logging(config)
    dialogue = build_dialogue(config)
    store = Store(config.storage_path)
    application = build_application(config, dialogue, store)
    log = logging.getLogger("bot")
    try:
        if config.telegram.mode == "webhook":
            webhook = config.telegram.webhook
            application.run_webhook(
                listen=webhook.listen,
                port=webhook.port,
                url_path=webhook.path,
                webhook_url=webhook.url,
                secret_token=webhook.secret_token,
                allowed_updates=ALLOWED_UPDATES,
            )
        else:
            application.run_polling(allowed_updates=ALLOWED_UPDATES)
    except InvalidToken:
        log.error("telegram.token: Telegram rejected the token. Copy it again from @BotFather.")
        return 2
    except SetupError as exc:
        log.error("%s", exc)
        return 2
    except TelegramError as exc:
        log.error("Telegram refused to start the bot: %s", exc)
        return 2
    finally:
        store.close()
    return 0
