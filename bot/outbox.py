"""Delivery of everything the bot sends, from the durable outbox in SQLite.

Handlers only *enqueue* sends (in the same transaction that records the
handled update), so a crash never loses a reply or a relay: whatever is still
pending is sent after restart. One worker per patient conversation sends its
entries in order; different conversations are sent concurrently.

Sends go through :class:`bot.bot_api.BotApi`, which keeps Telegram's limits.
Failures: 429 is waited out; network errors,
timeouts and 5xx are retried with exponential backoff for ``retry_window``
seconds, then the entry is marked failed with the reason and staff are told.
Telegram's refusals (400/403) are not retried. What follows a failure (a new
topic for a deleted one, a notice to staff) is decided by the core: the sender
reports it through :class:`Reports`. Each kind of send (``bot.core.outgoing``)
is one Bot API call; several patient texts waiting for the staff group go out
as one message, because the group takes about 20 messages a minute.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, TelegramError

from bot.bot_api import BotApi, RetryLater
from bot.core.commands import CLOSE_BUTTON_DATA
from bot.core.outgoing import (
    CardToTopic,
    CloseTopic,
    CorrectedCaptionToPatient,
    CorrectedTextToPatient,
    DeleteTopic,
    NoticeToGeneral,
    NoticeToTopic,
    OpenTopic,
    PatientMessageToTopic,
    Send,
    StaffMessageToPatient,
    TextToPatient,
)
from bot.storage import OutboxEntry, Store

log = logging.getLogger(__name__)

THREAD_GONE = ("message thread not found", "topic_deleted", "thread not found", "topic not found")
TOPIC_ALREADY_GONE = THREAD_GONE + ("topic_id_invalid", "topic_closed", "topic_not_modified")
MAX_TEXT = 4_096


class Reports(Protocol):
    """Where the sender reports what only the core can decide about (the front desk)."""

    def topic_gone(self, chat_id: int) -> tuple[Send, ...]:
        """The patient's topic is gone: the sends that open a new one (none: the send is dropped)."""

    def send_failed(self, chat_id: int, send: Send, reason: str) -> None:
        """A send was given up: tell whoever must know (the desk queues it)."""


class NoTopic(Exception):
    """The patient has no staff topic (yet, or any more)."""


