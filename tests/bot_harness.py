"""Runs the real bot (python-telegram-bot Application) against the fake Bot API server."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from telegram.ext import Application

from bot.config import Config, RateLimitConfig, TelegramConfig
from bot.app import build_desk, build_dialogue
from bot.adapters.sqlite.store import Store
from bot.adapters.telegram.app import ALLOWED_UPDATES, build_application
from tests.conftest import FAQ_DIR
from tests.fake_bot_api import FakeBotApi

JSONDict = dict[str, Any]


def write_process_config(tmp_path: Path, api: FakeBotApi, *, log_level: str = "WARNING") -> Path:
    """A config file that runs ``python -m bot run`` against the fake server, for process tests."""
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""telegram:
  token: "{api.token}"
  api_base_url: {api.base_url}
  staff_chat_id: {api.staff_chat_id}
  rate_limit: {{overall_per_second: 0, group_per_minute: 0, chat_per_second: 0}}
storage: {{path: bot.sqlite3}}
faq: {{path: {FAQ_DIR}}}
logging: {{level: {log_level}}}
"""
    )
    return config


class BotHarness:
    """The bot as deployed (config, store, application, polling), pointed at ``api``."""

    def __init__(self, api: FakeBotApi, tmp_path: Path, *, rate_limit: RateLimitConfig | None = None, **config_changes: Any) -> None:
        self.api = api
        self.staff_chat_id: int = api.staff_chat_id
        telegram = TelegramConfig(
            token=api.token,
            api_base_url=api.base_url,
            api_file_url=api.base_file_url,
            staff_chat_id=self.staff_chat_id,
            # The fake server has no flood limits; tests run without ours unless they ask.
            rate_limit=rate_limit or RateLimitConfig(0, 0, 0),
        )
        self.config = replace(Config(telegram=telegram, storage_path=tmp_path / "bot.sqlite3", faq_path=FAQ_DIR), **config_changes)
        self.dialogue = build_dialogue(self.config)
        self.application: Application | None = None
        self.store: Store | None = None

    async def start(self) -> None:
        self.store = Store(self.config.storage_path)
        self.application = build_application(self.config, build_desk(self.config, self.dialogue), self.store)
        await self.application.initialize()
        await self.desk.start(self.application)  # what post_init does under run_polling
        assert self.application.updater is not None
        await self.application.updater.start_polling(poll_interval=0, timeout=1, allowed_updates=ALLOWED_UPDATES)
        await self.application.start()

    async def stop(self) -> None:
        if self.application is None:
            return
        assert self.application.updater is not None
        if self.application.updater.running:  # not in webhook mode (bot.adapters.telegram.webhook receives)
            await self.application.updater.stop()
        await self.application.stop()
        await self.desk.stop()  # what post_stop does under run_polling
        await self.application.shutdown()
        self.application = None
        if self.store is not None:
            self.store.close()
            self.store = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    # -- talking to the bot ----------------------------------------------------------
    @property
    def desk(self) -> Any:
        assert self.application is not None
        return self.application.bot_data["desk"]

    def sent_to(self, chat_id: int, thread_id: int | None = None) -> list[JSONDict]:
        return self.api.sent_messages(chat_id, thread_id)

    async def say(self, chat_id: int, text: str, **user: Any) -> JSONDict:
        """Send a private text as the patient; return the bot's first reply."""
        return await self.push_and_wait(chat_id, self.api.private_text(chat_id, text, **user))

    async def push_and_wait(self, chat_id: int, update: JSONDict, *, replies: int = 1) -> JSONDict:
        """Push an update; wait for ``replies`` new messages to the chat and return the last."""
        before = len(self.sent_to(chat_id))
        self.api.push_update(update)
        for index in range(replies):
            message = await self.api.wait_for_message(chat_id, after=before + index)
        return message

    async def press(self, chat_id: int, data: str, message_id: int = 1) -> JSONDict:
        return await self.push_and_wait(chat_id, self.api.callback_query(chat_id, data, message_id))

    async def staff_says(self, thread_id: int | None, text: str | None = None, **fields: Any) -> int:
        """Post into the staff group (a topic, or the General topic with None); returns the update id."""
        return self.api.push_update(self.api.group_message(self.staff_chat_id, text, thread_id=thread_id, **fields))

    async def wait_topic(self, chat_id: int) -> int:
        """The patient's topic, once every send queued so far is out (the topic is opened in
        the staff lane, independently of the patient's replies)."""
        await self.desk.sender.flush(10)
        return self.topic_of(chat_id)

    def topic_of(self, chat_id: int) -> int:
        assert self.store is not None
        handoff = self.store.handoff(chat_id)
        assert handoff is not None and handoff.thread_id is not None, f"chat {chat_id} has no staff topic"
        return handoff.thread_id

    async def barrier(self) -> None:
        """Return once every update pushed so far has been handled.

        Updates are handled one at a time in order, so when a sentinel
        patient's message is answered, everything before it is done.
        """
        await self.say(SENTINEL_CHAT, "hello")
        await self.desk.sender.flush(10)  # and every send they caused has gone out


SENTINEL_CHAT = 999_000_999


def button_data(message: JSONDict) -> list[str]:
    markup = message.get("reply_markup") or {}
    return [b.get("callback_data", "") for row in markup.get("inline_keyboard", []) for b in row]


def markup_sent(api: FakeBotApi, message: JSONDict) -> JSONDict:
    """The reply_markup the bot sent with ``message`` (Telegram echoes only inline keyboards)."""
    for call in reversed(api.calls_to("sendMessage")):
        if call.result and call.result.get("message_id") == message["message_id"] and call.result["chat"]["id"] == message["chat"]["id"]:
            markup = call.params.get("reply_markup") or {}
            return markup if isinstance(markup, dict) else {}
    raise AssertionError(f"no sendMessage produced message {message['message_id']}")


def keyboard_labels(api: FakeBotApi, message: JSONDict) -> list[str]:
    """Labels of the reply keyboard sent with ``message``."""
    rows = markup_sent(api, message).get("keyboard", [])
    return [b["text"] if isinstance(b, dict) else b for row in rows for b in row]
