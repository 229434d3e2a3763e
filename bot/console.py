"""The console channel: the same dialogue core, in a terminal.

Buttons become numbered choices the user picks by typing the number, which is
how a text-only channel renders rich replies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TextIO

from bot.core.dialogue import (
    ButtonPressed,
    Dialogue,
    Event,
    PatientCommand,
    PatientText,
    Reply,
    SessionState,
)

QUIT_COMMANDS = frozenset({"/quit", "/exit"})
KNOWN_COMMANDS = frozenset({"start", "help", "book", "human", "end", "cancel"})


def render_reply(reply: Reply) -> str:
    """A reply as plain text, its buttons as numbered choices."""
    lines = [reply.text]
    for number, button in enumerate(reply.buttons, start=1):
        lines.append(f"  {number}. {button.label}")
    return "\n".join(lines)


def event_from_line(line: str, offered: tuple[str, ...]) -> Event:
    """What a typed console line means: a command, a choice by number, or text."""
    stripped = line.strip()
    if stripped.startswith("/") and stripped[1:].split(" ")[0].lower() in KNOWN_COMMANDS:
        return PatientCommand(stripped[1:].split(" ")[0].lower())
    if stripped.isdigit() and 1 <= int(stripped) <= len(offered):
        return ButtonPressed(offered[int(stripped) - 1])
    return PatientText(line)


def run_console(dialogue: Dialogue, lines: Iterable[str], out: TextIO, prompt: Callable[[], None] | None = None) -> None:
    """Chat over ``lines`` (stdin in real use) until /quit or end of input."""
    state = SessionState()
    step = dialogue.handle(state, PatientCommand("start"))
    state = step.state
    for reply in step.replies:
        print(render_reply(reply), file=out)
    print("(type your question, a number to pick a choice, /quit to leave)", file=out)
    if prompt:
        prompt()
    for line in lines:
        if line.strip().lower() in QUIT_COMMANDS:
            break
        step = dialogue.handle(state, event_from_line(line, state.offered))
        state = step.state
        for reply in step.replies:
            print(render_reply(reply), file=out)
        if prompt:
            prompt()