class OutboxSender:
    """Sends pending outbox entries: one ordered worker per conversation, many conversations at once."""

    def __init__(
        self,
        api: BotApi,
        store: Store,
        staff_chat_id: int,
        reports: Reports,
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
        self.reports = reports
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
        if not _is_patient_text(first.send):
            return [first]
        batch = [first]
        size = len(_text_of(first.send))
        for entry in entries[1:]:
            if not _is_patient_text(entry.send) or size + 2 + len(_text_of(entry.send)) > MAX_TEXT:
                break
            batch.append(entry)
            size += 2 + len(_text_of(entry.send))
        return batch

    async def _deliver(self, chat_id: int, batch: list[OutboxEntry]) -> None:
        ids = [e.id for e in batch]
        send = batch[0].send
        if send is None:
            self.store.mark_failed(ids, batch[0].problem)
            log.error("Outbox entry %s for chat %s dropped: %s", ids[0], chat_id, batch[0].problem)
            return
        started = self._clock()
        delay = self.first_delay
        reopened = False
        while True:
            try:
                await self._send(chat_id, send, batch)
            except RetryLater as exc:
                wait = exc.seconds
                self.store.count_attempt(ids, f"429: retry after {wait}s")
                await asyncio.sleep(wait)
                continue
            except (BadRequest, NoTopic) as exc:
                message = exc.message.lower() if isinstance(exc, BadRequest) else "no topic"
                gone = isinstance(exc, NoTopic) or any(marker in message for marker in THREAD_GONE)
                # Into the patient's topic and it is gone: the core decides (once) what opens a new one.
                if gone and not reopened and _into_patients_topic(send):
                    reopened = True
                    if await self._carry_out_now(chat_id, self.reports.topic_gone(chat_id)):
                        continue
                if isinstance(exc, NoTopic):
                    log.info("Send for chat %s dropped: the patient has no staff topic", chat_id)
                    self.store.mark_sent(ids)  # nothing to deliver it to, and nobody to tell
                    return
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

    async def _carry_out_now(self, chat_id: int, sends: tuple[Send, ...]) -> bool:
        """Send what the core asked for ahead of the queue (a new topic); False when it asked nothing or it failed."""
        if not sends:
            return False
        try:
            for send in sends:
                await self._send(chat_id, send, [])
        except TelegramError as exc:
            log.warning("Could not open a new topic for chat %s: %s", chat_id, exc)
            return False
        return True

    async def _give_up(self, chat_id: int, batch: list[OutboxEntry], reason: str) -> None:
        """Record the failure and make sure a person hears of it: nothing vanishes silently."""
        send = batch[0].send
        # A staff notice that cannot land (its topic deleted) loses no patient's words: a warning.
        level = logging.WARNING if isinstance(send, (NoticeToTopic, NoticeToGeneral)) else logging.ERROR
        log.log(level, "Giving up on %d send(s) for chat %s: %s", len(batch), chat_id, reason)
        self.store.mark_failed([e.id for e in batch], reason)
        if send is not None:
            self.reports.send_failed(chat_id, send, reason)
            self.wake(chat_id)

    # -- the Telegram calls: one per kind of send ---------------------------------------------
    async def _call(self, method: str, **params: Any) -> Any:
        return await self.api.call(method, **params)

    async def _send(self, chat_id: int, send: Send, batch: list[OutboxEntry]) -> None:
        staff = self.staff_chat_id
        if isinstance(send, TextToPatient):
            await self._call("sendMessage", chat_id=chat_id, text=send.text, reply_markup=reply_markup(send))
        elif isinstance(send, StaffMessageToPatient):
            copied = await self._call("copyMessage", chat_id=chat_id, from_chat_id=staff, message_id=send.staff_message_id)
            self.store.link_messages(chat_id, copied["message_id"], send.staff_message_id, "to_patient")
        elif isinstance(send, CorrectedTextToPatient):
            await _unless_unchanged(self._call(
                "editMessageText", chat_id=chat_id, message_id=send.patient_message_id, text=send.text,
                entities=json.loads(send.entities) or None,  # a correction of bold or a link is a correction too
            ))
        elif isinstance(send, CorrectedCaptionToPatient):
            await _unless_unchanged(self._call(
                "editMessageCaption", chat_id=chat_id, message_id=send.patient_message_id, caption=send.caption,
                caption_entities=json.loads(send.entities) or None,
            ))
        elif isinstance(send, OpenTopic):
            handoff = self.store.handoff(chat_id)
            if handoff is None or handoff.thread_id is None:  # idempotent: see OpenTopic
                topic = await self._call("createForumTopic", chat_id=staff, name=send.name)
                self.store.record_topic(chat_id, int(topic["message_thread_id"]))
        elif isinstance(send, CardToTopic):
            close = {"inline_keyboard": [[{"text": send.close_label, "callback_data": CLOSE_BUTTON_DATA}]]}
            await self._call(
                "sendMessage", chat_id=staff, text=send.html, message_thread_id=self._topic(chat_id),
                parse_mode=ParseMode.HTML, reply_markup=close,
            )
        elif isinstance(send, PatientMessageToTopic):
            await self._relay(chat_id, send, batch)
        elif isinstance(send, NoticeToTopic):
            thread = send.thread_id if send.thread_id is not None else self._topic(chat_id)
            await self._call("sendMessage", chat_id=staff, text=send.text, message_thread_id=thread)
        elif isinstance(send, NoticeToGeneral):
            await self._call("sendMessage", chat_id=staff, text=send.text)
        elif isinstance(send, (DeleteTopic, CloseTopic)):
            method = "deleteForumTopic" if isinstance(send, DeleteTopic) else "closeForumTopic"
            try:
                await self._call(method, chat_id=staff, message_thread_id=send.thread_id)
            except BadRequest as exc:
                if not any(gone in exc.message.lower() for gone in TOPIC_ALREADY_GONE):
                    raise  # staff deleted or closed it already: done

    async def _relay(self, chat_id: int, send: PatientMessageToTopic, batch: list[OutboxEntry]) -> None:
        thread = self._topic(chat_id)
        if len(batch) <= 1:
            copied = await self._call(
                "copyMessage", chat_id=self.staff_chat_id, from_chat_id=chat_id, message_id=send.patient_message_id, message_thread_id=thread
            )
            self.store.link_messages(chat_id, send.patient_message_id, copied["message_id"], "to_staff")
            return
        # Several texts waited (the staff group is rate limited): one message keeps staff current.
        texts = [e.send for e in batch if isinstance(e.send, PatientMessageToTopic)]
        sent = await self._call("sendMessage", chat_id=self.staff_chat_id, text="\n\n".join(t.text or "" for t in texts), message_thread_id=thread)
        for text in texts:
            self.store.link_messages(chat_id, text.patient_message_id, sent["message_id"], "to_staff")

    def _topic(self, chat_id: int) -> int:
        """The patient's topic (opened by an OpenTopic queued before); NoTopic when there is none."""
        handoff = self.store.handoff(chat_id)
        if handoff is None or handoff.thread_id is None:
            raise NoTopic
        return handoff.thread_id


def _is_patient_text(send: Send | None) -> bool:
    return isinstance(send, PatientMessageToTopic) and send.text is not None


def _text_of(send: Send | None) -> str:
    return (send.text or "") if isinstance(send, PatientMessageToTopic) else ""


def _into_patients_topic(send: Send) -> bool:
    return isinstance(send, (CardToTopic, PatientMessageToTopic)) or (isinstance(send, NoticeToTopic) and send.thread_id is None)


async def _unless_unchanged(call: Awaitable[Any]) -> None:
    try:
        await call
    except BadRequest as exc:
        if "message is not modified" not in exc.message.lower():
            raise  # (not modified: the patient's copy already says it)


def reply_markup(send: TextToPatient) -> dict[str, Any] | None:
    """A reply's choices as Telegram's reply_markup."""
    if send.buttons:
        return {"inline_keyboard": [[{"text": b.label, "callback_data": b.data}] for b in send.buttons]}
    if send.keyboard:
        rows = [[{"text": label, "request_contact": send.request_contact and i == 0}] for i, label in enumerate(send.keyboard)]
        return {"keyboard": rows, "resize_keyboard": True}
    if send.remove_keyboard:
        return {"remove_keyboard": True}
    return None
