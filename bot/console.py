"""The console channel: the same dialogue core, in a terminal.

Inline buttons and keyboard choices become numbered choices picked by typing
the number, which is how a text-only channel renders rich replies. There are
no staff in the console, so a handoff only prints a note.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TextIO

from bot.core.dialogue import (
    Action,
    ButtonPressed,
    Dialogue,
    Event,
    HandOff,
    PatientCommand,
    PatientText,
    RelayToStaff,
    Reply,
    SessionState,
    SubmitBooking,
)

QUIT_COMMANDS = frozenset({"/quit", "/exit"})
KNOWN_COMMANDS = frozenset({"start", "help", "book", "human", "end", "cancel"})
Choice = Event


def choices_of(reply: Reply) -> list[tuple[str, Choice]]:
    """The numbered choices a reply offers: inline buttons, then keyboard labels."""
    if reply.buttons:
        return [(b.label, ButtonPressed(b.data)) for b in reply.buttons]
    return [(label, PatientText(label)) for label in reply.keyboard]


def render_reply(reply: Reply, first_number: int = 1) -> str:
    """A reply as plain text, its choices numbered."""
    lines = [reply.text]
    for number, (label, _) in enumerate(choices_of(reply), start=first_number):
        lines.append(f"  {number}. {label}")
    return "\n".join(lines)


def event_from_line(line: str, choices: list[Choice]) -> Event:
    """What a typed console line means: a command, a choice by number, or text."""
    stripped = line.strip()
    command = stripped[1:].split(" ")[0].lower() if stripped.startswith("/") else ""
    if command in KNOWN_COMMANDS:
        return PatientCommand(command)
    if stripped.isdigit() and 1 <= int(stripped) <= len(choices):
        return choices[int(stripped) - 1]
    return PatientText(line.rstrip("\r\n"))


def describe(action: Action) -> str | None:
    """What the console shows for actions that need staff (there are none here)."""
    if isinstance(action, HandOff):
        return "(In Telegram this conversation now goes to the clinic's staff; type /end to come back.)"
    if isinstance(action, RelayToStaff):
        return "(passed on to staff)"
    if isinstance(action, SubmitBooking):
        return "(In Telegram the booking request now goes to the clinic's coordinators.)"
    return None


def run_console(dialogue: Dialogue, lines: Iterable[str], out: TextIO, prompt: Callable[[], None] | None = None) -> None:
    """Chat over ``lines`` (stdin in real use) until /quit or end of input."""
    state = SessionState()
    event: Event = PatientCommand("start")
    lines_iter = iter(lines)
    footer = "(type your question, a number to pick a choice, /quit to leave)"
    while True:
        step = dialogue.handle(state, event)
        state = step.state
        choices: list[Choice] = []
        for action in step.actions:
            if isinstance(action, Reply):
                print(render_reply(action, len(choices) + 1), file=out)
                choices += [c for _, c in choices_of(action)]
            elif (note := describe(action)) is not None:
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
