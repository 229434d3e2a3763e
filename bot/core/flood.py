"""Flood control (pure): a patient sending dozens of messages in seconds gets one notice, then quiet.

A flood is usually a stuck key, a forwarded chat history or a bot; answering
each message would bury the patient's chat and use the bot's shared sending
budget (about 30 messages a second for every patient together). The memory is
seconds long, so it lives in the process, not the database.
"""

from __future__ import annotations

from collections import deque
from typing import Literal

# A patient sending more than FLOOD_BURST messages within FLOOD_WINDOW seconds
# is flooding: one notice, then no answers (text still reaches staff) until quiet.
FLOOD_BURST = 15
FLOOD_WINDOW = 10.0

FloodVerdict = Literal["ok", "start", "flooding"]


class FloodGuard:
    """Counts each chat's recent messages (albums count once); only recently active chats are kept."""

    def __init__(self, burst: int = FLOOD_BURST, window: float = FLOOD_WINDOW) -> None:
        self.burst, self.window = burst, window
        self._recent: dict[int, deque[float]] = {}
        self._albums: dict[int, str] = {}
        self._flooding: set[int] = set()
        self._checks = 0

    def check(self, chat_id: int, now: float, album: str | None = None) -> FloodVerdict:
        """'ok', 'start' (first message over the limit: send one notice) or 'flooding'."""
        self._checks += 1
        if self._checks % 256 == 0:
            self._prune(now)
        if album is not None and self._albums.get(chat_id) == album:
            return "flooding" if chat_id in self._flooding else "ok"
        if album is not None:
            self._albums[chat_id] = album
        times = self._recent.setdefault(chat_id, deque(maxlen=self.burst + 1))
        times.append(now)
        while times and now - times[0] > self.window:
            times.popleft()
        if len(times) > self.burst:
            if chat_id in self._flooding:
                return "flooding"
            self._flooding.add(chat_id)
            return "start"
        if chat_id in self._flooding and len(times) <= 1:
            self._flooding.discard(chat_id)  # quiet for a whole window: welcome back
        return "flooding" if chat_id in self._flooding else "ok"

    def _prune(self, now: float) -> None:
        for chat_id in [c for c, t in self._recent.items() if not t or now - t[-1] > self.window]:
            self._recent.pop(chat_id, None)
            self._albums.pop(chat_id, None)
            self._flooding.discard(chat_id)

    def __len__(self) -> int:
        return len(self._recent)
