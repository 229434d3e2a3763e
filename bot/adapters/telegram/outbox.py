"""Delivery of everything the bot sends, from the durable outbox in SQLite.

Handlers only *enqueue* sends (in the same transaction that records the
handled update), so a crash never loses a reply or a relay: whatever is still
pending is sent after restart. Each conversation has two lanes (to the
patient, into their staff topic), each sent in order, one send at a time;
different lanes are sent concurrently.

Every send is one request of python-telegram-bot's ``Bot``; which one goes
next is the :class:`bot.adapters.telegram.scheduler.Scheduler`'s choice (Telegram's limits,
fairness, urgent first). Failures: a 429 pauses only its chat; network errors,
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
import datetime as dtm
import json
import logging
import math
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, KeyboardButton, MessageEntity, ReplyKeyboardMarkup, ReplyKeyboardRemove
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError
from telegram.warnings import PTBDeprecationWarning

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
from bot.adapters.telegram.scheduler import Lane, Limits, Scheduler
from bot.adapters.sqlite.store import OutboxEntry, Store

log = logging.getLogger(__name__)

THREAD_GONE = ("message thread not found", "topic_deleted", "thread not found", "topic not found")
TOPIC_ALREADY_GONE = THREAD_GONE + ("topic_id_invalid", "topic_closed", "topic_not_modified")
MAX_TEXT = 4_096
TOPIC_REOPENS = 3  # new topics opened for one send whose topic keeps disappearing
BATCH_LOOK_AHEAD = 50  # pending sends read to find the patient texts that can go out as one message
# Kinds of send into the patient's own chat (their lane; the previous version's names too);
# everything else goes into the staff group.
PATIENT_LANE_KINDS = tuple(
    cls.__name__ for cls in (TextToPatient, StaffMessageToPatient, CorrectedTextToPatient, CorrectedCaptionToPatient)
) + ("patient_text", "patient_copy", "patient_edit")


class Reports(Protocol):
    """Where the sender reports what only the core can decide about (the front desk)."""

    def topic_gone(self, chat_id: int) -> tuple[Send, ...]:
        """The patient's topic is gone: the sends that open a new one (none: the send is dropped)."""

    def send_failed(self, chat_id: int, send: Send, reason: str) -> None:
        """A send was given up: tell whoever must know (the desk queues it)."""


class NoTopic(Exception):
    """The patient has no staff topic (yet, or any more)."""


