"""The front desk as a pure state machine: patient and staff events in, the conversation and typed sends out.

No fakes: real events, the real FAQ, and the values the desk returns.
"""

from __future__ import annotations

import datetime as dtm
from dataclasses import replace

import pytest

from bot.core.commands import PATIENT_COMMANDS, help_text
from bot.core.desk import (
    Conversation,
    Desk,
    ForgetEverything,
    FromPatient,
    LogHandoff,
    Outcome,
    PatientMessage,
    SendFailed,
    StaffEdited,
    StaffPressedClose,
    StaffWrote,
    StoreRating,
    Transcribe,
)
from bot.core.dialogue import RATE_HELPFUL, RATE_UNHELPFUL, ButtonPressed, Dialogue, PatientCommand, PatientText
from bot.core.hours import HoursError, StaffHours
from bot.core.knowledge import KnowledgeBase
from bot.core.outgoing import (
    CardToTopic,
    CloseTopic,
    CorrectedTextToPatient,
    DeleteTopic,
    NoticeToGeneral,
    NoticeToTopic,
    OpenTopic,
    PatientMessageToTopic,
    StaffMessageToPatient,
    TextToPatient,
    decode,
    encode,
)

PATIENT = 42
STAFF = 7


@pytest.fixture()
def desk(dialogue: Dialogue) -> Desk:
    return Desk(dialogue)


def say(desk: Desk, conversation: Conversation, text: str, *, at: float = 0.0, message_id: int = 1) -> Outcome:
    return desk.patient(conversation, FromPatient(PatientText(text), PatientMessage(message_id, text), at))


def command(desk: Desk, conversation: Conversation, name: str) -> Outcome:
    return desk.patient(conversation, FromPatient(PatientCommand(name)))


def handed_off(desk: Desk, *, thread: int | None = 500) -> Conversation:
    conversation = command(desk, Conversation(PATIENT, name="Ana Kim"), "human").conversation
    assert conversation.handoff is not None
    return replace(conversation, handoff=replace(conversation.handoff, thread_id=thread))


def kinds(outcome: Outcome) -> list[type]:
    """What the outcome sends (records left out)."""
    return [type(e) for e in outcome.effects if not isinstance(e, (Transcribe, LogHandoff))]


def test_a_handoff_opens_the_topic_once_and_posts_a_card_with_the_conversation(desk: Desk) -> None:
    first = say(desk, Conversation(PATIENT, name="Ana Kim", username="ana"), "I'd like to talk to a real person please")
    assert first.conversation.handoff is not None and first.conversation.handoff.status == "open"
    assert kinds(first) == [OpenTopic, CardToTopic, TextToPatient]
    opened, card = (e for e in first.effects if isinstance(e, (OpenTopic, CardToTopic)))
    assert isinstance(opened, OpenTopic) and "Ana Kim" in opened.name
    assert isinstance(card, CardToTopic) and "real person" in card.html and "@ana" in card.html
    # Back with the assistant, then handed off again: the same topic, a new card.
    with_topic = replace(first.conversation, handoff=replace(first.conversation.handoff, thread_id=500))
    back = command(desk, with_topic, "end")
    assert back.conversation.handoff is not None and back.conversation.handoff.status == "closed"
    assert NoticeToTopic in kinds(back)
    again = command(desk, back.conversation, "human")
    assert kinds(again) == [CardToTopic, TextToPatient]


def test_while_handed_off_the_patient_is_relayed_and_the_assistant_stays_quiet(desk: Desk) -> None:
    outcome = say(desk, handed_off(desk), "how long is the recovery?", message_id=9)
    assert outcome.effects[-1] == PatientMessageToTopic(9, "how long is the recovery?")
    assert not any(isinstance(e, TextToPatient) for e in outcome.effects)


def test_an_urgent_message_during_a_handoff_gets_the_safety_reply_first_and_an_urgent_card(desk: Desk) -> None:
    outcome = say(desk, handed_off(desk), "my face is bleeding and it won't stop after surgery")
    assert kinds(outcome)[0] is TextToPatient and "119" in outcome.effects[1].text  # type: ignore[union-attr]
    assert PatientMessageToTopic in kinds(outcome) and CardToTopic in kinds(outcome)
    assert OpenTopic not in kinds(outcome)  # the topic exists already
    assert outcome.conversation.handoff is not None and outcome.conversation.handoff.urgent


def test_staff_replies_reach_the_patient_only_while_the_conversation_is_open(desk: Desk) -> None:
    conversation = handed_off(desk)
    reply = desk.staff(conversation, StaffWrote(STAFF, True, 77, "Hello, I'm Mina from the clinic"))
    assert kinds(reply) == [StaffMessageToPatient] and reply.effects[0] == StaffMessageToPatient(77)
    closed = desk.staff(conversation, StaffPressedClose(STAFF, True))
    assert closed.conversation.session.mode == "bot" and closed.conversation.handoff.status == "closed"  # type: ignore[union-attr]
    assert kinds(closed) == [TextToPatient, NoticeToTopic]
    late = desk.staff(closed.conversation, StaffWrote(STAFF, True, 78, "one more thing"))
    assert kinds(late) == [NoticeToTopic]  # nothing reaches the patient
    reopened = desk.staff(closed.conversation, StaffWrote(STAFF, True, 79, "/open"))
    assert reopened.conversation.session.mode == "handoff" and reopened.conversation.handoff.status == "open"  # type: ignore[union-attr]
    assert kinds(reopened) == [TextToPatient, NoticeToTopic]


