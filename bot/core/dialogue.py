"""The dialogue core: ``(state, event) -> (state, actions)``, with no I/O.

Adapters (console, Telegram) turn what the patient or staff did into an
event, call :meth:`Dialogue.handle`, store the returned state and carry out
the actions in order. Inline button payloads are short strings (``faq:<id>``,
``do:book``) so they fit Telegram's 64-byte callback data; booking answers use
a reply keyboard, whose buttons simply send their label as text.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, Union

from bot.core.booking import (
    EDITABLE_FIELDS,
    MAX_NOTE,
    MAX_WHEN,
    Booking,
    BookingDraft,
    clean_free_text,
    clean_name,
    display_phone,
    normalise_phone,
)
from bot.core.commands import help_text
from bot.core.knowledge import CONTACT_TOPIC, ClinicFacts, KnowledgeBase
from bot.core.matcher import Match, Matcher
from bot.core.text import MAX_ANALYSED_CHARS
from bot.core.understanding import Understanding

# Past this length a message is answered from its beginning, and the patient is told so.
LONG_MESSAGE_CHARS = MAX_ANALYSED_CHARS

FAQ_PREFIX = "faq:"
MAX_BUTTONS = 3  # related topics under an answer (more only when the patient asked more questions)
ACTION_BOOK = "do:book"
ACTION_HUMAN = "do:human"
ACTION_TOPICS = "do:topics"
RATE_HELPFUL = "rate:up"  # the buttons offered after staff close a conversation
RATE_UNHELPFUL = "rate:down"

HandOffReason = Literal["unanswered", "requested", "urgent", "booking"]


# -- events ---------------------------------------------------------------------
@dataclass(frozen=True)
class PatientText:
    """The patient typed something (or pressed a reply-keyboard button, which sends its label)."""

    text: str


@dataclass(frozen=True)
class ButtonPressed:
    """The patient pressed one of our inline buttons."""

    data: str


@dataclass(frozen=True)
class PatientCommand:
    """/start, /help, /book, /human, /end, /cancel."""

    name: str
    # The language the patient's Telegram app is set to: until they write, it picks
    # the language of the welcome (what they write decides after that).
    language_hint: str | None = None


@dataclass(frozen=True)
class UnsupportedMessage:
    """A sticker, photo, voice note... something the bot cannot read."""

    kind: str


@dataclass(frozen=True)
class ContactShared:
    """The patient shared a phone number with Telegram's contact button."""

    phone_number: str


@dataclass(frozen=True)
class StaffClosed:
    """Staff closed the patient's conversation (/close or the card's button)."""


@dataclass(frozen=True)
class StaffReopened:
    """Staff reopened a closed conversation (/open)."""


Event = Union[PatientText, ButtonPressed, PatientCommand, UnsupportedMessage, ContactShared, StaffClosed, StaffReopened]


# -- actions --------------------------------------------------------------------
@dataclass(frozen=True)
class Button:
    """An inline choice; ``data`` comes back in :class:`ButtonPressed`."""

    label: str
    data: str


@dataclass(frozen=True)
class Reply:
    """Send this text to the patient.

    ``buttons`` are inline choices; ``keyboard`` replaces the patient's
    keyboard with these labels (the first asks for their phone number when
    ``request_contact``); ``remove_keyboard`` restores the normal keyboard.
    """

    text: str
    buttons: tuple[Button, ...] = ()
    keyboard: tuple[str, ...] = ()
    request_contact: bool = False
    remove_keyboard: bool = False
    urgent: bool = False  # the safety advice: it goes out before anything else waiting


@dataclass(frozen=True)
class RecordUnanswered:
    """The document does not answer this question; operators review these."""

    question: str


@dataclass(frozen=True)
class HandOff:
    """Hand the conversation to staff: open (or reuse) the patient's topic and post a card."""

    reason: HandOffReason
    question: str = ""


@dataclass(frozen=True)
class RelayToStaff:
    """Copy the patient's current message into their staff topic."""


@dataclass(frozen=True)
class EndHandoff:
    """The handoff is over; tell staff in the topic when the patient ended it."""

    by: Literal["patient", "staff"]


@dataclass(frozen=True)
class ForgetPatient:
    """Delete everything stored about the patient (they confirmed /forget); staff are told."""


@dataclass(frozen=True)
class RecordRating:
    """The patient rated the help staff gave (once, after staff closed the conversation)."""

    helpful: bool


