"""The bot speaks each patient's language: English, Korean, and any language added as a folder of YAML."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from bot.core.dialogue import (
    ACTION_BOOK,
    ButtonPressed,
    Dialogue,
    HandOff,
    PatientCommand,
    PatientText,
    SessionState,
)
from bot.core.knowledge import ClinicFacts, KnowledgeBase
from bot.faq_check import check
from bot.knowledge_files import load_knowledge
from tests.conftest import FAQ_DIR


@pytest.fixture(scope="module")
def korean(dialogue: Dialogue) -> Dialogue:
    return dialogue.speaking("ko")


@pytest.mark.parametrize(
    ("message", "previous", "expected"),
    [
        ("스마스 미니리프팅이 뭐예요?", None, "ko"),
        ("what is the smas mini lift", None, "en"),
        ("SMAS mini lift 가격 얼마에요?", None, "ko"),  # Korean patients mix English in
        ("스마스미니리프팅은 흉터 남아요", "en", "ko"),
        ("👍", "ko", "ko"),  # nothing to tell by: the conversation's language stays
        ("ok", "ko", "ko"),  # too short to switch a Korean conversation to English
        ("Actually, could you answer in English please?", "ko", "en"),
        ("12345", None, "en"),
    ],
)
def test_the_language_of_each_message_is_recognised(dialogue: Dialogue, message: str, previous: str | None, expected: str) -> None:
    assert dialogue.understanding.language_of(message, previous) == expected


def test_a_korean_question_is_answered_in_korean_with_korean_buttons(dialogue: Dialogue, korean: Dialogue) -> None:
    step = dialogue.handle(SessionState(), PatientText("흉터 많이 남아요? 귀 앞 절개라던데"))
    assert step.state.lang == "ko"
    (reply,) = step.replies
    assert reply.text == korean.knowledge.entry("scars").answer
    assert [b.label for b in reply.buttons] == [korean.knowledge.entry(f).title for f in korean.knowledge.entry("scars").follow_ups][:3]


def test_the_korean_answers_are_korean_text(korean: Dialogue) -> None:
    for entry in korean.knowledge.entries:
        hangul = sum("\uac00" <= ch <= "\ud7a3" for ch in entry.answer)
        assert hangul > 0.5 * sum(ch.isalpha() for ch in entry.answer), entry.id


def test_korean_fallback_booking_and_forget_speak_korean(dialogue: Dialogue, korean: Dialogue) -> None:
    texts = korean.texts
    fallback = dialogue.handle(SessionState(), PatientText("미니거상 가격 얼마예요?"))
    assert fallback.replies[0].text == texts["fallback"]
    assert [b.label for b in fallback.replies[0].buttons] == [texts["button_human"], texts["button_booking"]]
    booking = dialogue.handle(fallback.state, ButtonPressed(ACTION_BOOK))
    assert booking.replies[0].text.startswith(texts["booking"])
    assert texts["button_cancel"] in booking.replies[0].keyboard
    # A name typed in Latin letters mid-booking does not switch the patient to English.
    named = dialogue.handle(booking.state, PatientText("Kim"))
    assert named.state.lang == "ko" and named.replies[0].text == texts["booking_ask_phone"]
    forget = dialogue.handle(SessionState(lang="ko"), PatientCommand("forget"))
    assert forget.replies[0].text == texts["forget_confirm"]


CLINIC = ClinicFacts(
    address={"en": "12 Gangnam-daero, Seoul", "ko": "서울 강남대로 12"}, phone={"*": "+82 2-000-0000"}, hours={"ko": "평일 10-19시"}
)


@pytest.fixture(scope="module")
def with_clinic(knowledge: KnowledgeBase, dialogue: Dialogue) -> Dialogue:
    return Dialogue(knowledge, understanding=dialogue.understanding, clinic=CLINIC)


@pytest.mark.parametrize(
    "message",
    [
        "어제 거상 수술했는데 한쪽 볼이 갑자기 엄청 부어오르고 피가 계속 안 멈춰요",
        "수술 끝나고 집에 왔는데 입이 한쪽으로 처지고 웃을 수가 없어요",
        "미니거상 받고 이틀째인데 눈이 안 감겨요",
    ],
)
def test_a_korean_emergency_gets_119_and_the_clinic_phone_in_korean_and_staff_at_once(with_clinic: Dialogue, message: str) -> None:
    step = with_clinic.handle(SessionState(), PatientText(message))
    reply = step.replies[0].text
    assert step.state.lang == "ko" and "119" in reply and "+82 2-000-0000" in reply
    assert reply.startswith(with_clinic.speaking("ko").texts["urgent"].split("{")[0])
    assert any(isinstance(a, HandOff) and a.reason == "urgent" for a in step.actions)


@pytest.mark.parametrize(
    ("message", "lang", "expected", "absent"),
    [
        ("where is your clinic located?", "en", "12 Gangnam-daero, Seoul", "평일"),
        ("병원 위치가 어디예요? 진료시간도 알려주세요", "ko", "서울 강남대로 12", "Gangnam-daero"),
    ],
)
def test_where_and_when_are_answered_from_the_operators_facts(with_clinic: Dialogue, message: str, lang: str, expected: str, absent: str) -> None:
    step = with_clinic.handle(SessionState(), PatientText(message))
    reply = step.replies[0].text
    assert step.state.lang == lang and expected in reply and "+82 2-000-0000" in reply
    assert absent not in reply  # Korean hours are given only in Korean: not shown to English speakers
    assert reply.startswith(with_clinic.speaking(lang).texts["clinic_contact"])


def test_without_the_operators_facts_where_is_an_honest_fallback(dialogue: Dialogue) -> None:
    step = dialogue.handle(SessionState(), PatientText("where is your clinic located?"))
    assert step.replies[0].text == dialogue.texts["fallback"]


def test_the_welcome_follows_the_telegram_app_language_until_the_patient_writes(dialogue: Dialogue, korean: Dialogue) -> None:
    step = dialogue.handle(SessionState(), PatientCommand("start", language_hint="ko-KR"))
    assert step.replies[0].text == korean.texts["welcome"]
    english = dialogue.handle(step.state, PatientText("what is the smas mini lift exactly?"))
    assert english.state.lang == "en"
    assert english.replies[0].text == dialogue.knowledge.entry("what-is-smas-mini-lift").answer


def test_every_language_has_every_text_and_entry(dialogue: Dialogue) -> None:
    english = dialogue.knowledge
    for code in english.languages:
        translated = english.in_language(code)
        assert set(translated.texts) == set(english.texts), code
        assert [e.id for e in translated.entries] == [e.id for e in english.entries], code


def test_faq_check_names_a_text_missing_in_korean(tmp_path: Path) -> None:
    faq = tmp_path / "faq"
    shutil.copytree(FAQ_DIR, faq)
    intents = faq / "ko" / "intents.yaml"
    data = intents.read_text(encoding="utf-8")
    start = data.index("\n  flood_notice:")
    end = data.index("\n  ", start + 5)
    intents.write_text(data[:start] + data[end:], encoding="utf-8")
    errors, _ = check(faq)
    assert any(p.path == intents and p.key == "texts.flood_notice" and "missing" in p.message for p in errors), errors


def test_faq_check_names_an_entry_missing_in_korean(tmp_path: Path) -> None:
    faq = tmp_path / "faq"
    shutil.copytree(FAQ_DIR, faq)
    entries_file = faq / "ko" / "smas_mini_lift.yaml"
    data = yaml.safe_load(entries_file.read_text(encoding="utf-8"))
    data["entries"] = [e for e in data["entries"] if e["id"] != "neck"]
    entries_file.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    errors, _ = check(faq)
    assert any(p.path == entries_file and "'neck' has no text in this language" in p.message for p in errors), errors


def _add_tiny_language(faq: Path) -> None:
    """A third language as data only: Russian, in Cyrillic, a few words per entry."""
    english = load_knowledge(faq)
    folder = faq / "ru"
    folder.mkdir()
    (folder / "language.yaml").write_text("script: CYRILLIC\nngram_sizes: [2, 3, 4]\n", encoding="utf-8")
    topics = {"scars": "шрам рубец разрез", "recovery": "восстановление реабилитация сколько дней"}
    entries = [
        {
            "id": e.id,
            "title": f"Тема {index}",
            "questions": [f"вопрос про {topics.get(e.id, 'тему номер ' + str(index))}"],
            "answer": f"Ответ {index}.",
        }
        for index, e in enumerate(english.entries)
    ]
    (folder / "smas_mini_lift.yaml").write_text(yaml.safe_dump({"entries": entries}, allow_unicode=True), encoding="utf-8")
    intents = yaml.safe_load((faq / "intents.yaml").read_text(encoding="utf-8"))
    for name, vocabulary in intents["intents"].items():
        if name != "urgent":
            intents["intents"][name] = {"phrases": [f"намерение {name}"], "keywords": []}
    intents["intents"]["urgent"] = {
        "red_flags": ["кровотечение"], "symptoms": ["отек"], "intensifiers": ["сильно"], "post_op": ["после операции"],
    }
    intents["out_of_scope"] = [{"topic": "price", "decisive": True, "keywords": ["цена", "стоимость"]}]
    intents["booking"] = {"time_options": ["Утром"], "yes_words": ["да"], "no_words": ["нет"]}
    # Each text keeps its placeholders ({topic}, {name}...), as a translator would.
    intents["texts"] = {key: f"[ru] {key}" + "".join(" " + p for p in re.findall(r"\{\w+\}", str(value)))
                        for key, value in intents["texts"].items()}
    (folder / "intents.yaml").write_text(yaml.safe_dump(intents, allow_unicode=True), encoding="utf-8")


def test_a_third_language_is_a_folder_of_yaml_and_no_code(tmp_path: Path) -> None:
    faq = tmp_path / "faq"
    shutil.copytree(FAQ_DIR, faq)
    _add_tiny_language(faq)
    errors, _ = check(faq)
    assert not errors, errors
    dialogue = Dialogue(load_knowledge(faq))
    step = dialogue.handle(SessionState(), PatientText("Скажите, останется ли шрам после разреза?"))
    assert step.state.lang == "ru"
    assert step.replies[0].text == dialogue.speaking("ru").knowledge.entry("scars").answer
    price = dialogue.handle(step.state, PatientText("какая цена операции?"))
    assert price.replies[0].text == "[ru] fallback"
    # English and Korean are unaffected.
    assert dialogue.handle(SessionState(), PatientText("흉터 남아요?")).state.lang == "ko"
    assert dialogue.handle(SessionState(), PatientText("does it leave a scar")).replies[0].text == dialogue.knowledge.entry("scars").answer


@pytest.mark.parametrize(
    ("message", "intent", "entry"),
    [
        ("미니거상 받았는데 3주 지났어요. 아직 한쪽 볼이 더 부어 있는데 정상인가요?", "fallback", None),  # their own course: staff
        ("수술 후 회복 기간은 보통 어떻게 되나요?", "faq", "recovery"),  # before surgery: the FAQ answers
        ("광대 수술했는데 1년 지나니까 볼살이 처졌어요 미니리프팅으로 돼요?", "faq", "sagging-after-contour-surgery"),
    ],
)
def test_a_korean_patients_own_operation_goes_to_staff_but_questions_before_surgery_are_answered(
    dialogue: Dialogue, message: str, intent: str, entry: str | None
) -> None:
    step = dialogue.handle(SessionState(), PatientText(message))
    assert step.match is not None and (step.match.intent, step.match.faq_id) == (intent, entry), step.match


@pytest.mark.parametrize(
    ("message", "answered", "offered"),
    [
        ("Does it leave a scar? How long is recovery? And is the neck included too?", "scars", ["recovery", "neck"]),
        ("흉터 많이 남아요? 회복은 얼마나 걸려요? 목도 같이 해주나요?", "scars", ["recovery", "neck"]),
    ],
)
def test_several_questions_answer_one_and_offer_every_other_first(dialogue: Dialogue, message: str, answered: str, offered: list[str]) -> None:
    step = dialogue.handle(SessionState(), PatientText(message))
    (reply,) = step.replies
    speaking = dialogue.speaking(step.state.lang)
    assert reply.text.startswith(speaking.knowledge.entry(answered).answer)
    assert [b.data for b in reply.buttons][: len(offered)] == [f"faq:{e}" for e in offered]
    assert all(speaking.knowledge.entry(e).title in reply.text for e in offered)  # "you also asked about..."


@pytest.mark.parametrize(
    ("message", "intent", "entry"),
    [
        ("안녕하세요, 흉터 많이 남나요?", "faq", "scars"),  # the greeting opens a question: answer it
        ("안녕하세요 코디네이터분 계세요?", "human", None),
        ("안녕하세요", "greeting", None),  # a greeting alone is greeted
        ("감사합니다 잘 알겠어요", "thanks", None),  # thanks and nothing asked
        ("Hi! does it leave a scar?", "faq", "scars"),
    ],
)
def test_a_greeting_before_a_question_does_not_hide_the_question(dialogue: Dialogue, message: str, intent: str, entry: str | None) -> None:
    step = dialogue.handle(SessionState(), PatientText(message))
    assert step.match is not None and (step.match.intent, step.match.faq_id) == (intent, entry), step.match
