"""The front desk: every patient and staff event is decided here, with no I/O.

Adapters (Telegram, console) turn what happened into an event, load the
patient's :class:`Conversation`, call :class:`Desk`, store the conversation it
returns and carry out its effects in order: sends go to the outbox as the
typed values of :mod:`bot.core.outgoing`, records go to the store. The
dialogue (:mod:`bot.core.dialogue`) decides what the *assistant* says; the
desk decides everything around it: the staff topic, the card, relaying both
ways, staff commands, forgetting, floods and failed sends.

Rules
-----
* A patient talks with the assistant until they are handed off: they ask for a
  person, the assistant cannot answer, or the message is urgent. Handing off
  opens the patient's staff topic (the first time; later handoffs reuse it)
  and posts a card there saying who they are, why, and what was said.
* While handed off, whatever the patient sends is copied into the topic and
  the assistant stays quiet, except that an urgent message still gets the
  safety reply at once and a new urgent card. A booking's card goes to the
  topic too, without handing the patient off.
* In the topic, staff's messages are copied to the patient. ``/note`` is
  kept in the transcript only. ``/close`` (or the card's button) gives the
  patient back to the assistant; ``/open`` hands them off again. A message in
  a closed topic reaches nobody and its writer is told so. Staff corrections
  correct the patient's copy.
* Only staff act as staff. Anyone else writing in a topic is not relayed and
  is told once.
* A topic staff deleted is opened again when the next message needs it.
* ``/forget`` deletes everything stored about the patient, sends still
  queued included. The topic is deleted too, unless the clinic keeps
  records: then it is closed and kept, and the patient is told so.
* A patient flooding (more than 15 messages in 10 s) gets one notice; their
  texts still reach staff while handed off.
* A send Telegram finally refuses is never silent: staff are told in the
  topic, or in General when the topic itself is out of reach.

Transitions of the handoff (``status`` of :class:`Handoff`; "none": no record)

=========  ==========================  ========  =========================================
status     event                       next      sends
=========  ==========================  ========  =========================================
none       the assistant hands off     open      OpenTopic, CardToTopic
closed     the assistant hands off     open      CardToTopic (the topic is reused)
open       urgent message              open      safety reply, PatientMessageToTopic, card
open       patient message             open      PatientMessageToTopic
open       patient /end                closed    NoticeToTopic (staff_patient_ended)
open       staff message               open      StaffMessageToPatient
closed     staff message               closed    NoticeToTopic (staff_topic_closed)
any        staff /close                closed    TextToPatient, NoticeToTopic (staff_closed)
any        staff /open                 open      TextToPatient, NoticeToTopic (staff_reopened)
any        staff /note                 (same)    (transcript only)
any        topic gone                  (same)    OpenTopic, before the send that found it gone
any        /forget confirmed           none      DeleteTopic | NoticeToTopic + CloseTopic
=========  ==========================  ========  =========================================
"""

from __future__ import annotations

import datetime as dtm
from dataclasses import dataclass, field, replace
from typing import Literal, Union

from bot.core.booking import Booking
from bot.core.commands import parse_command
from bot.core.dialogue import (
    Action,
    Dialogue,
    EndHandoff,
    Event,
    ForgetPatient,
    HandOff,
    PatientCommand,
    PatientText,
    RecordRating,
    RecordUnanswered,
    RelayToStaff,
    Reply,
    SessionState,
    StaffClosed,
    StaffReopened,
    SubmitBooking,
)
from bot.core.flood import FloodGuard
from bot.core.hours import StaffHours
from bot.core.matcher import Match
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
from bot.core.staff_card import CardPatient, render_card, topic_name

MAX_TEXT = 4_096  # Telegram's limit for one message
SERVICE_MESSAGE = "service message"  # topic created, member joined...: nothing to pass on
Role = Literal["patient", "bot", "staff"]


# -- state ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Handoff:
    """The patient's place in the staff group: their topic and whether staff have them now."""

    chat_id: int
    thread_id: int | None
    status: Literal["open", "closed"]
    urgent: bool = False
    reason: str = ""


@dataclass(frozen=True)
class Conversation:
    """Everything the desk knows about one patient when an event comes."""

    chat_id: int
    session: SessionState = field(default_factory=SessionState)
    handoff: Handoff | None = None
    name: str = ""  # as staff see it on the card and the topic
    username: str = ""
    recent: tuple[tuple[Role, str], ...] = ()  # the last transcript lines, oldest first, for a card


