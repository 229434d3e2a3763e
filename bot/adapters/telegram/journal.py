"""The update journal: every update is in SQLite before Telegram may consider it delivered.

In polling mode the raw getUpdates answer is journaled as it arrives (python-telegram-bot
confirms a batch with the next getUpdates offset, before handlers run); webhook updates,
and anything else queued, are journaled by :class:`JournalingQueue`. Unhandled ones are
replayed at start-up. An update the library cannot read is skipped, never a stall.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import json
import logging
import time
from typing import Any

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import ExtBot

from bot.adapters.sqlite.store import Store
from bot.adapters.telegram.http import AiohttpRequest

log = logging.getLogger(__name__)


class UpdateJournal:
    """Writes incoming updates to the store's inbox before Telegram can consider them delivered.

    In polling mode the raw getUpdates answer is journaled as it arrives (cheaper
    than serialising python-telegram-bot's objects back to JSON); webhook
    updates, and anything else queued, are journaled by :class:`JournalingQueue`.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._written: set[int] = set()  # journaled from the raw answer, not yet queued

    def write_raw(self, body: bytes, *, sanitise: bool = False) -> bytes:
        """Journal a getUpdates answer; with ``sanitise``, return it with every update
        python-telegram-bot cannot read replaced by its bare update_id.

        One unreadable update (Telegram adds fields and kinds before libraries follow)
        would make the library fail the whole batch and ask for it again forever:
        polling would stall for every patient. Its bare id still advances the offset.
        (Checking costs a second parse of every update, so it is done only for a batch
        the library just failed to read: see :class:`TolerantBot`.)
        """
        try:
            answer = json.loads(body)
            updates = answer.get("result") or []
        except (ValueError, AttributeError):
            return body  # python-telegram-bot reports unreadable answers itself
        rows = [(u["update_id"], _raw_chat_id(u), json.dumps(u)) for u in updates if isinstance(u, dict) and "update_id" in u]
        self.store.journal_updates(rows)
        self._written.update(row[0] for row in rows)
        if not sanitise:
            return body
        parsed = [readable(u) for u in updates]
        if all(new is old for new, old in zip(parsed, updates)):
            return body
        answer["result"] = parsed
        return json.dumps(answer).encode()

    def write(self, update: Update) -> None:
        if update.update_id in self._written:
            self._written.discard(update.update_id)
            return
        try:
            chat = update.effective_chat
            payload = json.dumps(update.to_dict(), default=_json_default)
            self.store.journal_updates([(update.update_id, chat.id if chat else None, payload)])
        except Exception:  # an update we cannot serialise is still handled, just not journaled
            log.exception("Could not journal update %s", update.update_id)


def readable(update: Any) -> Any:
    """``update`` if python-telegram-bot can read it, else only its update_id (logged).
    (de_json copies what it reads, so ``update`` is not changed.)"""
    try:
        Update.de_json(update, None)
    except Exception as exc:  # noqa: BLE001 - whatever the library raises, this update is skipped
        return _skipped(update, exc)
    return update


def parse_update(data: dict[str, Any], bot: Any) -> Update:
    """``data`` as an Update, or, when the library cannot read it, its bare update_id (logged)."""
    try:
        update = Update.de_json(data, bot)
    except Exception as exc:  # noqa: BLE001 - as in readable
        update = Update.de_json(_skipped(data, exc), bot)
    assert update is not None
    return update


def _skipped(update: Any, exc: Exception) -> Any:
    update_id = update.get("update_id") if isinstance(update, dict) else None
    log.warning("Update %s cannot be read by python-telegram-bot (%s: %s); skipped", update_id, type(exc).__name__, exc)
    return {"update_id": update_id} if isinstance(update_id, int) else update


def _json_default(value: Any) -> Any:
    """Some nested dates stay datetime objects in python-telegram-bot's to_dict; Telegram sends Unix time."""
    if isinstance(value, dtm.datetime):
        return int(value.timestamp())
    return str(value)


def _raw_chat_id(update: dict[str, Any]) -> int | None:
    for key in ("message", "edited_message", "channel_post", "edited_channel_post", "business_message"):
        if isinstance(update.get(key), dict):
            return update[key].get("chat", {}).get("id")
    query = update.get("callback_query")
    if isinstance(query, dict):
        message = query.get("message") or {}
        return message.get("chat", {}).get("id") or query.get("from", {}).get("id")
    return None


class JournalingUpdatesRequest(AiohttpRequest):
    """The getUpdates connection: journals each fetched batch before handing it to python-telegram-bot.

    python-telegram-bot confirms a batch with the next getUpdates offset, before
    handlers run; the journal is what survives a kill.
    """

    def __init__(self, journal: UpdateJournal) -> None:
        super().__init__(1)
        self.journal = journal
        self.last_answer_at: float | None = None  # when Telegram last answered getUpdates
        self.sanitise_next = False  # set by TolerantBot when the library could not read a batch

    async def do_request(self, url: str, method: str, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        status, body = await super().do_request(url, method, *args, **kwargs)
        if status == 200 and url.endswith("/getUpdates"):
            body = self.journal.write_raw(body, sanitise=self.sanitise_next)
            self.sanitise_next = False
            self.last_answer_at = time.time()  # the heartbeat reports it: polling works
        return status, body


class TolerantBot(ExtBot):  # type: ignore[type-arg]
    """The application's Bot: a getUpdates batch the library cannot read is asked for again at
    once, with the unreadable updates left out (a non-Telegram error there would end polling)."""

    def __init__(self, token: str, *, polling: JournalingUpdatesRequest, **kwargs: Any) -> None:
        super().__init__(token, get_updates_request=polling, **kwargs)
        self._polling = polling  # (python-telegram-bot lets only _names be set on its objects)

    async def get_updates(self, *args: Any, **kwargs: Any) -> tuple[Update, ...]:
        try:
            return await super().get_updates(*args, **kwargs)
        except TelegramError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the library raises while reading the batch
            log.warning("A batch of updates could not be read (%s: %s); reading it again, one by one", type(exc).__name__, exc)
            self._polling.sanitise_next = True
            return await super().get_updates(*args, **kwargs)


class JournalingQueue(asyncio.Queue):  # type: ignore[type-arg]
    """The Application's update queue: every update is journaled as it is queued (webhook mode included)."""

    def __init__(self, journal: UpdateJournal) -> None:
        super().__init__()
        self.journal = journal

    async def put(self, item: Any) -> None:
        if isinstance(item, Update):
            self.journal.write(item)
        await super().put(item)