def test_a_note_stays_in_the_transcript_and_a_correction_corrects_the_patients_copy(desk: Desk) -> None:
    conversation = handed_off(desk)
    note = desk.staff(conversation, StaffWrote(STAFF, True, 80, "/note@DeusBot prefers mornings"))
    assert note.effects == (Transcribe("staff", "(internal note) prefers mornings"),)
    edit = desk.staff(conversation, StaffEdited(STAFF, True, patient_copy_id=12, text="See you at 3 pm"))
    assert edit.effects[0] == CorrectedTextToPatient(12, "See you at 3 pm")
    unknown = desk.staff(conversation, StaffEdited(STAFF, True, patient_copy_id=None, text="See you at 3 pm"))
    assert unknown.effects == ()


def test_someone_who_is_not_staff_is_told_once_and_never_relayed(desk: Desk) -> None:
    conversation = handed_off(desk)
    first = desk.staff(conversation, StaffWrote(99, False, 81, "hi, I'm the patient's friend"))
    assert kinds(first) == [NoticeToTopic]
    second = desk.staff(conversation, StaffWrote(99, False, 82, "/close"))
    assert second.effects == () and second.conversation == conversation


def test_forget_in_a_handoff_deletes_first_and_the_topic_with_it(dialogue: Dialogue) -> None:
    desk = Desk(dialogue)
    asked = command(desk, handed_off(desk), "forget").conversation
    done = say(desk, asked, dialogue.texts["button_forget_yes"])
    assert isinstance(done.effects[0], ForgetEverything)
    assert not any(isinstance(e, Transcribe) for e in done.effects)  # nothing recorded again
    assert kinds(done)[1:] == [DeleteTopic, NoticeToGeneral, TextToPatient]
    assert done.conversation.handoff is None and done.conversation.session.mode == "bot"


def test_forget_when_the_clinic_keeps_records_closes_the_topic_and_says_so(knowledge: KnowledgeBase) -> None:
    desk = Desk(Dialogue(knowledge, staff_keep_records=True))
    asked = command(desk, handed_off(desk), "forget").conversation
    done = say(desk, asked, desk.dialogue.texts["button_forget_yes"])
    assert kinds(done)[1:] == [NoticeToTopic, CloseTopic, TextToPatient]
    assert done.effects[-1].text == desk.dialogue.texts["forgotten_records_kept"]  # type: ignore[union-attr]


def test_a_flood_gets_one_notice_and_then_quiet_but_staff_still_read_it(desk: Desk) -> None:
    conversation = handed_off(desk)
    replies = []
    for n in range(20):
        outcome = say(desk, conversation, f"message {n}", at=n * 0.1, message_id=n)
        replies += [e for e in outcome.effects if isinstance(e, TextToPatient)]
        assert outcome.effects[-1] == PatientMessageToTopic(n, f"message {n}")  # staff see every text
    assert [r.text for r in replies] == [desk.dialogue.texts["flood_notice"]]
    # Quiet for a while: answered again.
    later = say(desk, Conversation(PATIENT), "hello", at=60.0)
    assert any(isinstance(e, TextToPatient) and e.text != desk.dialogue.texts["flood_notice"] for e in later.effects)


def test_a_deleted_topic_is_opened_again_with_the_patients_name(desk: Desk) -> None:
    conversation = handed_off(desk)
    outcome = desk.topic_gone(conversation)
    assert outcome.conversation.handoff is not None and outcome.conversation.handoff.thread_id is None
    (opened,) = outcome.effects
    assert isinstance(opened, OpenTopic) and "Ana Kim" in opened.name
    assert desk.topic_gone(Conversation(PATIENT)).effects == ()  # nobody's topic: nothing to open


def test_failed_sends_are_told_to_staff(desk: Desk) -> None:
    conversation = handed_off(desk)
    (notice,) = desk.send_failed(conversation, SendFailed(StaffMessageToPatient(5), "blocked by the user"))
    assert isinstance(notice, NoticeToTopic) and "blocked by the user" in notice.text
    (general,) = desk.send_failed(conversation, SendFailed(CardToTopic("<b>card</b>", "Close"), "not enough rights"))
    assert isinstance(general, NoticeToGeneral) and "Ana Kim" in general.text


def test_help_lists_every_patient_command_in_each_language(knowledge: KnowledgeBase) -> None:
    for code in knowledge.languages:
        texts = knowledge.in_language(code).texts
        lines = help_text(texts).splitlines()
        for name in PATIENT_COMMANDS:
            if name != "help":
                assert f"/{name} - {texts[f'command_{name}']}" in lines


