"""Turn free text into the canonical terms the matcher compares (pure).

The pipeline: clean (case, NFKC, punctuation, emoji, repeated letters) ->
chat shorthand -> typo correction against the known vocabulary -> light
stemming -> synonym phrases to canonical terms -> drop stopwords.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from rapidfuzz import process
from rapidfuzz.distance import OSA

from bot.core.knowledge import Language
from bot.core.text import squeeze_doubles, stem, words

# Clauses whose words are remembered while a message is read (a 4,096-character story
# has about a hundred).
_CLAUSES_REMEMBERED = 256
_AGE = re.compile(r"^(\d{2})(?:f|m|yo|y)?$")
# "the 14th", "3rd to 10th May": a day of the month.
_DAY_OF_MONTH = re.compile(r"^(?:[1-9]|[12]\d|3[01])(?:st|nd|rd|th)$")
# "25 y/o" would become "25", "y" (chat for "why") and "o".
_AGE_WITH_SLASH = re.compile(r"\b(\d{2})\s*y\s*/\s*o\b", re.IGNORECASE)
# Words shorter than this are not typo-corrected: "eye"/"eat", "lip"/"lid" are
# one edit apart and both real, so correcting them guesses more than it fixes.
_MIN_CORRECTABLE = 4
# The document speaks of "people in their 20s and 30s": a patient giving an age
# below this says "young", which tells the younger-patients topic from the rest.
YOUNG_BELOW = 40
# The synonym group of days, months and times in language.yaml: a number beside
# one of them is a date ("march 15", "15 june"), not the patient's age.
DATE_TERM = "date"
# Common words shorter than this do not make a message English: English text is
# full of "en", "de", "la"... (see Analyzer.is_english).
_MIN_DICTIONARY_WORD = 5
# Marks a term the patient implied rather than said ("~young" from "im 31"); the
# matcher weighs it less than the word itself.
HINT = "~"


class Analyzer:
    """Normalises text into canonical terms using the language data and the known vocabulary."""

    def __init__(self, language: Language, vocabulary: Iterable[str]) -> None:
        """``vocabulary``: the texts whose words typos are corrected towards."""
        self._shorthand = {key: tuple(value.split()) for key, value in language.shorthand.items() if " " not in key}
        self._phrases: dict[tuple[str, ...], tuple[str, ...]] = {}
        for canonical, variants in language.synonyms.items():
            target = tuple(canonical.split())
            for variant in (canonical, *variants):
                key = tuple(stem(w) for w in self._expand(words(variant)))
                if key:
                    self._phrases.setdefault(key, target)
        # Phrase lengths by first stem, longest first: most words start no phrase,
        # so they cost one lookup instead of one per possible length.
        lengths: dict[str, set[int]] = {}
        for key in self._phrases:
            lengths.setdefault(key[0], set()).add(len(key))
        self._phrase_lengths = {first: sorted(sizes, reverse=True) for first, sizes in lengths.items()}
        self._stopwords = frozenset(stem(w) for w in language.stopwords) - {t for ts in self._phrases.values() for t in ts}
        known: set[str] = set()
        for text in vocabulary:
            known.update(words(text))
        for variants in language.synonyms.values():
            for variant in variants:
                known.update(words(variant))
        known.update(language.stopwords)
        known.update(language.shorthand)
        for value in language.shorthand.values():
            known.update(value.split())
        self._known = frozenset(known)
        self._other_english: frozenset[str] = frozenset()
        self._dictionary = language.dictionary
        # Typo candidates are bucketed by first letter: patients rarely get the
        # first letter wrong, and it keeps correction fast on large FAQs.
        buckets: dict[str, list[str]] = {}
        for word in known:
            if len(word) >= _MIN_CORRECTABLE - 1 and word.isascii() and word.isalpha():
                buckets.setdefault(word[0], []).append(word)
        self._buckets = {k: sorted(v) for k, v in buckets.items()}
        self.correct = lru_cache(maxsize=20_000)(self._correct)
        # One message's clauses are read several times while it is understood (urgent
        # signs, the asking part, the terms to rank): each is tokenised once. The caches
        # are small, sized for one long message, not to remember patients' messages.
        self._remembered_tokens = lru_cache(maxsize=_CLAUSES_REMEMBERED)(self._tokenise)
        self._remembered_terms = lru_cache(maxsize=_CLAUSES_REMEMBERED)(self._terms)

    def count_as_english(self, terms: Iterable[str]) -> None:
        """Also count these terms (of patients' examples) as English words, without
        correcting typos towards them: examples keep patients' own misspellings."""
        self._other_english = frozenset(terms)

    def is_english(self, word: str) -> bool:
        """A word of our vocabulary, a common English word, or a number ("45yo woman": English)."""
        if word in self._known or bool(_AGE.match(word)) or word.isdigit() or stem(word) in self._other_english:
            return True
        return len(word) >= _MIN_DICTIONARY_WORD and word in self._dictionary

    def _expand(self, tokens: Iterable[str]) -> list[str]:
        out: list[str] = []
        for token in tokens:
            out.extend(self._shorthand.get(token, (token,)))
        return out

    def _correct(self, word: str) -> str:
        """The known word closest to ``word``, or ``word`` itself when none is close enough."""
        if word in self._known or len(word) < _MIN_CORRECTABLE or not word.isascii() or not word.isalpha():
            return word
        if word in self._dictionary:
            return word  # a real word, if not one of ours: "plain" is not a typo of "pain"
        squeezed = squeeze_doubles(word)
        if squeezed in self._known:
            return squeezed
        if len(word) == _MIN_CORRECTABLE:
            # Four-letter words: only a swap ("lfit"); any other edit turns
            # ordinary words into FAQ words ("team" -> "tear").
            bucket = self._buckets.get(word[0], ())
            swapped = [w for w in bucket if len(w) == 4 and sorted(w) == sorted(word) and OSA.distance(w, word) == 1]
            return swapped[0] if len(swapped) == 1 else word
        # One edit for most words, two only for long ones: "reocvery" is two
        # edits from "recovery", but "process" is also two from "price".
        max_edits = 1 if len(word) < 8 else 2
        bucket = self._buckets.get(word[0])
        if not bucket:
            return word
        found = process.extractOne(word, bucket, scorer=OSA.distance, score_cutoff=max_edits)
        return found[0] if found is not None else word

    def terms(self, text: str, *, correct_typos: bool = True) -> tuple[str, ...]:
        """Canonical terms of ``text``, in order, stopwords removed (duplicates kept)."""
        return self._remembered_terms(text, correct_typos)

    def _terms(self, text: str, correct_typos: bool) -> tuple[str, ...]:
        """Canonical terms of ``text``, in order, stopwords removed (duplicates kept)."""
        tokens = self._tokens(text)
        if correct_typos:
            tokens = [self.correct(t) for t in tokens]
        stems = [stem(t) for t in tokens]
        out: list[str] = []
        i = 0
        while i < len(stems):
            for size in self._phrase_lengths.get(stems[i], ()):
                target = self._phrases.get(tuple(stems[i : i + size])) if i + size <= len(stems) else None
                if target is not None:
                    out.extend(target)
                    i += size
                    break
            else:
                token = stems[i]
                numeric = token[0].isdigit()  # the patterns below are tried on numbers only
                age = _AGE.match(token) if numeric else None
                beside_date = age and ((out and out[-1] == DATE_TERM) or self._phrases.get(tuple(stems[i + 1 : i + 2])) == (DATE_TERM,))
                if beside_date or (numeric and _DAY_OF_MONTH.match(token)):
                    out.append(DATE_TERM)
                elif age and 15 <= int(age.group(1)) <= 99:
                    # "im 38", "38f": the patient is telling us their age; under 40 that
                    # is also "young", though "age" keeps it from outweighing the topic.
                    out.extend(("age", HINT + "young") if int(age.group(1)) < YOUNG_BELOW else ("age",))
                elif token not in self._stopwords:
                    out.append(token)
                i += 1
        return tuple(out)

    def surface_words(self, text: str) -> list[str]:
        """Cleaned words with shorthand expanded and typos corrected, before stemming and synonyms."""
        return [self.correct(t) for t in self._tokens(text)]

    def _tokens(self, text: str) -> tuple[str, ...]:
        """Cleaned words with chat shorthand expanded."""
        return self._remembered_tokens(text)

    def _tokenise(self, text: str) -> tuple[str, ...]:
        return tuple(self._expand(words(_AGE_WITH_SLASH.sub(r"\1yo", text))))
