"""The knowledge the bot works from, as plain immutable data.

Built by :mod:`bot.knowledge_files` from the YAML in ``faq/``; the matcher
and the dialogue core only ever see these objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

# Intents the bot recognises besides FAQ questions. The order is the order of
# precedence when two are equally likely.
INTENT_NAMES: tuple[str, ...] = ("urgent", "booking", "human", "greeting", "thanks")

# Fixed texts every deployment must provide (faq/intents.yaml, key ``texts``).
REQUIRED_TEXTS: tuple[str, ...] = (
    "welcome",
    "help",
    "disclaimer",
    "fallback",
    "clarify",
    "related",
    "greeting",
    "thanks",
    "urgent",
    "booking",
    "human",
    "unsupported_message",
    "empty_message",
    "too_long",
    "also_asked",
    "stale_button",
    "button_human",
    "button_booking",
)


@dataclass(frozen=True)
class FaqEntry:
    """One answerable topic of the clinic's document."""

    id: str
    title: str
    questions: tuple[str, ...]
    answer: str
    follow_ups: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    section: str = ""


@dataclass(frozen=True)
class IntentVocabulary:
    """Example phrasings and cue words of a non-FAQ intent (booking, human, greeting, thanks)."""

    name: str
    phrases: tuple[str, ...]
    keywords: tuple[str, ...] = ()


@dataclass(frozen=True)
class UrgentVocabulary:
    """Word lists that recognise an urgent problem after surgery."""

    red_flags: tuple[str, ...]
    symptoms: tuple[str, ...]
    intensifiers: tuple[str, ...]
    post_op: tuple[str, ...]
    hypothetical: tuple[str, ...] = ()  # "will i bleed?" asks about a risk, it is not an emergency...
    happening_now: tuple[str, ...] = ()  # ...unless the patient says it is happening ("since yesterday")
    phrases: tuple[str, ...] = ()


@dataclass(frozen=True)
class OutOfScopeTopic:
    """A subject the document does not answer (price, anaesthesia...): its questions get the fallback."""

    topic: str
    keywords: tuple[str, ...]
    phrases: tuple[str, ...] = ()
    decisive: bool = False  # naming it at all means the fallback, whatever else the message mentions


@dataclass(frozen=True)
class Language:
    """Vocabulary for normalisation: chat shorthand, synonyms and words that carry no topic."""

    shorthand: dict[str, str] = field(default_factory=dict)
    synonyms: dict[str, tuple[str, ...]] = field(default_factory=dict)
    stopwords: frozenset[str] = frozenset()
    personal: frozenset[str] = frozenset()
    question_starters: frozenset[str] = frozenset()


@dataclass(frozen=True)
class KnowledgeBase:
    """Everything the pure core needs: FAQ entries, intents, out-of-scope topics, texts, language."""

    entries: tuple[FaqEntry, ...]
    intents: dict[str, IntentVocabulary]
    urgent: UrgentVocabulary
    out_of_scope: tuple[OutOfScopeTopic, ...]
    texts: dict[str, str]
    language: Language

    @cached_property  # cached_property writes __dict__ directly, so it works on a frozen dataclass
    def _entries_by_id(self) -> dict[str, FaqEntry]:
        return {e.id: e for e in self.entries}

    def entry(self, entry_id: str) -> FaqEntry | None:
        """The entry with this id, or None."""
        return self._entries_by_id.get(entry_id)
