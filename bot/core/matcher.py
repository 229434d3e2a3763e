"""Decide what a patient's message is about (pure: text in, :class:`Match` out).

Every FAQ entry, every intent (booking, human...) and every subject the
document does not answer (price, anaesthesia...) is a *candidate* with
phrasings. A message is compared with each phrasing on canonical terms
weighted by rarity (IDF), combining two signals:

* how much of the phrasing the message covers, and how much of the message the
  phrasing explains (an F-score of the two, recall-leaning so that a patient's
  personal story around the question does not drown it);
* how much of the message the candidate's whole vocabulary explains.

Patients wrap questions in stories ("I'm 37, two kids... is this for someone
like me?"). The message is split into clauses; the ones that ask (a question
mark, a question word, "I want...") decide what a subject named in passing
means, and their own answers settle a whole message the matcher cannot.
Subjects the bot must never seem to answer (price, risks, anaesthesia...) are
"decisive": named in the asking part, they always mean the fallback.

One raw fuzzy ratio cannot do this job: on our evaluation a plain WRatio
answers under 10% of in-scope questions correctly, and token_set_ratio
answers most out-of-scope questions with some FAQ entry, because a single
shared word ("lift") already scores high. Typos are handled earlier, by
correcting words against the vocabulary (see :mod:`bot.core.analysis`).
"""

from __future__ import annotations

import bisect
import math
from itertools import zip_longest
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Literal

from rapidfuzz import fuzz, process

from bot.core.analysis import HINT, Analyzer
from bot.core.knowledge import CONTACT_TOPIC, UNANSWERED_EXAMPLES, KnowledgeBase, OutOfScopeTopic, UrgentVocabulary
from bot.core.model import LinearModel, fresh_examples, usable
from bot.core.text import bare, clauses, clean, marked_clauses, words

CandidateKind = Literal["faq", "intent", "out_of_scope"]

# Thresholds on the 0-100 score, tuned on ../shared/eval/dev.yaml and the sets
# in tests/eval/ (see `python -m bot eval`).
ANSWER_SCORE = 50.0  # at or above: answer directly (if clearly ahead)
SUGGEST_SCORE = 30.0  # at or above: worth offering as "did you mean"
CLEAR_MARGIN = 10.0  # the best must lead the runner-up by this much to answer outright
MAX_SUGGESTIONS = 3
SECOND_OPINION_SCORE = 40.0
SECOND_OPINION_CHARS = 120  # see _decide
# An answer needs this much IDF weight of the message's words in the entry's vocabulary.
MIN_EVIDENCE = 2.0  # below this the words are too weak for any second opinion to settle it
MATCH_CACHE = 4_096  # distinct messages whose classification is remembered
MATCH_CACHE_CHARS = 200
RANK_DEPTH = 12  # candidates kept per ranking: enough for suggestions and rivals
COMMON_POSTINGS = 2_000  # see Matcher.rank_terms
# Examples are not listed under a word more of them use than this (see Matcher.__init__):
# 100 halved the walk with no change on any evaluation set; 50 began to cost answers.
WIDESPREAD_IN_EXAMPLES = 100
# An FAQ entry beats an out-of-scope subject named in the message only by this much.
OUT_OF_SCOPE_CUE_MARGIN = 5.0
# Below this share of known words a message is treated as another language. English
# messages in our evaluation never fall below 0.5, however much story they tell.
FOREIGN_SHARE = 0.5
# Weight of a word the FAQ never uses. Lower than a typical topic word: a
# patient's context ("my friend recommended...") should dilute, not veto.
UNKNOWN_WEIGHT = 1.2
# Recall-leaning F-score: covering the phrasing matters more than covering the message.
BETA = 2.0
# Share of the best-phrasing similarity in the score; the rest is vocabulary coverage.
# With thousands of patients' examples (faq/examples.yaml) the nearest phrasing says
# more than before: cross-validated over the examples, 0.75 beat 0.6 and 0.85.
PHRASING_SHARE = 0.75

CLAUSE_BOUNDARY = ""  # never a term
# Weight of an implied term ("~young" from "im 31") against the word itself: an
# age in a story is context, not the topic; 0.5 was best on our evaluation.
HINT_WEIGHT = 0.5
# When the asking clause's answer trails the whole message's favourite by this
# much in the whole-message ranking, the two disagree: offer both, answer neither.
DISAGREEMENT_MARGIN = 10.0
SOCIAL_INTENTS = ("greeting", "thanks")
# Past this many other words, a question beside a courtesy is a question ("How many facelifts
# does one get in life? ... Thanks in advance!"), even if nothing we know answers it.
COURTESY_REST_WORDS = 8
FALLBACK_LABEL = "@fallback"  # the examples' label for questions the document does not answer
# Examples of one candidate that must use a word before it counts as that candidate's
# word in term weights (see Matcher._inverse_document_frequency). Cross-validated
# over the examples: 10 and 20 did best; counting every stray word answered
# 1.5 points fewer questions directly.
EXAMPLES_TO_COUNT = 10

# The trained classifier (bot.core.model) has the last word over the similarity ranking
# once the rules (urgent, courtesies, decisive subjects) have spoken. Tuned by
# cross-validation over the real questions among the examples (see bot/train.py):
MODEL_ANSWER = 0.5  # a label at least this probable is the answer (an entry, a request, or the fallback)
MODEL_SUGGEST = 0.12  # entries at least this probable are offered as "did you mean" (or as related topics)
MAX_RELATED = 2  # related topics under the honest fallback, after staff and booking
# A booking or handoff read by the model alone needs this much (see with_model).
MODEL_REQUEST = 0.8

Intent = Literal["faq", "clarify", "booking", "human", "greeting", "thanks", "urgent", "fallback"]


@dataclass(frozen=True)
class Candidate:
    """Something a message can be about."""

    kind: CandidateKind
    key: str  # FAQ id, intent name or out-of-scope topic


