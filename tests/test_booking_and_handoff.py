"""Booking and staff handoff in the pure dialogue core (no Telegram, no storage)."""

from __future__ import annotations

import pytest

from bot.core.booking import Booking, normalise_phone
from bot.core.dialogue import (
    ButtonPressed,
    ContactShared,
    Dialogue,
    EndHandoff,
    Event,
    HandOff,
    PatientCommand,
    PatientText,
    RelayToStaff,
    SessionState,
    StaffClosed,
    StaffReopened,
    Step,
    SubmitBooking,
    UnsupportedMessage,
)


def run(dialogue: Dialogue, *events: Event, state: SessionState | None = None) -> Step:
    step = Step(state or SessionState())
    for event in events:
        step = dialogue.handle(step.state, event)
    return step


def text(*messages: str) -> list[Event]:
    return [PatientText(m) for m in messages]


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("+82 10-1234-5678", "+821012345678"),
        ("010 1234 5678", "+821012345678"),
        ("010-1234-5678", "+821012345678"),
        ("+1 (415) 555-0100", "+14155550100"),
        ("12345", None),
        ("call me maybe", None),
        ("+82 10-1234-5678 ext", None),
        ("", None),
    ],
)
def test_phone_numbers(typed: str, expected: str | None) -> None:
    assert normalise_phone(typed, "KR") == expected


def test_a_full_booking_collects_everything_asks_consent_and_submits(dialogue: Dialogue) -> None:
    t = dialogue.texts
    start = run(dialogue, PatientCommand("book"))
    assert start.replies[-1].text.endswith(t["booking_ask_name"])
    phone_step = run(dialogue, PatientCommand("book"), PatientText("Kim Ji-woo"))
    assert phone_step.replies[-1].request_contact  # Telegram's share-contact button
    step = run(
        dialogue,
        PatientCommand("book"),
        PatientText("Kim Ji-woo"),
        ContactShared("+82 10-1234-5678"),
        PatientText("Weekday mornings"),
        PatientText(t["button_skip"]),
    )
    assert step.replies[-1].text == t["booking_ask_consent"]
    summary = dialogue.handle(step.state, PatientText(t["button_consent_yes"]))
    assert "Kim Ji-woo" in summary.replies[-1].text and "+82 10-1234-5678" in summary.replies[-1].text
    done = dialogue.handle(summary.state, PatientText(t["button_confirm"]))
    assert done.actions[0] == SubmitBooking(Booking("Kim Ji-woo", "+821012345678", "Weekday mornings", ""))
    assert done.replies[-1].text == t["booking_confirmed"] and done.replies[-1].remove_keyboard
    assert done.state.booking is None


def test_a_typed_phone_is_validated_and_asked_again(dialogue: Dialogue) -> None:
    step = run(dialogue, PatientCommand("book"), *text("Ana", "12 34"))
    assert step.replies[-1].text == dialogue.texts["booking_bad_phone"]
    assert step.state.booking is not None and step.state.booking.step == "phone"
    step = dialogue.handle(step.state, PatientText("010 1234 5678"))
    assert step.state.booking is not None and step.state.booking.phone == "+821012345678"


def test_no_consent_sends_nothing(dialogue: Dialogue) -> None:
    t = dialogue.texts
    step = run(dialogue, PatientCommand("book"), *text("Ana", "010 1234 5678", "Saturday", "no note really", t["button_consent_no"]))
    assert step.replies[-1].text == t["booking_declined"]
    assert step.state.booking is None
    assert not any(isinstance(a, SubmitBooking) for a in step.actions)