class OutboxSender:
    """Delivers the outbox: a dispatcher asks the :class:`Scheduler` which lane goes next
    (Telegram's limits, fairness); each lane's sends go in order, one at a time."""

    def __init__(
        self,
        bot: Any,
        store: Store,
        staff_chat_id: int,
        reports: Reports,
        *,
        limits: Limits = Limits(),
        retry_window: float = 60.0,
        first_delay: float = 0.5,
        max_delay: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``bot``: python-telegram-bot's Bot (the application's): every send is one of its requests."""
        self.calls = TelegramCalls(bot, store, staff_chat_id)
        self.store = store
        self.staff_chat_id = staff_chat_id
        self.reports = reports
        self.scheduler = Scheduler(limits)
        self.retry_window = retry_window
        self.first_delay = first_delay
        self.max_delay = max_delay
        self._clock = clock
        self._wake = asyncio.Event()
        self._woken: set[int] = set()  # conversations with new entries since the last dispatch
        self._scan = True  # look at every pending conversation (start-up)
        self._failing: dict[int, tuple[float, float]] = {}  # entry id -> (first failure, next pause)
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
        """Dispatch loop: whenever the scheduler allows a send, deliver the head of that lane."""
        while not self._stopping:
            self._wake.clear()
            self._look_at_outbox()
            lanes, wait = self.scheduler.take(self._clock())
            for lane in lanes:
                task = asyncio.create_task(self._deliver_lane(lane), name=f"outbox:{lane[0]}:{lane[1]}")
                self._tasks.add(task)
                task.add_done_callback(self._finished)
            if not len(self.scheduler) and not self._tasks:
                self._idle.set()
            try:
                await asyncio.wait_for(self._wake.wait(), None if math.isinf(wait) else wait)
            except asyncio.TimeoutError:
                pass  # a pause or a budget is over

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._wake.set()  # the dispatcher looks again (and may find everything done)

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

    # -- lanes ------------------------------------------------------------------------------
    def _look_at_outbox(self) -> None:
        """Tell the scheduler what waits at the head of each lane of the conversations woken."""
        if self._scan:
            self._scan = False
            chats = set(self.store.chats_with_pending_sends()) | self._woken
        else:
            chats = self._woken
        self._woken = set()
        for chat_id in chats:
            for lane in ((chat_id, "patient"), (chat_id, "staff")):
                heads = self._pending(lane, 1)  # type: ignore[arg-type]
                if not heads:
                    self.scheduler.withdraw(lane)  # type: ignore[arg-type]
                else:
                    destination = chat_id if lane[1] == "patient" else self.staff_chat_id
                    self.scheduler.offer(lane, destination, urgent=getattr(heads[0].send, "urgent", False))  # type: ignore[arg-type]

    def _pending(self, lane: Lane, limit: int) -> list[OutboxEntry]:
        """The lane's first pending sends. The lane is the stored kind's: sends to the patient,
        or everything else (into the staff group; a row no one can read fails there)."""
        return self.store.pending_sends(lane[0], limit, kinds=PATIENT_LANE_KINDS, other_kinds=lane[1] == "staff")

    async def _deliver_lane(self, lane: Lane) -> None:
        chat_id = lane[0]
        retry_at = None
        try:
            entries = self._pending(lane, BATCH_LOOK_AHEAD if lane[1] == "staff" else 1)
            if entries:
                retry_at = await self._deliver(lane, self._batch(entries))
        finally:
            self.scheduler.done(lane, self._clock(), retry_at=retry_at)
            self.wake(chat_id)  # the lane's next send, if any, is offered again

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

    async def _deliver(self, lane: Lane, batch: list[OutboxEntry]) -> float | None:
        """Send the batch once; returns when to try again after a failure worth retrying (else None)."""
        chat_id = lane[0]
        ids = [e.id for e in batch]
        send = batch[0].send
        if send is None:
            self.store.mark_failed(ids, batch[0].problem)
            log.error("Outbox entry %s for chat %s dropped: %s", ids[0], chat_id, batch[0].problem)
            return None
        try:
            for attempt in range(TOPIC_REOPENS + 1):
                try:
                    await self.calls.send(chat_id, send, batch)
                    break
                except (BadRequest, NoTopic) as exc:
                    # Into the patient's topic and it is gone: the core decides what opens a new one.
                    # (A few times: staff may delete the new topic too while it is being opened.)
                    gone = isinstance(exc, NoTopic) or any(marker in exc.message.lower() for marker in THREAD_GONE)
                    if attempt == TOPIC_REOPENS or not (gone and _into_patients_topic(send)):
                        raise
                    if not await self._carry_out_now(chat_id, self.reports.topic_gone(chat_id)):
                        raise
        except RetryAfter as exc:
            wait = _seconds(exc)
            self.store.count_attempt(ids, f"429: retry after {wait:g}s")
            # Telegram's word: only this chat (or the staff group) waits.
            self.scheduler.pause(chat_id if lane[1] == "patient" else self.staff_chat_id, self._clock() + wait)
            return None
        except NoTopic:
            log.info("Send for chat %s dropped: the patient has no staff topic", chat_id)
            self.store.mark_sent(ids)  # nothing to deliver it to, and nobody to tell
        except BadRequest as exc:
            await self._give_up(chat_id, batch, f"Telegram refused it: {exc.message}")
        except Forbidden as exc:
            await self._give_up(chat_id, batch, f"not allowed: {exc.message}")
        except TelegramError as exc:  # network errors, timeouts, 5xx
            reason = f"{type(exc).__name__}: {exc.message}"
            self.store.count_attempt(ids, reason)
            now = self._clock()
            first, pause = self._failing.get(ids[0], (now, self.first_delay))
            if now - first >= self.retry_window:
                self._failing.pop(ids[0], None)
                await self._give_up(chat_id, batch, reason)
                return None
            self._failing[ids[0]] = (first, min(pause * 2, self.max_delay))
            log.info("Send for chat %s failed (%s); retrying in %.1fs", chat_id, reason, pause)
            return now + pause
        except Exception as exc:  # a bug must not wedge the conversation: record it and move on
            log.exception("Unexpected error sending for chat %s", chat_id)
            await self._give_up(chat_id, batch, f"internal error: {type(exc).__name__}")
        else:
            self.store.mark_sent(ids)
        self._failing.pop(ids[0], None)
        return None

    async def _carry_out_now(self, chat_id: int, sends: tuple[Send, ...]) -> bool:
        """Send what the core asked for ahead of the queue (a new topic); False when it asked nothing or it failed."""
        if not sends:
            return False
        try:
            for send in sends:
                await self.calls.send(chat_id, send, [])
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


class TelegramCalls:
    """Each kind of send as its one Bot API call, through python-telegram-bot's Bot. Decides
    nothing: which send, when, and what follows a failure are the scheduler's and the core's."""

    def __init__(self, bot: Any, store: Store, staff_chat_id: int) -> None:
        self.bot = bot
        self.store = store
        self.staff_chat_id = staff_chat_id

    async def send(self, chat_id: int, send: Send, batch: list[OutboxEntry]) -> None:
        """Carry out ``send`` (with ``batch``: the patient texts sent with it, as one message)."""
        bot, staff = self.bot, self.staff_chat_id
        if isinstance(send, TextToPatient):
            await bot.send_message(chat_id, send.text, reply_markup=reply_markup(send))
        elif isinstance(send, StaffMessageToPatient):
            copied = await bot.copy_message(chat_id, staff, send.staff_message_id)
            self.store.link_messages(chat_id, copied.message_id, send.staff_message_id, "to_patient")
        elif isinstance(send, CorrectedTextToPatient):
            # With the entities: a correction of bold or a link is a correction too.
            await _unless_unchanged(bot.edit_message_text(
                send.text, chat_id, send.patient_message_id, entities=_entities(send.entities)
            ))
        elif isinstance(send, CorrectedCaptionToPatient):
            await _unless_unchanged(bot.edit_message_caption(
                chat_id, send.patient_message_id, caption=send.caption, caption_entities=_entities(send.entities)
            ))
        elif isinstance(send, OpenTopic):
            handoff = self.store.handoff(chat_id)
            if handoff is None or handoff.thread_id is None:  # idempotent: see OpenTopic
                topic = await bot.create_forum_topic(staff, send.name)
                self.store.record_topic(chat_id, topic.message_thread_id)
        elif isinstance(send, CardToTopic):
            close = InlineKeyboardMarkup([[InlineKeyboardButton(send.close_label, callback_data=CLOSE_BUTTON_DATA)]])
            await bot.send_message(staff, send.html, message_thread_id=self._topic(chat_id), parse_mode=ParseMode.HTML, reply_markup=close)
        elif isinstance(send, PatientMessageToTopic):
            await self._relay(chat_id, send, batch)
        elif isinstance(send, NoticeToTopic):
            thread = send.thread_id if send.thread_id is not None else self._topic(chat_id)
            await bot.send_message(staff, send.text, message_thread_id=thread)
        elif isinstance(send, NoticeToGeneral):
            await bot.send_message(staff, send.text)
        elif isinstance(send, (DeleteTopic, CloseTopic)):
            try:
                if isinstance(send, DeleteTopic):
                    await bot.delete_forum_topic(staff, send.thread_id)
                else:
                    await bot.close_forum_topic(staff, send.thread_id)
            except BadRequest as exc:
                if not any(gone in exc.message.lower() for gone in TOPIC_ALREADY_GONE):
                    raise  # staff deleted or closed it already: done

    async def _relay(self, chat_id: int, send: PatientMessageToTopic, batch: list[OutboxEntry]) -> None:
        thread = self._topic(chat_id)
        if len(batch) <= 1:
            copied = await self.bot.copy_message(self.staff_chat_id, chat_id, send.patient_message_id, message_thread_id=thread)
            self.store.link_messages(chat_id, send.patient_message_id, copied.message_id, "to_staff")
            return
        # Several texts waited (the staff group is rate limited): one message keeps staff current.
        texts = [e.send for e in batch if isinstance(e.send, PatientMessageToTopic)]
        sent = await self.bot.send_message(self.staff_chat_id, "\n\n".join(t.text or "" for t in texts), message_thread_id=thread)
        for text in texts:
            self.store.link_messages(chat_id, text.patient_message_id, sent.message_id, "to_staff")

    def _topic(self, chat_id: int) -> int:
        """The patient's topic (opened by an OpenTopic queued before); NoTopic when there is none."""
        handoff = self.store.handoff(chat_id)
        if handoff is None or handoff.thread_id is None:
            raise NoTopic
        return handoff.thread_id


def _seconds(exc: RetryAfter) -> float:
    """Telegram's retry_after in seconds (python-telegram-bot 22 moves it from int to timedelta)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


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


def reply_markup(send: TextToPatient) -> InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove | None:
    """A reply's choices as Telegram's reply_markup."""
    if send.buttons:
        return InlineKeyboardMarkup([[InlineKeyboardButton(b.label, callback_data=b.data)] for b in send.buttons])
    if send.keyboard:
        rows = [[KeyboardButton(label, request_contact=(send.request_contact and i == 0) or None)] for i, label in enumerate(send.keyboard)]
        return ReplyKeyboardMarkup(rows, resize_keyboard=True)
    if send.remove_keyboard:
        return ReplyKeyboardRemove()
    return None


def _entities(stored: str) -> list[MessageEntity] | None:
    return [MessageEntity.de_json(e, None) for e in json.loads(stored)] or None
