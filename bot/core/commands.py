"""The one command table: what patients and staff can type after a slash.

Telegram's command menu, the console and ``/help`` are all generated from
these tuples, so they cannot drift apart. Descriptions are texts
(``command_<name>``) in each language's data.
"""

from __future__ import annotations

from collections.abc import Mapping

# In the order of Telegram's menu and of /help.
PATIENT_COMMANDS: tuple[str, ...] = ("start", "help", "book", "human", "end", "cancel", "forget")
# Typed by staff in a patient's topic.
STAFF_COMMANDS: tuple[str, ...] = ("close", "open", "note")
# The button under a staff card: the same as typing /close in the topic.
CLOSE_BUTTON_DATA = "staff:close"


def parse_command(text: str) -> tuple[str, str] | None:
    """``("close", "rest of the line")`` for "/close@DeusBot rest of the line"; None when not a command."""
    if not text.startswith("/") or len(text) < 2:
        return None
    head, _, rest = text[1:].partition(" ")
    name = head.split("\n", 1)[0].split("@", 1)[0].lower()
    if "\n" in head:
        rest = head.split("\n", 1)[1] + (" " + rest if rest else "")
    return (name, rest.strip()) if name else None


def help_text(texts: Mapping[str, str]) -> str:
    """/help: the language's introduction, then every patient command with its description."""
    lines = [texts["help"]]
    lines += [f"/{name} - {texts[f'command_{name}']}" for name in PATIENT_COMMANDS if name != "help"]
    return "\n".join(lines)
