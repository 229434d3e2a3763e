"""The card that opens a patient's staff topic (pure; Telegram HTML with everything escaped)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from html import escape

from bot.core.booking import Booking, display_phone

# Telegram rejects messages over 4,096 characters; cards stay well inside it.
CARD_LIMIT = 3_900
TOPIC_NAME_LIMIT = 128  # Telegram's limit for a forum topic name
LINE_LIMIT = 300  # one transcript line on the card

ROLE_LABELS = {"patient": "Patient", "bot": "Bot", "staff": "Staff"}


@dataclass(frozen=True)
class CardPatient:
    chat_id: int
    name: str
    username: str = ""


def topic_name(patient: CardPatient, *, urgent: bool = False) -> str:
    """Forum topic title: the patient's name (and id, so two Kims never share a title)."""
    prefix = "URGENT " if urgent else ""
    suffix = f" · {patient.chat_id}"
    name = " ".join(patient.name.split()) or "Patient"
    return (prefix + name)[: TOPIC_NAME_LIMIT - len(suffix)] + suffix


def render_card(
    patient: CardPatient,
    reason: str,
    texts: Mapping[str, str],
    *,
    question: str = "",
    booking: Booking | None = None,
    transcript: Iterable[tuple[str, str]] = (),
    language: str = "",  # the patient's language, named in that language's own texts ("한국어")
    written: str = "",  # when the patient wrote, as a line for staff
) -> str:
    """The card text in Telegram HTML; every value coming from a patient is escaped."""
    urgent = reason == "urgent"
    title = f"🚨 <b>{escape(texts['staff_reason_urgent'])}</b>" if urgent else f"<b>{escape(texts['staff_card_title'])}</b>"
    lines = [title, "", f"<b>Name:</b> {escape(patient.name)}"]
    if patient.username:
        lines.append(f"<b>Username:</b> @{escape(patient.username)}")
    lines.append(f"<b>Chat id:</b> <code>{patient.chat_id}</code>")
    if language:
        # Staff see at once which language to answer in (they may write in any).
        lines.append(f"<b>Language:</b> {escape(language)}")
    lines.append(f"<b>Reason:</b> {escape(texts.get(f'staff_reason_{reason}', reason))}")
    if written:
        lines.append(escape(written))
    if question:
        lines.append(f"<b>Message:</b> {escape(_clip(question, LINE_LIMIT))}")
    if booking is not None:
        lines += [
            "",
            "<b>Consultation request</b>",
            f"Name: {escape(booking.name)}",
            f"Phone: {escape(display_phone(booking.phone))}",
            f"Preferred: {escape(booking.when)}",
            f"Note: {escape(booking.note) if booking.note else '—'}",
        ]
    history = [f"<b>{ROLE_LABELS.get(role, role)}:</b> {escape(_clip(text, LINE_LIMIT))}" for role, text in transcript]
    if history:
        lines += ["", "<b>Recent conversation</b>"]
    head = "\n".join(lines)
    # Keep the newest lines that fit: the end of the conversation matters most.
    kept: list[str] = []
    budget = CARD_LIMIT - len(head) - 1
    for line in reversed(history):
        if len(line) + 1 > budget:
            break
        kept.insert(0, line)
        budget -= len(line) + 1
    return head + ("\n" + "\n".join(kept) if kept else "")


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