# -- events ------------------------------------------------------------------------------
@dataclass(frozen=True)
class PatientMessage:
    """The message behind a patient's event: what relaying it to staff needs."""

    message_id: int
    text: str | None = None
    uncopyable: str | None = None  # what it is, when Telegram will not let a bot copy it
    album: str | None = None  # photos sent together count once against the flood limit


@dataclass(frozen=True)
class FromPatient:
    """The patient did something; ``at`` is a monotonic clock reading in seconds (for floods),
    ``when`` the clinic's local time (for staff hours and the card)."""

    event: Event
    message: PatientMessage | None = None
    at: float = 0.0
    when: dtm.datetime | None = None


@dataclass(frozen=True)
class PatientEdited:
    """The patient edited a message they sent earlier."""

    message: PatientMessage


@dataclass(frozen=True)
class StaffWrote:
    """Someone wrote in the patient's topic (``by_staff``: the adapter checked they are staff)."""

    sender_id: int
    by_staff: bool
    message_id: int
    text: str | None = None
    caption: str | None = None
    has_content: bool = True  # text or media (not only a service message)
    uncopyable: str | None = None


@dataclass(frozen=True)
class StaffPressedClose:
    """The close button under the card."""

    sender_id: int
    by_staff: bool


@dataclass(frozen=True)
class StaffEdited:
    """Staff edited a message in the topic; ``patient_copy_id``: the patient's copy of it, if any."""

    sender_id: int
    by_staff: bool
    patient_copy_id: int | None
    text: str | None = None
    caption: str | None = None
    entities: str = "[]"


@dataclass(frozen=True)
class TopicGone:
    """The sender found the patient's topic deleted (or never opened) while sending into it."""


@dataclass(frozen=True)
class SendFailed:
    """Telegram finally refused (or kept failing) a send."""

    send: Send
    reason: str


StaffEvent = Union[StaffWrote, StaffPressedClose, StaffEdited]


# -- effects besides sends ------------------------------------------------------------
@dataclass(frozen=True)
class Transcribe:
    """Add a line to the patient's transcript (what staff see on a card)."""

    role: Role
    text: str


@dataclass(frozen=True)
class StoreBooking:
    booking: Booking


@dataclass(frozen=True)
class ForgetEverything:
    """Delete everything stored about the patient, sends still queued included."""


@dataclass(frozen=True)
class StoreRating:
    helpful: bool


@dataclass(frozen=True)
class LogHandoff:
    """A moment of the handoff's life, for the operators' report (opened, staff replied, closed)."""

    kind: Literal["opened", "staff_replied", "closed"]
    reason: str = ""


Effect = Union[Send, Transcribe, RecordUnanswered, StoreBooking, ForgetEverything, StoreRating, LogHandoff]
RECORDS = (Transcribe, RecordUnanswered, StoreBooking, ForgetEverything, StoreRating, LogHandoff)  # effects that are not sends


@dataclass(frozen=True)
class Outcome:
    """The conversation after an event, and what to do, in order."""

    conversation: Conversation
    effects: tuple[Effect, ...] = ()
    match: Match | None = None


