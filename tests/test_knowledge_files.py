"""Every error `faq check` reports names the file, the line and the key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.faq_check import check
from bot.knowledge_files import KnowledgeError, load_knowledge
from tests.conftest import FAQ_DIR


@pytest.fixture()
def faq_copy(tmp_path: Path) -> Path:
    shutil.copytree(FAQ_DIR, tmp_path / "faq")
    return tmp_path / "faq"


def replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), start=1) if needle in line)


def errors_of(folder: Path) -> list[str]:
    errors, _ = check(folder)
    return [str(e) for e in errors]


def test_the_real_faq_has_no_errors() -> None:
    errors, _ = check(FAQ_DIR)
    assert errors == []


def test_bad_yaml_names_file_and_line(faq_copy: Path) -> None:
    faq = faq_copy / "smas_mini_lift.yaml"
    replace_in(faq, "  - id: neck\n", "  - id: neck\n    title: [unclosed\n")
    errors = errors_of(faq_copy)
    assert len(errors) == 1
    assert errors[0].startswith(f"{faq}:")
    assert "not valid YAML" in errors[0]


def test_missing_key(faq_copy: Path) -> None:
    faq = faq_copy / "smas_mini_lift.yaml"
    text = faq.read_text()
    start = text.index("  - id: neck\n")
    answer_at = text.index("    answer:", start)
    follow_at = text.index("    follow_ups:", answer_at)
    faq.write_text(text[:answer_at] + text[follow_at:])
    errors = errors_of(faq_copy)
    assert errors == [f"{faq}:{line_of(faq, '- id: neck')}: entries[11] (neck).answer: missing"]


def test_mistyped_key_and_value(faq_copy: Path) -> None:
    faq = faq_copy / "smas_mini_lift.yaml"
    replace_in(faq, "  - id: neck\n", "  - id: neck\n    folow_ups: [scars]\n")
    text = faq.read_text()
    keywords_at = text.index("    keywords: [", text.index("  - id: scars\n"))
    faq.write_text(text[:keywords_at] + "    keywords: just one string" + text[text.index("\n", keywords_at):])
    errors = errors_of(faq_copy)
    assert f"{faq}:{line_of(faq, 'folow_ups')}: entries[11] (neck).folow_ups: unknown key" in " ".join(errors)
    assert any(f"{faq}:{line_of(faq, 'keywords: just one string')}:" in e and "(scars).keywords: must be a list" in e for e in errors)


def test_duplicate_ids(faq_copy: Path) -> None:
    faq = faq_copy / "smas_mini_lift.yaml"
    replace_in(faq, "  - id: neck\n", "  - id: scars\n")
    errors = errors_of(faq_copy)
    first = line_of(faq, "- id: scars")
    assert any("duplicate id 'scars'" in e and f"first used on line {first}" in e and e.startswith(f"{faq}:") for e in errors)


def test_dangling_follow_up(faq_copy: Path) -> None:
    faq = faq_copy / "smas_mini_lift.yaml"
    text = faq.read_text()
    start = text.index("  - id: neck\n")
    follow = text.index("    follow_ups: [", start)
    end = text.index("]", follow)
    faq.write_text(text[:follow] + "    follow_ups: [no-such-entry" + text[end:])
    errors = errors_of(faq_copy)
    line = line_of(faq, "no-such-entry")
    assert f"{faq}:{line}: entries[11] (neck).follow_ups[0]: follows up 'no-such-entry', which is not an entry id" in errors


def test_empty_answer(faq_copy: Path) -> None:
    faq = faq_copy / "smas_mini_lift.yaml"
    text = faq.read_text()
    start = text.index("  - id: neck\n")
    answer_at = text.index("    answer:", start)
    follow_at = text.index("    follow_ups:", answer_at)
    faq.write_text(text[:answer_at] + '    answer: "  "\n' + text[follow_at:])
    errors = errors_of(faq_copy)
    line = line_of(faq, 'answer: "  "')
    assert f"{faq}:{line}: entries[11] (neck).answer: is empty" in errors


def test_intents_file_errors_name_their_file(faq_copy: Path) -> None:
    intents = faq_copy / "intents.yaml"
    replace_in(intents, "  fallback: >-", "  fallbak: >-")
    errors = errors_of(faq_copy)
    assert any(e.startswith(f"{intents}:") and "texts.fallback: missing" in e for e in errors)


def test_missing_file(faq_copy: Path) -> None:
    (faq_copy / "language.yaml").unlink()
    assert errors_of(faq_copy) == [f"{faq_copy / 'language.yaml'}:1: (file): file not found"]


def test_load_raises_with_every_problem(faq_copy: Path) -> None:
    replace_in(faq_copy / "smas_mini_lift.yaml", "  - id: neck\n", "  - id: Neck Entry\n")
    with pytest.raises(KnowledgeError) as raised:
        load_knowledge(faq_copy)
    assert "'Neck Entry' is not kebab-case" in str(raised.value)


def test_warns_about_a_phrasing_that_matches_another_entry_better(faq_copy: Path) -> None:
    faq = faq_copy / "smas_mini_lift.yaml"
    text = faq.read_text()
    start = text.index("  - id: neck\n")
    questions_at = text.index("    questions:\n", start) + len("    questions:\n")
    faq.write_text(text[:questions_at] + "      - will the incision scar be visible\n" + text[questions_at:])
    errors, warnings = check(faq_copy)
    assert errors == []
    assert any(
        w.line == line_of(faq, "will the incision scar be visible") and "neck.questions[0]" in w.key and "'scars'" in w.message
        for w in warnings
    )


def test_an_unreadable_common_words_list_names_the_file(faq_copy: Path) -> None:
    (faq_copy / "common_words.txt").write_bytes(b"plain\n\xff\xfe broken\n")
    errors = errors_of(faq_copy)
    assert len(errors) == 1 and errors[0].startswith(f"{faq_copy / 'common_words.txt'}:1: (file): cannot be read")


def test_the_common_words_list_is_optional(faq_copy: Path) -> None:
    (faq_copy / "common_words.txt").unlink()
    assert errors_of(faq_copy) == []
    assert load_knowledge(faq_copy).language.dictionary == frozenset()


def intents_error_after_edit(faq_copy: Path, old: str, new: str, needle: str) -> list[str]:
    """Edit intents.yaml, then the errors reported on the line holding ``needle``."""
    intents = faq_copy / "intents.yaml"
    replace_in(intents, old, new)
    return [e for e in errors_of(faq_copy) if e.startswith(f"{intents}:{line_of(intents, needle)}:")]


def test_exceptions_belong_to_decisive_topics_only(faq_copy: Path) -> None:
    errors = intents_error_after_edit(
        faq_copy, "  - topic: preparation\n", "  - topic: preparation\n    unless: [fasting]\n", "unless: [fasting]"
    )
    assert any(".unless: only a decisive topic can have exceptions" in e for e in errors), errors


def examples_file(folder: Path, body: str) -> Path:
    path = folder / "examples.yaml"
    path.write_text("examples:\n" + body)
    return path


def test_an_example_under_an_unknown_label_names_file_line_and_label(faq_copy: Path) -> None:
    path = examples_file(faq_copy, "  scars:\n    - will it leave a mark\n  scar-revision:\n    - can you fix an old scar\n")
    assert errors_of(faq_copy) == [
        f"{path}:4: examples.scar-revision: 'scar-revision' is neither an FAQ entry id nor one of @booking, @human, @fallback"
    ]


def test_the_same_example_under_two_labels_is_an_error(faq_copy: Path) -> None:
    path = examples_file(faq_copy, "  scars:\n    - Will it leave a mark\n  recovery:\n    - will it  leave a mark\n")
    assert errors_of(faq_copy) == [f"{path}:5: examples.recovery[0]: is already listed under 'scars'"]


def test_examples_must_be_lists_of_messages(faq_copy: Path) -> None:
    path = examples_file(faq_copy, "  scars: will it leave a mark\n  neck:\n    - [a, list]\n")
    assert errors_of(faq_copy) == [
        f"{path}:2: examples.scars: must be a list of messages, found 'will it leave a mark'",
        f"{path}:4: examples.neck[0]: must be text, found a list",
    ]


def test_the_examples_file_is_optional(faq_copy: Path) -> None:
    (faq_copy / "examples.yaml").unlink()
    assert errors_of(faq_copy) == []
    assert load_knowledge(faq_copy).examples == {}


@pytest.mark.parametrize("text", ["", "# nothing taught yet\n", "examples:\n", "examples:\n  # scars:\n"])
def test_an_examples_file_with_nothing_in_it_yet_is_fine(faq_copy: Path, text: str) -> None:
    (faq_copy / "examples.yaml").write_text(text)
    assert errors_of(faq_copy) == []
    assert load_knowledge(faq_copy).examples == {}


def test_warns_about_an_example_a_rule_still_overrides(faq_copy: Path) -> None:
    # Naming a price always sends the patient to staff, whatever the example says.
    path = examples_file(faq_copy, "  scars:\n    - does it leave a scar\n    - what does the scar treatment cost\n")
    errors, warnings = check(faq_copy)
    assert errors == []
    # (A replaced examples file also leaves the classifier stale; that warning is tested below.)
    assert [str(w) for w in warnings if w.key.startswith("examples.")] == [
        f"{path}:4: examples.scars[1]: 'what does the scar treatment cost' still gets @fallback, not scars"
    ]


def test_the_name_of_the_fallback_examples_topic_is_reserved(faq_copy: Path) -> None:
    errors = intents_error_after_edit(
        faq_copy, "  - topic: preparation\n", "  - topic: unanswered-examples\n", "topic: unanswered-examples"
    )
    assert any("'unanswered-examples' is reserved for the @fallback examples" in e for e in errors), errors


def test_faq_check_says_when_the_classifier_has_not_learnt_an_edit(faq_copy: Path) -> None:
    assert not [w for w in check(faq_copy)[1] if "classifier" in w.message]
    examples = faq_copy / "ko" / "examples.yaml"
    examples.write_text(examples.read_text(encoding="utf-8") + '  - "주차 되나요? 차 가져가려고요"\n', encoding="utf-8")
    errors, warnings = check(faq_copy)
    assert not errors
    new_example = [w for w in warnings if "classifier" in w.message]
    assert [(w.path, w.key) for w in new_example] == [(faq_copy / "ko" / "model.npz", "(ko model)")], new_example
    assert "1 example(s) are not learnt" in new_example[0].message and "python -m bot train" in new_example[0].message
    replace_in(faq_copy / "smas_mini_lift.yaml", "      - what is the smas mini lift\n", "      - what is the smas mini lift\n      - tell me about smas\n")
    stale = [w for w in check(faq_copy)[1] if "classifier" in w.message and w.key == "(en model)"]
    assert stale and "trained before the last edit" in stale[0].message, stale


def test_a_placeholder_the_code_never_fills_is_an_error(faq_copy: Path) -> None:
    path = faq_copy / "ko" / "intents.yaml"
    replace_in(path, "{emergency_number}에 전화하시거나", "{emergency_number}에 전화하시거나 {phone}")
    errors, _ = check(faq_copy)
    assert [(e.path, e.key) for e in errors] == [(path, "texts.urgent")], errors
    assert "{phone}" in errors[0].message and "{emergency_number}" in errors[0].message


def test_a_broken_model_file_names_the_file_and_the_way_out(faq_copy: Path) -> None:
    model = faq_copy / "ko" / "model.npz"
    model.write_bytes(model.read_bytes()[:1000])  # what an interrupted write would have left
    errors, _ = check(faq_copy)
    assert [(e.path, e.key) for e in errors] == [(model, "(file)")], errors
    assert "python -m bot train" in errors[0].message


@pytest.mark.parametrize("language_yaml", [None, "script: Korean\n", "script: 5\n"])
def test_a_language_without_a_known_script_is_an_error(faq_copy: Path, language_yaml: str | None) -> None:
    path = faq_copy / "ko" / "language.yaml"
    if language_yaml is None:
        path.unlink()
    else:
        path.write_text(language_yaml, encoding="utf-8")
    errors, _ = check(faq_copy)
    assert [(e.path, e.key) for e in errors] == [(path, "script")], errors


def test_what_telegram_would_refuse_is_refused_by_faq_check(faq_copy: Path) -> None:
    faq = faq_copy / "smas_mini_lift.yaml"
    text = faq.read_text()
    long_id = "what-" + "very-" * 13 + "long"  # 74 characters: too long for a button's callback data
    text = text.replace("- id: neck\n", f"- id: {long_id}\n")
    start = text.index(f"  - id: {long_id}\n")
    answer_at = text.index("    answer:", start)
    follow_at = text.index("    follow_ups:", answer_at)
    faq.write_text(text[:answer_at] + '    answer: "' + "word " * 1000 + '"\n' + text[follow_at:])
    errors = errors_of(faq_copy)
    assert any(f"({long_id}).id: is 74 characters; Telegram's buttons carry at most 60" in e for e in errors), errors
    assert any(f"({long_id}).answer: is 4,999 characters; Telegram sends at most 4,096" in e for e in errors), errors
