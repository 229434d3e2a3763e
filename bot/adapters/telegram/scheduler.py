"""Which send goes next, within Telegram's limits and fairly (pure: every time is passed in).

Telegram lets a bot send about 30 messages a second in all, about one a second
into one private chat (a short burst is tolerated), and 20 in any 60 seconds
into one group. Sends over these are refused with 429 and a pause; staying
under them is what makes replies fast, so this is the one place that keeps
them (python-telegram-bot's own rate limiter is not used).

Each patient's conversation has two *lanes*: sends to the patient, and sends
into their staff topic. Order holds within a lane; the lanes are independent,
so a patient's reply never waits for the staff group's minute budget.

Choosing among lanes whose destination can take a message now:

1. urgent first (the safety reply, the urgent card);
2. then the lane that has had the fewest sends lately (a count that fades
   over ``FAIRNESS_SECONDS``), and among equals the one served least recently:
   a patient writing for the first time goes ahead of every backlog, a card
   that follows its new topic is not sent to the back of the queue, and busy
   lanes take turns. In the staff group this shares the 20 a minute between
   handoffs, so no chatty one starves the others (and what waits in one topic
   is sent as one message by the sender).

A 429 pauses only the destination it names (a chat, or the group);
a failure that is retried later pauses only its lane.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

Lane = tuple[int, Literal["patient", "staff"]]  # (the patient's chat id, which way)
NEVER = -math.inf
# How long a lane's sends count against it: long enough to tell a backlog (a send every
# couple of seconds) from a newcomer, short enough that a quiet lane is new again soon.
FAIRNESS_SECONDS = 10.0
WHOLE = 1.0 - 1e-9  # a token, give or take rounding (or waiting for it could take forever)


@dataclass(frozen=True)
class Limits:
    """Telegram's limits (0 switches one off: tests against a server without limits)."""

    overall_per_second: float = 30.0
    chat_per_second: float = 1.0
    chat_burst: int = 3  # messages a private chat may take at once before the 1/s pace
    group_per_minute: int = 20
    # Telegram counts a message when it arrives, we when it leaves: network jitter can
    # bunch sends spaced exactly at the limit into a window that is over it (measured with
    # the fake server: 7 refusals in 35 sends at exact spacing, none with this margin).
    # Each window is this much longer (10% of throughput).
    margin: float = 0.1


@dataclass
class _LaneState:
    destination: int
    urgent: bool
    served: float = NEVER  # when it was last chosen, as a count of choices (never: first in line)
    recent: float = 0.0  # its sends lately, fading (as of recent_at)
    recent_at: float = 0.0
    busy: bool = False
    not_before: float = 0.0  # a retry waits for this


