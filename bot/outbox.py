"""Delivery of everything the bot sends, from the durable outbox in SQLite.

Handlers only *enqueue* sends (in the same transaction that records the
handled update), so a crash never loses a reply or a relay: whatever is still
pending is sent after restart. One worker per patient conversation sends its
entries in order; different conversations are sent concurrently.

Sends go through :class:`bot.bot_api.BotApi`, which keeps Telegram's limits.
Failures: 429 is waited out; network errors,
timeouts and 5xx are retried with exponential backoff for ``retry_window``
seconds, then the entry is marked failed with the reason and staff are told.
Telegram's refusals (400/403) are not retried, except a deleted topic, which is
opened again. Several patient texts waiting for the staff group go out as one
message: the group takes about 20 messages a minute.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, TelegramError

from bot.bot_api import BotApi, RetryLater
from bot.core.staff_card import CardPatient, topic_name
from bot.storage import OutboxEntry, Store

log = logging.getLogger(__name__)

# Kinds of outbox entries and the payload each carries.
PATIENT_TEXT = "patient_text"  # {"text", "markup"}: a bot reply
PATIENT_COPY = "patient_copy"  # {"message_id"}: a staff message copied to the patient
PATIENT_EDIT = "patient_edit"  # {"message_id", "text" | "caption"}: staff corrected a message the patient has
STAFF_COPY = "staff_copy"  # {"message_id", "text"}: a patient message for their topic (text None for media)
STAFF_CARD = "staff_card"  # {"text"}: a card (HTML) with a Close button
STAFF_NOTICE = "staff_notice"  # {"text", "thread_id"?, "general"?}: a line for staff in the patient's topic (or General)
STAFF_TOPIC_DELETE = "staff_topic_delete"  # {"thread_id"}: a forgotten patient's topic, deleted
STAFF_TOPIC_CLOSE = "staff_topic_close"  # {"thread_id"}: a forgotten patient's topic, kept as a record

THREAD_GONE = ("message thread not found", "topic_deleted", "thread not found", "topic not found")
MAX_TEXT = 4_096
STAFF_CLOSE = "staff:close"


class OutboxSender:
    """Sends pending outbox entries: one ordered worker per conversation, many conversations at once."""

    def __init__(
        self,
        api: BotApi,
        store: Store,
        staff_chat_id: int,
        texts: dict[str, str],
        *,
        retry_window: float = 60.0,
        first_delay: float = 0.5,
        max_delay: float = 15.0,
        max_parallel: int = 512,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.store = store
        self.staff_chat_id = staff_chat_id
        self.texts = texts
        self.retry_window = retry_window
        self.first_delay = first_delay
        self.max_delay = max_delay
        self._clock = clock
        self._wake = asyncio.Event()
        self._woken: set[int] = set()  # conversations with new entries since the last dispatch
        self._scan = True  # look at every pending conversation (start-up, after a worker ends)
        self._busy: set[int] = set()
        self._slots = asyncio.Semaphore(max_parallel)
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._idle = asyncio.Event()
        self._idle.set()

    # -- lifecycle ------------------------------------------------------------------------
    def wake(self, chat_id: int | None = None) -> None:
        """New entries were enqueued (for ``chat_id``, or for conversations unknown: scan them all)."""
        self._idle.clear()
        if chat_id is None:
            self._scan = True
        else:
            self._woken.add(chat_id)
        self._wake.set()

    async def run(self) -> None:
        """Dispatch loop: starts a worker for every conversation with pending sends."""
        while not self._stopping:
            self._wake.clear()
            if self._scan:
                self._scan = False
                candidates = set(self.store.chats_with_pending_sends()) | self._woken
            else:
                candidates = self._woken
            self._woken = set()
            for chat_id in candidates:
                if chat_id not in self._busy:
                    self._busy.add(chat_id)
                    task = asyncio.create_task(self._work(chat_id), name=f"outbox:{chat_id}")
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            if not self._busy:
                self._idle.set()
            await self._wake.wait()

    async def flush(self, timeout: float) -> None:
        """Wait (up to ``timeout``) until nothing is pending or in flight: used at shutdown."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except asyncio.TimeoutError:
            log.warning("Stopping with sends still pending; they will go out after restart")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.api.close()

    # -- one conversation --------------------------------------------------------------
    async def _work(self, chat_id: int) -> None:
        try:
            async with self._slots:
                while not self._stopping:
                    entries = self.store.pending_sends(chat_id)
                    if not entries:
                        return
                    batch = self._batch(entries)
                    await self._deliver(chat_id, batch)
        finally:
            # No await since the last empty look at the outbox: anything enqueued for this chat
            # from here on wakes the dispatcher, which now sees the chat free.
            self._busy.discard(chat_id)
            if not self._busy and not self._woken and not self._scan:
                self._idle.set()

    @staticmethod
    def _batch(entries: list[OutboxEntry]) -> list[OutboxEntry]:
        """The first entry, plus the patient texts right behind it when it is one (sent as one message)."""
        first = entries[0]
        if first.kind != STAFF_COPY or first.payload.get("text") is None:
            return [first]
        batch = [first]
        for entry in entries[1:]:
            if entry.kind != STAFF_COPY or entry.payload.get("text") is None:
                break
            if sum(len(e.payload["text"]) + 2 for e in batch) + len(entry.payload["text"]) > MAX_TEXT:
                break
            batch.append(entry)
        return batch

    async def _deliver(self, chat_id: int, batch: list[OutboxEntry]) -> None:
        ids = [e.id for e in batch]
        started = self._clock()
        delay = self.first_delay
        reopened = False
        while True:
            try:
                await self._send(chat_id, batch)
            except RetryLater as exc:
                wait = exc.seconds
                self.store.count_attempt(ids, f"429: retry after {wait}s")
                await asyncio.sleep(wait)
                continue
            except BadRequest as exc:
                thread_gone = any(marker in exc.message.lower() for marker in THREAD_GONE)
                # A topic staff deleted is opened again, once; a notice aimed at a fixed topic
                # (a forgotten patient's) has nowhere else to go.
                if thread_gone and not reopened and "thread_id" not in batch[0].payload:
                    log.info("Topic of chat %s is gone; opening a new one", chat_id)
                    self.store.record_topic(chat_id, None)
                    reopened = True
                    continue
                await self._give_up(chat_id, batch, f"Telegram refused it: {exc.message}")
                return
            except Forbidden as exc:
                await self._give_up(chat_id, batch, f"not allowed: {exc.message}")
                return
            except TelegramError as exc:  # network errors, timeouts, 5xx
                reason = f"{type(exc).__name__}: {exc.message}"
                self.store.count_attempt(ids, reason)
                if self._clock() - started >= self.retry_window:
                    await self._give_up(chat_id, batch, reason)
                    return
                log.info("Send for chat %s failed (%s); retrying in %.1fs", chat_id, reason, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_delay)
                continue
            except Exception as exc:  # a bug must not wedge the conversation: record it and move on
                log.exception("Unexpected error sending for chat %s", chat_id)
                await self._give_up(chat_id, batch, f"internal error: {type(exc).__name__}")
                return
            self.store.mark_sent(ids)
            return

    async def _give_up(self, chat_id: int, batch: list[OutboxEntry], reason: str) -> None:
        """Record the failure and make sure a person hears of it: nothing vanishes silently."""
        kind = batch[0].kind
        # A staff notice that cannot land (its topic deleted) loses no patient's words: a warning.
        level = logging.WARNING if kind == STAFF_NOTICE else logging.ERROR
        log.log(level, "Giving up on %d send(s) for chat %s: %s", len(batch), chat_id, reason)
        self.store.mark_failed([e.id for e in batch], reason)
        if kind == PATIENT_COPY:
            self.store.enqueue(chat_id, STAFF_NOTICE, {"text": self.texts["staff_relay_failed"].format(reason=reason)})
            self.wake(chat_id)
        elif kind == STAFF_COPY:
            # Staff must know a message is missing; the notice goes through the outbox like any send.
            self.store.enqueue(chat_id, STAFF_NOTICE, {"text": self.texts["staff_relay_in_failed"].format(reason=reason)})
            self.wake(chat_id)
        elif kind == STAFF_CARD:
            # The patient's topic could not be reached; try the group's General topic once.
            name = self.store.patient(chat_id).display_name
            try:
                await self._call("sendMessage", chat_id=self.staff_chat_id, text=f"Could not deliver a message from {name} (chat {chat_id}) to staff: {reason}")
            except TelegramError as exc:
                log.error("Could not tell staff either: %s", exc)

    # -- the Telegram calls --------------------------------------------------------------
    async def _call(self, method: str, **params: Any) -> Any:
        return await self.api.call(method, **params)

    async def _send(self, chat_id: int, batch: list[OutboxEntry]) -> None:
        entry = batch[0]
        payload = entry.payload
        if entry.kind == PATIENT_TEXT:
            await self._call("sendMessage", chat_id=chat_id, text=payload["text"], reply_markup=payload.get("markup"))
        elif entry.kind == PATIENT_COPY:
            copied = await self._call("copyMessage", chat_id=chat_id, from_chat_id=self.staff_chat_id, message_id=payload["message_id"])
            self.store.link_messages(chat_id, copied["message_id"], payload["message_id"], "to_patient")
        elif entry.kind == PATIENT_EDIT:
            target = {"chat_id": chat_id, "message_id": payload["message_id"]}
            try:
                # With the entities: a correction of bold or a link is a correction too.
                if payload.get("text") is not None:
                    await self._call("editMessageText", text=payload["text"], entities=payload.get("entities") or None, **target)
                else:
                    await self._call("editMessageCaption", caption=payload.get("caption"), caption_entities=payload.get("entities") or None, **target)
            except BadRequest as exc:
                if "message is not modified" not in exc.message.lower():
                    raise  # (not modified: the patient's copy already says it)
        elif entry.kind == STAFF_COPY:
            await self._relay(chat_id, batch)
        elif entry.kind == STAFF_CARD:
            close = {"inline_keyboard": [[{"text": self.texts["button_close"], "callback_data": STAFF_CLOSE}]]}
            await self._into_topic(
                chat_id,
                lambda thread: self._call(
                    "sendMessage", chat_id=self.staff_chat_id, text=payload["text"], message_thread_id=thread,
                    parse_mode=ParseMode.HTML, reply_markup=close,
                ),
            )
        elif entry.kind in (STAFF_TOPIC_DELETE, STAFF_TOPIC_CLOSE):
            method = "deleteForumTopic" if entry.kind == STAFF_TOPIC_DELETE else "closeForumTopic"
            try:
                await self._call(method, chat_id=self.staff_chat_id, message_thread_id=payload["thread_id"])
            except BadRequest as exc:
                if not any(gone in exc.message.lower() for gone in THREAD_GONE + ("topic_id_invalid", "topic_closed", "topic_not_modified")):
                    raise  # staff deleted or closed it already: done
        elif entry.kind == STAFF_NOTICE:
            thread = payload.get("thread_id")
            if payload.get("general"):
                await self._call("sendMessage", chat_id=self.staff_chat_id, text=payload["text"])
            elif thread is not None:
                await self._call("sendMessage", chat_id=self.staff_chat_id, text=payload["text"], message_thread_id=thread)
            elif (handoff := self.store.handoff(chat_id)) is not None and handoff.thread_id is not None:
                await self._into_topic(
                    chat_id, lambda t: self._call("sendMessage", chat_id=self.staff_chat_id, text=payload["text"], message_thread_id=t)
                )
        else:
            log.error("Unknown outbox entry kind %r dropped", entry.kind)

    async def _relay(self, chat_id: int, batch: list[OutboxEntry]) -> None:
        first = batch[0].payload
        if len(batch) == 1:
            copied = await self._into_topic(
                chat_id,
                lambda t: self._call(
                    "copyMessage", chat_id=self.staff_chat_id, from_chat_id=chat_id, message_id=first["message_id"], message_thread_id=t
                ),
            )
            self.store.link_messages(chat_id, first["message_id"], copied["message_id"], "to_staff")
            return
        # Several texts waited (the staff group is rate limited): one message keeps staff current.
        text = "\n\n".join(e.payload["text"] for e in batch)
        sent = await self._into_topic(
            chat_id, lambda t: self._call("sendMessage", chat_id=self.staff_chat_id, text=text, message_thread_id=t)
        )
        for entry in batch:
            self.store.link_messages(chat_id, entry.payload["message_id"], sent["message_id"], "to_staff")

    async def _into_topic(self, chat_id: int, send: Callable[[int], Awaitable[Any]]) -> Any:
        return await send(await self._topic(chat_id))

    async def _topic(self, chat_id: int) -> int:
        """The patient's topic, created on first need (only this conversation's worker creates it)."""
        handoff = self.store.handoff(chat_id)
        if handoff is not None and handoff.thread_id is not None:
            return handoff.thread_id
        patient = self.store.patient(chat_id)
        urgent = bool(handoff and handoff.urgent)
        topic = await self._call(
            "createForumTopic",
            chat_id=self.staff_chat_id,
            name=topic_name(CardPatient(chat_id, patient.display_name, patient.username), urgent=urgent),
        )
        self.store.record_topic(chat_id, topic["message_thread_id"])
        return int(topic["message_thread_id"])


def markup_payload(reply_buttons: list[tuple[str, str]], keyboard: list[str], request_contact: bool, remove: bool) -> dict[str, Any] | None:
    """A reply's markup as plain JSON for the outbox."""
    if reply_buttons:
        return {"inline_keyboard": [[{"text": label, "callback_data": data}] for label, data in reply_buttons]}
    if keyboard:
        rows = [[{"text": label, "request_contact": request_contact and i == 0}] for i, label in enumerate(keyboard)]
        return {"keyboard": rows, "resize_keyboard": True}
    if remove:
        return {"remove_keyboard": True}
    return None
