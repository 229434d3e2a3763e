"""What the bot sends, as typed values: built by the core, kept in the outbox as they are.

Each kind is carried out by exactly one Bot API call (see ``bot/adapters/telegram/outbox.py``),
which decides nothing: every text here was chosen by the core from the
language data. A send belongs to one patient's conversation; "the topic" is
that patient's staff topic, whose thread the sender looks up when it sends
(the topic may have been opened after the send was queued).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any, Union

from bot.core.dialogue import Button


# -- to the patient -----------------------------------------------------------------
@dataclass(frozen=True)
class TextToPatient:
    """sendMessage: a reply of the bot. ``buttons`` are inline choices; ``keyboard`` replaces the
    patient's keyboard (its first label asks for their phone when ``request_contact``)."""

    text: str
    buttons: tuple[Button, ...] = ()
    keyboard: tuple[str, ...] = ()
    request_contact: bool = False
    remove_keyboard: bool = False
    urgent: bool = False  # the safety reply: sent before anything else waiting


@dataclass(frozen=True)
class StaffMessageToPatient:
    """copyMessage: a coordinator's message in the topic, copied into the patient's chat."""

    staff_message_id: int


@dataclass(frozen=True)
class CorrectedTextToPatient:
    """editMessageText: staff corrected a text the patient already has (``entities``: Telegram's, as JSON)."""

    patient_message_id: int
    text: str
    entities: str = "[]"


@dataclass(frozen=True)
class CorrectedCaptionToPatient:
    """editMessageCaption: staff corrected the caption of a photo or file the patient already has."""

    patient_message_id: int
    caption: str
    entities: str = "[]"


# -- to staff ---------------------------------------------------------------------------
@dataclass(frozen=True)
class OpenTopic:
    """createForumTopic: the patient's topic in the staff group. Idempotent: a patient who has
    a topic by the time this is sent keeps it (a replayed send never opens a second one)."""

    name: str
    urgent: bool = False


@dataclass(frozen=True)
class CardToTopic:
    """sendMessage (HTML) with a close button: who the patient is and why staff are needed."""

    html: str
    close_label: str
    urgent: bool = False  # staff's alert of an urgent message: before anything else waiting


@dataclass(frozen=True)
class PatientMessageToTopic:
    """copyMessage: a patient's message for their topic. ``text`` (None for media) lets texts
    that waited together go out as one message: the group takes about 20 a minute."""

    patient_message_id: int
    text: str | None = None


@dataclass(frozen=True)
class NoticeToTopic:
    """sendMessage: a line for staff in the patient's topic, or in ``thread_id`` when it is fixed."""

    text: str
    thread_id: int | None = None


@dataclass(frozen=True)
class NoticeToGeneral:
    """sendMessage: a line for staff in the group's General topic."""

    text: str


@dataclass(frozen=True)
class DeleteTopic:
    """deleteForumTopic: a forgotten patient's topic, with everything in it."""

    thread_id: int


@dataclass(frozen=True)
class CloseTopic:
    """closeForumTopic: a forgotten patient's topic, kept closed as the clinic's record."""

    thread_id: int


Send = Union[
    TextToPatient, StaffMessageToPatient, CorrectedTextToPatient, CorrectedCaptionToPatient, OpenTopic, CardToTopic,
    PatientMessageToTopic, NoticeToTopic, NoticeToGeneral, DeleteTopic, CloseTopic,
]
SEND_KINDS: dict[str, type[Any]] = {cls.__name__: cls for cls in Send.__args__}  # type: ignore[attr-defined]


def encode(send: Send) -> tuple[str, str]:
    """``(kind, payload)`` for the outbox table."""
    return type(send).__name__, json.dumps(asdict(send), ensure_ascii=False)


def decode(kind: str, payload: str) -> Send:
    """The send stored as ``(kind, payload)``; ValueError when it is not one."""
    cls = SEND_KINDS.get(kind)
    if cls is None:
        raise ValueError(f"unknown kind of send {kind!r}")
    values = json.loads(payload)
    if not isinstance(values, dict):
        raise ValueError(f"{kind}: payload is not an object")
    known = {f.name for f in fields(cls)}
    values = {k: v for k, v in values.items() if k in known}
    if "buttons" in values:
        values["buttons"] = tuple(Button(str(b[0]), str(b[1])) if isinstance(b, list) else Button(**b) for b in values["buttons"])
    if "keyboard" in values:
        values["keyboard"] = tuple(values["keyboard"])
    try:
        return cls(**values)  # type: ignore[no-any-return]
    except TypeError as exc:
        raise ValueError(f"{kind}: {exc}") from None