class Scheduler:
    """Keeps Telegram's limits per destination and picks the next lane (see the module's rules)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._lanes: dict[Lane, _LaneState] = {}
        # The bot's 30 a second as a bucket with a small burst, so sends are spread evenly
        # (one every ~37 ms) and a newcomer waits for the next slot, not for the next second:
        # any second then holds at most burst + rate sends, within the limit.
        self._overall_rate = limits.overall_per_second / (1.0 + limits.margin)
        self._overall_burst = max(1.0, math.floor(limits.overall_per_second - self._overall_rate))
        self._overall = (self._overall_burst, 0.0)  # (tokens, when counted)
        self._groups: dict[int, deque[float]] = {}  # sends of the last minute, per group
        self._chats: dict[int, tuple[float, float]] = {}  # private chat -> (tokens, when counted)
        self._paused: dict[int, float] = {}  # destination -> until (429)
        self._choices = 0
        self._refill = limits.chat_per_second / (1.0 + limits.margin)  # a private chat's tokens a second

    # -- what the sender tells ----------------------------------------------------------
    def offer(self, lane: Lane, destination: int, *, urgent: bool) -> None:
        """The lane has a send waiting at its head (for ``destination``)."""
        state = self._lanes.get(lane)
        if state is None:
            self._lanes[lane] = _LaneState(destination, urgent)
        else:
            state.destination, state.urgent = destination, urgent

    def withdraw(self, lane: Lane) -> None:
        """Nothing waits in the lane any more."""
        state = self._lanes.get(lane)
        if state is not None and not state.busy:
            del self._lanes[lane]

    def done(self, lane: Lane, now: float, *, retry_at: float | None = None) -> None:
        """The lane's send is over (sent, or given up); with ``retry_at``, it is tried again then."""
        state = self._lanes.get(lane)
        if state is not None:
            state.busy = False
            state.not_before = retry_at or 0.0

    def pause(self, destination: int, until: float) -> None:
        """Telegram said 429 for this chat or group: nothing goes there before ``until``."""
        self._paused[destination] = max(until, self._paused.get(destination, 0.0))

    # -- what to send ------------------------------------------------------------------------
    def next(self, now: float) -> tuple[Lane | None, float]:
        """The lane to send from now (marked busy, its message counted), or None and how
        many seconds until one may be ready (inf: nothing waits)."""
        lanes, wait = self.take(now, 1)
        return (lanes[0] if lanes else None), wait

    def take(self, now: float, most: int | None = None) -> tuple[list[Lane], float]:
        """Every lane that may send now (up to ``most``), best first, each marked busy and its
        message counted; and how many seconds until another may be ready (inf: nothing waits).
        One look at all lanes serves a whole batch: with many patients waiting, a look per send
        would cost more than the send."""
        soonest = math.inf
        if len(self._paused) > 256:  # pauses that are over need no memory
            self._paused = {d: until for d, until in self._paused.items() if until > now}
        candidates = []
        for lane, state in self._lanes.items():
            if state.busy:
                continue
            ready = max(state.not_before, self._paused.get(state.destination, 0.0), self._destination_ready(state.destination, now))
            if ready > now:
                soonest = min(soonest, ready)
                continue
            candidates.append(((not state.urgent, self._lately(state, now), state.served), lane))
        candidates.sort()
        chosen: list[Lane] = []
        for _, lane in candidates:
            if most is not None and len(chosen) >= most:
                soonest = now
                break
            overall = self._overall_ready(now)
            if overall > now:
                soonest = min(soonest, overall)
                break
            state = self._lanes[lane]
            ready = self._destination_ready(state.destination, now)  # lanes chosen before may have used it up
            if ready > now:
                soonest = min(soonest, ready)
                continue
            state.busy = True
            self._choices += 1
            state.served = self._choices
            state.recent, state.recent_at = self._lately(state, now) + 1.0, now
            self._count(state.destination, now)
            chosen.append(lane)
        return chosen, (soonest - now if soonest < math.inf else math.inf)

    def __len__(self) -> int:
        return len(self._lanes)

    @staticmethod
    def _lately(state: _LaneState, now: float) -> float:
        if not state.recent:
            return 0.0
        return state.recent * math.exp(-(now - state.recent_at) / FAIRNESS_SECONDS)

    # -- budgets ------------------------------------------------------------------------------
    def _overall_ready(self, now: float) -> float:
        if not self.limits.overall_per_second:
            return 0.0
        tokens = self._overall_tokens(now)
        return 0.0 if tokens >= WHOLE else now + (1.0 - tokens) / self._overall_rate

    def _overall_tokens(self, now: float) -> float:
        tokens, then = self._overall
        return min(self._overall_burst, tokens + (now - then) * self._overall_rate)

    def _destination_ready(self, destination: int, now: float) -> float:
        if destination < 0:  # a group: at most group_per_minute in any 60 seconds
            cap = self.limits.group_per_minute
            sent = self._groups.get(destination)
            if not cap or not sent:
                return 0.0
            window = 60.0 * (1.0 + self.limits.margin)
            while sent and sent[0] + window <= now:
                sent.popleft()
            return sent[0] + window if len(sent) >= cap else 0.0
        rate = self.limits.chat_per_second
        if not rate or destination not in self._chats:
            return 0.0
        tokens = self._tokens(destination, now)
        return 0.0 if tokens >= WHOLE else now + (1.0 - tokens) / self._refill

    def _tokens(self, chat: int, now: float) -> float:
        tokens, then = self._chats.get(chat, (float(self.limits.chat_burst), now))
        return min(float(self.limits.chat_burst), tokens + (now - then) * self._refill)

    def _count(self, destination: int, now: float) -> None:
        if self.limits.overall_per_second:
            self._overall = (self._overall_tokens(now) - 1.0, now)
        if destination < 0:
            if self.limits.group_per_minute:
                self._groups.setdefault(destination, deque()).append(now)
        elif self.limits.chat_per_second:
            self._chats[destination] = (self._tokens(destination, now) - 1.0, now)
            if len(self._chats) > 4 * len(self._lanes) + 1024:
                self._forget_full_buckets(now)

    def _forget_full_buckets(self, now: float) -> None:
        """Chats whose burst is whole again need no memory (keeps the dict from only growing)."""
        for chat in [c for c in self._chats if self._tokens(c, now) >= self.limits.chat_burst]:
            del self._chats[chat]
