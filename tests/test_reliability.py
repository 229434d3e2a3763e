"""Nothing lost, nobody let in: failures, re-deliveries, floods, kills and privacy."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("aiohttp")

from telegram import Update  # noqa: E402

from tests.bot_harness import BotHarness, write_process_config  # noqa: E402
from tests.conftest import ROOT  # noqa: E402
from tests.fake_bot_api import FakeBotApi  # noqa: E402

QUESTIONS = ("does it leave a scar", "how long is recovery", "will my neck be lifted as well", "what is the smas mini lift")
ANA, BEN = 2001, 2002


@pytest.fixture(autouse=True)
def quick_retries(request: pytest.FixtureRequest) -> None:
    """Retries keep their policy but start after 20 ms, so storms finish quickly."""
    if "bot" in request.fixturenames:
        request.getfixturevalue("bot").desk.sender.first_delay = 0.02


def answers(bot: BotHarness) -> list[str]:
    return [bot.dialogue.knowledge.entry(e).answer for e in ("scars", "recovery", "neck", "what-is-smas-mini-lift")]


async def test_a_storm_where_one_call_in_five_fails_loses_nothing_and_keeps_order(bot: BotHarness, api: FakeBotApi) -> None:
    api.fail_randomly(0.2, status=502)
    chats = range(3000, 3020)
    for round_ in range(len(QUESTIONS)):
        for chat in chats:
            api.push_update(api.private_text(chat, QUESTIONS[round_]))
    expected = answers(bot)
    for chat in chats:
        await api.wait_for_message(chat, after=len(QUESTIONS) - 1, timeout=30)
    for chat in chats:
        assert [m["text"] for m in bot.sent_to(chat)] == expected  # every answer, once, in order
    assert sum(1 for c in api.calls if c.status == 502) > 10  # the storm really happened


async def test_a_redelivered_update_is_not_answered_twice(bot: BotHarness, api: FakeBotApi) -> None:
    update = api.private_text(ANA, "does it leave a scar")
    update_id = api.push_update(update)
    await api.wait_for_message(ANA)
    assert bot.application is not None
    again = Update.de_json({**update, "update_id": update_id}, bot.application.bot)
    await bot.application.update_queue.put(again)  # as if Telegram sent it again after a restart
    await bot.barrier()
    assert len(bot.sent_to(ANA)) == 1


async def test_a_relay_that_keeps_failing_is_recorded_and_staff_are_told(bot: BotHarness, api: FakeBotApi) -> None:
    bot.desk.sender.retry_window = 0.2
    await bot.say(ANA, "/human")
    thread = await bot.wait_topic(ANA)
    api.fail_randomly(1.0, status=502, methods=("copyMessage",))
    staff_before = len(api.sent_messages(bot.staff_chat_id, thread))
    await bot.staff_says(thread, "hello from staff")
    notice = await api.wait_for_message(bot.staff_chat_id, thread_id=thread, after=staff_before + 0, timeout=10,
                                        predicate=lambda m: "Could not deliver" in (m.get("text") or ""))
    assert "Bad Gateway" in notice["text"]
    assert bot.store is not None and bot.store.failed_sends()[0][1] == "StaffMessageToPatient"


async def test_a_patient_who_blocked_the_bot_is_reported_to_staff(bot: BotHarness, api: FakeBotApi) -> None:
    await bot.say(ANA, "/human")
    thread = await bot.wait_topic(ANA)
    api.block(ANA)
    await bot.staff_says(thread, "are you there?")
    notice = await api.wait_for_message(bot.staff_chat_id, lambda m: "blocked" in (m.get("text") or ""), thread_id=thread)
    assert notice["text"].startswith("Could not deliver")


async def test_a_flooding_patient_gets_one_notice_and_does_not_hold_up_others(bot: BotHarness, api: FakeBotApi) -> None:
    for i in range(300):
        api.push_update(api.private_text(ANA, f"spam {i} does it leave a scar"))
    api.push_update(api.private_text(BEN, "does it leave a scar"))
    ben = await api.wait_for_message(BEN)
    assert ben["text"] == bot.dialogue.knowledge.entry("scars").answer
    await bot.barrier()
    texts = [m["text"] for m in bot.sent_to(ANA)]
    assert texts.count(bot.dialogue.texts["flood_notice"]) == 1
    assert len(texts) <= 20  # a handful of answers before the limit, one notice, then quiet


async def test_a_flooding_patient_cannot_flood_the_staff_group(bot: BotHarness, api: FakeBotApi) -> None:
    await bot.say(ANA, "/human")
    thread = await bot.wait_topic(ANA)
    before = len(api.sent_messages(bot.staff_chat_id))
    for i in range(200):
        api.push_update(api.private_text(ANA, f"message {i}"))
    await api.wait_for_message(bot.staff_chat_id, lambda m: "message 199" in (m.get("text") or ""), thread_id=thread, timeout=20)
    await bot.barrier()
    relayed = api.sent_messages(bot.staff_chat_id)[before:]
    joined = "\n\n".join(m.get("text") or "" for m in relayed)
    assert all(f"message {i}" in joined for i in range(200))  # nothing dropped...
    assert len(relayed) < 100  # ...but merged instead of 200 messages


async def test_forget_deletes_the_patients_data_and_their_staff_topic(bot: BotHarness, api: FakeBotApi) -> None:
    t = bot.dialogue.texts
    await bot.say(ANA, "/book")
    await bot.say(ANA, "Ana")
    await bot.say(ANA, "/human")
    thread = await bot.wait_topic(ANA)
    confirm = await bot.say(ANA, "/forget")
    assert confirm["text"] == t["forget_confirm"]
    done = await bot.say(ANA, t["button_forget_yes"])
    assert done["text"] == t["forgotten"]  # "everything deleted": true, the topic included
    await api.wait_for_message(bot.staff_chat_id, lambda m: m.get("text") == t["staff_patient_forgot_deleted"])
    assert api.topics(bot.staff_chat_id)[thread]["deleted"]  # her words are gone from the staff group too
    assert bot.store is not None
    assert bot.store.handoff(ANA) is None and bot.store.recent_transcript(ANA, 10) == [] and bot.store.bookings(ANA) == []
    assert bot.store.patient(ANA).first_name == ""


async def test_forget_while_messages_wait_for_staff_does_not_open_a_new_topic(bot: BotHarness, api: FakeBotApi) -> None:
    t = bot.dialogue.texts
    await bot.say(ANA, "/human")
    thread = await bot.wait_topic(ANA)
    await api.wait_for_message(bot.staff_chat_id, thread_id=thread)  # the card
    # The staff group is refusing sends for a moment, so her messages still wait for the
    # topic when she types /forget and confirms.
    api.fail_next("copyMessage", times=2, status=429, retry_after=1)
    for i in range(3):
        api.push_update(api.private_text(ANA, f"waiting message {i}"))
    api.push_update(api.private_text(ANA, "/forget"))
    done = await bot.push_and_wait(ANA, api.private_text(ANA, t["button_forget_yes"]))
    assert done["text"] == t["forgotten"]  # what waited before it (the question too) went with her data
    await bot.barrier()
    assert len(api.calls_to("createForumTopic")) == 1  # only the first topic, never a new one
    assert bot.store is not None and bot.store.handoff(ANA) is None


async def test_a_clinic_that_keeps_records_closes_the_topic_and_tells_the_patient_so(api: FakeBotApi, tmp_path: Path) -> None:
    bot = BotHarness(api, tmp_path, staff_keep_records=True)
    await bot.start()
    try:
        t = bot.dialogue.texts
        await bot.say(ANA, "/human")
        thread = await bot.wait_topic(ANA)
        await bot.say(ANA, "/forget")
        done = await bot.say(ANA, t["button_forget_yes"])
        assert done["text"] == t["forgotten_records_kept"]
        await api.wait_for_message(bot.staff_chat_id, lambda m: m.get("text") == t["staff_patient_forgot"], thread_id=thread)
        await bot.barrier()
        assert api.topics(bot.staff_chat_id)[thread]["closed"] and not api.topics(bot.staff_chat_id)[thread]["deleted"]
        before = len(bot.sent_to(ANA))
        await bot.staff_says(thread, "hello?")
        await api.wait_for_message(bot.staff_chat_id, lambda m: m.get("text") == t["staff_patient_forgotten"], thread_id=thread)
        assert len(bot.sent_to(ANA)) == before  # nothing reaches the forgotten patient
    finally:
        await bot.stop()


async def test_forget_asks_first_and_no_keeps_everything(bot: BotHarness) -> None:
    await bot.say(ANA, "does it leave a scar")
    await bot.say(ANA, "/forget")
    kept = await bot.say(ANA, bot.dialogue.texts["button_forget_no"])
    assert kept["text"] == bot.dialogue.texts["forget_kept"]
    assert bot.store is not None and bot.store.recent_transcript(ANA, 10)


async def test_forged_and_replayed_callbacks_reach_nobody(bot: BotHarness, api: FakeBotApi) -> None:
    await bot.say(ANA, "/human")
    thread = await bot.wait_topic(ANA)
    card = await api.wait_for_message(bot.staff_chat_id, thread_id=thread)
    before = len(bot.sent_to(ANA))
    # A patient forging the staff button in their own chat: a stale button to them, no effect on Ana.
    stale = await bot.press(BEN, "staff:close")
    assert stale["text"] == bot.dialogue.texts["stale_button"]
    # The staff button on a message outside any topic (General), and a forged button on the card.
    api.push_update(api.callback_query(bot.staff_chat_id, "staff:close", 987_654, from_user_id=5550001))
    api.push_update(api.callback_query(bot.staff_chat_id, "staff:open:" + "x" * 40, card["message_id"], from_user_id=5550001))
    api.add_group(-100555, is_forum=True)
    api.push_update(api.group_message(-100555, "/close", thread_id=thread))
    # A forwarded message dropped into the General topic.
    api.push_update(api.group_message(bot.staff_chat_id, "forwarded", forward_origin={"type": "hidden_user", "sender_user_name": "x", "date": 1}))
    await bot.barrier()
    assert len(bot.sent_to(ANA)) == before
    assert bot.store is not None and bot.store.handoff(ANA).status == "open"  # type: ignore[union-attr]


async def test_retention_deletes_every_kind_of_old_personal_data_but_keeps_open_conversations(tmp_path: Path) -> None:
    from bot.core.booking import Booking
    from bot.core.desk import Handoff
    from bot.core.dialogue import SessionState
    from bot.adapters.sqlite.store import Patient, Store

    now = [1_000_000.0]
    store = Store(tmp_path / "r.db", clock=lambda: now[0])
    for chat in (1, 2):  # 1 went quiet; 2 is still talking with staff
        store.save_patient(Patient(chat, "Name", "", ""))
        store.save_session(chat, SessionState())
        store.add_transcript(chat, "patient", "old")
        store.add_unanswered(chat, "old question")
        store.add_booking(chat, Booking("Name", "+821012345678", "Saturday", ""))
    store.save_handoff(Handoff(1, 501, "open", reason="requested"))
    store.link_messages(1, 10, 20, "to_staff")
    store.save_handoff(Handoff(1, 501, "closed", reason="requested"))
    store.save_handoff(Handoff(2, None, "open", reason="requested"))
    now[0] += 40 * 86_400
    store.add_transcript(1, "patient", "new")
    assert store.delete_older_than(now[0] - 30 * 86_400) > 0
    assert [line.text for line in store.recent_transcript(1, 10)] == ["new"]
    assert store.bookings(1) == [] and store.unanswered() == [] and store.handoff(1) is None
    assert store.patient(1).first_name == ""  # the name goes with the rest
    assert store.patient(2).first_name == "Name" and store.handoff(2) is not None  # an open conversation stays


# -- killed in the middle of a burst --------------------------------------------------------------
async def start_process(config: Path, log: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", "--config", str(config),
        cwd=ROOT, stdout=log.open("ab"), stderr=asyncio.subprocess.STDOUT, env={**os.environ, "TELEGRAM_BOT_TOKEN": ""},
    )


@pytest.mark.parametrize(
    "moment", ["right after a batch was fetched", "right after the batch was confirmed to Telegram", "while replies are being sent"]
)
async def test_sigkill_during_a_burst_loses_no_message_and_no_relay(api: FakeBotApi, tmp_path: Path, moment: str) -> None:
    config, log = write_process_config(tmp_path, api), tmp_path / "bot.log"
    process = await start_process(config, log)
    try:
        api.push_update(api.private_text(ANA, "/human"))
        await api.wait_for_message(ANA, timeout=30)
        await api.wait_for("createForumTopic", timeout=10)
        calls_before = len(api.calls)
        # The long poll waiting right now is the one that will fetch the burst.
        last_poll = max(i for i, call in enumerate(api.calls) if call.method == "getUpdates")
        chats = list(range(4000, 4030))
        first_id = None
        if moment == "right after the batch was confirmed to Telegram":
            # Handlers that wait on Telegram (answering a button press) are still running
            # when the next getUpdates confirms the batch: the window the journal closes.
            api.delay("answerCallbackQuery", 1.0)
        for chat in chats:
            update_id = api.push_update(api.callback_query(chat, "faq:what-is-smas-mini-lift", 1))
            first_id = first_id or update_id
        for round_ in range(3):
            for chat in chats:
                update_id = api.push_update(api.private_text(chat, QUESTIONS[round_]))
                first_id = first_id or update_id
            api.push_update(api.private_text(ANA, f"relay me {round_}"))
        if moment == "right after the batch was confirmed to Telegram":
            # python-telegram-bot confirms with the next getUpdates offset, before handlers have run.
            await api.wait_for("getUpdates", lambda c: int(c.params.get("offset") or 0) > (first_id or 0), answered=False)
            assert api.confirmed_offset > (first_id or 0)
        elif moment == "right after a batch was fetched":
            await api.wait_for("getUpdates", lambda c: bool(c.result), after=last_poll)
        else:
            await api.wait_for("sendMessage", lambda c: len(api.calls_to("sendMessage")) > 40, after=calls_before)
        process.send_signal(signal.SIGKILL)
        await process.wait()
        process = await start_process(config, log)
        for chat in chats:
            # Four distinct answers (a send in flight at the kill may also arrive twice).
            await api.wait_for_message(chat, lambda m, c=chat: len({x["text"] for x in api.sent_messages(c)}) >= 4, timeout=30)
        for round_ in range(3):
            await api.wait_for_message(api.staff_chat_id, lambda m, r=round_: f"relay me {r}" in (m.get("text") or ""), timeout=30)
    finally:
        process.kill()
        await process.wait()
    for chat in chats:
        texts = [m["text"] for m in api.sent_messages(chat)]
        counts = Counter(texts)
        assert len(counts) == 4, texts  # every question and button press answered
        assert sum(counts.values()) - 4 <= 1, texts  # at most the one in flight at the kill twice


def test_in_memory_state_does_not_grow_with_patients_served() -> None:
    from bot.core.flood import FloodGuard
    from bot.adapters.telegram.app import ChatLocks

    guard = FloodGuard(burst=15, window=10.0)
    for chat in range(5_000):
        assert guard.check(chat, now=chat * 0.01) == "ok"
    # Chats quiet for longer than the window are dropped as others arrive.
    for chat in range(5_000, 5_300):
        guard.check(chat, now=1_000.0)
    assert len(guard) <= 300

    locks = ChatLocks()

    async def use_many() -> None:
        for chat in range(1_000):
            async with locks.hold(chat):
                pass

    asyncio.run(use_many())
    assert len(locks) == 0


async def test_a_served_patient_leaves_no_lock_behind(bot: BotHarness) -> None:
    for chat in range(6000, 6050):
        await bot.say(chat, "does it leave a scar")
    await bot.barrier()
    assert bot.application is not None
    processor = bot.application.update_processor
    assert len(processor.locks) == 0  # type: ignore[attr-defined]


async def test_forget_after_staff_deleted_the_topic_still_answers_the_patient(bot: BotHarness, api: FakeBotApi) -> None:
    t = bot.dialogue.texts
    await bot.say(ANA, "/human")
    api.delete_topic(bot.staff_chat_id, await bot.wait_topic(ANA))
    await bot.say(ANA, "/forget")
    calls_before = len(api.calls)
    done = await bot.say(ANA, t["button_forget_yes"])
    assert done["text"] == t["forgotten"]
    await bot.barrier()
    assert len(api.calls) - calls_before < 20  # no retry loop against the deleted topic


async def test_a_passing_database_error_is_retried_within_seconds_not_at_the_next_start(
    bot: BotHarness, api: FakeBotApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    assert bot.store is not None
    load_session = bot.store.load_session
    failures = [sqlite3.OperationalError("database is locked")] * 2

    def flaky(chat_id: int):  # noqa: ANN202
        if chat_id == ANA and failures:
            raise failures.pop()
        return load_session(chat_id)

    monkeypatch.setattr(bot.store, "load_session", flaky)
    answer = await bot.say(ANA, "does it leave a scar")
    assert answer["text"] == bot.dialogue.knowledge.entry("scars").answer
    assert not failures  # it did fail twice, and was handled without a restart
    other = await bot.say(BEN, "how long is recovery")  # and nobody else waited for it
    assert other["text"] == bot.dialogue.knowledge.entry("recovery").answer


# -- Telegram's real limits ----------------------------------------------------------------------
async def test_under_telegrams_limits_patients_are_answered_while_the_staff_group_waits(api: FakeBotApi, tmp_path: Path) -> None:
    from bot.config import RateLimitConfig

    limits = api.enforce_limits()  # 429 with retry_after past 30/s, ~1/s per chat, 20/min per group
    bot = BotHarness(api, tmp_path, rate_limit=RateLimitConfig(30, 20, 1))
    await bot.start()
    try:
        handed_off = range(2100, 2115)  # 15 topics and 15 cards: 30 messages for a group that takes 20 a minute
        for chat in handed_off:
            api.push_update(api.private_text(chat, "/human"))
        for chat in handed_off:
            assert (await api.wait_for_message(chat))["text"] == bot.dialogue.texts["human"]  # told at once
        reply = await bot.say(ANA, "does it leave a scar")  # a new patient, while the group's minute is used up
        assert reply["text"] == bot.dialogue.knowledge.entry("scars").answer

        def group_sends() -> int:
            return sum(1 for c in api.calls if c.params.get("chat_id") == bot.staff_chat_id and c.method in ("sendMessage", "createForumTopic"))

        await api.wait_for("sendMessage", lambda _: group_sends() >= 20, timeout=10)  # the minute's budget, used...
        assert limits.refused == []  # ...and not exceeded: Telegram refused nothing
    finally:
        await bot.stop()