@pytest.mark.parametrize(
    "send",
    [
        TextToPatient("Hi", (), ("Yes", "No"), request_contact=True),
        CardToTopic("<b>x</b>", "Close"),
        NoticeToTopic("closed", thread_id=3),
        CorrectedTextToPatient(4, "fixed", '[{"type": "bold", "offset": 0, "length": 5}]'),
    ],
)
def test_sends_come_back_from_the_outbox_as_they_were_stored(send: object) -> None:
    assert decode(*encode(send)) == send  # type: ignore[arg-type]


def test_after_staff_close_the_patient_can_rate_the_help_once(desk: Desk) -> None:
    closed = desk.staff(handed_off(desk), StaffPressedClose(STAFF, True))
    (told,) = [e for e in closed.effects if isinstance(e, TextToPatient)]
    assert [b.data for b in told.buttons] == [RATE_HELPFUL, RATE_UNHELPFUL]
    rated = desk.patient(closed.conversation, FromPatient(ButtonPressed(RATE_HELPFUL)))
    assert StoreRating(True) in rated.effects
    (notice,) = [e for e in rated.effects if isinstance(e, NoticeToTopic)]
    assert desk.dialogue.texts["button_rate_helpful"] in notice.text  # staff see it in the topic
    again = desk.patient(rated.conversation, FromPatient(ButtonPressed(RATE_UNHELPFUL)))
    assert not any(isinstance(e, StoreRating) for e in again.effects)  # an old button counts once


def test_the_handoffs_moments_are_logged_for_the_report(desk: Desk) -> None:
    opened = say(desk, Conversation(PATIENT), "can I talk to a person please")
    assert LogHandoff("opened", "requested") in opened.effects
    conversation = replace(opened.conversation, handoff=replace(opened.conversation.handoff, thread_id=5))  # type: ignore[arg-type]
    assert LogHandoff("staff_replied") in desk.staff(conversation, StaffWrote(STAFF, True, 9, "Hello!")).effects
    assert LogHandoff("closed", "requested") in desk.staff(conversation, StaffPressedClose(STAFF, True)).effects


SEOUL = dtm.timezone(dtm.timedelta(hours=9), "KST")
HOURS = StaffHours.parse({"mon-fri": "09:00-18:00", "sat": "10:00-14:00"}, reply_within_minutes=20)


def test_outside_staff_hours_the_patient_is_told_when_a_person_will_answer(dialogue: Dialogue) -> None:
    desk = Desk(dialogue, hours=HOURS)
    saturday_evening = dtm.datetime(2026, 12, 5, 20, 30, tzinfo=SEOUL)
    outcome = desk.patient(Conversation(PATIENT), FromPatient(PatientCommand("human"), when=saturday_evening))
    told = [e.text for e in outcome.effects if isinstance(e, TextToPatient)]
    assert told[-1] == dialogue.texts["handoff_hours_closed"].format(when="Monday 09:00")
    card = next(e for e in outcome.effects if isinstance(e, CardToTopic))
    assert "2026-12-05 20:30 KST" in card.html  # staff see when the patient wrote
    tuesday_morning = dtm.datetime(2026, 12, 8, 10, 0, tzinfo=SEOUL)
    inside = desk.patient(Conversation(PATIENT + 1), FromPatient(PatientCommand("human"), when=tuesday_morning))
    assert [e.text for e in inside.effects if isinstance(e, TextToPatient)][-1] == dialogue.texts["handoff_hours_open"].format(minutes=20)


def test_staff_hours_in_korean_name_the_day_in_korean(knowledge: KnowledgeBase) -> None:
    desk = Desk(Dialogue(knowledge), hours=HOURS)
    friday_night = dtm.datetime(2026, 12, 4, 23, 0, tzinfo=SEOUL)
    outcome = desk.patient(Conversation(PATIENT), FromPatient(PatientText("상담 직원이랑 얘기하고 싶어요"), PatientMessage(1), when=friday_night))
    told = [e.text for e in outcome.effects if isinstance(e, TextToPatient)]
    assert "토요일 10:00" in told[-1]


@pytest.mark.parametrize(
    ("now", "opening"),
    [
        (dtm.datetime(2026, 12, 7, 8, 59), dtm.datetime(2026, 12, 7, 9, 0)),  # Monday, before opening
        (dtm.datetime(2026, 12, 7, 9, 0), None),  # open
        (dtm.datetime(2026, 12, 7, 18, 0), dtm.datetime(2026, 12, 8, 9, 0)),  # closing time: tomorrow
        (dtm.datetime(2026, 12, 12, 14, 5), dtm.datetime(2026, 12, 14, 9, 0)),  # Saturday after 14:00: Monday
    ],
)
def test_staff_hours_know_the_next_opening(now: dtm.datetime, opening: dtm.datetime | None) -> None:
    assert HOURS.next_opening(now) == opening


@pytest.mark.parametrize("entries", [{"mon-fry": "09:00-18:00"}, {"mon": "9-18"}, {"mon": "18:00-09:00"}])
def test_unreadable_staff_hours_say_what_is_wrong(entries: dict[str, str]) -> None:
    with pytest.raises(HoursError, match="mon"):
        StaffHours.parse(entries)