@dataclass(frozen=True)
class SubmitBooking:
    """Store the booking and post it to staff (before the patient is told it was sent)."""

    booking: Booking


Action = Union[Reply, RecordUnanswered, HandOff, RelayToStaff, EndHandoff, SubmitBooking, ForgetPatient, RecordRating]


# -- state ----------------------------------------------------------------------
@dataclass(frozen=True)
class SessionState:
    """What the core remembers about one patient between messages."""

    mode: Literal["bot", "handoff"] = "bot"
    booking: BookingDraft | None = None
    last_faq_id: str | None = None
    confirming_forget: bool = False
    lang: str | None = None  # the language the patient writes in; None until known
    awaiting_rating: bool = False  # staff closed the conversation; 👍/👎 may come

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SessionState:
        """Rebuild a stored state; unknown or broken fields fall back to defaults rather than fail."""
        mode = data.get("mode") if data.get("mode") in ("bot", "handoff") else "bot"
        booking_data = data.get("booking")
        booking = None
        if isinstance(booking_data, dict):
            fields = {k: v for k, v in booking_data.items() if k in BookingDraft.__dataclass_fields__}
            try:
                booking = BookingDraft(**fields)
            except TypeError:
                booking = None
        last = data.get("last_faq_id")
        lang = data.get("lang")
        return cls(
            mode=mode, booking=booking, last_faq_id=last if isinstance(last, str) else None,
            confirming_forget=data.get("confirming_forget") is True, lang=lang if isinstance(lang, str) else None,
            awaiting_rating=data.get("awaiting_rating") is True,
        )


@dataclass(frozen=True)
class Step:
    """The outcome of one event: the next state, what to do, and how a text was understood."""

    state: SessionState
    actions: tuple[Action, ...] = field(default_factory=tuple)
    match: Match | None = None

    @property
    def replies(self) -> tuple[Reply, ...]:
        return tuple(a for a in self.actions if isinstance(a, Reply))