@dataclass(frozen=True)
class Match:
    """What the matcher decided about one message."""

    intent: Intent
    faq_id: str | None = None
    suggestions: tuple[str, ...] = ()
    score: float = 0.0
    also_asked: str | None = None  # a second question in the same message, offered as a follow-up
    more_asked: tuple[str, ...] = field(default=(), compare=False)  # a third, a fourth... likewise
    topic: str | None = None  # the out-of-scope subject behind a fallback, when known
    empty: bool = False
    # Which rule decided, for `python -m bot explain`; not part of the decision itself.
    reason: str = field(default="", compare=False)
    # Only words every topic uses ("lift", "face"): no reader, learnt or not, may pick one.
    generic: bool = field(default=False, compare=False)
    # The answer rests on an example the classifier has not learnt yet (an operator's new
    # one): it stands until `python -m bot train` folds it in.
    taught: bool = field(default=False, compare=False)


@dataclass
class Ranked:
    """Scores of candidates for one piece of text, best first."""

    scores: list[tuple[float, int]] = field(default_factory=list)
    taught: frozenset[int] = frozenset()  # candidates whose nearest phrasing is a not-yet-learnt example

    def best(self) -> tuple[float, int] | None:
        return self.scores[0] if self.scores else None


class Matcher:
    """Index of the knowledge base; :meth:`match` classifies a message."""

    def __init__(self, knowledge: KnowledgeBase) -> None:
        self.knowledge = knowledge
        self.candidates: list[Candidate] = []
        texts_by_candidate: list[list[str]] = []
        for entry in knowledge.entries:
            self.candidates.append(Candidate("faq", entry.id))
            texts_by_candidate.append([*entry.questions, *entry.keywords, entry.title])
        for name, intent in knowledge.intents.items():
            if name in SOCIAL_INTENTS:
                continue  # recognised by their cue words alone, see _social_intent
            self.candidates.append(Candidate("intent", name))
            texts_by_candidate.append([*intent.phrases, *intent.keywords])
        for topic in knowledge.out_of_scope:
            self.candidates.append(Candidate("out_of_scope", topic.topic))
            texts_by_candidate.append([*topic.phrases, *topic.keywords])
        urgent = knowledge.urgent
        vocabulary = [t for texts in texts_by_candidate for t in texts]
        for name in SOCIAL_INTENTS:
            if name in knowledge.intents:
                vocabulary += [*knowledge.intents[name].phrases, *knowledge.intents[name].keywords]
        vocabulary += [*urgent.red_flags, *urgent.symptoms, *urgent.intensifiers, *urgent.post_op, *urgent.phrases]
        self.analyzer = Analyzer(knowledge.language, vocabulary)

        curated_sets = [[frozenset(self.analyzer.terms(t, correct_typos=False)) for t in texts] for texts in texts_by_candidate]
        # The classifier, unless the FAQ no longer has a label it gives (see usable).
        self.model = usable(knowledge.model, knowledge)
        # Patients' examples are phrasings too, and their words count like the FAQ's: an
        # operator who teaches "pelican pouch" under an entry expects it to work at once
        # (though typos of such a word are corrected only once the language data has it).
        # The examples the classifier learnt are its to know: indexing them too cost most
        # of the start-up and of the time per message, and measured no better.
        example_sets = self._example_term_sets(fresh_examples(knowledge, self.model))
        in_examples = Counter(t for sets in example_sets.values() for terms in sets for t in terms)
        # Words the examples taught ("turkeyneck") are English for the other-language check.
        self.analyzer.count_as_english(in_examples)
        texts_by_candidate += [[] for _ in range(len(self.candidates) - len(texts_by_candidate))]
        curated_sets += [[] for _ in range(len(self.candidates) - len(curated_sets))]
        term_sets = [sets + example_sets.get(index, []) for index, sets in enumerate(curated_sets)]
        self._idf = self._inverse_document_frequency(curated_sets, example_sets)
        self._vocab: list[frozenset[str]] = [frozenset().union(*sets) for sets in term_sets]
        # Cleaned phrasings per candidate, for the character-level second opinion.
        self._phrasing_texts: list[list[str]] = [[clean(t) for t in texts] for texts in texts_by_candidate]
        # Phrasings as parallel lists, for speed: their candidate, their terms, and
        # their weight times BETA² (see rank_terms); postings list them by term.
        self._phrasing_candidate: list[int] = []
        self._phrasing_terms: list[frozenset[str]] = []
        self._phrasing_scaled_weight: list[float] = []
        self._partly_listed: list[bool] = []  # listed under some of its terms only (below)
        self._postings: dict[str, list[int]] = defaultdict(list)
        # Words in so many examples ("what", "lift", "face") that listing the examples
        # under them would make every message walk thousands of stories. Each example is
        # listed under its other words only; rank_terms adds those words' weight for the
        # examples it finds. An example made only of such words is listed under all.
        self._widespread = frozenset(t for t, count in in_examples.items() if count > WIDESPREAD_IN_EXAMPLES)
        for index, sets in enumerate(curated_sets):
            for terms in set(sets):
                self._add_phrasing(index, terms, terms)
        self._first_taught = len(self._phrasing_terms)  # phrasings from here on are examples
        for index, sets in example_sets.items():
            for terms in set(sets) - set(curated_sets[index]):
                self._add_phrasing(index, terms, terms - self._widespread or terms)
        self._candidate_index = {(c.kind, c.key): i for i, c in enumerate(self.candidates)}
        self._starters: dict[str, list[tuple[str, ...]]] = defaultdict(list)
        for starter in knowledge.language.question_starters:
            if starter_words := tuple(starter.split()):
                self._starters[starter_words[0]].append(starter_words)
        # Cue phrases by their first word, longest first, thanks before greetings.
        self._social_cues: dict[str, list[tuple[tuple[str, ...], str]]] = defaultdict(list)
        for intent in ("thanks", "greeting"):
            for cue in self._cues(intent):
                self._social_cues[cue[0]].append((cue, intent))
        for cues in self._social_cues.values():
            cues.sort(key=lambda item: -len(item[0]))
        # From the curated files only: a patient's story under an entry ("...cost me a
        # fortune elsewhere") must not stop "cost" from naming the price.
        faq_and_intent_terms = frozenset().union(
            *(terms for i, c in enumerate(self.candidates) if c.kind != "out_of_scope" for terms in curated_sets[i])
        )
        self._out_of_scope_cues = self._cues_of(knowledge.out_of_scope, faq_and_intent_terms)
        # Each subject's own cues, to name the subject of a fallback (the clinic's contact
        # details are answered from the operator's facts; see Dialogue).
        self._topic_cues = [(topic.topic, self._cues_of([topic], faq_and_intent_terms)) for topic in knowledge.out_of_scope]
        # Per decisive topic: its cues, and the words that make it an ordinary rival ("unless").
        self._decisive: dict[int, tuple[_Cues, _Cues]] = {
            self._candidate_index[("out_of_scope", topic.topic)]: (
                self._cues_of([topic], faq_and_intent_terms),
                _Cues.of_phrases(self.analyzer.terms(u, correct_typos=False) for u in topic.unless),
            )
            for topic in knowledge.out_of_scope
            if topic.decisive
        }
        # The same short messages come again and again ("hi", "price?", "thank you"):
        # a bounded cache of the pure result saves the whole analysis for them.
        self._cached_match = lru_cache(maxsize=MATCH_CACHE)(self._match)
        self._urgent = _UrgentRules(self.analyzer, urgent, knowledge.language.personal)
        self._whole_social = whole_message_courtesies(knowledge)
        own = knowledge.own_surgery
        self._own_surgery = tuple(_UrgentRules._phrases(words) for words in (own.cues, own.since, own.operations, own.unless))

    def _add_phrasing(self, candidate: int, terms: frozenset[str], listed_under: frozenset[str]) -> None:
        if terms:
            for term in listed_under:
                self._postings[term].append(len(self._phrasing_terms))
            self._phrasing_candidate.append(candidate)
            self._phrasing_terms.append(terms)
            self._phrasing_scaled_weight.append(BETA * BETA * sum(self._idf[t] for t in terms))
            self._partly_listed.append(listed_under != terms)

    def _inverse_document_frequency(
        self, curated_sets: list[list[frozenset[str]]], example_sets: dict[int, list[frozenset[str]]]
    ) -> dict[str, float]:
        """How telling each term is: rare across candidates weighs more.

        A candidate counts for a term when its curated phrasings use it, or when
        EXAMPLES_TO_COUNT of its examples do: one story under "scars" mentioning a
        "candidate" must not make that word common. A term no candidate uses that
        often counts every candidate whose examples have it at all.
        """
        regular: dict[str, int] = defaultdict(int)
        anywhere: dict[str, int] = defaultdict(int)
        for index, sets in enumerate(curated_sets):
            in_examples: dict[str, int] = defaultdict(int)
            for terms in example_sets.get(index, ()):
                for term in terms:
                    in_examples[term] += 1
            own = frozenset().union(*sets)
            for term in own | {t for t, count in in_examples.items() if count >= EXAMPLES_TO_COUNT}:
                regular[term] += 1
            for term in own | in_examples.keys():
                anywhere[term] += 1
        n = len(self.candidates)
        return {term: math.log(1 + n / regular.get(term, count)) for term, count in anywhere.items()}

    def _example_term_sets(self, examples: dict[str, tuple[str, ...]]) -> dict[int, list[frozenset[str]]]:
        """Terms of patients' labelled messages by the candidate that answers them,
        analysed as incoming messages are (typos corrected, as patients typed them).

        Adds the candidate the @fallback examples make, so it runs before anything
        sized by the candidates (term weights, the candidate index)."""
        targets = {("@" if c.kind == "intent" else "") + c.key: i for i, c in enumerate(self.candidates) if c.kind != "out_of_scope"}
        if examples.get(FALLBACK_LABEL):
            # Questions the document does not answer, as patients asked them: a rival
            # that leads to the fallback, like the out-of-scope topics of intents.yaml.
            self.candidates.append(Candidate("out_of_scope", UNANSWERED_EXAMPLES))
            targets[FALLBACK_LABEL] = len(self.candidates) - 1
        found: dict[int, list[frozenset[str]]] = defaultdict(list)
        for label, messages in examples.items():
            if (index := targets.get(label)) is not None:
                found[index] += (frozenset(t for t in self.analyzer.terms(m) if not t.startswith(HINT)) for m in messages)
        return found

    def _cues_of(self, topics: Iterable[OutOfScopeTopic], shared: frozenset[str]) -> _Cues:
        """The keywords of out-of-scope topics as term sequences.

        A one-word cue the FAQ or an intent also uses ("face") tells nothing;
        a several-word cue ("go home same day") counts only as a whole phrase,
        so that "home" or "day" in a patient's story is no cue on its own.
        """
        keywords = (self.analyzer.terms(k, correct_typos=False) for topic in topics for k in topic.keywords)
        return _Cues.of_phrases(terms for terms in keywords if len(terms) > 1 or terms and terms[0] not in shared)

    def _cues(self, intent: str) -> tuple[tuple[str, ...], ...]:
        """Cue phrases of a social intent as word tuples, longest first."""
        vocab = self.knowledge.intents.get(intent)
        phrases = {tuple(words(k)) for k in vocab.keywords} if vocab else set()
        return tuple(sorted((p for p in phrases if p), key=len, reverse=True))

    # -- scoring ---------------------------------------------------------------
    def weight(self, term: str) -> float:
        return self._idf.get(term, UNKNOWN_WEIGHT)

    def rank(self, text: str) -> Ranked:
        """Score every candidate that shares a term with ``text`` (0-100), best first."""
        return self.rank_terms(frozenset(self.analyzer.terms(text)))

    def rank_terms(self, terms: frozenset[str]) -> Ranked:
        """The best-scoring candidates for these terms (at most RANK_DEPTH), best first."""
        weights = {t: self.weight(t) for t in terms if not t.startswith(HINT)}
        for hint in terms:
            # A hint ("~young" from "im 31") counts as its word, but weakly.
            if hint.startswith(HINT) and hint[len(HINT) :] not in weights:
                weights[hint[len(HINT) :]] = HINT_WEIGHT * self.weight(hint[len(HINT) :])
        terms = frozenset(weights)
        query_weight = sum(weights.values())
        known = [t for t in terms if t in self._idf]
        if not known:
            return Ranked()
        # On very large FAQs a few words sit in tens of thousands of phrasings;
        # walking those lists dominated the time. They are added only to the
        # phrasings the rarer words found. The real FAQ never reaches the limit.
        rare = [t for t in known if len(self._postings[t]) <= COMMON_POSTINGS] or known
        common = [t for t in known if t not in rare]
        overlap: dict[int, float] = {}
        get = overlap.get
        for term in rare:
            w = weights[term]
            for p in self._postings[term]:
                overlap[p] = get(p, 0.0) + w
        # The F-score of precision s/Q and recall s/W (s: the weight shared, Q: the
        # message's, W: the phrasing's) is (1 + b²)·s / (b²·W + Q); b²·W is stored.
        # Thousands of example phrasings pass through here, so the loop stays bare.
        best_phrasing: dict[int, float] = {}
        best = best_phrasing.get
        candidate_of, scaled_weight, terms_of = self._phrasing_candidate, self._phrasing_scaled_weight, self._phrasing_terms
        unlisted = [t for t in rare if t in self._widespread]
        partly_listed = self._partly_listed
        nearest: dict[int, int] = {}
        for p, shared in overlap.items():
            if common:
                shared += sum(weights[t] for t in common if t in terms_of[p])
            if unlisted and partly_listed[p]:
                shared += sum(weights[t] for t in unlisted if t in terms_of[p])
            f = shared / (scaled_weight[p] + query_weight)
            if f > best(candidate_of[p], 0.0):
                best_phrasing[candidate_of[p]] = f
                nearest[candidate_of[p]] = p
        scale = 1 + BETA * BETA
        for candidate in best_phrasing:
            best_phrasing[candidate] *= scale
        # Coverage can add at most (1 - PHRASING_SHARE) * 100, so candidates are
        # visited by phrasing similarity and the walk stops once none can enter the top.
        scores: list[tuple[float, int]] = []
        for candidate, similarity in sorted(best_phrasing.items(), key=lambda item: -item[1]):
            if len(scores) >= RANK_DEPTH and 100 * (PHRASING_SHARE * similarity + 1 - PHRASING_SHARE) < scores[RANK_DEPTH - 1][0]:
                break
            vocab = self._vocab[candidate]
            coverage = sum(w for t, w in weights.items() if t in vocab) / query_weight
            score = round(100 * (PHRASING_SHARE * similarity + (1 - PHRASING_SHARE) * coverage), 1)
            bisect.insort(scores, (score, candidate), key=lambda s: (-s[0], s[1]))
            del scores[RANK_DEPTH:]
        taught = frozenset(c for _, c in scores if nearest[c] >= self._first_taught) if self.model is not None else frozenset()
        return Ranked(scores, taught)

    # -- decision --------------------------------------------------------------
    def match(self, text: str) -> Match:
        """Classify one patient message."""
        # Only short texts are cached, so the cache stays small whatever patients send.
        return self._cached_match(text) if len(text) <= MATCH_CACHE_CHARS else self._match(text)

    def _match(self, text: str) -> Match:
        if courtesy := self._whole_social.get(bare(text)):
            return Match(courtesy, score=100.0, reason=f"the whole message is a {courtesy} phrase")  # type: ignore[arg-type]
        if not text or not any(ch.isalnum() for ch in text):
            return Match("fallback", empty=not text.strip(), reason="no letters or digits")
        if self._urgent.matches(text):
            return Match("urgent", score=100.0, reason="urgent signs after surgery")
        surface = self.analyzer.surface_words(text)
        if len(surface) >= 3 and sum(self.analyzer.is_english(w) for w in surface) < FOREIGN_SHARE * len(surface):
            # Mostly words our vocabulary has never seen: another language ("¿Cuánto
            # cuesta el lifting SMAS?"). A stray shared word ("lifting") must not
            # pick an FAQ entry; staff can answer in the patient's language.
            return Match("fallback", topic="other-language", reason="mostly words of another language")
        social, rest = self._split_social(surface)
        if social is not None:
            rest_terms = self.analyzer.terms(" ".join(rest))
            if not rest_terms:
                return Match(social, score=100.0, reason=f"{social} and nothing else")
            about_rest = self._decide(self.rank_terms(frozenset(rest_terms)), rest_terms)
            if about_rest.intent in ("booking", "human") and self.model is not None:
                # "ok thanks, that's all I needed" asks for no one: the classifier must see the request too.
                about_rest = with_model(self.model, " ".join(rest), about_rest)
            if about_rest.intent in ("booking", "human"):
                return about_rest  # "thanks, i'd like to book" is a booking
            nothing_known = about_rest.intent == "fallback" and about_rest.topic is None and about_rest.score < SUGGEST_SCORE
            if nothing_known and not (len(rest) > COURTESY_REST_WORDS and "?" in text):
                return Match(social, score=100.0, reason=f"{social}; the rest asks nothing we know")  # "hi there, anyone online?"
            # "heyy quick q whats a mini smas lift" asks too, without a question mark.
            asks = any(w in self.knowledge.language.question_starters for w in rest) and about_rest.intent == "faq"
            # So does "hi what exactly is the smas mini lift", even where its words alone are too close to call.
            asks = asks or (about_rest.intent == "clarify" and self._starts_a_question(" ".join(rest)))
            if not self._is_question(text) and not asks:
                return Match(social, score=100.0, reason=f"{social}; no question asked")  # "got it, thanks for explaining"
        terms = self.analyzer.terms(text)
        parts = marked_clauses(text)
        # In a story around a question only the asking part can name a subject we
        # must not answer: "my mum says I look older, which hurts. is this what the
        # lift is for?" asks nothing about pain. What is not about the patient
        # ("total cost incl. fat grafting?") is no story, so it counts too.
        asking = [asked_part for clause, question_mark in parts if (asked_part := self._asking_part(clause, question_mark)) is not None]
        story_around = len(parts) > 1 or bool(asking and asking[0] != parts[0][0])
        # A boundary between clauses, so that no cue phrase spans two of them.
        asked = tuple(t for part in asking for t in (*self.analyzer.terms(part), CLAUSE_BOUNDARY)) if story_around and asking else terms
        ranked = self.rank_terms(frozenset(terms))
        decision = self._decide(ranked, terms, text, asked=asked)
        # A request read from a whole story is checked against what its clauses ask too:
        # "Last clinic I visited did a 5 min consult. How thorough is yours?" books nothing.
        if decision.intent in ("faq", "clarify", "fallback", "booking", "human") and self._decisive_subject(asked) is None:
            decision = self._consider_clauses(parts, decision, ranked)
            if self.model is not None and not self._names_its_subject(decision, asked):
                asked_text = " ".join(asking) if story_around and asking else ""
                decision = with_model(self.model, text, decision, asked=asked_text)
            if decision.intent in ("faq", "clarify") and self._tells_of_own_surgery(text):
                return Match("fallback", score=decision.score, topic="own-surgery", reason="the patient's own operation: for staff")
        if decision.intent == "fallback" and (named := next((t for t, cues in self._topic_cues if cues.found_in(asked)), None)):
            decision = replace(decision, topic=named)
        return decision

    def _names_its_subject(self, decision: Match, asked: tuple[str, ...]) -> bool:
        """A question about the clinic's whereabouts, named so by the asking part and ranked
        so ("where is your clinic?"): its answer is the operator's facts, and the classifier,
        which learnt "clinic" from choosing one, is not asked. (Other subjects gain nothing
        from this: their words are shared with entries the examples teach.)"""
        topics = dict(self._topic_cues)
        return decision.intent == "fallback" and decision.topic == CONTACT_TOPIC and topics[CONTACT_TOPIC].found_in(asked)

    def _tells_of_own_surgery(self, text: str) -> bool:
        """An operation the patient has had (see OwnSurgeryVocabulary)."""
        cues, since, operations, unless = (self._urgent.found(text, patterns) for patterns in self._own_surgery)
        return (cues or (since and operations)) and not unless

    def _asking_part(self, clause: str, question_mark: bool) -> str | None:
        """What of a clause asks: from its question on ("someone on youtube said X, how does..."),
        the whole of it if it ends with "?" or tells no story, else nothing."""
        question = self._question_in(clause)
        if question is not None:
            return question
        return clause if question_mark or not self._tells_a_story(clause) else None

    def _tells_a_story(self, clause: str) -> bool:
        """Whether the clause speaks of the patient or of other people ("my mum...", "someone said...")."""
        language = self.knowledge.language
        return any(w in language.personal or w in language.others for w in self.analyzer.surface_words(clause))

    def _decisive_subject(self, asked: tuple[str, ...]) -> int | None:
        """The decisive out-of-scope topic the asking part names (price, risks...), if any."""
        return next((i for i, (cues, unless) in self._decisive.items() if cues.found_in(asked) and not unless.found_in(asked)), None)

    def _split_social(self, surface: list[str]) -> tuple[Literal["greeting", "thanks"] | None, list[str]]:
        """Find greeting or thanks cue phrases; return the intent (thanks wins) and the other words."""
        found: Literal["greeting", "thanks"] | None = None
        rest: list[str] = []
        i = 0
        while i < len(surface):
            hit = next(
                ((cue, intent) for cue, intent in self._social_cues.get(surface[i], ()) if tuple(surface[i : i + len(cue)]) == cue),
                None,
            )
            if hit is None:
                rest.append(surface[i])
                i += 1
                continue
            cue, intent = hit
            if found != "thanks":
                found = intent  # type: ignore[assignment]
            i += len(cue)
        return found, rest

    def _starts_a_question(self, clause: str) -> bool:
        return self._question_in(clause) is not None

    def _question_in(self, clause: str) -> str | None:
        """The clause from where it starts asking, or None.

        Commas too: "hey!! quick q, is the neck treated" asks after the comma,
        unless a relative clause starts there ("my mum says I look older, which hurts").
        """
        language = self.knowledge.language
        parts = clause.split(",")
        for position, part in enumerate(parts):
            surface = self.analyzer.surface_words(part)
            if not surface or (position > 0 and surface[0] in language.relative_pronouns):
                continue
            # Starters may be several words: "i want to talk to the doctor" asks too.
            if any(tuple(surface[: len(starter)]) == starter for starter in self._starters.get(surface[0], ())):
                return ",".join(parts[position:])
        return None

    def _is_question(self, text: str) -> bool:
        """A question mark, or a clause that asks something other than a courtesy
        ("thank you for explaining, have a nice day" asks nothing)."""
        if "?" in text:
            return True
        asking = (self._question_in(c) for c in clauses(text))
        return any(part is not None and self._split_social(self.analyzer.surface_words(part))[1] for part in asking)

    def _second_opinion(self, text: str, ranked: Ranked) -> int | None:
        """The ranked candidate whose phrasing is closest to ``text`` character by character."""
        query = clean(text)
        best: tuple[float, int] | None = None
        for _, index in ranked.scores:
            found = process.extractOne(query, self._phrasing_texts[index], scorer=fuzz.token_set_ratio)
            if found is not None and (best is None or found[1] > best[0]):
                best = (found[1], index)
        return best[1] if best else None

    def _decide(self, ranked: Ranked, terms: tuple[str, ...], text: str = "", *, asked: tuple[str, ...] | None = None) -> Match:
        """Pick the outcome for a ranking; ``asked``: the terms of the part that asks (default: all)."""
        best = ranked.best()
        asked = terms if asked is None else asked
        # Naming price, risks, anaesthesia... always means the fallback: an FAQ
        # topic named beside it ("the lift with fat grafting, how much?") is
        # exactly where a wrong answer would look like a medical or money fact.
        topic_index = self._decisive_subject(asked)
        if topic_index is not None:
            topic_score = next((s for s, i in ranked.scores if i == topic_index), best[0] if best else 0.0)
            topic = self.candidates[topic_index].key
            return Match("fallback", score=topic_score, topic=topic, reason=f"the asking part names a decisive subject: {topic}")
        if best is None or best[0] < SUGGEST_SCORE:
            return Match("fallback", score=best[0] if best else 0.0, reason=f"no candidate reaches {SUGGEST_SCORE:g}")
        score, index = best
        candidate = self.candidates[index]
        runner_up = ranked.scores[1][0] if len(ranked.scores) > 1 else 0.0
        names_out_of_scope = self._out_of_scope_cues.found_in(asked)
        if candidate.kind == "faq" and names_out_of_scope:
            # The message names something the document never covers ("cost",
            # "insurance", "anaesthesia"): unless an FAQ entry clearly wins,
            # the honest answer is the fallback, not the nearest topic.
            oos = next(((s, i) for s, i in ranked.scores if self.candidates[i].kind == "out_of_scope"), None)
            if oos is not None and oos[0] >= score - OUT_OF_SCOPE_CUE_MARGIN:
                score, index = oos
                candidate = self.candidates[index]
        if candidate.kind == "out_of_scope":
            return Match("fallback", score=score, topic=candidate.key, reason=f"nearest to a subject the document lacks: {candidate.key}")
        if candidate.kind == "intent":
            if score >= ANSWER_SCORE or score - runner_up >= CLEAR_MARGIN:
                return Match(candidate.key, score=score, reason=f"request ahead: {candidate.key}")  # type: ignore[arg-type]
            return Match("fallback", score=score, reason=f"a request too weak to act on: {candidate.key}")
        if not names_out_of_scope:
            # No word of the message belongs only to a subject the document
            # lacks, so such a subject is no real rival ("is it permanent?"
            # shares "permanent" with "how many years exactly").
            runner_up = next((s for s, i in ranked.scores[1:] if self.candidates[i].kind != "out_of_scope"), 0.0)
        suggestions = tuple(
            self.candidates[i].key for s, i in ranked.scores if self.candidates[i].kind == "faq" and s >= SUGGEST_SCORE
        )[:MAX_SUGGESTIONS]
        if sum(self.weight(t) for t in terms if t in self._vocab[index]) < MIN_EVIDENCE:
            # "face", "surgery", "lift": words every topic uses say too little to pick one.
            return Match("clarify", suggestions=suggestions, score=score, reason=f"evidence below {MIN_EVIDENCE:g}: only generic words", generic=True)
        taught = index in ranked.taught
        if score >= ANSWER_SCORE and score - runner_up >= CLEAR_MARGIN:
            return Match("faq", faq_id=candidate.key, score=score, reason=f"score >= {ANSWER_SCORE:g} and {CLEAR_MARGIN:g} ahead", taught=taught)
        # With a current classifier a long message's close call is its to settle (see
        # with_model): comparing a long story character by character with every phrasing
        # was the costliest step. A short clause ("is this what the lift is for?") still gets it.
        long_for_it = self.model is not None and len(text) > SECOND_OPINION_CHARS
        if text and not long_for_it and score >= SECOND_OPINION_SCORE and self._second_opinion(text, ranked) == index:
            # Too close to call on words alone, but the phrasing most similar
            # character by character belongs to the same entry: two different
            # signals agree, which on our evaluation never picked a wrong entry.
            return Match("faq", faq_id=candidate.key, score=score, reason="close call settled by the nearest phrasing", taught=taught)
        return Match("clarify", suggestions=suggestions, score=score, reason="too close to call: did you mean")

    def _consider_clauses(self, parts: list[tuple[str, bool]], whole: Match, ranked: Ranked) -> Match:
        """Handle messages holding several questions, or a question inside a long story."""
        if len(parts) < 2:
            return whole
        flagged = [(clause, question_mark or self._starts_a_question(clause)) for clause, question_mark in parts]
        # Only asking clauses are weighed below once there is one: a long story's other
        # clauses need no ranking of their own (a 4,096-character message stays fast).
        # A clause describing an emergency is never the question to answer.
        asking = [(clause, True) for clause, asks in flagged if asks and not self._urgent.matches(clause)]
        flagged = asking or [(clause, False) for clause, asks in flagged if not asks and not self._urgent.matches(clause)]
        decided: list[tuple[bool, Match]] = []
        for clause, asks in flagged:
            terms = self.analyzer.terms(clause)
            decided.append((asks, self._decide(self.rank_terms(frozenset(terms)), terms, clause)))
        top = ranked.best()
        if whole.intent != "faq" and top is not None and self.candidates[top[1]].kind == "intent":
            # The whole message leans to a request ("i want to talk to the doctor himself,
            # i had a thread lift that went wrong...") and a clause makes it outright.
            made = {d.intent: d for asked, d in reversed(decided) if asked and d.intent in ("booking", "human") and d.score >= ANSWER_SCORE}
            # "How do I make a reservation? I want to talk to the doctor": the booking
            # reaches a coordinator too, and it is the concrete request.
            for request in ("booking", self.candidates[top[1]].key):
                if request in made:
                    return made[request]
        if whole.intent in ("booking", "human") and not any(asked for asked, _ in decided):
            return whole  # nothing is asked but the request the whole message makes
        answered = [(asked, d) for asked, d in decided if d.intent == "faq" and d.faq_id is not None]
        if whole.intent == "faq":
            others = _others(whole.faq_id, (d.faq_id for asked, d in answered if asked))
            return replace(whole, also_asked=others[0], more_asked=others[1:]) if others else whole
        # A story around a question: trust the clauses that ask something.
        if any(asked for asked, _ in decided):
            answered = [(asked, d) for asked, d in answered if asked]
        if not answered:
            # "i'd rather talk to the doctor, can he call me? I had a bad experience...":
            # the story drowns the request, but the asking clause is clear.
            requests = [d for asked, d in decided if asked and d.intent in ("booking", "human")]
            return requests[0] if whole.intent != "faq" and len({d.intent for d in requests}) == 1 else whole
        # Several asking clauses: a generic one ("what does it do in the face?") can score
        # high on few words; what the whole message says about each answer breaks the tie.
        whole_scores = {self.candidates[i].key: s for s, i in ranked.scores}
        ordered = sorted((d for _, d in answered), key=lambda d: -(d.score + whole_scores.get(d.faq_id or "", 0.0)))
        chosen = ordered[0]
        leader = next(((s, self.candidates[i].key) for s, i in ranked.scores if self.candidates[i].kind == "faq"), None)
        if leader is not None and leader[1] != chosen.faq_id and whole_scores.get(chosen.faq_id or "", 0.0) < leader[0] - DISAGREEMENT_MARGIN:
            # The asking clause and the whole message point to different entries:
            # "is smas the same idea or something else?" after a story about threads.
            return Match("clarify", suggestions=(leader[1], chosen.faq_id or ""), score=chosen.score, reason="asking clause and whole message disagree")
        others = _others(chosen.faq_id, (d.faq_id for d in ordered))
        return replace(
            chosen, also_asked=others[0] if others else None, more_asked=others[1:], reason="the asking clause decides: " + chosen.reason
        )


