"""The console channel: the same front desk as Telegram, in a terminal.

Inline buttons and keyboard choices become numbered choices picked by typing
the number, which is how a text-only channel renders rich replies. The
commands are Telegram's (one table, ``bot.core.commands``). There are no staff
in the console, so what would go to them is shown as a note.
"""

from __future__ import annotations

import datetime as dtm
import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TextIO

from bot.core.commands import PATIENT_COMMANDS, parse_command
from bot.core.desk import Conversation, Desk, Effect, ForgetEverything, FromPatient, PatientMessage, StoreBooking
from bot.core.dialogue import ButtonPressed, Event, PatientCommand, PatientText, Reply
from bot.core.outgoing import CardToTopic, PatientMessageToTopic, TextToPatient

QUIT_COMMANDS = frozenset({"/quit", "/exit"})
CONSOLE_CHAT_ID = 1
Choice = Event


def choices_of(reply: Reply | TextToPatient) -> list[tuple[str, Choice]]:
    """The numbered choices a reply offers: inline buttons, then keyboard labels."""
    if reply.buttons:
        return [(b.label, ButtonPressed(b.data)) for b in reply.buttons]
    return [(label, PatientText(label)) for label in reply.keyboard]


def render_reply(reply: Reply | TextToPatient, first_number: int = 1) -> str:
    """A reply as plain text, its choices numbered."""
    lines = [reply.text]
    for number, (label, _) in enumerate(choices_of(reply), start=first_number):
        lines.append(f"  {number}. {label}")
    return "\n".join(lines)


def event_from_line(line: str, choices: list[Choice]) -> Event:
    """What a typed console line means: a command, a choice by number, or text."""
    stripped = line.strip()
    command = parse_command(stripped)
    if command is not None and command[0] in PATIENT_COMMANDS:
        return PatientCommand(command[0])
    if stripped.isdigit() and 1 <= int(stripped) <= len(choices):
        return choices[int(stripped) - 1]
    return PatientText(line.rstrip("\r\n"))


def describe(effect: Effect) -> str | None:
    """What the console shows for what would go to staff (there are none here)."""
    if isinstance(effect, CardToTopic):
        return "(In Telegram the clinic's staff now get this conversation.)"
    if isinstance(effect, PatientMessageToTopic):
        return "(passed on to staff)"
    if isinstance(effect, StoreBooking):
        return "(In Telegram the booking request now goes to the clinic's coordinators.)"
    if isinstance(effect, ForgetEverything):
        return "(Everything this conversation stored is deleted.)"
    return None


def run_console(
    desk: Desk, lines: Iterable[str], out: TextIO, prompt: Callable[[], None] | None = None, *, clinic_time: dtm.tzinfo | None = None
) -> None:
    """Chat over ``lines`` (stdin in real use) until /quit or end of input; ``clinic_time``: the
    clinic's time zone (staff hours), as the config gives it."""
    conversation = Conversation(CONSOLE_CHAT_ID)
    event: Event = PatientCommand("start")
    lines_iter = iter(lines)
    footer = "(type your question, a number to pick a choice, /help for commands, /quit to leave)"
    for number in itertools.count(1):  # the console's message ids
        message = PatientMessage(number, event.text) if isinstance(event, PatientText) else None
        now = dtm.datetime.now(clinic_time) if clinic_time is not None else None
        outcome = desk.patient(conversation, FromPatient(event, message, time.monotonic(), now))
        conversation = replace(outcome.conversation, recent=())  # the console keeps no transcript
        choices: list[Choice] = []
        for effect in outcome.effects:
            if isinstance(effect, TextToPatient):
                print(render_reply(effect, len(choices) + 1), file=out)
                choices += [c for _, c in choices_of(effect)]
            elif (note := describe(effect)) is not None:
                print(note, file=out)
        if footer:
            print(footer, file=out)
            footer = ""
        if prompt:
            prompt()
        line = next(lines_iter, None)
        if line is None or line.strip().lower() in QUIT_COMMANDS:
            return
        event = event_from_line(line, choices)
