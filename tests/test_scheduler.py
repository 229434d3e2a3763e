"""The send scheduler, pure: Telegram's limits kept, fairly, with times passed in (no clock, no fakes)."""

from __future__ import annotations

import math
from collections import Counter

from bot.adapters.telegram.scheduler import Lane, Limits, Scheduler

GROUP = -100


def drain(scheduler: Scheduler, backlog: dict[Lane, int], *, until: float, now: float = 0.0,
          destinations: dict[Lane, int] | None = None) -> list[tuple[float, Lane]]:
    """Send everything in ``backlog`` (sends per lane) as the scheduler allows; each send takes no time."""
    sent: list[tuple[float, Lane]] = []
    for lane in backlog:
        scheduler.offer(lane, (destinations or {}).get(lane, lane[0]), urgent=False)
    while now <= until and any(backlog.values()):
        lane, wait = scheduler.next(now)
        if lane is None:
            now += wait
            continue
        sent.append((now, lane))
        backlog[lane] -= 1
        scheduler.done(lane, now)
        if not backlog[lane]:
            scheduler.withdraw(lane)
    return sent


def most_in_any_window(times: list[float], window: float) -> int:
    return max((sum(1 for t in times if start <= t < start + window) for start in times), default=0)


def test_never_more_than_thirty_a_second_nor_more_than_the_burst_into_one_chat() -> None:
    scheduler = Scheduler(Limits())
    backlog: dict[Lane, int] = {(chat, "patient"): 10 for chat in range(1, 61)}  # 600 answers, 60 patients
    sent = drain(scheduler, backlog, until=120)
    assert len(sent) == 600
    assert most_in_any_window([t for t, _ in sent], 1.0) <= 30
    for chat in range(1, 61):
        times = [t for t, lane in sent if lane[0] == chat]
        assert most_in_any_window(times, 1.0) <= 3  # the burst, then about one a second
    # The budget is used: 600 messages at 30 a second take about 20 seconds (22 with the margin).
    assert sent[-1][0] <= 20 * (1 + Limits().margin) + 1


def test_a_new_patient_goes_ahead_of_the_backlog() -> None:
    scheduler = Scheduler(Limits())
    backlog: dict[Lane, int] = {(chat, "patient"): 10 for chat in range(1, 61)}
    sent = drain(scheduler, backlog, until=5.0)  # five seconds into the burst...
    newcomer: Lane = (999, "patient")
    backlog[newcomer] = 1
    later = drain(scheduler, backlog, until=60.0, now=sent[-1][0])
    assert later[0][1] == newcomer  # ...is answered with the next free slot
    assert later[0][0] - sent[-1][0] <= 1.0 + Limits().margin


def test_urgent_sends_go_first() -> None:
    scheduler = Scheduler(Limits())
    for chat in range(1, 40):
        scheduler.offer((chat, "patient"), chat, urgent=False)
    scheduler.offer((77, "patient"), 77, urgent=True)
    lane, _ = scheduler.next(0.0)
    assert lane == (77, "patient")


def test_the_staff_group_takes_twenty_in_any_minute_shared_between_handoffs() -> None:
    scheduler = Scheduler(Limits())
    lanes: dict[Lane, int] = {(chat, "staff"): 15 for chat in range(1, 4)}  # three chatty handoffs
    sent = drain(scheduler, lanes, until=180.0, destinations={lane: GROUP for lane in lanes})
    times = [t for t, _ in sent]
    assert most_in_any_window(times, 60.0) <= 20  # a leaky bucket would be refused here
    first_minute = Counter(lane for t, lane in sent if t < 60.0)
    assert max(first_minute.values()) - min(first_minute.values()) <= 1  # taking turns, not one starving two


def test_a_patients_replies_never_wait_for_the_staff_groups_budget() -> None:
    scheduler = Scheduler(Limits())
    backlog: dict[Lane, int] = {(chat, "staff"): 1 for chat in range(1, 26)}  # 25 cards: 5 must wait a minute
    drain(scheduler, backlog, until=1.0, destinations={lane: GROUP for lane in backlog})
    scheduler.offer((5, "patient"), 5, urgent=False)
    lane, _ = scheduler.next(1.0)
    assert lane == (5, "patient")


def test_a_429_pauses_only_the_chat_it_names() -> None:
    scheduler = Scheduler(Limits())
    scheduler.offer((1, "patient"), 1, urgent=True)
    scheduler.offer((2, "patient"), 2, urgent=False)
    scheduler.pause(1, until=10.0)
    lane, _ = scheduler.next(0.0)
    assert lane == (2, "patient")
    scheduler.done(lane, 0.0)
    scheduler.withdraw(lane)
    lane, wait = scheduler.next(0.5)
    assert lane is None and math.isclose(wait, 9.5)
    assert scheduler.next(10.0)[0] == (1, "patient")


def test_a_retry_waits_in_its_own_lane_only() -> None:
    scheduler = Scheduler(Limits())
    scheduler.offer((1, "patient"), 1, urgent=False)
    lane, _ = scheduler.next(0.0)
    scheduler.done(lane, 0.0, retry_at=2.0)  # a 502: tried again in two seconds
    scheduler.offer((2, "patient"), 2, urgent=False)
    assert scheduler.next(0.1)[0] == (2, "patient")
    assert scheduler.next(0.2) == (None, 1.8)
    assert scheduler.next(2.0)[0] == (1, "patient")


def test_no_limits_when_switched_off() -> None:
    scheduler = Scheduler(Limits(0, 0, 0, 0))
    backlog: dict[Lane, int] = {(1, "patient"): 100, (2, "staff"): 100}
    sent = drain(scheduler, backlog, until=0.0, destinations={(1, "patient"): 1, (2, "staff"): GROUP})
    assert len(sent) == 200
