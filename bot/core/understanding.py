"""Which language a message is in, and what it asks, in every language the knowledge speaks (pure).

The default language (English, with its hand-made language data) is read by
:class:`bot.core.matcher.Matcher`; every other language, added as a folder of
YAML, by :class:`bot.core.ngram_matcher.NgramMatcher`, which needs no code.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from bot.core.knowledge import KnowledgeBase
from bot.core.matcher import Match, Matcher
from bot.core.ngram_matcher import NgramMatcher
from bot.core.text import words

# A message is in a language of another script (Hangul...) once that script's letters
# make this share of its letters, each such letter counting as SYLLABLE_WEIGHT Latin
# ones (a Hangul syllable carries about as much as three Latin letters): "SMAS mini
# lift 가격 얼마에요?" is Korean, "how long is recovery for 미니거상" is English.
OTHER_SCRIPT_SHARE = 0.5
SYLLABLE_WEIGHT = 3
# Fewer (weighted) letters than this do not switch a known conversation language:
# a Korean patient's "ok" or "SMAS?" is still a Korean conversation.
SWITCH_LETTERS = 8


@lru_cache(maxsize=8_192)
def script_of(ch: str) -> str | None:
    """The Unicode script of a letter (LATIN, HANGUL, CYRILLIC, CJK...), None for anything else."""
    if not ch.isalpha():
        return None
    name = unicodedata.name(ch, "")
    return name.split(" ", 1)[0] if name else None


def letters_by_script(text: str) -> Counter[str]:
    """Letters of each script, letters of non-Latin scripts weighted as syllables."""
    if text.isascii():
        return Counter({"LATIN": sum(map(str.isalpha, text))})
    found: Counter[str] = Counter()
    for ch, count in Counter(text).items():
        script = script_of(ch)
        if script is not None:
            found[script] += count if script == "LATIN" else SYLLABLE_WEIGHT * count
    return found


@dataclass(frozen=True)
class Understood:
    """A message's language and what it asks."""

    lang: str
    match: Match


class Understanding:
    """Tells the language of each message and classifies it with that language's matcher."""

    def __init__(self, knowledge: KnowledgeBase, matcher: Matcher | None = None) -> None:
        self.knowledge = knowledge
        self.matchers: dict[str, Matcher | NgramMatcher] = {knowledge.code: matcher or Matcher(knowledge)}
        for code, translation in knowledge.translations.items():
            self.matchers[code] = NgramMatcher(translation)
        self._scripts = {code: knowledge.in_language(code).language.script for code in knowledge.languages}
        # Languages sharing a script are told apart by the words their knowledge uses.
        self._words: dict[str, frozenset[str]] = {}
        for code in knowledge.languages:
            if sum(script == self._scripts[code] for script in self._scripts.values()) > 1:
                self._words[code] = _vocabulary(knowledge.in_language(code))

    def language_of(self, text: str, previous: str | None = None) -> str:
        """The language of ``text``; ``previous`` (or the default) when it has no letters to tell by."""
        fallback = previous if previous in self.matchers else self.knowledge.code
        letters = letters_by_script(text)
        total = sum(letters.values())
        if not total or (previous in self.matchers and total < SWITCH_LETTERS):
            return fallback
        candidates = [code for code, script in self._scripts.items() if script != "LATIN" and letters[script] >= OTHER_SCRIPT_SHARE * total]
        if not candidates:
            dominant = letters.most_common(1)[0][0]
            candidates = [code for code, script in self._scripts.items() if script == dominant]
        if not candidates:
            return fallback
        if len(candidates) == 1:
            return candidates[0]
        message_words = set(words(text))
        known = {code: len(message_words & self._words.get(code, frozenset())) for code in candidates}
        best = max(known.values())
        leaders = [code for code in candidates if known[code] == best]
        return fallback if fallback in leaders else leaders[0]

    def understand(self, text: str, previous: str | None = None) -> Understood:
        """The language of ``text`` and what it asks."""
        lang = self.language_of(text, previous)
        return Understood(lang, self.matchers[lang].match(text))


def _vocabulary(knowledge: KnowledgeBase) -> frozenset[str]:
    texts = [t for e in knowledge.entries for t in (*e.questions, *e.keywords, e.title)]
    texts += [t for i in knowledge.intents.values() for t in (*i.phrases, *i.keywords)]
    texts += [t for topic in knowledge.out_of_scope for t in (*topic.phrases, *topic.keywords)]
    return frozenset(w for t in texts for w in words(t))