def _others(answered: str | None, asked: Iterable[str | None]) -> tuple[str, ...]:
    """The other entries a message asks about, in order, once each."""
    return tuple(dict.fromkeys(e for e in asked if e and e != answered))


def with_model(model: LinearModel, text: str, similar: Match, *, asked: str = "") -> Match:
    """The decision once the trained classifier has read ``text``; ``similar``: the similarity ranking's.

    A probable label decides. A story the model cannot place is read again by its
    asking part alone (``asked``: "...which hurts. Is this what the lift is for?"),
    which decides if it is probable. Otherwise the ranking's answer stands if the model
    finds it plausible too; else the model's likely entries are offered as "did
    you mean", or, when it leans to nothing the document answers, the fallback.
    """
    if similar.generic or similar.taught:
        return similar
    ranked = model.probabilities(text)
    if similar.intent in SOCIAL_INTENTS:
        # The ranking heard a courtesy (the model learns none); only a sure request or
        # question outweighs it ("코디네이터분 계세요?" asks for a person, it greets no one).
        p_best, best = ranked[0]
        if best == FALLBACK_LABEL or p_best < MODEL_REQUEST:
            return similar
    if asked and ranked[0][0] < MODEL_ANSWER:
        asked_ranked = model.probabilities(asked)
        if asked_ranked[0][0] >= MODEL_ANSWER:
            ranked = asked_ranked
    p_best, best = ranked[0]
    shown = ", ".join(f"{label} {p:.2f}" for p, label in ranked[:3])
    if p_best >= MODEL_ANSWER:
        if best == FALLBACK_LABEL:
            return Match("fallback", score=round(100 * p_best, 1), topic=similar.topic, suggestions=related(ranked), reason=f"model: {shown}")
        if best.startswith("@"):
            # A booking or a handoff opens a conversation with staff: the model alone
            # starts one only when it is sure ("do you have english speaking staff?" asks a fact).
            if similar.intent == best[1:] or p_best >= MODEL_REQUEST:
                return Match(best[1:], score=round(100 * p_best, 1), reason=f"model: {shown}")  # type: ignore[arg-type]
            return replace(similar, reason=f"model leans to a request the ranking does not see: {shown}")
        others = _others(best, (similar.faq_id, similar.also_asked, *similar.more_asked))
        return Match(
            "faq", faq_id=best, score=round(100 * p_best, 1), also_asked=others[0] if others else None, more_asked=others[1:],
            reason=f"model: {shown}",
        )
    # The ranking's own choices are offered too, in turn with the model's: two readers
    # disagreeing is what "did you mean" is for.
    learnt = [label for p, label in ranked if not label.startswith("@") and p >= MODEL_SUGGEST]
    found = [similar.faq_id] if similar.intent == "faq" and similar.faq_id else list(similar.suggestions)
    interleaved = [label for pair in zip_longest(learnt, found) for label in pair if label]
    suggestions = tuple(dict.fromkeys(interleaved))[:MAX_SUGGESTIONS]
    if suggestions and best != FALLBACK_LABEL:
        return Match("clarify", suggestions=suggestions, score=round(100 * p_best, 1), reason=f"model unsure: {shown}")
    if suggestions and similar.intent == "clarify":
        return replace(similar, suggestions=suggestions, reason=f"model leans to the fallback, ranking unsure: {shown}")
    return Match("fallback", score=round(100 * p_best, 1), topic=similar.topic, suggestions=related(ranked), reason=f"model leans to the fallback: {shown}")