class Dialogue:
    """Decides replies from the knowledge base. Holds no per-patient state.

    Replies are in the patient's language: each text they type (outside a booking,
    whose answers are names and numbers) tells it, and a conversation in that
    language answers. One such conversation per language shares the understanding.
    """

    def __init__(
        self,
        knowledge: KnowledgeBase,
        matcher: Matcher | None = None,
        *,
        phone_region: str = "KR",
        understanding: Understanding | None = None,
        language: str | None = None,
        clinic: ClinicFacts = ClinicFacts(),
        staff_keep_records: bool = False,
    ) -> None:
        """``staff_keep_records``: after /forget the staff topic stays as the clinic's record
        (the patient is told so) instead of being deleted with everything else."""
        self.understanding = understanding or Understanding(knowledge, matcher)
        self.clinic = clinic
        self.staff_keep_records = staff_keep_records
        self.knowledge = knowledge.in_language(language)
        self.language = self.knowledge.code
        self.matcher = self.understanding.matchers[self.language]
        self.texts = self.knowledge.texts
        self.phone_region = phone_region
        self._speakers: dict[str, Dialogue] = {self.language: self}
        if language is None:
            for code in knowledge.translations:
                self._speakers[code] = Dialogue(
                    knowledge, phone_region=phone_region, understanding=self.understanding, language=code, clinic=clinic,
                    staff_keep_records=staff_keep_records,
                )

    def speaking(self, lang: str | None) -> Dialogue:
        """The conversation in language ``lang`` (the default one when there is none)."""
        return self._speakers.get(lang or self.language, self)

    def handle(self, state: SessionState, event: Event) -> Step:
        """Process one event for one patient, in their language."""
        lang = self._language_for(state, event)
        if lang != state.lang:
            state = replace(state, lang=lang)
        return self.speaking(lang)._handle(state, event)

    def _language_for(self, state: SessionState, event: Event) -> str:
        if len(self._speakers) == 1:
            return self.language
        if isinstance(event, PatientText) and state.booking is None and not state.confirming_forget:
            return self.understanding.language_of(event.text, state.lang)
        if isinstance(event, PatientText):
            # Mid-booking or mid-/forget the language stays (a name is no language), but an
            # emergency is heard in whatever language it is written ("수술 후에 피가 안 멈춰요"
            # typed where an English booking asked for a name).
            written_in = self.understanding.language_of(event.text, state.lang)
            if written_in != state.lang and self.understanding.matchers[written_in].match(event.text).intent == "urgent":
                return written_in
        if isinstance(event, PatientCommand) and state.lang is None and event.language_hint:
            hint = event.language_hint.split("-")[0].lower()
            return hint if hint in self._speakers else self.language
        return state.lang if state.lang in self._speakers else self.language

    def _handle(self, state: SessionState, event: Event) -> Step:
        if isinstance(event, StaffClosed):
            if state.mode != "handoff":
                return Step(state)
            rate = (Button(self.texts["button_rate_helpful"], RATE_HELPFUL), Button(self.texts["button_rate_unhelpful"], RATE_UNHELPFUL))
            ended = Reply(self.texts["handoff_ended_by_staff"] + "\n\n" + self.texts["rating_question"], rate)
            return Step(replace(state, mode="bot", awaiting_rating=True), (ended, EndHandoff("staff")))
        if isinstance(event, StaffReopened):
            return Step(replace(state, mode="handoff", booking=None), (Reply(self.texts["handoff_reopened"], remove_keyboard=True),))
        if isinstance(event, PatientCommand) and event.name == "forget":
            keyboard = (self.texts["button_forget_yes"], self.texts["button_forget_no"])
            return Step(replace(state, confirming_forget=True), (Reply(self.texts["forget_confirm"], keyboard=keyboard),))
        if state.confirming_forget:
            if isinstance(event, PatientText) and self._is_label(event.text.strip(), "button_forget_yes"):
                # The reply says exactly what was deleted: with staff's records kept, that they are.
                done = self.texts["forgotten_records_kept" if self.staff_keep_records else "forgotten"]
                return Step(SessionState(lang=state.lang), (ForgetPatient(), Reply(done, remove_keyboard=True)))
            kept = Step(replace(state, confirming_forget=False), (Reply(self.texts["forget_kept"], remove_keyboard=True),))
            if isinstance(event, PatientText) and self._is_label(event.text.strip(), "button_forget_no"):
                return kept
            after = self._handle(kept.state, event)
            return replace(after, actions=(*kept.actions, *after.actions))
        if state.mode == "handoff":
            return self._in_handoff(state, event)
        if state.booking is not None:
            return self._in_booking(state, state.booking, event)
        return self._with_bot(state, event)

    # -- the assistant -----------------------------------------------------------
    def _with_bot(self, state: SessionState, event: Event) -> Step:
        if isinstance(event, PatientText):
            return self._on_text(state, event.text)
        if isinstance(event, ButtonPressed):
            return self._on_button(state, event.data)
        if isinstance(event, PatientCommand):
            return self._on_command(state, event.name)
        if isinstance(event, ContactShared):
            return Step(state, (Reply(help_text(self.texts)),))
        return Step(state, (Reply(self.texts["unsupported_message"]),))

    def _on_text(self, state: SessionState, text: str) -> Step:
        match = self.matcher.match(text)
        prefix = self.texts["too_long"] + "\n\n" if len(text) > LONG_MESSAGE_CHARS else ""
        if match.intent == "faq" and match.faq_id is not None:
            asked = tuple(e for e in (match.also_asked, *match.more_asked) if e)
            return self._answer(state, match.faq_id, also_asked=asked, match=match, prefix=prefix)
        if match.intent == "clarify":
            buttons = (*(self._faq_button(s) for s in match.suggestions), Button(self.texts["button_human"], ACTION_HUMAN))
            return Step(state, (Reply(prefix + self.texts["clarify"], buttons),), match)
        if match.intent == "urgent":
            return self._hand_off(state, "urgent", text, reply=self._urgent_text(), match=match)
        if match.intent == "booking":
            return self._start_booking(state, match)
        if match.intent == "human":
            return self._hand_off(state, "requested", text, match=match)
        if match.intent in ("greeting", "thanks"):
            return Step(state, (Reply(self.texts[match.intent]),), match)
        if match.empty:
            return Step(state, (Reply(self.texts["empty_message"]),), match)
        if match.topic == CONTACT_TOPIC and (contact := self._clinic_contact()):
            return Step(state, (Reply(prefix + contact, self._service_buttons()),), match)
        # Staff and booking first; then topics the document does answer that lie close by.
        related = tuple(self._faq_button(e) for e in match.suggestions if self.knowledge.entry(e))
        reply = Reply(prefix + self.texts["fallback"], (*self._service_buttons(), *related))
        return Step(state, (RecordUnanswered(text), reply), match)

    def _on_button(self, state: SessionState, data: str) -> Step:
        entry_id = data[len(FAQ_PREFIX) :] if data.startswith(FAQ_PREFIX) else None
        if entry_id and self.knowledge.entry(entry_id):
            return self._answer(state, entry_id)
        if data == ACTION_BOOK:
            return self._start_booking(state)
        if data == ACTION_HUMAN:
            return self._hand_off(state, "requested")
        if data == ACTION_TOPICS:
            return self._on_command(state, "start")
        if data in (RATE_HELPFUL, RATE_UNHELPFUL) and state.awaiting_rating:
            rated = replace(state, awaiting_rating=False)
            return Step(rated, (RecordRating(data == RATE_HELPFUL), Reply(self.texts["rating_thanks"])))
        # Unknown or stale data: an old message's button, a removed entry, a forged press.
        return Step(state, (Reply(self.texts["stale_button"], self.main_topics()),))

    def _on_command(self, state: SessionState, name: str) -> Step:
        if name == "start":
            return Step(state, (Reply(self.texts["welcome"], self.main_topics()),))
        if name == "book":
            return self._start_booking(state)
        if name == "human":
            return self._hand_off(state, "requested")
        if name == "end":
            return Step(state, (Reply(self.texts["not_in_handoff"]),))
        if name == "cancel":
            return Step(state, (Reply(self.texts["nothing_to_cancel"]),))
        return Step(state, (Reply(help_text(self.texts) + "\n\n" + self.texts["disclaimer"]),))

    def _answer(
        self,
        state: SessionState,
        entry_id: str,
        *,
        also_asked: tuple[str, ...] = (),
        match: Match | None = None,
        prefix: str = "",
    ) -> Step:
        """The entry's answer, with the message's other questions and then its follow-ups as buttons."""
        entry = self.knowledge.entry(entry_id)
        assert entry is not None
        asked = [e for e in dict.fromkeys(also_asked) if e != entry_id and self.knowledge.entry(e)]
        text = prefix + entry.answer
        if asked:
            text += "\n\n" + self.texts["also_asked"].format(topic=", ".join(self._title(e) for e in asked))
        # Every other question asked gets its button; follow-ups fill up to three.
        follow_ups = [f for f in entry.follow_ups if f != entry_id and f not in asked and self.knowledge.entry(f)]
        buttons = tuple(self._faq_button(f) for f in [*asked, *follow_ups][: max(MAX_BUTTONS, len(asked))])
        return Step(replace(state, last_faq_id=entry_id), (Reply(text, buttons),), match)

    def _hand_off(
        self, state: SessionState, reason: HandOffReason, question: str = "", *, reply: str | None = None, match: Match | None = None
    ) -> Step:
        said = Reply(reply or self.texts["human"], remove_keyboard=True, urgent=reason == "urgent")
        actions: tuple[Action, ...] = (HandOff(reason, question), said)
        if reason == "urgent":
            # The safety advice goes out first: it must not wait for staff plumbing.
            actions = (actions[1], actions[0])
        return Step(replace(state, mode="handoff", booking=None), actions, match)

    # -- staff conversation -------------------------------------------------------
    def _in_handoff(self, state: SessionState, event: Event) -> Step:
        if isinstance(event, PatientCommand) and event.name == "end":
            return Step(replace(state, mode="bot"), (EndHandoff("patient"), Reply(self.texts["handoff_ended_by_patient"])))
        if isinstance(event, ButtonPressed):
            return Step(state, (Reply(self.texts["handoff_waiting"]),))
        if isinstance(event, PatientText) and self.matcher.match(event.text).intent == "urgent":
            return Step(state, (Reply(self._urgent_text(), urgent=True), RelayToStaff(), HandOff("urgent", event.text)))
        # Everything else, text or media, is for the coordinator: the bot stays quiet.
        return Step(state, (RelayToStaff(),))

    # -- booking -------------------------------------------------------------------
    def _start_booking(self, state: SessionState, match: Match | None = None) -> Step:
        draft = BookingDraft(step="name")
        prompt = self._prompt(draft)
        return Step(replace(state, booking=draft), (replace(prompt, text=self.texts["booking"] + "\n\n" + prompt.text),), match)

    def _prompt(self, draft: BookingDraft) -> Reply:
        """The question for the draft's open step, with its keyboard."""
        t = self.texts
        cancel = t["button_cancel"]
        if draft.step == "name":
            return Reply(t["booking_ask_name"], keyboard=(cancel,))
        if draft.step == "phone":
            return Reply(t["booking_ask_phone"], keyboard=(t["button_share_phone"], cancel), request_contact=True)
        if draft.step == "when":
            return Reply(t["booking_ask_when"], keyboard=(*self.knowledge.booking.time_options, cancel))
        if draft.step == "note":
            return Reply(t["booking_ask_note"], keyboard=(t["button_skip"], cancel))
        if draft.step == "consent":
            return Reply(t["booking_ask_consent"], keyboard=(t["button_consent_yes"], t["button_consent_no"]))
        if draft.step == "edit":
            labels = tuple(t[f"button_edit_{f}"] for f in EDITABLE_FIELDS)
            return Reply(t["booking_choose_edit"], keyboard=(*labels, cancel))
        summary = t["booking_summary"].format(
            name=draft.name, phone=display_phone(draft.phone), when=draft.when, note=draft.note or t["booking_no_note"]
        )
        return Reply(summary, keyboard=(t["button_confirm"], t["button_edit"], cancel))

    def _in_booking(self, state: SessionState, draft: BookingDraft, event: Event) -> Step:
        t = self.texts
        if isinstance(event, PatientCommand):
            if event.name == "cancel":
                return self._end_booking(state, t["booking_cancelled"])
            if event.name in ("human", "end"):
                return self._hand_off(state, "requested") if event.name == "human" else self._resume(state, draft, ())
            step = self._on_command(replace(state, booking=None), event.name) if event.name != "book" else Step(state)
            return self._resume(state, draft, step.actions)
        if isinstance(event, ContactShared):
            if draft.step == "phone":
                return self._advance(state, draft, "phone", event.phone_number)
            return self._resume(state, draft, ())
        if isinstance(event, UnsupportedMessage):
            return self._resume(state, draft, (Reply(t["unsupported_message"]),))
        if isinstance(event, ButtonPressed):
            # An inline button from an earlier answer: answer it, then carry on booking.
            step = self._on_button(replace(state, booking=None), event.data)
            if step.state.mode == "handoff":
                return step
            return self._resume(state, draft, step.actions)
        assert isinstance(event, PatientText)
        text = event.text.strip()
        if self._is_label(text, "button_cancel"):
            return self._end_booking(state, t["booking_cancelled"])
        if not self._is_keyboard_label(text):
            match = self.matcher.match(text)
            if match.intent == "urgent":
                return self._hand_off(state, "urgent", text, reply=self._urgent_text(), match=match)
            if match.intent == "human":
                return self._hand_off(state, "requested", text, match=match)
            # A question asked mid-booking is answered, then the booking goes on. Free-text
            # steps (times, note) only count a message as a question when it asks one; a
            # short answer or one without letters ("Ana", "010 1234 5678") is an answer.
            looks_like_question = "?" in text or (
                draft.step not in ("when", "note") and any(ch.isalpha() for ch in text) and len(text.split()) >= 3
            )
            asks = match.intent == "faq" and looks_like_question
            if asks and match.faq_id is not None:
                return self._resume(state, draft, self._answer(state, match.faq_id, match=match).actions, match)
        return self._take_answer(state, draft, text)

    def _take_answer(self, state: SessionState, draft: BookingDraft, text: str) -> Step:
        t = self.texts
        if draft.step == "name":
            name = clean_name(text)
            return self._advance(state, draft, "name", name) if name else self._reprompt(state, draft, t["booking_bad_name"])
        if draft.step == "phone":
            return self._advance(state, draft, "phone", text)
        if draft.step == "when":
            when = clean_free_text(text, MAX_WHEN)
            return self._advance(state, draft, "when", when) if when else self._reprompt(state, draft, t["booking_bad_when"])
        if draft.step == "note":
            if self._is_label(text, "button_skip"):
                return self._advance(state, draft, "note", "")
            note = clean_free_text(text, MAX_NOTE)
            return self._advance(state, draft, "note", note) if note else self._reprompt(state, draft, t["booking_bad_note"])
        if draft.step == "consent":
            if self._is_label(text, "button_consent_yes") or self._means(text, self.knowledge.booking.yes_words):
                return self._show(state, replace(draft, consent=True, step="confirm"))
            if self._is_label(text, "button_consent_no") or self._means(text, self.knowledge.booking.no_words):
                return self._end_booking(state, t["booking_declined"])
            return self._reprompt(state, draft, t["booking_consent_needed"])
        if draft.step == "edit":
            for name in EDITABLE_FIELDS:
                if self._is_label(text, f"button_edit_{name}"):
                    return self._show(state, replace(draft, step=name, editing=True))  # type: ignore[arg-type]
            return self._show(state, draft)
        # The summary.
        if self._is_label(text, "button_edit"):
            return self._show(state, replace(draft, step="edit"))
        if self._is_label(text, "button_confirm") or self._means(text, self.knowledge.booking.yes_words):
            booking = Booking(name=draft.name, phone=draft.phone, when=draft.when, note=draft.note)
            actions = (SubmitBooking(booking), Reply(t["booking_confirmed"], remove_keyboard=True))
            return Step(replace(state, booking=None), actions)
        return self._show(state, draft)

    def _advance(self, state: SessionState, draft: BookingDraft, field_name: str, value: str | None) -> Step:
        if field_name == "phone":
            phone = normalise_phone(value or "", self.phone_region)
            if phone is None:
                return self._reprompt(state, draft, self.texts["booking_bad_phone"])
            value = phone
        updated = replace(draft, **{field_name: value})
        return self._show(state, replace(updated, step=updated.next_step(), editing=False))

    def _show(self, state: SessionState, draft: BookingDraft) -> Step:
        return Step(replace(state, booking=draft), (self._prompt(draft),))

    def _reprompt(self, state: SessionState, draft: BookingDraft, problem: str) -> Step:
        prompt = self._prompt(draft)
        return Step(replace(state, booking=draft), (replace(prompt, text=problem),))

    def _resume(self, state: SessionState, draft: BookingDraft, actions: tuple[Action, ...], match: Match | None = None) -> Step:
        """Carry out ``actions`` (an answer, help...), then ask the open booking question again."""
        prompt = self._prompt(draft)
        resumed = replace(prompt, text=self.texts["booking_resume"] + "\n" + prompt.text)
        return Step(replace(state, booking=draft), (*actions, resumed), match)

    def _end_booking(self, state: SessionState, text: str) -> Step:
        return Step(replace(state, booking=None), (Reply(text, remove_keyboard=True),))

    # -- the operator's facts ------------------------------------------------------
    def _urgent_text(self) -> str:
        """The safety advice with the emergency number, and the clinic's phone when configured."""
        text = self.texts["urgent"].format(emergency_number=self.clinic.emergency_number)
        if phone := self.clinic.value("phone", self.language):
            text += "\n\n" + self.texts["urgent_clinic_phone"].format(phone=phone)
        return text

    def _clinic_contact(self) -> str:
        """Where and when to find the clinic, from the config; "" when the operator gave none."""
        lines = [
            self.texts[f"clinic_{name}"].format(value=value)
            for name in ClinicFacts.CONTACT_FIELDS
            if (value := self.clinic.value(name, self.language))
        ]
        return "\n".join([self.texts["clinic_contact"], *lines]) if lines else ""

    # -- small helpers -------------------------------------------------------------
    def _is_label(self, text: str, key: str) -> bool:
        return text.casefold() == self.texts[key].casefold()

    def _is_keyboard_label(self, text: str) -> bool:
        labels = {self.texts[k].casefold() for k in self.texts if k.startswith("button_")}
        labels |= {o.casefold() for o in self.knowledge.booking.time_options}
        return text.casefold() in labels

    @staticmethod
    def _means(text: str, words: frozenset[str]) -> bool:
        return " ".join(text.casefold().replace(",", " ").replace(".", " ").replace("!", " ").split()) in words

    def _title(self, entry_id: str) -> str:
        entry = self.knowledge.entry(entry_id)
        return entry.title if entry else entry_id

    def _faq_button(self, entry_id: str) -> Button:
        return Button(self._title(entry_id), FAQ_PREFIX + entry_id)

    def _service_buttons(self) -> tuple[Button, ...]:
        return (Button(self.texts["button_human"], ACTION_HUMAN), Button(self.texts["button_booking"], ACTION_BOOK))

    def main_topics(self) -> tuple[Button, ...]:
        """Buttons for the welcome message: the first topics of the FAQ, then staff and booking."""
        topics = [e.id for e in self.knowledge.entries[:4]]
        return (*(self._faq_button(t) for t in topics), *self._service_buttons())
