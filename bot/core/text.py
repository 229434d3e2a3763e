"""Text normalisation shared by the FAQ index and incoming patient messages (pure)."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Longest message we analyse: Telegram's own limit for one message, so nothing a
# patient sends is cut (a long story often asks its question in the last line).
# Only a longer console paste is read from its beginning, and the patient is told.
MAX_ANALYSED_CHARS = 4_096

# Dropped, not spaced: "don't" is "dont". (Chained str.replace: str.translate with a
# dict table costs more, and every example is cleaned at each start-up.)
_APOSTROPHES = ("'", "\u2019", "\u2018", "`", "\u00b4")
# Three or more of the same letter ("sooooo", "pleeease") are emphasis, not spelling.
_REPEATS = re.compile(r"(\w)\1{2,}")
# Everything but letters and digits of any script (re's \w is str.isalnum() plus "_").
_NOT_ALNUM = re.compile(r"[\W_]+")
# Question marks, full stops, semicolons, line breaks and spaced dashes ("before
# I book anything - what does it fix?") end a clause; used to find the separate
# questions inside one message.
_CLAUSE_BREAK = re.compile(r"[?!.;\n]+|\s[-\u2013\u2014]+\s|\s+(?:and also|also|plus|and)\s+(?=(?:how|what|when|where|will|would|can|could|is|are|do|does|should|whats|hows)\b)")

# A conjunction ("and", "also") starts a new question only after a clause of this many words.
_MIN_WORDS_BEFORE_CONJUNCTION = 3
# ...nor does "also" right after a subject: "since I'm flying in anyway, do you also
# do X" is one question ("how much is it and how long..." is still two).
_SUBJECT_PRONOUNS = frozenset({"i", "you", "u", "it", "we", "they"})
_SUFFIXES_KEEP_DOUBLE = frozenset("lsz")
# Words whose -ed is no ending: "scared" must not become "scar".
# And "contouring" (the surgery) must not merge with "contour" (a face's outline).
_NOT_INFLECTED = frozenset({"scared", "sacred", "naked", "wicked", "beloved", "contouring"})


def clean(text: str) -> str:
    """NFKC-normalise, lowercase, drop control characters and emoji, keep letters/digits of any script."""
    text = unicodedata.normalize("NFKC", text[:MAX_ANALYSED_CHARS]).lower()
    for apostrophe in _APOSTROPHES:
        text = text.replace(apostrophe, "")
    return _REPEATS.sub(r"\1\1", _NOT_ALNUM.sub(" ", text))


def bare(text: str) -> str:
    """The message with nothing but its letters, digits and symbols (emoji): no spaces,
    punctuation, skin tones or variation selectors. "OK!!" is "ok", "👍🏻" is "👍"."""
    text = unicodedata.normalize("NFKC", text[:MAX_ANALYSED_CHARS]).lower()
    return "".join(ch for ch in text if unicodedata.category(ch)[0] not in "PZC" and unicodedata.category(ch) not in ("Mn", "Sk"))


def words(text: str) -> list[str]:
    """The cleaned words of ``text`` in order."""
    return clean(text).split()


def clauses(text: str) -> list[str]:
    """Split a message into the clauses that may each carry a question."""
    return [clause for clause, _ in marked_clauses(text)]


def marked_clauses(text: str) -> list[tuple[str, bool]]:
    """Clauses of a message, each with whether a question mark ended it."""
    text = text[:MAX_ANALYSED_CHARS]
    out: list[tuple[str, bool]] = []
    start = 0
    for found in _CLAUSE_BREAK.finditer(text):
        before = text[start : found.start()].strip()
        words_before = before.split()
        conjunction = found.group().strip().lower()
        if conjunction.isalpha() and words_before and (
            len(words_before) < _MIN_WORDS_BEFORE_CONJUNCTION
            or (conjunction == "also" and words_before[-1].lower() in _SUBJECT_PRONOUNS)
        ):
            continue  # "do you also do thread lifts" is one question, not "do you" + "do thread lifts"
        out.append((before, "?" in found.group()))
        start = found.end()
    out.append((text[start:].strip(), False))
    return [(c, q) for c, q in out if c and any(ch.isalnum() for ch in c)]


@lru_cache(maxsize=50_000)  # patients use a few thousand distinct words; each is stemmed once
def stem(word: str) -> str:
    """A deliberately light English stemmer: plural and -ing/-ed endings only.

    Heavier stemmers (Porter) merge words our FAQ must keep apart, such as
    "lift"/"lifting" are fine to merge but "natural"/"nature" are not.
    """
    if len(word) <= 3 or not word.isascii() or not word.isalpha() or word in _NOT_INFLECTED:
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            base = word[: -len(suffix)]
            if len(base) >= 3 and base[-1] == base[-2] and base[-1] not in _SUFFIXES_KEEP_DOUBLE:
                base = base[:-1]
            return base
    if word.endswith("es") and word[-3] in "sxz" and len(word) > 4:
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def squeeze_doubles(word: str) -> str:
    """'scarr' -> 'scar': patients double letters by accident as often as on purpose."""
    return re.sub(r"(\w)\1", r"\1", word)
