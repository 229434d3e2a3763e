"""The dialogue core as a pure state machine: plain events in, plain actions out."""

from __future__ import annotations

import subprocess
import sys

from bot.core.dialogue import (
    ACTION_BOOK,
    ACTION_HUMAN,
    ButtonPressed,
    Dialogue,
    HandOff,
    PatientCommand,
    PatientText,
    RecordUnanswered,
    Reply,
    SessionState,
    UnsupportedMessage,
)
from tests.conftest import ROOT


def test_the_core_imports_without_telegram_or_storage() -> None:
    code = (
        "import sys, bot.core.dialogue, bot.core.matcher, bot.core.analysis, bot.core.understanding, bot.core.explain,"
        " bot.core.desk, bot.core.outgoing, bot.core.commands, bot.core.flood;"
        "bad = [m for m in ('telegram', 'sqlite3', 'asyncio', 'aiohttp', 'bot.knowledge_files') if m in sys.modules];"
        "print(bad)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "[]"


def test_an_answer_offers_its_follow_ups_as_buttons(dialogue: Dialogue) -> None:
    step = dialogue.handle(SessionState(), PatientText("does it leave a scar"))
    entry = dialogue.knowledge.entry("scars")
    (reply,) = step.replies
    assert reply.text == entry.answer
    assert [b.data for b in reply.buttons] == [f"faq:{f}" for f in entry.follow_ups][:3]
    assert step.state.last_faq_id == "scars"


def test_pressing_a_suggestion_answers_it(dialogue: Dialogue) -> None:
    first = dialogue.handle(SessionState(), PatientText("lift"))
    assert first.match is not None and first.match.intent == "clarify"
    choice = first.replies[0].buttons[0]
    second = dialogue.handle(first.state, ButtonPressed(choice.data))
    entry_id = choice.data.split(":", 1)[1]
    assert second.replies[0].text == dialogue.knowledge.entry(entry_id).answer


def test_clarify_also_offers_staff(dialogue: Dialogue) -> None:
    step = dialogue.handle(SessionState(), PatientText("lift"))
    assert step.replies[0].buttons[-1].data == ACTION_HUMAN


def test_fallback_is_honest_offers_staff_and_booking_and_is_recorded(dialogue: Dialogue) -> None:
    step = dialogue.handle(SessionState(), PatientText("how much is it in usd"))
    (reply,) = step.replies
    assert reply.text == dialogue.texts["fallback"]
    assert [b.data for b in reply.buttons] == [ACTION_HUMAN, ACTION_BOOK]
    assert RecordUnanswered("how much is it in usd") in step.actions


def test_urgent_gets_the_safety_reply_and_goes_to_staff(dialogue: Dialogue) -> None:
    message = "i had my smas lift 2 days ago and the wound keeps bleeding through the dressing"
    step = dialogue.handle(SessionState(), PatientText(message))
    urgent = dialogue.texts["urgent"].format(emergency_number="119")  # Korea's, the config's default
    assert step.actions[0] == Reply(urgent, remove_keyboard=True, urgent=True)  # safety advice first, ahead of any queue
    assert HandOff("urgent", message) in step.actions
    assert step.state.mode == "handoff"
    assert not any(e.answer in step.replies[0].text for e in dialogue.knowledge.entries)


def test_two_questions_mention_the_second_and_offer_it_first(dialogue: Dialogue) -> None:
    step = dialogue.handle(SessionState(), PatientText("does it leave a scarr? and how long is recovery"))
    (reply,) = step.replies
    match = step.match
    assert match is not None and match.also_asked is not None
    assert reply.buttons[0].data == f"faq:{match.also_asked}"
    assert dialogue.knowledge.entry(match.also_asked).title in reply.text


def test_stale_or_forged_buttons_get_a_gentle_answer(dialogue: Dialogue) -> None:
    for data in ("faq:removed-entry", "garbage", "", "faq:" + "x" * 100):
        step = dialogue.handle(SessionState(), ButtonPressed(data))
        assert step.replies[0].text == dialogue.texts["stale_button"]
        assert step.replies[0].buttons  # the main topics, so the patient can go on


def test_start_welcomes_with_topics_booking_and_staff(dialogue: Dialogue) -> None:
    step = dialogue.handle(SessionState(), PatientCommand("start"))
    data = [b.data for b in step.replies[0].buttons]
    assert step.replies[0].text == dialogue.texts["welcome"]
    assert ACTION_BOOK in data and ACTION_HUMAN in data and any(d.startswith("faq:") for d in data)


def test_stickers_and_photos_get_a_polite_text_reply(dialogue: Dialogue) -> None:
    step = dialogue.handle(SessionState(), UnsupportedMessage("sticker"))
    assert step.replies[0].text == dialogue.texts["unsupported_message"]


def test_a_very_long_message_is_answered_and_told_so(dialogue: Dialogue) -> None:
    step = dialogue.handle(SessionState(), PatientText("does it leave a scar? " + "blah " * 2000))
    assert step.replies[0].text.startswith(dialogue.texts["too_long"])


def test_the_same_state_and_event_always_give_the_same_step(dialogue: Dialogue) -> None:
    state = SessionState(last_faq_id="neck")
    assert dialogue.handle(state, PatientText("is it permanent?")) == dialogue.handle(state, PatientText("is it permanent?"))


def test_an_honest_fallback_offers_staff_first_and_then_close_topics_the_document_answers(dialogue: Dialogue) -> None:
    step = dialogue.handle(SessionState(), PatientText("Is it true that jowls can reappear just a few years after a lower face lift?"))
    (reply,) = step.replies
    assert reply.text == dialogue.texts["fallback"]
    assert [b.data for b in reply.buttons][:2] == [ACTION_HUMAN, ACTION_BOOK]
    assert [b.data for b in reply.buttons][2:] == ["faq:natural-results"]  # how long-lasting results are, as the document puts it
    price = dialogue.handle(SessionState(), PatientText("how much is the smas mini lift?"))
    assert [b.data for b in price.replies[0].buttons] == [ACTION_HUMAN, ACTION_BOOK]  # a price has no "related topic"
