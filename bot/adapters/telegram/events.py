"""Telegram updates as the core's events: what a patient's update means, what a message is."""

from __future__ import annotations

import json

from telegram import Message, Update

from bot.core.commands import PATIENT_COMMANDS, parse_command
from bot.core.desk import PatientMessage, StaffEdited, StaffEvent, StaffPressedClose, StaffWrote
from bot.core.dialogue import ButtonPressed, ContactShared, Event, PatientCommand, PatientText, UnsupportedMessage


def patient_event(update: Update) -> Event | None:
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


def staff_event(update: Update, message: Message, sender_id: int, staff: bool, *, patient_copy_id: int | None) -> StaffEvent:
    """The core event for an update in a patient's topic (``staff``: the sender may act as staff;
    ``patient_copy_id``: for an edit, the patient's copy of the edited message)."""
    if update.callback_query is not None:
        return StaffPressedClose(sender_id, staff)
    edit = update.edited_message
    if edit is not None:
        entities = edit.entities if edit.text is not None else edit.caption_entities
        return StaffEdited(sender_id, staff, patient_copy_id, edit.text, edit.caption, json.dumps([e.to_dict() for e in entities]))
    return StaffWrote(
        sender_id, staff, message.message_id, message.text, message.caption,
        has_content=message.text is not None or message.effective_attachment is not None,
        uncopyable=uncopyable_kind(message),
    )


def patient_message(message: Message) -> PatientMessage:
    return PatientMessage(message.message_id, message.text, uncopyable_kind(message), message.media_group_id)


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


def uncopyable_kind(message: Message) -> str | None:
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
