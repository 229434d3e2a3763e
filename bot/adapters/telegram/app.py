"""The Telegram adapter: python-telegram-bot around the pure dialogue core.

Patients talk to the bot in private chats. Staff work in one forum supergroup
(``telegram.staff_chat_id``): one topic per patient, opened with a card;
while a patient is handed off, messages are copied both ways. The SQLite
store is the only record of conversation state (no ConversationHandler, no
pickle), so a restart carries on where it stopped.

Nothing is lost:

* every update is journaled in SQLite when python-telegram-bot queues it,
  which is before the next ``getUpdates`` confirms it to Telegram (and before
  a webhook request is answered); unhandled ones are replayed at start-up,
  handled ones are never handled twice;
* handlers only enqueue sends, in the same transaction that marks the update
  handled; :class:`bot.adapters.telegram.outbox.OutboxSender` delivers them with retries.

Updates of one chat are handled in order; different chats concurrently.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import json
import logging
import os
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Awaitable
from contextlib import asynccontextmanager
from dataclasses import replace
from zoneinfo import ZoneInfo
from typing import Any

from telegram import BotCommand, ChatMemberAdministrator, ChatMemberOwner, Message, Update
from telegram.constants import ChatMemberStatus, ChatType
from telegram.error import NetworkError, RetryAfter, TelegramError
from telegram.ext import Application, ApplicationBuilder, BaseUpdateProcessor, ContextTypes, ExtBot, TypeHandler

from bot.adapters.telegram.http import AiohttpRequest
from bot.config import Config
from bot.core.commands import CLOSE_BUTTON_DATA, PATIENT_COMMANDS, parse_command
from bot.core.desk import (
    RECORDS,
    Conversation,
    Desk,
    ForgetEverything,
    FromPatient,
    LogHandoff,
    Outcome,
    PatientEdited,
    PatientMessage,
    SendFailed,
    StaffEdited,
    StaffEvent,
    StaffPressedClose,
    StaffWrote,
    StoreBooking,
    StoreRating,
    Transcribe,
)
from bot.core.dialogue import (
    ButtonPressed,
    ContactShared,
    Dialogue,
    Event,
    PatientCommand,
    PatientText,
    RecordUnanswered,
    UnsupportedMessage,
)
from bot.core.outgoing import Send
from bot.adapters.telegram.outbox import OutboxSender
from bot.adapters.telegram.scheduler import Limits
from bot.service import HEARTBEAT_SECONDS, current_health
from bot.adapters.sqlite.store import Patient, Store

log = logging.getLogger(__name__)

# Messages, edits and button presses are all the bot needs; narrowing
# allowed_updates keeps Telegram from sending member updates, polls...
ALLOWED_UPDATES = [Update.MESSAGE, Update.EDITED_MESSAGE, Update.CALLBACK_QUERY]
SHUTDOWN_FLUSH_SECONDS = 3.0  # SIGTERM must finish within 5 s
# Telegram keeps unconfirmed updates for 24 hours; ids handled longer ago cannot come back.
JOURNAL_KEEP_SECONDS = 2 * 86_400
# A database error while handling an update (locked by a backup, a full disk for a moment)
# is retried after these pauses, about 15 s in all, before the update is left to the
# next start. Only that chat waits meanwhile.
STORE_RETRY_PAUSES = (0.5, 1.0, 2.0, 4.0, 8.0)
# How long Telegram's word that a user is (or is not) an administrator of the staff group
# is trusted: one getChatMember per staff member per five minutes, and someone removed
# from the administrators loses access within five minutes.
STAFF_CHECK_SECONDS = 300.0
NAME_CACHE = 10_000  # recently seen patients whose stored name is known to be current


class SetupError(Exception):
    """The bot cannot run with this Telegram setup; the message says what to fix."""


class ChatLocks:
    """One lock per chat, kept only while someone holds or waits for it (no dict that only grows)."""

    def __init__(self) -> None:
        self._locks: dict[int, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, chat_id: int) -> Any:
        lock, users = self._locks.get(chat_id, (asyncio.Lock(), 0))
        self._locks[chat_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[chat_id]
            if users <= 1:
                del self._locks[chat_id]
            else:
                self._locks[chat_id] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


def ordering_key(update: object) -> int | None:
    """Updates with the same key are handled in order: a patient's chat, or the patient behind a staff topic."""
    if not isinstance(update, Update) or update.effective_chat is None:
        return None
    return update.effective_chat.id


