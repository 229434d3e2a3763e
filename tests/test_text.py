"""Text normalisation: what patients type becomes comparable words."""

from bot.core.text import clauses, stem, words


def test_case_unicode_punctuation_and_emoji_are_normalised() -> None:
    assert words("Ｄｏｅｓ it LEAVE a scar?!! 😢") == ["does", "it", "leave", "a", "scar"]


def test_apostrophes_are_dropped_not_split() -> None:
    assert words("I'm sure it won’t hurt") == ["im", "sure", "it", "wont", "hurt"]


def test_emphatic_repeats_are_shortened() -> None:
    assert words("soooo pleeeease") == ["soo", "pleease"]


def test_other_scripts_are_kept_as_words() -> None:
    assert words("안녕하세요 مرحبا") == ["안녕하세요", "مرحبا"]


def test_control_characters_and_nul_become_spaces() -> None:
    assert words("scar\x00\x07s\tand\nneck") == ["scar", "s", "and", "neck"]


def test_stem_merges_plural_and_verb_forms_only() -> None:
    assert stem("scars") == stem("scarring") == "scar"
    assert stem("lifting") == stem("lifted") == "lift"
    assert stem("swelling") == "swell"
    assert stem("natural") != stem("nature")


def test_clauses_split_separate_questions() -> None:
    assert clauses("does it leave a scar? and how long is recovery") == ["does it leave a scar", "how long is recovery"]
    assert clauses("is it safe and how long does it take") == ["is it safe", "how long does it take"]


def test_also_after_a_subject_is_part_of_the_question() -> None:
    message = "since I'm flying in anyway, do you also do tummy tucks"
    assert clauses(message) == [message]
    assert clauses("and also") == ["and also"]  # nothing before the conjunction: no crash
    assert clauses("what scars would I get with it and how long is the recovery") == [
        "what scars would I get with it",
        "how long is the recovery",
    ]


def test_a_spaced_dash_ends_a_clause_but_a_hyphen_does_not() -> None:
    assert clauses("before i book anything - what does it fix?") == ["before i book anything", "what does it fix"]
    assert clauses("is a mini-lift ok — or a full one") == ["is a mini-lift ok", "or a full one"]


def test_words_whose_ed_is_no_ending_are_kept() -> None:
    assert stem("scared") == "scared"
    assert stem("scarred") == stem("scar")