class Desk:
    """Decides what happens for each patient and staff event (see the module's rules)."""

    def __init__(
        self, dialogue: Dialogue, *, transcript_lines: int = 12, hours: StaffHours | None = None
    ) -> None:
        self.dialogue = dialogue
        self.hours = hours if hours is not None and hours.any else None
        self.staff_texts = dialogue.texts  # staff read the clinic's default language
        self.transcript_lines = transcript_lines
        # After /forget the staff topic stays as the clinic's record: the dialogue's setting,
        # which also decides what the patient is told.
        self.keep_records = dialogue.staff_keep_records
        # The desk's only memory between events, seconds long by nature: kept in the
        # process rather than the database (a restart forgets it, harmlessly).
        self.flood = FloodGuard()
        self._told_not_staff: set[int] = set()

    # -- patients ---------------------------------------------------------------------
    def patient(self, conversation: Conversation, event: FromPatient) -> Outcome:
        session = conversation.session
        heard = _heard(event.event)
        if event.message is not None and not isinstance(event.event, PatientCommand):
            verdict = self.flood.check(conversation.chat_id, event.at, event.message.album)
            if verdict != "ok":
                effects: list[Effect] = [Transcribe("patient", heard)] if heard else []
                if verdict == "start":
                    effects.append(TextToPatient(self.dialogue.speaking(session.lang).texts["flood_notice"]))
                if session.mode == "handoff" and event.message.text is not None:
                    effects += self._relay(event.message)  # merged with the others while staff catch up
                return Outcome(conversation, tuple(effects))
        step = self.dialogue.handle(session, event.event)
        work = _Work(self, replace(conversation, session=step.state), step.state.lang, event.when)
        if heard:
            work.transcribe("patient", heard)
        for action in step.actions:
            work.carry_out(action, event.message)
        if any(isinstance(a, HandOff) for a in step.actions) and (line := self._when_staff_answer(step.state.lang, event.when)):
            work.reply(Reply(line))
        return Outcome(work.conversation, tuple(work.effects), step.match)

    def _when_staff_answer(self, lang: str | None, when: dtm.datetime | None) -> str:
        """Staff hours configured: how soon a person answers, or from when."""
        if self.hours is None or when is None:
            return ""
        texts = self.dialogue.speaking(lang).texts
        opening = self.hours.next_opening(when)
        if opening is None:
            return texts["handoff_hours_open"].format(minutes=self.hours.reply_within_minutes)
        day = [d.strip() for d in texts["weekday_names"].split(",")][opening.weekday()]
        return texts["handoff_hours_closed"].format(when=f"{day} {opening:%H:%M}")

    def patient_edited(self, conversation: Conversation, event: PatientEdited) -> Outcome:
        """Edits matter only to a coordinator reading along; the assistant does not answer again."""
        if conversation.session.mode != "handoff":
            return Outcome(conversation)
        return Outcome(conversation, tuple(self._relay(event.message)))

    def _relay(self, message: PatientMessage) -> list[Effect]:
        if message.uncopyable == SERVICE_MESSAGE:
            return []
        if message.uncopyable is not None:
            # Telegram refuses to copy these; staff are told instead of the message vanishing.
            return [NoticeToTopic(self.staff_texts["staff_uncopyable"].format(kind=message.uncopyable))]
        return [PatientMessageToTopic(message.message_id, message.text)]

    # -- staff ----------------------------------------------------------------------------
    def staff(self, conversation: Conversation, event: StaffEvent) -> Outcome:
        t = self.staff_texts
        if not event.by_staff:
            quiet = isinstance(event, StaffWrote) and event.uncopyable == SERVICE_MESSAGE
            if quiet or event.sender_id in self._told_not_staff:
                return Outcome(conversation)
            self._told_not_staff.add(event.sender_id)  # told once, not at every message
            return Outcome(conversation, (NoticeToTopic(t["staff_not_staff"]),))
        if isinstance(event, StaffEdited):
            return self._correction(conversation, event)
        command = ("close", "") if isinstance(event, StaffPressedClose) else parse_command((event.text or "").strip())
        name, argument = command if command is not None else ("", "")
        if name == "close":
            return self._dialogue_event(conversation, StaffClosed(), t["staff_closed"])
        if name == "open":
            return self._dialogue_event(conversation, StaffReopened(), t["staff_reopened"])
        if name == "note":
            return Outcome(conversation, (Transcribe("staff", f"(internal note) {argument}"),))
        assert isinstance(event, StaffWrote)
        if not event.has_content or event.uncopyable == SERVICE_MESSAGE:
            return Outcome(conversation)  # topic created, renamed, pinned...: not for the patient
        handoff = conversation.handoff
        if handoff is None or handoff.status != "open":
            return Outcome(conversation, (NoticeToTopic(t["staff_topic_closed"]),))
        if event.uncopyable is not None:
            return Outcome(conversation, (NoticeToTopic(t["staff_uncopyable_out"].format(kind=event.uncopyable)),))
        said = Transcribe("staff", event.text or event.caption or "(media)")
        return Outcome(conversation, (StaffMessageToPatient(event.message_id), said, LogHandoff("staff_replied")))

    def _correction(self, conversation: Conversation, event: StaffEdited) -> Outcome:
        """A correction of a message the patient already has: their copy is corrected too."""
        if event.patient_copy_id is None:
            return Outcome(conversation)
        if event.text is not None:
            send: Send = CorrectedTextToPatient(event.patient_copy_id, event.text, event.entities)
        elif event.caption is not None:
            send = CorrectedCaptionToPatient(event.patient_copy_id, event.caption, event.entities)
        else:
            return Outcome(conversation)
        return Outcome(conversation, (send, Transcribe("staff", f"(corrected) {event.text or event.caption}")))

    def _dialogue_event(self, conversation: Conversation, event: Event, notice: str) -> Outcome:
        step = self.dialogue.handle(conversation.session, event)
        work = _Work(self, replace(conversation, session=step.state), step.state.lang, None)
        if isinstance(event, StaffReopened):
            work.set_handoff("open", "requested")
        elif conversation.handoff is not None and conversation.handoff.status == "open":
            work.set_handoff("closed")
        for action in step.actions:
            work.carry_out(action, None)
        work.effects.append(NoticeToTopic(notice))
        return Outcome(work.conversation, tuple(work.effects))

    def orphan_topic(self, thread_id: int, *, forgotten: bool) -> tuple[Send, ...]:
        """Staff wrote in a topic that belongs to no patient: one whose patient was
        forgotten (told, when the clinic keeps such topics), or one we did not open."""
        if not (forgotten and self.keep_records):
            return ()
        return (NoticeToTopic(self.staff_texts["staff_patient_forgotten"], thread_id=thread_id),)

    # -- what the sender reports -----------------------------------------------------
    def topic_gone(self, conversation: Conversation) -> Outcome:
        """The topic is gone: a new one is opened first, for the send that found it gone,
        when the patient still has a place with staff."""
        handoff = conversation.handoff
        if handoff is None:
            return Outcome(conversation)
        opened = replace(conversation, handoff=replace(handoff, thread_id=None))
        return Outcome(opened, (self._open_topic(opened, urgent=handoff.urgent),))

    def send_failed(self, conversation: Conversation, event: SendFailed) -> tuple[Send, ...]:
        """What staff are told when a send is given up."""
        t = self.staff_texts
        if isinstance(event.send, StaffMessageToPatient):
            return (NoticeToTopic(t["staff_relay_failed"].format(reason=event.reason)),)
        if isinstance(event.send, PatientMessageToTopic):
            return (NoticeToTopic(t["staff_relay_in_failed"].format(reason=event.reason)),)
        if isinstance(event.send, (CardToTopic, OpenTopic)):
            # The patient's topic could not be reached; General is the last place staff look.
            name = conversation.name or str(conversation.chat_id)
            return (NoticeToGeneral(t["staff_card_failed"].format(name=name, chat_id=conversation.chat_id, reason=event.reason)),)
        return ()  # a notice or a patient's reply: logged by the adapter, nobody else to tell

    def _open_topic(self, conversation: Conversation, *, urgent: bool) -> OpenTopic:
        return OpenTopic(topic_name(CardPatient(conversation.chat_id, conversation.name, conversation.username), urgent=urgent), urgent)


