"""The command line as operators and the evaluation use it (real subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

# The contract operators' scripts read; "lang" (the language read and answered in) was added for Korean.
JSON_KEYS = {"intent", "faq_id", "suggestions", "score", "answer", "lang"}
INTENTS = {"faq", "clarify", "booking", "human", "greeting", "thanks", "urgent", "fallback"}


def run_bot(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], input=stdin, capture_output=True, text=True, cwd=ROOT, timeout=60
    )


def test_ask_prints_the_answer_with_related_topics(knowledge) -> None:  # noqa: ANN001
    result = run_bot("ask", "does it leave a scar")
    assert result.returncode == 0, result.stderr
    scars = knowledge.entry("scars")
    assert result.stdout.startswith(scars.answer)
    first_follow_up = knowledge.entry(scars.follow_ups[0]).title
    assert f"1. {first_follow_up}" in result.stdout


def test_ask_jsonl_writes_one_object_per_line_in_order() -> None:
    messages = ["does it leave a scar", "price?", "", "hello there", "lift", "book me a consult", "x" * 10_000, "😀"]
    result = run_bot("ask", "--jsonl", stdin="\n".join(messages) + "\n")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(messages)
    records = [json.loads(line) for line in lines]
    for record in records:
        assert set(record) == JSON_KEYS
        assert record["intent"] in INTENTS
        assert isinstance(record["suggestions"], list)
        assert 0 <= record["score"] <= 100
        assert isinstance(record["answer"], str) and record["answer"]
        assert (record["faq_id"] is not None) == (record["intent"] == "faq")
    assert (records[0]["intent"], records[0]["faq_id"]) == ("faq", "scars")
    assert records[1]["intent"] == "fallback" and records[1]["suggestions"] == []
    assert records[3]["intent"] == "greeting"
    assert records[4]["intent"] == "clarify" and 1 <= len(records[4]["suggestions"]) <= 3
    assert records[5]["intent"] == "booking"


def test_chat_offers_numbered_choices_that_can_be_picked(knowledge) -> None:  # noqa: ANN001
    result = run_bot("chat", stdin="lift\n1\n/quit\nthis line is never read\n")
    assert result.returncode == 0, result.stderr
    assert "1. " in result.stdout
    # Picking choice 1 of the "did you mean" list prints that entry's answer.
    first_choice = result.stdout.split("1. ")[2].splitlines()[0]
    entry = next(e for e in knowledge.entries if e.title == first_choice)
    assert entry.answer in result.stdout
    assert "never read" not in result.stdout


def test_no_arguments_starts_the_console_chat(knowledge) -> None:  # noqa: ANN001
    result = run_bot(stdin="/quit\n")
    assert result.returncode == 0, result.stderr
    assert knowledge.texts["welcome"] in result.stdout


def test_a_console_with_closed_input_says_so_and_fails() -> None:
    # As when `python -m bot` is started as a service with no token: not a silent exit 0.
    result = run_bot(stdin="")
    assert result.returncode == 1
    assert "got no input" in result.stderr and "telegram.token" in result.stderr


def test_faq_check_passes_on_the_real_faq() -> None:
    result = run_bot("faq", "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("ok: 16 entries in 2 languages (en, ko)")


def test_faq_check_of_a_language_folder_checks_it_with_the_faq_it_translates() -> None:
    # An operator who edited the Korean answers checks that folder: its entries follow
    # the English ones (ids, follow-ups), so it is not an FAQ of its own with 16 errors.
    result = run_bot("faq", "check", str(ROOT / "faq" / "ko"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(en, ko)" in result.stdout.strip().splitlines()[-1]


def test_faq_check_fails_with_file_line_and_key(tmp_path: Path) -> None:
    for name in ("intents.yaml", "language.yaml"):
        (tmp_path / name).write_text((ROOT / "faq" / name).read_text())
    (tmp_path / "smas_mini_lift.yaml").write_text("entries:\n  - id: scars\n    questions: [scar]\n    answer: ''\n    follow_ups: []\n")
    result = run_bot("faq", "check", str(tmp_path))
    assert result.returncode == 1
    assert f"{tmp_path / 'smas_mini_lift.yaml'}:4: entries[0] (scars).answer: is empty" in result.stdout


def test_a_broken_faq_stops_ask_with_a_clear_message(tmp_path: Path) -> None:
    (tmp_path / "smas_mini_lift.yaml").write_text("entries: [\n")
    result = run_bot("--faq", str(tmp_path), "ask", "scar?")
    assert result.returncode == 1
    assert "smas_mini_lift.yaml" in result.stderr and "not valid YAML" in result.stderr
    assert "Traceback" not in result.stderr


def test_eval_prints_the_figures() -> None:
    result = run_bot("eval", str(ROOT / "tests" / "eval" / "patients.yaml"))
    assert result.returncode == 0, result.stderr
    for label in ("direct accuracy", "reached incl. suggestions", "wrong answers", "intent accuracy", "answered where @fallback"):
        assert label in result.stdout


def test_unanswered_lists_what_patients_asked_most_first(tmp_path: Path) -> None:
    from bot.adapters.sqlite.store import Store

    store = Store(tmp_path / "bot.db")
    for question in ("is there parking", "price?", "Price?"):
        store.add_unanswered(1, question)
    store.close()
    config = tmp_path / "config.yaml"
    config.write_text("storage: {path: bot.db}\n")
    result = run_bot("unanswered", "--config", str(config))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].split() == ["2", lines[0].split()[1]] and lines[0].lower().endswith("price?")
    assert lines[1].split()[0] == "1" and lines[1].endswith("is there parking")
    assert "faq/examples.yaml" in result.stdout  # where to teach the bot what it missed


def test_report_summarises_handoffs_reply_times_and_ratings(tmp_path: Path) -> None:
    import time

    from bot.adapters.sqlite.store import Store

    now = [time.time() - 3_600]
    store = Store(tmp_path / "bot.db", clock=lambda: now[0])
    store.log_handoff(1, "opened", "urgent")
    now[0] += 240
    store.log_handoff(1, "staff_replied")
    store.add_rating(1, helpful=True)
    store.add_unanswered(2, "is there parking")
    store.close()
    config = tmp_path / "config.yaml"
    config.write_text("storage: {path: bot.db}\n")
    result = run_bot("report", "--config", str(config), "--days", "7")
    assert result.returncode == 0, result.stderr
    assert "handed to staff: 1 (urgent 1)" in result.stdout
    assert "median 4 min" in result.stdout and "1 helpful, 0 not helpful (100% helpful)" in result.stdout
    assert "is there parking" in result.stdout
    as_json = json.loads(run_bot("report", "--config", str(config), "--json").stdout)
    assert as_json["first_reply_seconds"] == [240.0] and as_json["helpful"] == 1


def test_ask_jsonl_reports_the_language_it_answered_in(knowledge) -> None:  # noqa: ANN001
    result = run_bot("ask", "--jsonl", stdin="흉터 많이 남아요?\ndoes it leave a scar\n")
    korean, english = (json.loads(line) for line in result.stdout.splitlines())
    assert (korean["lang"], korean["faq_id"]) == ("ko", "scars")
    assert korean["answer"].startswith(knowledge.in_language("ko").entry("scars").answer)
    assert (english["lang"], english["faq_id"]) == ("en", "scars")


def test_explain_shows_language_candidates_and_the_deciding_rule() -> None:
    english = run_bot("explain", "what are the risks of a deep plane lift")
    assert english.returncode == 0, english.stderr
    assert "language:    en" in english.stdout
    assert "deep-plane-technique" in english.stdout  # the topic words point there...
    assert "decisive subject: risks" in english.stdout  # ...and the asking part decides
    assert "decision:    fallback" in english.stdout
    korean = run_bot("explain", "흉터 많이 남아요?")
    assert "language:    ko" in korean.stdout and "decision:    answer scars" in korean.stdout


def test_eval_measures_several_files_and_korean() -> None:
    english, korean = ROOT / "tests" / "eval" / "patients.yaml", ROOT / "tests" / "eval" / "ko_written.yaml"
    result = run_bot("eval", str(english), str(korean))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("direct accuracy") == 2
    shares = [dict(part.split() for part in line.split(":", 1)[1].replace("%", "").split(",")) for line in result.stdout.splitlines()
              if line.startswith("answered in:")]
    assert float(shares[0]["en"]) >= 98 and float(shares[1]["ko"]) >= 98, shares


def test_explain_names_the_words_that_made_a_message_urgent() -> None:
    urgent = run_bot("explain", "i had my lift 3 days ago and i cannot open the mouth, it hurts a lot")
    assert "decision:    urgent" in urgent.stdout
    assert "'open the mouth + cannot'" in urgent.stdout  # the red flag, then what says it is after surgery
    settled = run_bot("explain", "post op day 10, the redness looked worse on day 7 so an improvement. will it fade?")
    assert "urgent cues: -" in settled.stdout and "decision:    urgent" not in settled.stdout


def test_the_console_knows_every_command_telegram_knows(knowledge) -> None:  # noqa: ANN001
    texts = knowledge.texts
    result = run_bot("chat", stdin="/help\n/forget\n1\n/human\nare you there?\n/end\n/quit\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"/forget - {texts['command_forget']}" in out and f"/end - {texts['command_end']}" in out
    assert texts["forget_confirm"] in out and texts["forgotten"] in out  # /forget is a command, not a question
    assert texts["human"] in out and "(passed on to staff)" in out
    assert texts["handoff_ended_by_patient"] in out


def test_the_console_runs_the_same_desk_from_the_same_config(knowledge, tmp_path: Path) -> None:  # noqa: ANN001
    config = tmp_path / "config.yaml"
    # Staff in for one minute a week, Sunday just after midnight: any other time is outside.
    config.write_text('staff: {hours: {sun: "00:00-00:01"}}\nclinic: {phone: "+82 2-555-0100"}\n')
    result = run_bot("chat", "--config", str(config), stdin="/human\n/end\nwhat is your phone number\n/quit\n")
    assert result.returncode == 0, result.stderr
    told_closed = knowledge.texts["handoff_hours_closed"].format(when="Sunday 00:00")
    told_open = knowledge.texts["handoff_hours_open"].format(minutes=30)  # in the one minute a week staff are in
    assert told_closed in result.stdout or told_open in result.stdout
    assert "+82 2-555-0100" in result.stdout  # the operator's clinic facts, as in Telegram
