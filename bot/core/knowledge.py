"""The knowledge the bot works from, as plain immutable data.

Built by :mod:`bot.knowledge_files` from the YAML in ``faq/``; the matcher
and the dialogue core only ever see these objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from bot.core.model import LinearModel

# Intents the bot recognises besides FAQ questions. The order is the order of
# precedence when two are equally likely.
INTENT_NAMES: tuple[str, ...] = ("urgent", "booking", "human", "greeting", "thanks")
# Labels an example message may carry besides an FAQ entry id (see KnowledgeBase.examples).
EXAMPLE_INTENT_LABELS: tuple[str, ...] = ("@booking", "@human", "@fallback")
# The out-of-scope topic the @fallback examples make; no topic of intents.yaml may take the name.
UNANSWERED_EXAMPLES = "unanswered-examples"

# The {placeholders} a text may hold: the code fills exactly these, and any other (or a
# stray brace) would break the reply at the moment a patient needs it (faq check says so).
TEXT_PLACEHOLDERS: dict[str, frozenset[str]] = {
    "urgent": frozenset({"emergency_number"}),
    "urgent_clinic_phone": frozenset({"phone"}),
    "clinic_address": frozenset({"value"}),
    "clinic_phone": frozenset({"value"}),
    "clinic_hours": frozenset({"value"}),
    "clinic_website": frozenset({"value"}),
    "also_asked": frozenset({"topic"}),
    "booking_summary": frozenset({"name", "phone", "when", "note"}),
    "staff_relay_failed": frozenset({"reason"}),
    "staff_relay_in_failed": frozenset({"reason"}),
    "staff_card_failed": frozenset({"name", "chat_id", "reason"}),
    "staff_rated": frozenset({"rating"}),
    "staff_card_written": frozenset({"time"}),
    "handoff_hours_open": frozenset({"minutes"}),
    "handoff_hours_closed": frozenset({"when"}),
    "staff_uncopyable": frozenset({"kind"}),
    "staff_uncopyable_out": frozenset({"kind"}),
}

# The out-of-scope subject answered from the operator's clinic facts (config `clinic:`).
CONTACT_TOPIC = "clinic-contact"

# Fixed texts every deployment must provide (faq/intents.yaml, key ``texts``).
REQUIRED_TEXTS: tuple[str, ...] = (
    "welcome",
    "help",
    "disclaimer",
    "fallback",
    "clarify",
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
    "button_cancel",
    "button_skip",
    "button_confirm",
    "button_edit",
    "button_share_phone",
    "button_consent_yes",
    "button_consent_no",
    "button_edit_name",
    "button_edit_phone",
    "button_edit_when",
    "button_edit_note",
    "button_close",
    "booking_ask_name",
    "booking_bad_name",
    "booking_ask_phone",
    "booking_bad_phone",
    "booking_ask_when",
    "booking_bad_when",
    "booking_ask_note",
    "booking_bad_note",
    "booking_ask_consent",
    "booking_consent_needed",
    "booking_summary",
    "booking_no_note",
    "booking_choose_edit",
    "booking_confirmed",
    "booking_cancelled",
    "booking_declined",
    "booking_resume",
    "nothing_to_cancel",
    "handoff_waiting",
    "handoff_ended_by_patient",
    "handoff_ended_by_staff",
    "handoff_reopened",
    "not_in_handoff",
    "staff_card_title",
    "staff_reason_unanswered",
    "staff_reason_requested",
    "staff_reason_urgent",
    "staff_reason_booking",
    "staff_patient_ended",
    "staff_closed",
    "staff_topic_closed",
    "staff_reopened",
    "staff_note_saved",
    "staff_patient_forgotten",
    "staff_not_staff",
    "staff_relay_failed",
    "staff_relay_in_failed",
    "staff_card_failed",
    "rating_question",
    "rating_thanks",
    "button_rate_helpful",
    "button_rate_unhelpful",
    "staff_rated",
    "staff_card_written",
    "handoff_hours_open",
    "handoff_hours_closed",
    "weekday_names",
    "staff_uncopyable",
    "staff_uncopyable_out",
    "command_start",
    "command_help",
    "command_book",
    "command_human",
    "command_end",
    "command_cancel",
    "command_forget",
    "button_forget_yes",
    "button_forget_no",
    "forget_confirm",
    "forgotten",
    "forgotten_records_kept",
    "forget_kept",
    "flood_notice",
    "staff_patient_forgot",
    "staff_patient_forgot_deleted",
    "language_name",  # the language's own name, shown to staff on a patient's card
    "urgent_clinic_phone",
    "clinic_contact",
    "clinic_address",
    "clinic_phone",
    "clinic_hours",
    "clinic_website",
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
    # Weeks or months after the operation ("6 weeks post op"), a common symptom (numbness,
    # a lump, swelling) is a question for staff, not an emergency...
    settled: tuple[str, ...] = ()
    # ...unless it is getting worse ("suddenly", "growing"). Red flags (bleeding, a face
    # that will not move, breathing) are urgent whenever they happen.
    worsening: tuple[str, ...] = ()


@dataclass(frozen=True)
class OwnSurgeryVocabulary:
    """How patients tell of an operation they have already had ("I had a facelift 3 weeks ago").

    Their own course after it (is this normal, will it go away, can it be fixed) is for
    staff: the document describes the operation, not anyone's healing or a revision.
    An operation the document itself is about (sagging after contour surgery) is named
    in ``unless``: that story is exactly what its entry answers.
    """

    cues: tuple[str, ...] = ()  # enough alone ("post op", "since my surgery")
    since: tuple[str, ...] = ()  # a time since ("3 weeks ago")...
    operations: tuple[str, ...] = ()  # ...with an operation word ("facelift")
    unless: tuple[str, ...] = ()


@dataclass(frozen=True)
class OutOfScopeTopic:
    """A subject the document does not answer (price, anaesthesia...): its questions get the fallback."""

    topic: str
    keywords: tuple[str, ...]
    phrases: tuple[str, ...] = ()
    decisive: bool = False  # naming it at all means the fallback, whatever else the message mentions
    # ...unless one of these is named too: then it is only a rival ("is a cheap clinic risky?"
    # asks about choosing a clinic, which the document does answer).
    unless: tuple[str, ...] = ()


@dataclass(frozen=True)
class BookingVocabulary:
    """Quick choices and typed answers the booking conversation understands."""

    time_options: tuple[str, ...] = ()
    yes_words: frozenset[str] = frozenset()
    no_words: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Language:
    """Vocabulary for normalisation: chat shorthand, synonyms and words that carry no topic."""

    shorthand: dict[str, str] = field(default_factory=dict)
    synonyms: dict[str, tuple[str, ...]] = field(default_factory=dict)
    stopwords: frozenset[str] = frozenset()
    personal: frozenset[str] = frozenset()
    others: frozenset[str] = frozenset()  # words telling about other people
    question_starters: frozenset[str] = frozenset()
    # Starters that, after a comma, begin a relative clause instead ("..., which hurts").
    relative_pronouns: frozenset[str] = frozenset()
    # Correctly spelt common words: never "corrected" into FAQ vocabulary.
    dictionary: frozenset[str] = frozenset()
    # The language's code: the folder's name under faq/ ("ko"), or "en" for faq/ itself.
    code: str = "en"
    # The Unicode script of its letters (the first word of their Unicode names: LATIN,
    # HANGUL...): what a message's language is told by (see bot.core.understanding).
    script: str = "LATIN"
    # Character n-gram sizes of the n-gram matcher (bot.core.ngram_matcher) for this language.
    ngram_sizes: tuple[int, ...] = ()


@dataclass(frozen=True)
class KnowledgeBase:
    """Everything the pure core needs: FAQ entries, intents, out-of-scope topics, texts, language."""

    entries: tuple[FaqEntry, ...]
    intents: dict[str, IntentVocabulary]
    urgent: UrgentVocabulary
    out_of_scope: tuple[OutOfScopeTopic, ...]
    texts: dict[str, str]
    language: Language
    booking: BookingVocabulary = BookingVocabulary()
    # Patients' own messages by what answers them: an entry id, "@booking", "@human"
    # or "@fallback" (the document does not say). More ways of asking than phrasings.
    examples: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # The same knowledge in other languages (same entry ids, own texts and vocabulary),
    # by language code; empty in a translation itself.
    translations: dict[str, KnowledgeBase] = field(default_factory=dict)
    own_surgery: OwnSurgeryVocabulary = OwnSurgeryVocabulary()
    # The trained classifier of this language (faq/model.npz, `python -m bot train`), if any.
    model: LinearModel | None = None

    @property
    def code(self) -> str:
        return self.language.code

    @property
    def languages(self) -> tuple[str, ...]:
        """Every language this knowledge speaks, the default first."""
        return (self.code, *self.translations)

    def in_language(self, code: str | None) -> KnowledgeBase:
        """This knowledge in language ``code``; the default language when it has no such translation."""
        if code is None or code == self.code:
            return self
        return self.translations.get(code, self)

    @cached_property  # cached_property writes __dict__ directly, so it works on a frozen dataclass
    def _entries_by_id(self) -> dict[str, FaqEntry]:
        return {e.id: e for e in self.entries}

    def entry(self, entry_id: str) -> FaqEntry | None:
        """The entry with this id, or None."""
        return self._entries_by_id.get(entry_id)


@dataclass(frozen=True)
class ClinicFacts:
    """The clinic's own facts from the config (``clinic:``), never from the document nor invented.

    Each value is by language code, ``"*"`` for one text in every language.
    """

    address: dict[str, str] = field(default_factory=dict)
    phone: dict[str, str] = field(default_factory=dict)
    hours: dict[str, str] = field(default_factory=dict)
    website: dict[str, str] = field(default_factory=dict)
    emergency_number: str = "119"  # Korea's; the urgent reply names it

    CONTACT_FIELDS: ClassVar[tuple[str, ...]] = ("address", "phone", "hours", "website")

    def value(self, name: str, lang: str) -> str:
        """The fact in ``lang``, else the one for every language; "" if neither (a line the
        patient cannot read helps less than the staff the fallback offers)."""
        values: dict[str, str] = getattr(self, name)
        return values.get(lang) or values.get("*", "")
