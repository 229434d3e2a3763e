"""The Telegram adapter: python-telegram-bot around the pure dialogue core.

Patients talk to the bot in private chats. Staff work in one forum supergroup
(``telegram.staff_chat_id``): one topic per patient, opened with a card;
while a patient is handed off, messages are copied both ways. The SQLite
store is the only record of conversation state (no ConversationHandler, no
pickle), so a restart carries on where it stopped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import asynccontextmanager
from typing import Any

from telegram import (
    BotCommand,
    ChatMemberAdministrator,
    ChatMemberOwner,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.constants import ChatType, ParseMode
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import AIORateLimiter, Application, ApplicationBuilder, ContextTypes, TypeHandler

from bot.config import Config
from bot.core.booking import Booking
from bot.core.dialogue import (
    Action,
    ButtonPressed,
    ContactShared,
    Dialogue,
    EndHandoff,
    Event,
    HandOff,
    PatientCommand,
    PatientText,
    RecordUnanswered,
    RelayToStaff,
    Reply,
    StaffClosed,
    StaffReopened,
    SubmitBooking,
    UnsupportedMessage,
)
from bot.core.staff_card import CardPatient, render_card, topic_name
from bot.storage import Patient, Store

log = logging.getLogger(__name__)

PATIENT_COMMANDS = ("start", "help", "book", "human", "end", "cancel")
STAFF_CLOSE = "staff:close"
# Telegram's own answers we react to (they are not exposed as error codes).
THREAD_GONE = ("message thread not found", "topic_deleted", "thread not found", "topic not found")
# Messages, edits and button presses are all the bot needs; narrowing
# allowed_updates keeps Telegram from sending member updates, polls...
ALLOWED_UPDATES = [Update.MESSAGE, Update.EDITED_MESSAGE, Update.CALLBACK_QUERY]
MAX_TEXT = 4_096


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


class FrontDesk:
    """Routes updates: patients to the dialogue core, staff topics to their patients."""

    def __init__(self, config: Config, dialogue: Dialogue, store: Store) -> None:
        self.config = config
        self.dialogue = dialogue
        self.store = store
        self.texts = dialogue.texts
        self.staff_chat_id = config.telegram.staff_chat_id
        self.locks = ChatLocks()

    # -- entry point -------------------------------------------------------------------
    async def on_update(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Every update arrives here; anything we do not handle is ignored, never an error."""
        if not isinstance(update, Update):
            return
        chat = update.effective_chat
        if chat is None:
            return
        if chat.type == ChatType.PRIVATE:
            await self.on_patient(update, context)
        elif chat.id == self.staff_chat_id:
            await self.on_staff(update, context)
        # Other groups and channels: nothing reaches a patient from there.

    # -- patients ------------------------------------------------------------------------
    async def on_patient(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        chat = update.effective_chat
        user = update.effective_user
        assert chat is not None
        query = update.callback_query
        if query is not None:
            await _answer_quietly(query)
        message = update.message or update.edited_message
        async with self.locks.hold(chat.id):
            if user is not None:
                self.store.save_patient(Patient(chat.id, user.first_name or "", user.last_name or "", user.username or ""))
            state = self.store.load_session(chat.id)
            if update.edited_message is not None:
                # Edits are only meaningful to a coordinator reading along; the bot does not re-answer them.
                if state.mode == "handoff":
                    await self.relay_to_staff(context, chat.id, update.edited_message)
                return
            event = self.event_for(update)
            if event is None:
                return
            if isinstance(event, PatientText):
                self.store.add_transcript(chat.id, "patient", event.text)
            elif isinstance(event, PatientCommand):
                self.store.add_transcript(chat.id, "patient", f"/{event.name}")
            step = self.dialogue.handle(state, event)
            self.store.save_session(chat.id, step.state)
            for action in step.actions:
                await self.perform(context, chat.id, action, message)

    def event_for(self, update: Update) -> Event | None:
        """The core event for a patient's update, or None for what we ignore."""
        if update.callback_query is not None:
            return ButtonPressed(update.callback_query.data or "")
        message = update.message
        if message is None:
            return None
        if message.contact is not None:
            return ContactShared(message.contact.phone_number)
        if message.text is not None:
            text = message.text
            if text.startswith("/"):
                command = text[1:].split(maxsplit=1)[0].split("@", 1)[0].lower() if len(text) > 1 else ""
                if command in PATIENT_COMMANDS:
                    return PatientCommand(command)
            return PatientText(text)
        kind = next((k for k in ("sticker", "photo", "voice", "video", "document", "audio", "animation", "video_note", "location") if getattr(message, k, None)), "other")
        return UnsupportedMessage(kind)

    async def perform(self, context: ContextTypes.DEFAULT_TYPE, chat_id: int, action: Action, message: Message | None) -> None:
        """Carry out one action of the core for this patient."""
        if isinstance(action, Reply):
            await self.send_reply(context, chat_id, action)
        elif isinstance(action, RecordUnanswered):
            self.store.add_unanswered(chat_id, action.question)
        elif isinstance(action, HandOff):
            self.store.open_handoff(chat_id, action.reason, urgent=action.reason == "urgent")
            await self.post_card(context, chat_id, action.reason, question=action.question)
        elif isinstance(action, RelayToStaff):
            if message is not None:
                await self.relay_to_staff(context, chat_id, message)
        elif isinstance(action, EndHandoff):
            self.store.close_handoff(chat_id)
            if action.by == "patient":
                await self.tell_topic(context, chat_id, self.texts["staff_patient_ended"])
        elif isinstance(action, SubmitBooking):
            self.store.add_booking(chat_id, action.booking)
            await self.post_card(context, chat_id, "booking", booking=action.booking)

    async def send_reply(self, context: ContextTypes.DEFAULT_TYPE, chat_id: int, reply: Reply) -> None:
        chunks = list(_chunks(reply.text, MAX_TEXT))
        for index, chunk in enumerate(chunks):
            await _send_to_patient(context, chat_id, chunk, _markup(reply) if index == len(chunks) - 1 else None)
        self.store.add_transcript(chat_id, "bot", reply.text)

    # -- staff topics ----------------------------------------------------------------------
    async def topic_for(self, context: ContextTypes.DEFAULT_TYPE, chat_id: int, *, fresh: bool = False) -> int:
        """The patient's topic in the staff group, created on first need (or again if staff deleted it)."""
        handoff = self.store.handoff(chat_id)
        if handoff is not None and handoff.thread_id is not None and not fresh:
            return handoff.thread_id
        patient = self.store.patient(chat_id)
        urgent = handoff.urgent if handoff else False
        card_patient = CardPatient(chat_id, patient.display_name, patient.username)
        topic = await context.bot.create_forum_topic(self.staff_chat_id, topic_name(card_patient, urgent=urgent))
        self.store.record_topic(chat_id, topic.message_thread_id)
        return topic.message_thread_id

    async def _into_topic(self, context: ContextTypes.DEFAULT_TYPE, chat_id: int, send: Any) -> Message | Any:
        """Run ``send(thread_id)``; if staff deleted the topic, open a new one and send there."""
        thread_id = await self.topic_for(context, chat_id)
        try:
            return await send(thread_id)
        except BadRequest as exc:
            if not any(marker in exc.message.lower() for marker in THREAD_GONE):
                raise
            log.info("Topic %s of chat %s is gone; opening a new one", thread_id, chat_id)
            thread_id = await self.topic_for(context, chat_id, fresh=True)
            return await send(thread_id)

    async def post_card(
        self, context: ContextTypes.DEFAULT_TYPE, chat_id: int, reason: str, *, question: str = "", booking: Booking | None = None
    ) -> None:
        patient = self.store.patient(chat_id)
        lines = self.store.recent_transcript(chat_id, self.config.transcript_lines)
        card = render_card(
            CardPatient(chat_id, patient.display_name, patient.username),
            reason,
            self.texts,
            question=question,
            booking=booking,
            transcript=[(line.role, line.text) for line in lines],
        )
        close = InlineKeyboardMarkup([[InlineKeyboardButton(self.texts["button_close"], callback_data=STAFF_CLOSE)]])
        await self._into_topic(
            context,
            chat_id,
            lambda thread_id: context.bot.send_message(
                self.staff_chat_id, card, message_thread_id=thread_id, parse_mode=ParseMode.HTML, reply_markup=close
            ),
        )

    async def relay_to_staff(self, context: ContextTypes.DEFAULT_TYPE, chat_id: int, message: Message) -> None:
        copied = await self._into_topic(
            context,
            chat_id,
            lambda thread_id: context.bot.copy_message(self.staff_chat_id, chat_id, message.message_id, message_thread_id=thread_id),
        )
        self.store.link_messages(chat_id, message.message_id, copied.message_id, "to_staff")

    async def tell_topic(self, context: ContextTypes.DEFAULT_TYPE, chat_id: int, text: str) -> None:
        handoff = self.store.handoff(chat_id)
        if handoff is None or handoff.thread_id is None:
            return
        await self._into_topic(
            context, chat_id, lambda thread_id: context.bot.send_message(self.staff_chat_id, text, message_thread_id=thread_id)
        )

    # -- staff -------------------------------------------------------------------------------
    async def on_staff(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        message = query.message if query is not None else update.message
        if query is not None:
            await _answer_quietly(query)
            if query.data != STAFF_CLOSE:
                return
        if not isinstance(message, Message) or not message.is_topic_message or message.message_thread_id is None:
            return  # the General topic and anything outside a topic reach nobody
        sender = query.from_user if query is not None else message.from_user
        if sender is None or sender.is_bot:
            return
        handoff = self.store.handoff_by_thread(message.message_thread_id)
        if handoff is None:
            return  # a topic we did not open, or whose patient was forgotten
        chat_id = handoff.chat_id
        text = (message.text or "").strip() if query is None else "/close"
        command = text[1:].split(maxsplit=1)[0].split("@", 1)[0].lower() if text.startswith("/") else ""
        async with self.locks.hold(chat_id):
            if command == "close":
                await self.staff_event(context, chat_id, StaffClosed(), self.texts["staff_closed"])
            elif command == "open":
                self.store.open_handoff(chat_id, "requested", urgent=False)
                await self.staff_event(context, chat_id, StaffReopened(), self.texts["staff_reopened"])
            elif command == "note":
                self.store.add_transcript(chat_id, "staff", f"(internal note) {text[5:].strip()}")
            elif query is None:
                await self.relay_to_patient(context, chat_id, message)

    async def staff_event(self, context: ContextTypes.DEFAULT_TYPE, chat_id: int, event: Event, notice: str) -> None:
        step = self.dialogue.handle(self.store.load_session(chat_id), event)
        self.store.save_session(chat_id, step.state)
        for action in step.actions:
            await self.perform(context, chat_id, action, None)
        await self.tell_topic(context, chat_id, notice)

    async def relay_to_patient(self, context: ContextTypes.DEFAULT_TYPE, chat_id: int, message: Message) -> None:
        handoff = self.store.handoff(chat_id)
        if handoff is None or handoff.status != "open":
            await self.tell_topic(context, chat_id, self.texts["staff_topic_closed"])
            return
        if message.text is None and message.effective_attachment is None:
            return  # service messages (topic created, pinned...) are not for the patient
        try:
            copied = await context.bot.copy_message(chat_id, self.staff_chat_id, message.message_id)
        except (Forbidden, BadRequest) as exc:
            await self.tell_topic(context, chat_id, self.texts["staff_relay_failed"].format(reason=exc.message))
            return
        self.store.link_messages(chat_id, copied.message_id, message.message_id, "to_patient")
        self.store.add_transcript(chat_id, "staff", message.text or message.caption or "(media)")


def _chunks(text: str, size: int) -> Iterator[str]:
    """Split text for Telegram's 4,096-character limit, at line breaks where possible."""
    while len(text) > size:
        cut = text.rfind("\n", 0, size)
        cut = cut if cut > size // 2 else size
        yield text[:cut]
        text = text[cut:].lstrip("\n")
    yield text


def _markup(reply: Reply) -> InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove | None:
    """Telegram markup for a reply: inline buttons, a reply keyboard, or removing one."""
    if reply.buttons:
        return InlineKeyboardMarkup([[InlineKeyboardButton(b.label, callback_data=b.data)] for b in reply.buttons])
    if reply.keyboard:
        rows = [[KeyboardButton(label, request_contact=reply.request_contact and index == 0)] for index, label in enumerate(reply.keyboard)]
        return ReplyKeyboardMarkup(rows, resize_keyboard=True, one_time_keyboard=False, is_persistent=False)
    if reply.remove_keyboard:
        return ReplyKeyboardRemove()
    return None


async def _send_to_patient(context: ContextTypes.DEFAULT_TYPE, chat_id: int, text: str, markup: Any) -> None:
    try:
        await context.bot.send_message(chat_id, text, reply_markup=markup)
    except Forbidden:
        log.info("Chat %s has blocked the bot; reply dropped", chat_id)


async def _answer_quietly(query: Any) -> None:
    try:
        await query.answer()
    except TelegramError as exc:  # an old query (over 15 minutes) cannot be answered; nothing is lost
        log.debug("Could not answer callback query: %s", exc)


async def _on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    log.error("Error while handling an update: %s", context.error, exc_info=context.error)


async def check_setup(application: Application, config: Config) -> None:
    """At start-up: the token works, the staff chat is a forum where the bot manages topics; commands registered."""
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
    rate = config.telegram.rate_limit
    builder = (
        ApplicationBuilder()
        .token(config.telegram.token)
        .base_url(config.telegram.api_base_url)
        .base_file_url(config.telegram.api_file_url)
        # 429 answers are waited out and retried (max_retries) instead of dropped.
        .rate_limiter(AIORateLimiter(overall_max_rate=rate.overall_per_second, group_max_rate=rate.group_per_minute, max_retries=100))
    )
    application = builder.build()
    desk = FrontDesk(config, dialogue, store)
    application.bot_data["desk"] = desk
    application.bot_data["texts"] = dialogue.texts
    application.add_handler(TypeHandler(Update, desk.on_update))
    application.add_error_handler(_on_error)
    return application