class PerChatUpdateProcessor(BaseUpdateProcessor):
    """Handles different chats concurrently and each chat's updates in the order received.

    python-telegram-bot's default handles one update at a time; its
    ``concurrent_updates`` alone lets a patient's second message overtake the
    first. Tasks are created in queue order and asyncio locks are FIFO, so
    per-chat order holds.
    """

    def __init__(self, max_concurrent_updates: int = 4096) -> None:
        # High on purpose: a flooding chat's updates wait on *its* lock, and must
        # not use up the slots other patients need.
        super().__init__(max_concurrent_updates)
        self.locks = ChatLocks()

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        key = ordering_key(update)
        if key is None:
            await coroutine
            return
        async with self.locks.hold(key):
            await coroutine

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None


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


class FrontDesk:
    """Turns updates into the core's events and carries out what the core decides
    (:class:`bot.core.desk.Desk`); staff topics are routed to their patients."""

    def __init__(self, config: Config, dialogue: Dialogue, store: Store) -> None:
        self.config = config
        self.desk = Desk(
            dialogue, transcript_lines=config.transcript_lines, keep_records=config.staff_keep_records, hours=config.staff_hours
        )
        self.clinic_time = ZoneInfo(config.timezone)
        self.store = store
        self.staff_chat_id = config.telegram.staff_chat_id
        self._saved_names: OrderedDict[int, tuple[str, str, str]] = OrderedDict()  # bounded: skips unchanged writes
        self.sender: OutboxSender | None = None
        self._background: list[asyncio.Task[None]] = []
        self.polling: JournalingUpdatesRequest | None = None  # set by build_application
        self._started_at = time.time()
        self._bot: Any = None  # the application's Bot, once started
        self._staff_checked: dict[int, tuple[bool, float]] = {}  # user id -> (is staff, when asked)
        self._left: set[int] = set()  # groups left (or tried), once each
        self._health_server: Any = None  # bot.adapters.telegram.webhook.HealthServer, when health.port is set

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self, application: Application) -> None:
        """Start-up checks, then replay journaled updates and start delivering the outbox."""
        await check_setup(application, self.config)
        self._bot = application.bot
        rate = self.config.telegram.rate_limit
        limits = Limits(rate.overall_per_second, rate.chat_per_second, group_per_minute=int(rate.group_per_minute))
        self.sender = OutboxSender(application.bot, self.store, self.staff_chat_id, self, limits=limits)
        self._background.append(asyncio.create_task(self.sender.run(), name="outbox"))
        self._background.append(asyncio.create_task(self._housekeeping(), name="housekeeping"))
        self._background.append(asyncio.create_task(self._heartbeat(), name="heartbeat"))
        if self.config.health_port and self.config.telegram.mode == "polling":
            from bot.adapters.telegram.webhook import HealthServer  # (webhook mode serves /healthz on its own port)

            self._health_server = HealthServer(lambda: current_health(self.store))
            await self._health_server.start(self.config.health_listen, self.config.health_port)
        for update_id, payload in self.store.pending_updates():
            try:
                update = Update.de_json(json.loads(payload), application.bot)
            except (ValueError, TypeError, KeyError) as exc:
                log.error("Journaled update %s cannot be read (%s); skipped", update_id, exc)
                self.store.mark_update_done(update_id)
                continue
            if update is not None:
                await application.update_queue.put(update)

    async def stop(self) -> None:
        if self._health_server is not None:
            await self._health_server.stop()
            self._health_server = None
        if self.sender is not None:
            await self.sender.flush(SHUTDOWN_FLUSH_SECONDS)
            await self.sender.stop()
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._background.clear()
        self._beat("stopped")

    def _beat(self, mode: str) -> None:
        last_poll = self.polling.last_answer_at if self.polling is not None else None
        self.store.beat(pid=os.getpid(), mode=mode, started_at=self._started_at, last_poll_at=last_poll)

    async def _heartbeat(self) -> None:
        """For `python -m bot health` (another process): alive, in which mode, last getUpdates answered."""
        while True:
            try:
                self._beat(self.config.telegram.mode)
            except sqlite3.Error as exc:  # a busy or full disk must not end the heartbeat task
                log.warning("Heartbeat not recorded: %s", exc)
            await asyncio.sleep(HEARTBEAT_SECONDS)

    async def _housekeeping(self) -> None:
        """Hourly: forget handled update ids Telegram can no longer re-send, apply the retention setting."""
        while True:
            now = time.time()
            self.store.prune_journal(now - JOURNAL_KEEP_SECONDS)
            if self.config.retention_days:
                removed = self.store.delete_older_than(now - self.config.retention_days * 86_400)
                if removed:
                    log.info("Retention: deleted %d rows of personal data older than %d days", removed, self.config.retention_days)
            await asyncio.sleep(3_600)

    def _wake(self, chat_id: int | None) -> None:
        if self.sender is not None:
            # Staff updates enqueue for the patient behind the topic, not the staff chat: scan.
            self.sender.wake(chat_id if chat_id is not None and chat_id != self.staff_chat_id else None)

    # -- entry point -------------------------------------------------------------------
    async def on_update(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Every update arrives here; anything we do not handle is ignored, never an error."""
        if not isinstance(update, Update):
            return
        chat = update.effective_chat
        for pause in (*STORE_RETRY_PAUSES, None):
            try:
                if self.store.update_done(update.update_id):
                    return  # delivered again after a restart: already handled
                if chat is not None and chat.type == ChatType.PRIVATE:
                    await self.on_patient(update)
                elif chat is not None and chat.id == self.staff_chat_id:
                    await self.on_staff(update)
                else:
                    self.store.mark_update_done(update.update_id)  # other groups and channels reach nobody
                    if chat is not None and chat.type in (ChatType.GROUP, ChatType.SUPERGROUP):
                        await self._leave(chat.id)
                break
            except sqlite3.OperationalError as exc:
                # Locked, disk full, I/O: the update's transaction was rolled back, so it can
                # be handled again, here, keeping this chat's order (its next update waits).
                if chat is not None:
                    self._saved_names.pop(chat.id, None)  # the rolled-back write may have been a name
                if pause is None:
                    log.error("Update %s left for the next start: the database keeps failing (%s)", update.update_id, exc)
                    return
                log.warning("Database error (%s); update %s is tried again in %.1f s", exc, update.update_id, pause)
                await asyncio.sleep(pause)
        self._wake(chat.id if chat is not None else None)

    async def _leave(self, chat_id: int) -> None:
        """Leave a group that is not the staff group (someone added the bot): patients'
        conversations must not be reachable from, or leak into, any other group."""
        if chat_id in self._left:
            return
        self._left.add(chat_id)
        try:
            await self._bot.leave_chat(chat_id)
            log.warning("Left group %s: it is not the staff group (telegram.staff_chat_id)", chat_id)
        except TelegramError as exc:
            log.warning("Could not leave group %s: %s", chat_id, exc)

    # -- patients ------------------------------------------------------------------------
    async def on_patient(self, update: Update) -> None:
        chat = update.effective_chat
        user = update.effective_user
        assert chat is not None
        if update.callback_query is not None:
            await _answer_quietly(update.callback_query)
        with self.store.transaction():
            if user is not None:
                self._save_patient(chat.id, user.first_name or "", user.last_name or "", user.username or "")
            before = self.conversation(chat.id)
            if update.edited_message is not None:
                outcome = self.desk.patient_edited(before, PatientEdited(_patient_message(update.edited_message)))
            elif (event := self.event_for(update)) is not None:
                message = _patient_message(update.message) if update.message is not None else None
                written = update.message.date if update.message is not None else dtm.datetime.now(dtm.timezone.utc)
                outcome = self.desk.patient(before, FromPatient(event, message, time.monotonic(), written.astimezone(self.clinic_time)))
            else:
                outcome = Outcome(before)
            self.carry_out(before, outcome)
            self.store.mark_update_done(update.update_id)

    def _save_patient(self, chat_id: int, first: str, last: str, username: str) -> None:
        names = (first, last, username)
        if self._saved_names.get(chat_id) == names:
            self._saved_names.move_to_end(chat_id)
            return
        self.store.save_patient(Patient(chat_id, *names))
        self._saved_names[chat_id] = names
        if len(self._saved_names) > NAME_CACHE:
            self._saved_names.popitem(last=False)

    def conversation(self, chat_id: int) -> Conversation:
        """What the core needs to know about a patient, from the store."""
        patient = self.store.patient(chat_id)
        recent = self.store.recent_transcript(chat_id, self.config.transcript_lines) if self.config.transcript_lines else []
        return Conversation(
            chat_id,
            self.store.load_session(chat_id),
            self.store.handoff(chat_id),
            name=patient.display_name,
            username=patient.username,
            recent=tuple((line.role, line.text) for line in recent),
        )

    def carry_out(self, before: Conversation, outcome: Outcome) -> None:
        """Store the conversation the core returned, then its effects in order (sends go to the outbox)."""
        after = outcome.conversation
        chat_id = after.chat_id
        self.store.save_session(chat_id, after.session)  # (also marks the patient as recently active)
        if after.handoff is not None and after.handoff != before.handoff:
            self.store.save_handoff(after.handoff)
        for effect in outcome.effects:
            if isinstance(effect, Transcribe):
                self.store.add_transcript(chat_id, effect.role, effect.text)
            elif isinstance(effect, RecordUnanswered):
                self.store.add_unanswered(chat_id, effect.question)
            elif isinstance(effect, StoreBooking):
                self.store.add_booking(chat_id, effect.booking)
            elif isinstance(effect, ForgetEverything):
                self.store.forget(chat_id)
                self._saved_names.pop(chat_id, None)
            elif isinstance(effect, StoreRating):
                self.store.add_rating(chat_id, helpful=effect.helpful)
            elif isinstance(effect, LogHandoff):
                self.store.log_handoff(chat_id, effect.kind, effect.reason)
            else:
                self.store.enqueue(chat_id, effect)

    def event_for(self, update: Update) -> Event | None:
        """The core event for a patient's update, or None for what we ignore."""
        if update.callback_query is not None:
            return ButtonPressed(update.callback_query.data or "")
        message = update.message
        if message is None:
            return None
        if message.contact is not None:
            return ContactShared(message.contact.phone_number)
        if message.text is None and message.effective_attachment is None:
            return None  # service messages (write access granted, pinned, ...) say nothing and cannot be copied
        if message.text is not None:
            command = parse_command(message.text)
            if command is not None and command[0] in PATIENT_COMMANDS:
                user = update.effective_user
                return PatientCommand(command[0], language_hint=user.language_code if user is not None else None)
            return PatientText(message.text)
        kinds = ("sticker", "photo", "voice", "video", "document", "audio", "animation", "video_note", "location")
        return UnsupportedMessage(next((k for k in kinds if getattr(message, k, None)), "other"))

    # -- what the outbox reports (bot.adapters.telegram.outbox.Reports) --------------------------------------
    def topic_gone(self, chat_id: int) -> tuple[Send, ...]:
        with self.store.transaction():
            before = self.conversation(chat_id)
            outcome = self.desk.topic_gone(before)
            self.carry_out(before, replace(outcome, effects=()))
        return tuple(e for e in outcome.effects if not isinstance(e, RECORDS))  # type: ignore[misc]

    def send_failed(self, chat_id: int, send: Send, reason: str) -> None:
        for notice in self.desk.send_failed(self.conversation(chat_id), SendFailed(send, reason)):
            self.store.enqueue(chat_id, notice)

    # -- staff -------------------------------------------------------------------------------
    async def on_staff(self, update: Update) -> None:
        query = update.callback_query
        if query is not None:
            await _answer_quietly(query)
        staff = await self._acts_as_staff(update)
        with self.store.transaction():
            self._handle_staff(update, staff)
            self.store.mark_update_done(update.update_id)

    async def _acts_as_staff(self, update: Update) -> bool:
        """Whether the sender may act as staff: an administrator of the staff group (asked
        of Telegram, trusted for STAFF_CHECK_SECONDS) or one of staff.user_ids. Anyone can
        be added to the group by mistake; only staff may write to patients."""
        query = update.callback_query
        message = update.message or update.edited_message
        if query is None and message is not None and message.sender_chat is not None:
            # An anonymous administrator posts as the group itself; only administrators can.
            return message.sender_chat.id == self.staff_chat_id
        user = query.from_user if query is not None else (message.from_user if message is not None else None)
        if user is None or user.is_bot:
            return False
        if self.config.staff_user_ids:
            return user.id in self.config.staff_user_ids
        now = time.monotonic()
        known = self._staff_checked.get(user.id)
        if known is not None and now - known[1] < STAFF_CHECK_SECONDS:
            return known[0]
        try:
            member = await self._bot.get_chat_member(self.staff_chat_id, user.id)
            staff = member.status in (ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR)
        except (NetworkError, RetryAfter) as exc:
            log.warning("Could not check whether user %s is staff: %s", user.id, exc)
            return False  # not remembered: the next message asks again
        except TelegramError:
            staff = False  # Telegram's answer ("user not found"...) is an answer: remembered
        self._staff_checked[user.id] = (staff, now)
        return staff

    def _handle_staff(self, update: Update, staff: bool) -> None:
        query = update.callback_query
        edit = update.edited_message
        message = query.message if query is not None else (update.message or edit)
        if query is not None and query.data != CLOSE_BUTTON_DATA:
            return
        if not isinstance(message, Message) or not message.is_topic_message or message.message_thread_id is None:
            return  # the General topic and anything outside a topic reach nobody
        sender = query.from_user if query is not None else message.from_user
        if sender is None or (sender.is_bot and message.sender_chat is None):
            return  # our own messages and other bots'
        thread_id = message.message_thread_id
        handoff = self.store.handoff_by_thread(thread_id)
        if handoff is None:
            # (A deleted topic gets no notice: a message racing its deletion has nowhere to go.)
            if query is None:
                for notice in self.desk.orphan_topic(forgotten=self.store.is_forgotten_topic(thread_id)):
                    self.store.enqueue(0, replace(notice, thread_id=thread_id))
            return
        if not staff:
            log.warning("Message in topic %s from user %s, who is not staff: not passed on", thread_id, sender.id)
        event: StaffEvent
        if query is not None:
            event = StaffPressedClose(sender.id, staff)
        elif edit is not None:
            entities = edit.entities if edit.text is not None else edit.caption_entities
            copy_id = self.store.patient_copy_of(edit.message_id)
            event = StaffEdited(
                sender.id, staff, copy_id, edit.text, edit.caption, json.dumps([e.to_dict() for e in entities])
            )
        else:
            event = StaffWrote(
                sender.id, staff, message.message_id, message.text, message.caption,
                has_content=message.text is not None or message.effective_attachment is not None,
                uncopyable=_uncopyable_kind(message),
            )
        before = self.conversation(handoff.chat_id)
        self.carry_out(before, self.desk.staff(before, event))


def _patient_message(message: Message) -> PatientMessage:
    return PatientMessage(message.message_id, message.text, _uncopyable_kind(message), message.media_group_id)


# Bot API: service messages, paid media, giveaways and invoices can't be copied, nor a quiz
# whose answer the bot does not know. Service messages are recognised by these fields.
_SERVICE_FIELDS = (
    "new_chat_members", "left_chat_member", "new_chat_title", "new_chat_photo", "delete_chat_photo",
    "group_chat_created", "supergroup_chat_created", "channel_chat_created", "message_auto_delete_timer_changed",
    "migrate_to_chat_id", "migrate_from_chat_id", "pinned_message", "users_shared", "chat_shared", "gift",
    "unique_gift", "connected_website", "write_access_allowed", "proximity_alert_triggered", "boost_added",
    "chat_background_set", "forum_topic_created", "forum_topic_edited", "forum_topic_closed", "forum_topic_reopened",
    "general_forum_topic_hidden", "general_forum_topic_unhidden", "giveaway_created", "giveaway_completed",
    "video_chat_scheduled", "video_chat_started", "video_chat_ended", "video_chat_participants_invited", "web_app_data",
)
_UNCOPYABLE_CONTENT = ("invoice", "successful_payment", "refunded_payment", "passport_data", "paid_media", "giveaway", "giveaway_winners")


def _uncopyable_kind(message: Message) -> str | None:
    """What kind of message this is, if Telegram will not let a bot copy it (else None)."""
    poll = message.poll
    if poll is not None and poll.type == "quiz" and getattr(poll, "correct_option_id", None) is None:
        return "quiz"
    for kind in _UNCOPYABLE_CONTENT:
        if getattr(message, kind, None):
            return kind.replace("_", " ")
    if any(getattr(message, field, None) for field in _SERVICE_FIELDS):
        return "service message"
    return None


async def _answer_quietly(query: Any) -> None:
    try:
        await query.answer()
    except TelegramError as exc:  # an old query (over 15 minutes) cannot be answered; nothing is lost
        log.debug("Could not answer callback query: %s", exc)


async def _on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    log.error("Error while handling an update: %s", context.error, exc_info=context.error)


async def check_setup(application: Application, config: Config) -> None:
    """At start-up: the staff chat is a forum where the bot manages topics; commands registered."""
    bot = application.bot
    staff = config.telegram.staff_chat_id
    try:
        chat = await bot.get_chat(staff)
    except TelegramError as exc:
        raise SetupError(
            f"telegram.staff_chat_id: the bot cannot open chat {staff} ({exc.message}). "
            "Add the bot to the staff supergroup and check the id."
        ) from None
    if chat.type != ChatType.SUPERGROUP or not getattr(chat, "is_forum", False):
        raise SetupError(
            f"telegram.staff_chat_id: chat {staff} ({chat.title!r}) is not a supergroup with topics. "
            "In the group's settings, turn on Topics."
        )
    member = await bot.get_chat_member(staff, bot.id)
    can_manage = isinstance(member, ChatMemberOwner) or (isinstance(member, ChatMemberAdministrator) and bool(member.can_manage_topics))
    if not can_manage:
        raise SetupError(
            f"telegram.staff_chat_id: the bot is not allowed to manage topics in {chat.title!r}. "
            "Make it an administrator with the 'Manage topics' right."
        )
    texts = application.bot_data["texts"]
    await bot.set_my_commands([BotCommand(name, texts[f"command_{name}"]) for name in PATIENT_COMMANDS])


def build_application(config: Config, dialogue: Dialogue, store: Store) -> Application:
    """The one place where python-telegram-bot is wired to the core and the store."""
    desk = FrontDesk(config, dialogue, store)
    journal = UpdateJournal(store)
    desk.polling = JournalingUpdatesRequest(journal)
    bot = TolerantBot(
        config.telegram.token,
        base_url=config.telegram.api_base_url,
        base_file_url=config.telegram.api_file_url,
        # Many requests in flight, on aiohttp (see bot/adapters/telegram/http.py for why not httpx).
        request=AiohttpRequest(64),
        polling=desk.polling,
    )
    application = (
        ApplicationBuilder()
        .bot(bot)
        .update_queue(JournalingQueue(journal))
        .concurrent_updates(PerChatUpdateProcessor())
        .post_init(desk.start)
        .post_stop(lambda _app: desk.stop())
        .build()
    )
    application.bot_data["desk"] = desk
    application.bot_data["texts"] = dialogue.texts
    application.add_handler(TypeHandler(Update, desk.on_update))
    application.add_error_handler(_on_error)
    return application
