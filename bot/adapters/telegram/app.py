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
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Awaitable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any
from zoneinfo import ZoneInfo

from telegram import BotCommand, ChatMemberAdministrator, ChatMemberOwner, Message, Update
from telegram.constants import ChatType
from telegram.error import TelegramError
from telegram.ext import Application, ApplicationBuilder, BaseUpdateProcessor, ContextTypes, TypeHandler

from bot.adapters.sqlite.store import Patient, Store
from bot.adapters.telegram.events import patient_event, patient_message, staff_event
from bot.adapters.telegram.http import AiohttpRequest
from bot.adapters.telegram.journal import JournalingQueue, JournalingUpdatesRequest, TolerantBot, UpdateJournal
from bot.adapters.telegram.outbox import OutboxSender
from bot.adapters.telegram.scheduler import Limits
from bot.adapters.telegram.staff import StaffRoster
from bot.adapters.telegram.upkeep import Upkeep
from bot.config import Config
from bot.core.commands import CLOSE_BUTTON_DATA, PATIENT_COMMANDS
from bot.core.desk import (
    RECORDS,
    Conversation,
    Desk,
    ForgetEverything,
    FromPatient,
    LogHandoff,
    Outcome,
    PatientEdited,
    SendFailed,
    StoreBooking,
    StoreRating,
    Transcribe,
)
from bot.core.dialogue import RecordUnanswered
from bot.core.outgoing import Send

log = logging.getLogger(__name__)

# Messages, edits and button presses are all the bot needs; narrowing
# allowed_updates keeps Telegram from sending member updates, polls...
ALLOWED_UPDATES = [Update.MESSAGE, Update.EDITED_MESSAGE, Update.CALLBACK_QUERY]
SHUTDOWN_FLUSH_SECONDS = 3.0  # SIGTERM must finish within 5 s
# A database error while handling an update (locked by a backup, a full disk for a moment)
# is retried after these pauses, about 15 s in all, before the update is left to the
# next start. Only that chat waits meanwhile.
STORE_RETRY_PAUSES = (0.5, 1.0, 2.0, 4.0, 8.0)
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


class FrontDesk:
    """Turns updates into the core's events and carries out what the core decides
    (:class:`bot.core.desk.Desk`); staff topics are routed to their patients."""

    def __init__(self, config: Config, desk: Desk, store: Store) -> None:
        self.config = config
        self.desk = desk
        self.clinic_time = ZoneInfo(config.timezone)
        self.store = store
        self.staff_chat_id = config.telegram.staff_chat_id
        self._saved_names: OrderedDict[int, tuple[str, str, str]] = OrderedDict()  # bounded: skips unchanged writes
        self.sender: OutboxSender | None = None
        self._background: list[asyncio.Task[None]] = []
        self._bot: Any = None  # the application's Bot, once started
        self.roster = StaffRoster(self.staff_chat_id, config.staff_user_ids)
        self.upkeep = Upkeep(config, store)
        self._left: set[int] = set()  # groups left (or tried), once each

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self, application: Application) -> None:
        """Start-up checks, then replay journaled updates and start delivering the outbox."""
        await check_setup(application, self.config)
        self._bot = application.bot
        self.roster.bot = application.bot
        rate = self.config.telegram.rate_limit
        limits = Limits(rate.overall_per_second, rate.chat_per_second, group_per_minute=int(rate.group_per_minute))
        self.sender = OutboxSender(application.bot, self.store, self.staff_chat_id, self, limits=limits)
        self._background.append(asyncio.create_task(self.sender.run(), name="outbox"))
        await self.upkeep.start()
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
        if self.sender is not None:
            await self.sender.flush(SHUTDOWN_FLUSH_SECONDS)
            await self.sender.stop()
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._background.clear()
        await self.upkeep.stop()

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
                outcome = self.desk.patient_edited(before, PatientEdited(patient_message(update.edited_message)))
            elif (event := patient_event(update)) is not None:
                message = patient_message(update.message) if update.message is not None else None
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
        staff = await self.roster.acts_as_staff(update)
        with self.store.transaction():
            self._handle_staff(update, staff)
            self.store.mark_update_done(update.update_id)

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
                for notice in self.desk.orphan_topic(thread_id, forgotten=self.store.is_forgotten_topic(thread_id)):
                    self.store.enqueue(0, notice)
            return
        if not staff:
            log.warning("Message in topic %s from user %s, who is not staff: not passed on", thread_id, sender.id)
        copy_of = self.store.patient_copy_of(edit.message_id) if edit is not None and query is None else None
        event = staff_event(update, message, sender.id, staff, patient_copy_id=copy_of)
        before = self.conversation(handoff.chat_id)
        self.carry_out(before, self.desk.staff(before, event))


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


def build_application(config: Config, desk: Desk, store: Store) -> Application:
    """The one place where python-telegram-bot is wired to the core and the store."""
    dialogue = desk.dialogue
    front = FrontDesk(config, desk, store)
    journal = UpdateJournal(store)
    polling = front.upkeep.polling = JournalingUpdatesRequest(journal)
    bot = TolerantBot(
        config.telegram.token,
        base_url=config.telegram.api_base_url,
        base_file_url=config.telegram.api_file_url,
        # Many requests in flight, on aiohttp (see bot/adapters/telegram/http.py for why not httpx).
        request=AiohttpRequest(64),
        polling=polling,
    )
    application = (
        ApplicationBuilder()
        .bot(bot)
        .update_queue(JournalingQueue(journal))
        .concurrent_updates(PerChatUpdateProcessor())
        .post_init(front.start)
        .post_stop(lambda _app: front.stop())
        .build()
    )
    application.bot_data["desk"] = front
    application.bot_data["texts"] = dialogue.texts
    application.add_handler(TypeHandler(Update, front.on_update))
    application.add_error_handler(_on_error)
    return application