def related(ranked: list[tuple[float, str]]) -> tuple[str, ...]:
    """Entries the classifier finds plausible beside a fallback: offered as related topics,
    never as the answer (the honest reply still says the document does not answer it)."""
    return tuple(label for p, label in ranked if not label.startswith("@") and p >= MODEL_SUGGEST)[:MAX_RELATED]


def whole_message_courtesies(knowledge: KnowledgeBase) -> dict[str, str]:
    """Greeting and thanks phrases as whole messages ("ok", "👍", "알겠습니다"), by their bare form."""
    return {
        key: name
        for name in ("greeting", "thanks")
        if name in knowledge.intents
        for phrase in knowledge.intents[name].phrases
        if (key := bare(phrase))
    }


@dataclass(frozen=True)
class _Cues:
    """Words and phrases (as canonical terms) that name a subject."""

    singles: frozenset[str]
    phrases: tuple[tuple[str, ...], ...]

    @classmethod
    def of_phrases(cls, phrases: Iterable[tuple[str, ...]]) -> _Cues:
        """Cues from term sequences: one-term ones as words, longer ones as phrases."""
        kept = [p for p in phrases if p]
        return cls(frozenset(p[0] for p in kept if len(p) == 1), tuple(sorted(p for p in kept if len(p) > 1)))

    def found_in(self, terms: tuple[str, ...]) -> bool:
        if not self.singles.isdisjoint(terms):
            return True
        return any(_contains(terms, phrase) for phrase in self.phrases if phrase[0] in terms)