def test_edit_from_the_summary_changes_one_field_and_returns_to_it(dialogue: Dialogue) -> None:
    t = dialogue.texts
    step = run(dialogue, PatientCommand("book"), *text("Ana", "010 1234 5678", "Saturday", t["button_skip"], t["button_consent_yes"]))
    step = run(dialogue, *text(t["button_edit"], t["button_edit_when"], "Friday after 3pm"), state=step.state)
    assert "Friday after 3pm" in step.replies[-1].text and "Ana" in step.replies[-1].text
    done = dialogue.handle(step.state, PatientText(t["button_confirm"]))
    assert done.actions[0] == SubmitBooking(Booking("Ana", "+821012345678", "Friday after 3pm", ""))


def test_cancel_stops_at_any_step(dialogue: Dialogue) -> None:
    for answers in ([], ["Ana"], ["Ana", "010 1234 5678"], ["Ana", "010 1234 5678", "Saturday"]):
        step = run(dialogue, PatientCommand("book"), *text(*answers), PatientCommand("cancel"))
        assert step.state.booking is None
        assert step.replies[-1].text == dialogue.texts["booking_cancelled"]


def test_a_question_in_the_middle_is_answered_and_the_booking_goes_on(dialogue: Dialogue) -> None:
    step = run(dialogue, PatientCommand("book"), PatientText("Ana"), PatientText("wait, does it leave a scar?"))
    assert step.replies[0].text == dialogue.knowledge.entry("scars").answer
    assert step.replies[-1].request_contact  # still asking for the phone number
    assert step.state.booking is not None and step.state.booking.step == "phone" and step.state.booking.name == "Ana"


def test_the_booking_intent_starts_the_booking(dialogue: Dialogue) -> None:
    step = run(dialogue, PatientText("can i make an appointment for next week"))
    assert step.state.booking is not None and step.state.booking.step == "name"


def test_handoff_relays_everything_and_end_gives_the_patient_back(dialogue: Dialogue) -> None:
    step = run(dialogue, PatientCommand("human"))
    assert HandOff("requested") in step.actions and step.state.mode == "handoff"
    for event in (PatientText("hello? does it leave a scar"), UnsupportedMessage("photo"), PatientCommand("book")):
        relayed = dialogue.handle(step.state, event)
        assert relayed.actions == (RelayToStaff(),)
    ended = dialogue.handle(step.state, PatientCommand("end"))
    assert ended.state.mode == "bot" and EndHandoff("patient") in ended.actions
    assert ended.replies[-1].text == dialogue.texts["handoff_ended_by_patient"]


def test_staff_close_and_reopen(dialogue: Dialogue) -> None:
    handed = run(dialogue, PatientCommand("human"))
    closed = dialogue.handle(handed.state, StaffClosed())
    assert closed.state.mode == "bot" and closed.replies[0].text.startswith(dialogue.texts["handoff_ended_by_staff"])
    assert dialogue.handle(closed.state, PatientText("does it leave a scar")).replies[0].text == dialogue.knowledge.entry("scars").answer
    reopened = dialogue.handle(closed.state, StaffReopened())
    assert reopened.state.mode == "handoff"


def test_the_fallback_button_hands_off(dialogue: Dialogue) -> None:
    step = run(dialogue, PatientText("what are the risks"), ButtonPressed("do:human"))
    assert step.state.mode == "handoff" and HandOff("requested") in step.actions


def test_urgent_during_a_handoff_still_gets_safety_advice(dialogue: Dialogue) -> None:
    handed = run(dialogue, PatientCommand("human"))
    message = "my wound is bleeding a lot since this morning, operated 3 days ago"
    step = dialogue.handle(handed.state, PatientText(message))
    assert step.replies[0].text == dialogue.texts["urgent"].format(emergency_number="119")
    assert RelayToStaff() in step.actions and HandOff("urgent", message) in step.actions


def test_state_survives_a_round_trip_through_plain_data(dialogue: Dialogue) -> None:
    step = run(dialogue, PatientCommand("book"), *text("Ana", "010 1234 5678"))
    assert SessionState.from_dict(step.state.to_dict()) == step.state
    assert SessionState.from_dict({"mode": "nonsense", "booking": {"step": "name", "bogus": 1}}).mode == "bot"
