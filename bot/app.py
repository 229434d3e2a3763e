"""Composition root: configuration, knowledge, store, dialogue and Telegram wired together."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Any, TextIO

from bot.config import Config, ConfigError
from bot.core.desk import Desk
from bot.core.dialogue import Dialogue
from bot.core.knowledge import ClinicFacts
from bot.knowledge_files import load_knowledge
from bot.logs import configure_logging
from bot.service import EXIT_ALREADY_RUNNING, EXIT_CONFIG, AlreadyRunning, InstanceLock
from bot.adapters.sqlite.store import Store

NO_TOKEN_NOTICE = (
    "No Telegram token configured, so this is the console chat. To run in Telegram, copy "
    "config.example.yaml to config.yaml and set telegram.token and telegram.staff_chat_id "
    "(or set TELEGRAM_BOT_TOKEN)."
)


def build_dialogue(config: Config) -> Dialogue:
    """The dialogue for this deployment: its FAQ, phone region and clinic facts (checked against the FAQ's languages)."""
    if not config.faq_path.exists():
        base = f"the config file's folder, {config.source.parent}" if config.source else f"the current folder, {Path.cwd()}"
        raise ConfigError(config.source, "faq.path", f"{config.faq_path} does not exist (a relative path is resolved against {base})")
    knowledge = load_knowledge(config.faq_path)
    for name in ClinicFacts.CONTACT_FIELDS:
        for code in getattr(config.clinic, name):
            if code != "*" and code not in knowledge.languages:
                spoken = ", ".join(knowledge.languages)
                raise ConfigError(config.source, f"clinic.{name}.{code}", f"the FAQ has no language {code!r} (it has {spoken})")
    return Dialogue(knowledge, phone_region=config.phone_region, clinic=config.clinic, staff_keep_records=config.staff_keep_records)


def build_desk(config: Config, dialogue: Dialogue | None = None) -> Desk:
    """The front desk for this deployment, as every channel (Telegram, the console) runs it."""
    return Desk(
        dialogue or build_dialogue(config),
        transcript_lines=config.transcript_lines,
        hours=config.staff_hours,
    )


def run_telegram(config: Config) -> int:
    """Run until SIGINT/SIGTERM; returns the process exit code."""
    from telegram.error import InvalidToken, TelegramError

    from bot.adapters.telegram.app import ALLOWED_UPDATES, SetupError, build_application

    configure_logging(config.log_level, [config.telegram.token, config.telegram.webhook.secret_token], style=config.log_format)
    log = logging.getLogger("bot")
    desk = build_desk(config)
    lock = InstanceLock(config.storage_path)
    try:
        lock.acquire()
    except AlreadyRunning as exc:
        log.error("%s", exc)
        return EXIT_ALREADY_RUNNING
    store = Store(config.storage_path)  # a damaged or read-only database stops us before any wait
    reached = asyncio.run(wait_for_telegram(config, log))
    if reached is not None:
        store.close()
        lock.release()
        return reached
    application = build_application(config, desk, store)
    try:
        if config.telegram.mode == "webhook":
            asyncio.run(serve_webhook(application, config, store))
        else:
            application.run_polling(allowed_updates=ALLOWED_UPDATES)
    except InvalidToken:
        log.error("telegram.token: Telegram rejected the token. Copy it again from @BotFather.")
        return EXIT_CONFIG
    except SetupError as exc:
        log.error("%s", exc)
        return EXIT_CONFIG
    except TelegramError as exc:
        log.error("Telegram refused to start the bot: %s", exc)
        return EXIT_CONFIG
    finally:
        store.close()
        lock.release()
    return 0


async def serve_webhook(application: Any, config: Config, store: Store) -> None:
    """Webhook mode, in python-telegram-bot's order (initialize, post_init, listen, start;
    then stop, post_stop, shutdown), with bot.adapters.telegram.webhook's server instead of the library's."""
    from bot.service import current_health
    from bot.adapters.telegram.webhook import open_webhook

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await application.initialize()
    try:
        await application.post_init(application)
        server = await open_webhook(application, config.telegram.webhook, health=lambda: current_health(store))
        await application.start()
        try:
            await stop.wait()
        finally:
            await server.stop()
            await application.stop()
            await application.post_stop(application)
    finally:
        await application.shutdown()


# Waiting for Telegram at start-up: first retry after this many seconds, doubling up to the cap.
FIRST_RETRY_SECONDS = 2.0
MAX_RETRY_SECONDS = 60.0


async def wait_for_telegram(config: Config, log: logging.Logger) -> int | None:
    """Ask Telegram who the bot is until it answers: None once it does, an exit code if the
    token is refused. A server that boots before its network (or a Telegram outage) gets
    one log line per attempt and a growing pause, not a traceback and an exit."""
    from telegram import Bot
    from telegram.error import InvalidToken, NetworkError, TimedOut

    telegram = config.telegram
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)  # removed when asyncio.run closes the loop
    delay = FIRST_RETRY_SECONDS
    while True:
        try:
            async with Bot(telegram.token, base_url=telegram.api_base_url, base_file_url=telegram.api_file_url):
                return None
        except InvalidToken:
            log.error("telegram.token: Telegram rejected the token. Copy it again from @BotFather.")
            return EXIT_CONFIG
        except (NetworkError, TimedOut) as exc:
            log.warning("Telegram is out of reach (%s); trying again in %.0f s", exc, delay)
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except TimeoutError:
            delay = min(MAX_RETRY_SECONDS, 2 * delay)
            continue
        log.info("Stopped while waiting for Telegram")
        return 0


async def whoami(config: Config, out: TextIO) -> int:
    """Which bot the token belongs to and the groups that wrote to it: where staff_chat_id comes from.

    Reads pending updates without confirming them (no offset), so the bot, started
    later, still receives every one; it cannot while the bot itself is polling.
    """
    from telegram import Bot
    from telegram.constants import ChatType
    from telegram.error import Conflict, InvalidToken, TelegramError

    from bot.adapters.telegram.app import ALLOWED_UPDATES

    telegram = config.telegram
    try:
        async with Bot(telegram.token, base_url=telegram.api_base_url, base_file_url=telegram.api_file_url) as bot:
            print(f"This token belongs to @{bot.username} (bot id {bot.id}).", file=out)
            updates = await bot.get_updates(timeout=0, allowed_updates=ALLOWED_UPDATES)
    except InvalidToken:
        print("telegram.token: Telegram rejected the token. Copy it again from @BotFather.", file=out)
        return EXIT_CONFIG
    except Conflict:
        print("The bot is running (or a webhook is set), so its messages cannot be read here. "
              "Stop it, then run this again.", file=out)
        return 1
    except TelegramError as exc:
        print(f"Telegram could not be reached: {exc}", file=out)
        return 1
    groups = {
        chat.id: chat for update in updates if (chat := update.effective_chat) is not None and chat.type in (ChatType.GROUP, ChatType.SUPERGROUP)
    }
    if not groups:
        print("No group has written to the bot yet. Add it to the staff group, send /start there, and run this again.", file=out)
        return 0
    print("Groups that wrote to the bot (telegram.staff_chat_id is the id):", file=out)
    for chat in groups.values():
        kind = "supergroup with topics" if chat.is_forum else ("supergroup, Topics off" if chat.type == ChatType.SUPERGROUP else "group, not a supergroup")
        print(f"  {chat.id}  {chat.title!r} ({kind})", file=out)
    return 0