def _contains(terms: tuple[str, ...], phrase: tuple[str, ...]) -> bool:
    size = len(phrase)
    return any(terms[i : i + size] == phrase for i in range(len(terms) - size + 1))


_Patterns = tuple["re.Pattern[str] | None", tuple[tuple[tuple[str, ...], tuple["re.Pattern[str]", ...]], ...]]


class _UrgentRules:
    """Recognises a patient describing an urgent problem after surgery.

    Safety first: a red-flag word (bleeding, can't breathe, fever...) said about
    oneself is enough; a common symptom (swelling, pain) needs an intensifier
    ("suddenly", "a lot") and a post-operative or happening-now context.
    Word lists allow "blood + soak*" (both anywhere, any ending) because
    frightened patients do not use our word order.
    """

    def __init__(self, analyzer: Analyzer, vocab: UrgentVocabulary, personal: frozenset[str]) -> None:
        self._analyzer = analyzer
        self._red_flags = self._phrases(vocab.red_flags)
        self._symptoms = self._phrases(vocab.symptoms)
        self._intensifiers = self._phrases(vocab.intensifiers)
        self._post_op = self._phrases(vocab.post_op)
        self._hypothetical = self._phrases(vocab.hypothetical)
        self._happening_now = self._phrases(vocab.happening_now)
        self._settled = self._phrases(vocab.settled)
        self._worsening = self._phrases(vocab.worsening)
        self._personal = frozenset(personal)

    @staticmethod
    def _phrases(texts: tuple[str, ...]) -> _Patterns:
        """Patterns: phrases joined by ' + ' must all occur; a word ending in '*' matches any ending.

        Plain phrases are compiled into one alternation, so checking a message
        costs one regex search per word list (plus the few ' + ' patterns).
        """
        singles: list[str] = []
        combined: list[tuple[tuple[str, ...], tuple[re.Pattern[str], ...]]] = []
        for text in texts:
            parts = []
            literals = []
            for part in text.lower().split("+"):
                tokens = [w + "*" if raw.endswith("*") else w for raw in part.split() for w in words(raw)[:1]]
                if tokens:
                    parts.append(" ".join(re.escape(t[:-1]) + r"\S*" if t.endswith("*") else re.escape(t) for t in tokens))
                    literals.append(tokens[0].rstrip("*"))
            if len(parts) == 1:
                singles.append(parts[0])
            elif parts:
                # Each part's first word must appear in the text: a substring test
                # rules out almost every pattern before any regex runs.
                combined.append((tuple(literals), tuple(re.compile(r"(?<!\S)(?:" + p + r")(?!\S)") for p in parts)))
        alternation = re.compile(r"(?<!\S)(?:" + "|".join(singles) + r")(?!\S)") if singles else None
        return alternation, tuple(combined)

    @staticmethod
    def _find(joined: str, patterns: _Patterns) -> str | None:
        """The first of ``patterns`` in ``joined``, as the words found ("blood ... soaking"), or None."""
        alternation, combined = patterns
        if alternation is not None and (found := alternation.search(joined)):
            return found.group()
        for literals, pattern in combined:
            if all(literal in joined for literal in literals):
                parts = [part.search(joined) for part in pattern]
                if all(parts):
                    return " + ".join(part.group() for part in parts if part)
        return None

    def _has(self, joined: str, patterns: _Patterns) -> bool:
        return self._find(joined, patterns) is not None

    def matches(self, text: str) -> bool:
        return bool(self.signs(text))

    def signs(self, text: str) -> tuple[str, ...]:
        """The words that make ``text`` urgent (a red flag, or a symptom with what makes it
        acute), or nothing when it is not."""
        tokens = self._analyzer.surface_words(text)
        joined = " ".join(tokens)
        if self._has(joined, self._hypothetical) and not self._has(joined, self._happening_now):
            return ()
        personal = next((t for t in tokens if t in self._personal), None)
        post_op = self._find(joined, self._post_op)
        if flag := self._find(joined, self._red_flags):
            about = post_op or personal
            return (flag, about) if about else ()
        symptom, intensifier = self._find(joined, self._symptoms), self._find(joined, self._intensifiers)
        if symptom and intensifier:
            if self._has(joined, self._settled) and not self._has(joined, self._worsening):
                return ()  # "6 weeks post op, still numb": for staff, not an emergency
            now = self._find(joined, self._happening_now) if personal else None
            context = post_op or now
            return (symptom, intensifier, context) if context else ()
        return ()

    def found(self, text: str, patterns: _Patterns) -> bool:
        """Whether ``text`` has one of ``patterns`` (see :meth:`_phrases`)."""
        return self._has(" ".join(self._analyzer.surface_words(text)), patterns)
