"""The dialogue core: ``(state, event) -> (state, actions)``, with no I/O.

Adapters (console, Telegram) turn what the patient did into an event, call
:meth:`Dialogue.handle`, store the returned state and carry out the actions.
Button payloads are short strings (``faq:<id>``, ``do:book``...) so they fit
Telegram's 64-byte callback data.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, Union

from bot.core.knowledge import KnowledgeBase
from bot.core.matcher import Match, Matcher

# A reply longer than this is not what a patient reads on a phone; messages
# past it are answered from their beginning and told so.
LONG_MESSAGE_CHARS = 1_000

ButtonAction = str

FAQ_PREFIX = "faq:"
ACTION_BOOK = "do:book"
ACTION_HUMAN = "do:human"
ACTION_TOPICS = "do:topics"


# -- events ---------------------------------------------------------------------
@dataclass(frozen=True)
class PatientText:
    """The patient typed something."""

    text: str


@dataclass(frozen=True)
class ButtonPressed:
    """The patient pressed one of our buttons (or typed the number of a choice in the console)."""

    data: str


@dataclass(frozen=True)
class PatientCommand:
    """/start, /help, /book, /human..."""

    name: str


@dataclass(frozen=True)
class UnsupportedMessage:
    """A sticker, photo, voice note... something the bot cannot read."""

    kind: str


Event = Union[PatientText, ButtonPressed, PatientCommand, UnsupportedMessage]


# -- actions --------------------------------------------------------------------
@dataclass(frozen=True)
class Button:
    """A choice offered to the patient; ``data`` comes back in :class:`ButtonPressed`."""

    label: str
    data: str


@dataclass(frozen=True)
class Reply:
    """Send this text (and buttons) to the patient."""

    text: str
    buttons: tuple[Button, ...] = ()


@dataclass(frozen=True)
class RecordUnanswered:
    """The bot could not answer this question from the document; operators review these."""

    question: str


@dataclass(frozen=True)
class HandOff:
    """Hand the conversation to staff."""

    reason: Literal["unanswered", "requested", "urgent", "booking"]
    question: str = ""


Action = Union[Reply, RecordUnanswered, HandOff]


# -- state ----------------------------------------------------------------------
@dataclass(frozen=True)
class SessionState:
    """What the core remembers about one patient between messages."""

    mode: Literal["bot", "handoff"] = "bot"
    last_faq_id: str | None = None
    offered: tuple[str, ...] = ()  # button data offered in the last reply (to recognise stale presses)


@dataclass(frozen=True)
class Step:
    """The outcome of one event: the next state, what to do, and how the message was understood."""

    state: SessionState
    actions: tuple[Action, ...]
    match: Match | None = None

    @property
    def replies(self) -> tuple[Reply, ...]:
        return tuple(a for a in self.actions if isinstance(a, Reply))


class Dialogue:
    """Decides replies from the knowledge base. Holds no per-patient state."""

    def __init__(self, knowledge: KnowledgeBase, matcher: Matcher | None = None) -> None:
        self.knowledge = knowledge
        self.matcher = matcher or Matcher(knowledge)
        self.texts = knowledge.texts

    def handle(self, state: SessionState, event: Event) -> Step:
        """Process one event for one patient."""
        if isinstance(event, PatientText):
            return self._on_text(state, event.text)
        if isinstance(event, ButtonPressed):
            return self._on_button(state, event.data)
        if isinstance(event, PatientCommand):
            return self._on_command(state, event.name)
        return self._reply(state, Reply(self.texts["unsupported_message"]))

    # -- helpers -------------------------------------------------------------------
    def _reply(self, state: SessionState, *actions: Action, match: Match | None = None, **changes: object) -> Step:
        offered = tuple(b.data for a in actions if isinstance(a, Reply) for b in a.buttons)
        return Step(replace(state, offered=offered, **changes), actions, match)  # type: ignore[arg-type]

    def _title(self, entry_id: str) -> str:
        entry = self.knowledge.entry(entry_id)
        return entry.title if entry else entry_id

    def _faq_button(self, entry_id: str) -> Button:
        return Button(self._title(entry_id), FAQ_PREFIX + entry_id)

    def _service_buttons(self) -> tuple[Button, ...]:
        return (Button(self.texts["button_human"], ACTION_HUMAN), Button(self.texts["button_booking"], ACTION_BOOK))

    def main_topics(self) -> tuple[Button, ...]:
        """Buttons for the welcome message: the most asked-about topics, then booking and staff."""
        topics = [e.id for e in self.knowledge.entries[:4]]
        return (*(self._faq_button(t) for t in topics), *self._service_buttons())

    def answer(self, state: SessionState, entry_id: str, *, also_asked: str | None = None, match: Match | None = None) -> Step:
        """The entry's answer with its follow-ups (a second question first) as buttons."""
        entry = self.knowledge.entry(entry_id)
        if entry is None:
            return self._reply(state, Reply(self.texts["stale_button"], self.main_topics()))
        follow_ups = [f for f in (also_asked, *entry.follow_ups) if f and f != entry_id and self.knowledge.entry(f)]
        follow_ups = list(dict.fromkeys(follow_ups))[:3]
        text = entry.answer
        if also_asked and self.knowledge.entry(also_asked):
            text += "\n\n" + self.texts["also_asked"].format(topic=self._title(also_asked))
        buttons = tuple(self._faq_button(f) for f in follow_ups)
        return self._reply(state, Reply(text, buttons), match=match, last_faq_id=entry_id)

    # -- events ----------------------------------------------------------------------
    def _on_text(self, state: SessionState, text: str) -> Step:
        match = self.matcher.match(text)
        prefix = self.texts["too_long"] + "\n\n" if len(text) > LONG_MESSAGE_CHARS else ""
        if match.intent == "faq" and match.faq_id is not None:
            step = self.answer(state, match.faq_id, also_asked=match.also_asked, match=match)
            if prefix:
                first = step.replies[0]
                step = replace(step, actions=(Reply(prefix + first.text, first.buttons), *step.actions[1:]))
            return step
        if match.intent == "clarify":
            buttons = (*(self._faq_button(s) for s in match.suggestions), Button(self.texts["button_human"], ACTION_HUMAN))
            return self._reply(state, Reply(prefix + self.texts["clarify"], buttons), match=match)
        if match.intent == "urgent":
            return self._reply(state, Reply(self.texts["urgent"]), HandOff("urgent", text), match=match)
        if match.intent == "booking":
            return self._reply(state, Reply(self.texts["booking"]), match=match)
        if match.intent == "human":
            return self._reply(state, Reply(self.texts["human"]), HandOff("requested", text), match=match)
        if match.intent in ("greeting", "thanks"):
            return self._reply(state, Reply(self.texts[match.intent]), match=match)
        if match.empty:
            return self._reply(state, Reply(self.texts["empty_message"]), match=match)
        return self._reply(
            state, Reply(prefix + self.texts["fallback"], self._service_buttons()), RecordUnanswered(text), match=match
        )

    def _on_button(self, state: SessionState, data: str) -> Step:
        if data.startswith(FAQ_PREFIX) and self.knowledge.entry(data[len(FAQ_PREFIX) :]):
            return self.answer(state, data[len(FAQ_PREFIX) :])
        if data == ACTION_BOOK:
            return self._on_command(state, "book")
        if data == ACTION_HUMAN:
            return self._on_command(state, "human")
        if data == ACTION_TOPICS:
            return self._on_command(state, "start")
        # Unknown or stale data (an old message's button, a removed FAQ entry, a forged press).
        return self._reply(state, Reply(self.texts["stale_button"], self.main_topics()))

    def _on_command(self, state: SessionState, name: str) -> Step:
        if name == "start":
            return self._reply(state, Reply(self.texts["welcome"], self.main_topics()))
        if name == "help":
            return self._reply(state, Reply(self.texts["help"]))
        if name == "book":
            return self._reply(state, Reply(self.texts["booking"]))
        if name == "human":
            return self._reply(state, Reply(self.texts["human"]), HandOff("requested"))
        return self._reply(state, Reply(self.texts["help"]))