class _Work:
    """One event's effects as they accumulate, and the conversation they lead to."""

    def __init__(self, desk: Desk, conversation: Conversation, lang: str | None, when: dtm.datetime | None) -> None:
        self.desk = desk
        self.conversation = conversation
        self.lang = lang
        self.when = when
        self.effects: list[Effect] = []
        self.forgotten = False

    def transcribe(self, role: Role, text: str) -> None:
        if self.forgotten:
            return  # nothing is recorded again once the patient's data is deleted
        self.effects.append(Transcribe(role, text))
        recent = (*self.conversation.recent, (role, text))[-self.desk.transcript_lines :] if self.desk.transcript_lines else ()
        self.conversation = replace(self.conversation, recent=recent)

    def set_handoff(self, status: Literal["open", "closed"], reason: str | None = None, *, urgent: bool = False) -> None:
        chat_id = self.conversation.chat_id
        old = self.conversation.handoff or Handoff(chat_id, None, "closed")
        if status == "open":
            # Urgency only rises while staff have the patient; closing clears it.
            rising = urgent or (old.urgent and old.status == "open")
            new = replace(old, status="open", urgent=rising, reason=reason or old.reason)
        else:
            new = replace(old, status="closed", urgent=False)
        if new.status != (self.conversation.handoff.status if self.conversation.handoff else "closed"):
            self.effects.append(LogHandoff("opened" if status == "open" else "closed", new.reason))
        self.conversation = replace(self.conversation, handoff=new)

    def carry_out(self, action: Action, message: PatientMessage | None) -> None:
        t = self.desk.staff_texts
        if isinstance(action, Reply):
            self.reply(action)
        elif isinstance(action, RecordUnanswered):
            self.effects.append(action)
        elif isinstance(action, HandOff):
            self.set_handoff("open", action.reason, urgent=action.reason == "urgent")
            self.card(action.reason, question=action.question)
        elif isinstance(action, RelayToStaff):
            if message is not None:
                self.effects += self.desk._relay(message)
        elif isinstance(action, EndHandoff):
            self.set_handoff("closed")
            if action.by == "patient":
                self.effects.append(NoticeToTopic(t["staff_patient_ended"]))
        elif isinstance(action, SubmitBooking):
            self.effects.append(StoreBooking(action.booking))
            self.card("booking", booking=action.booking)
        elif isinstance(action, ForgetPatient):
            self.forget()
        elif isinstance(action, RecordRating):
            label = t["button_rate_helpful" if action.helpful else "button_rate_unhelpful"]
            self.effects += [StoreRating(action.helpful), NoticeToTopic(t["staff_rated"].format(rating=label))]

    def reply(self, reply: Reply) -> None:
        """The reply as texts Telegram accepts (4,096 characters each); its choices go with the last."""
        chunks = _chunks(reply.text, MAX_TEXT)
        for chunk in chunks[:-1]:
            self.effects.append(TextToPatient(chunk, urgent=reply.urgent))
        self.effects.append(
            TextToPatient(chunks[-1], reply.buttons, reply.keyboard, reply.request_contact, reply.remove_keyboard, reply.urgent)
        )
        self.transcribe("bot", reply.text)

    def card(self, reason: str, *, question: str = "", booking: Booking | None = None) -> None:
        conversation = self.conversation
        handoff = conversation.handoff
        if handoff is None or handoff.thread_id is None:
            # (If one is on its way already, the sender keeps that one: OpenTopic is idempotent.)
            self.effects.append(self.desk._open_topic(conversation, urgent=reason == "urgent"))
        html = render_card(
            CardPatient(conversation.chat_id, conversation.name or f"Patient {conversation.chat_id}", conversation.username),
            reason,
            self.desk.staff_texts,
            question=question,
            booking=booking,
            transcript=conversation.recent,
            language=self.desk.dialogue.speaking(self.lang).texts["language_name"],
            written=self.desk.staff_texts["staff_card_written"].format(time=f"{self.when:%Y-%m-%d %H:%M %Z}") if self.when else "",
        )
        self.effects.append(CardToTopic(html, self.desk.staff_texts["button_close"], urgent=reason == "urgent"))

    def forget(self) -> None:
        """Everything goes, sends still queued included; staff's topic goes too unless the clinic keeps records."""
        t = self.desk.staff_texts
        handoff = self.conversation.handoff
        self.effects = [ForgetEverything()]  # what this event recorded so far goes with the rest
        self.forgotten = True
        if handoff is not None and handoff.thread_id is not None:
            thread = handoff.thread_id
            if self.desk.keep_records:  # the topic stays, closed, as the clinic's record
                self.effects += [NoticeToTopic(t["staff_patient_forgot"], thread_id=thread), CloseTopic(thread)]
            else:  # the patient's words in the staff group go too; staff are told in General
                self.effects += [DeleteTopic(thread), NoticeToGeneral(t["staff_patient_forgot_deleted"])]
        self.conversation = Conversation(self.conversation.chat_id, self.conversation.session)


def _heard(event: Event) -> str:
    """What the transcript keeps of a patient's event ("" for nothing)."""
    if isinstance(event, PatientText):
        return event.text
    if isinstance(event, PatientCommand):
        return f"/{event.name}"
    return ""


def _chunks(text: str, size: int) -> list[str]:
    """Split text for Telegram's 4,096-character limit, at line breaks where possible."""
    chunks = []
    while len(text) > size:
        cut = text.rfind("\n", 0, size)
        cut = cut if cut > size // 2 else size
        chunks.append(text[:cut])
        text = text[cut:].lstrip("\n")
    chunks.append(text)
    return chunks
