"""The booking conversation's data and input checks (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import phonenumbers

BookingStep = Literal["name", "phone", "when", "note", "consent", "confirm", "edit"]
STEP_ORDER: tuple[BookingStep, ...] = ("name", "phone", "when", "note", "consent", "confirm")
EDITABLE_FIELDS: tuple[str, ...] = ("name", "phone", "when", "note")

MAX_NAME = 100
MAX_WHEN = 200
MAX_NOTE = 500


@dataclass(frozen=True)
class BookingDraft:
    """What the patient has told us so far, and which question is open."""

    step: BookingStep = "name"
    name: str = ""
    phone: str = ""
    when: str = ""
    note: str = ""
    consent: bool = False
    editing: bool = False  # answering an edit returns to the summary instead of the next question

    def next_step(self) -> BookingStep:
        """The question after the current one (the summary when editing)."""
        if self.editing:
            return "confirm"
        return STEP_ORDER[STEP_ORDER.index(self.step) + 1] if self.step in STEP_ORDER[:-1] else "confirm"


@dataclass(frozen=True)
class Booking:
    """A confirmed consultation request, ready for a coordinator."""

    name: str
    phone: str
    when: str
    note: str


def normalise_phone(text: str, default_region: str) -> str | None:
    """The number in E.164 form (+821012345678), or None if it is not a valid phone number.

    Accepts international (+82 10-1234-5678) and local (010 1234 5678) forms
    with spaces, dashes, dots or brackets; local numbers are read in ``default_region``.
    """
    candidate = text.strip()
    if not candidate or len(candidate) > 40 or sum(ch.isdigit() for ch in candidate) < 6:
        return None
    if any(ch.isalpha() for ch in candidate):
        return None
    try:
        number = phonenumbers.parse(candidate, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def display_phone(e164: str) -> str:
    """A stored number formatted for people: +82 10-1234-5678."""
    try:
        return phonenumbers.format_number(phonenumbers.parse(e164, None), phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    except phonenumbers.NumberParseException:
        return e164


def clean_name(text: str) -> str | None:
    name = " ".join(text.split())
    if not name or len(name) > MAX_NAME or not any(ch.isalpha() for ch in name) or name.startswith("/"):
        return None
    return name


def clean_free_text(text: str, limit: int) -> str | None:
    value = " ".join(text.split())
    if not value or len(value) > limit:
        return None
    return value
