"""Understand a message by character n-grams: a matcher for any language, built from data alone.

The English matcher (:mod:`bot.core.matcher`) rests on hand-made language data
(stems, synonyms, typo correction). A language added as a folder of YAML gets
this one instead, which needs nothing but the folder: FAQ questions, intent
phrases, out-of-scope phrases and urgent cues.

Character n-grams survive what patients do to words: Korean spacing slips
("스마스미니리프팅은" / "스마스 미니 리프팅이"), particles glued to nouns, chat
spellings. On our Korean measurement TF-IDF over character 1-3-grams put the
right entry first more often than a morphological analyser, at a fraction of its
start-up cost and memory (see the README's figures).

Rules decide what must never be learnt wrong, in this order:

1. an urgent problem after surgery (cue phrases, or a red flag with a sign that
   it is happening now) gets the urgent reply;
2. a decisive subject (price, anaesthesia, risks...) named anywhere gets the
   honest fallback: the document never answers those;
3. otherwise the message is compared with every phrasing: each candidate's
   score mixes its nearest phrasing with its whole vocabulary, and the best one
   answers when it is clearly ahead, else the leaders are offered as
   "did you mean", else the fallback.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from functools import lru_cache

from bot.core.knowledge import KnowledgeBase, OutOfScopeTopic
from bot.core.matcher import MODEL_ANSWER, SOCIAL_INTENTS, Candidate, Match, whole_message_courtesies, with_model
from bot.core.model import fresh_examples, usable
from bot.core.text import bare

# -- tuned constants (measured with `python -m bot eval` on the Korean sets) --------
# Cosine similarities are 0-1; the Match score is reported on 0-100 like the English matcher's.
NGRAM_ANSWER = 0.34  # best candidate at or above this answers outright (if clearly ahead)
NGRAM_SUGGEST = 0.20  # at or above: offered as "did you mean"
NGRAM_MARGIN = 0.05  # the best must lead the runner-up by this much to answer outright
NEAREST_SHARE = 0.6  # share of the nearest phrasing in a candidate's score; the rest is its centroid
# An n-gram in more than this share of all phrasings says almost nothing ("요", "나요")
# and would make every message walk most of the index.
COMMON_NGRAM_SHARE = 0.3
# The nearest-phrasing search walks only n-grams in fewer than this share of phrasings:
# a syllable like "요" lists most of them and tells nothing, and walking it cost most of
# the time per message. The centroids keep every n-gram.
NEAREST_NGRAM_SHARE = 0.03
MAX_SUGGESTIONS = 3
DEFAULT_NGRAM_SIZES = (1, 2, 3)
NGRAM_CACHE = 4_096  # distinct short messages whose reading is remembered ("네", "가격?")
NGRAM_CACHE_CHARS = 200  # only these are cached, so the cache stays small whatever is sent

_NOT_WORD = re.compile(r"[\W_]+")
# One question of several: a clause ending with a question mark; one shorter than
# MIN_CLAUSE_CHARS letters asks nothing alone.
_QUESTION = re.compile(r"[^?？!.。\n]+(?=[?？])")
MIN_CLAUSE_CHARS = 4


def squeeze(text: str) -> str:
    """Lowercase letters and digits only, without spaces: spacing slips must not matter."""
    return _NOT_WORD.sub("", unicodedata.normalize("NFKC", text).lower())


def char_ngrams(text: str, sizes: tuple[int, ...] = DEFAULT_NGRAM_SIZES) -> Counter[str]:
    """Character n-grams of the squeezed text."""
    s = squeeze(text)
    grams: Counter[str] = Counter()
    for n in sizes:
        for i in range(len(s) - n + 1):
            grams[s[i : i + n]] += 1
    return grams


@dataclass(frozen=True)
class Scored:
    """One candidate's similarity to a message, with its two parts."""

    candidate: Candidate
    score: float
    nearest: float
    centroid: float
    nearest_phrasing: str
    taught: bool = False  # the nearest phrasing is an example the classifier has not learnt


@dataclass(frozen=True)
class NgramExplanation:
    """How a message was understood: for `python -m bot explain`."""

    normalised: str
    cues: tuple[str, ...]
    ranking: tuple[Scored, ...]
    rule: str
    match: Match


class _Cues:
    """Cue phrases found by substring of the squeezed text, so "피가 안 멈춰요" also finds
    "피가안멈춰요" and a stem finds its endings ("출혈*" finds "출혈이"). Parts joined by
    " + " must all occur, in any order. A part of SHORT_CUE characters or fewer must
    start a word: "요리" (cooking) is not in "같아요 리프팅" run together."""

    def __init__(self, phrases: tuple[str, ...]) -> None:
        found: set[tuple[str, ...]] = set()
        for phrase in phrases:
            parts = tuple(p for part in phrase.split(" + ") if (p := squeeze(part)))
            if parts:
                found.add(parts)
        self.phrases = tuple(sorted(found, key=lambda parts: -sum(map(len, parts))))
        # Each part is one test in C: a substring test, or, for a short part, a look-up
        # among the message's word heads. That keeps a 4,096-character message fast.
        self._single = tuple(parts[0] for parts in self.phrases if len(parts) == 1)
        self._combined = tuple(parts for parts in self.phrases if len(parts) > 1)

    def found_in(self, squeezed: str, heads: frozenset[str]) -> tuple[str, ...]:
        """Cues in ``squeezed``, longest first; ``heads``: the message's word heads (see word_heads)."""
        found = [(part,) for part in self._single if (part in heads if len(part) <= SHORT_CUE else part in squeezed)]
        found += [parts for parts in self._combined if all(part in heads if len(part) <= SHORT_CUE else part in squeezed for part in parts)]
        if len(found) > 1:
            found.sort(key=lambda parts: -sum(map(len, parts)))
        return tuple("+".join(parts) for parts in found)


SHORT_CUE = 2


def word_heads(text: str) -> frozenset[str]:
    """The first one to SHORT_CUE characters of the squeezed text from where each word of
    the message begins: where a short cue may be found."""
    squeezed = squeeze(text)
    heads, position = set(), 0
    for word in _NOT_WORD.sub(" ", unicodedata.normalize("NFKC", text).lower()).split():
        heads.update(squeezed[position : position + size] for size in range(1, SHORT_CUE + 1))
        position += len(word)
    return frozenset(heads)


class NgramMatcher:
    """Index of one language's knowledge; :meth:`match` classifies a message."""

    def __init__(self, knowledge: KnowledgeBase) -> None:
        self.knowledge = knowledge
        self.sizes = knowledge.language.ngram_sizes or DEFAULT_NGRAM_SIZES
        self.candidates: list[Candidate] = []
        # The classifier, unless the FAQ lost a label it gives (see usable); the examples it
        # learnt are its to know, and only the others are indexed here.
        self.model = usable(knowledge.model, knowledge)
        examples = fresh_examples(knowledge, self.model)
        phrasings: list[tuple[int, str]] = []
        taught: list[tuple[int, str]] = []
        for entry in knowledge.entries:
            phrasings += [(len(self.candidates), t) for t in (*entry.questions, *entry.keywords, entry.title)]
            taught += [(len(self.candidates), t) for t in examples.get(entry.id, ())]
            self.candidates.append(Candidate("faq", entry.id))
        for name, intent in knowledge.intents.items():
            phrasings += [(len(self.candidates), t) for t in (*intent.phrases, *intent.keywords)]
            taught += [(len(self.candidates), t) for t in examples.get("@" + name, ())]
            self.candidates.append(Candidate("intent", name))
        for topic in knowledge.out_of_scope:
            phrasings += [(len(self.candidates), t) for t in (*topic.phrases, *topic.keywords)]
            self.candidates.append(Candidate("out_of_scope", topic.topic))
        if fallback_examples := examples.get("@fallback"):
            taught += [(len(self.candidates), t) for t in fallback_examples]
            self.candidates.append(Candidate("out_of_scope", "unanswered-examples"))
        first_taught = len(phrasings)
        phrasings += taught

        grams = [char_ngrams(text, self.sizes) for _, text in phrasings]
        df: Counter[str] = Counter(g for counts in grams for g in counts)
        total = len(grams)
        self._idf = {g: math.log((1 + total) / (1 + n)) + 1.0 for g, n in df.items() if n <= COMMON_NGRAM_SHARE * total}
        self._phrasing_candidate: list[int] = []
        self._phrasing_text: list[str] = []
        self._phrasing_taught: list[bool] = []  # an example the classifier has not learnt
        self._postings: dict[str, list[tuple[int, float]]] = defaultdict(list)
        centroids: list[dict[str, float]] = [defaultdict(float) for _ in self.candidates]
        seen: set[tuple[int, str]] = set()
        for position, ((candidate, text), counts) in enumerate(zip(phrasings, grams)):
            key = (candidate, squeeze(text))
            if key in seen or not key[1]:
                continue
            seen.add(key)
            vector = self._vector(counts)
            if not vector:
                continue
            index = len(self._phrasing_candidate)
            self._phrasing_candidate.append(candidate)
            self._phrasing_text.append(text)
            self._phrasing_taught.append(self.model is not None and position >= first_taught)
            for g, w in vector.items():
                if df[g] <= NEAREST_NGRAM_SHARE * total:
                    self._postings[g].append((index, w))
                centroids[candidate][g] += w
        self._centroid_postings: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for candidate, centroid in enumerate(centroids):
            norm = math.sqrt(sum(w * w for w in centroid.values())) or 1.0
            for g, w in centroid.items():
                self._centroid_postings[g].append((candidate, w / norm))
        self._index = {(c.kind, c.key): i for i, c in enumerate(self.candidates)}
        urgent = knowledge.urgent
        self._urgent_phrases = _Cues(urgent.phrases)
        self._red_flags = _Cues(urgent.red_flags)
        self._symptoms = _Cues(urgent.symptoms)
        self._intensifiers = _Cues(urgent.intensifiers)
        self._post_op = _Cues(urgent.post_op)
        self._now = _Cues(urgent.happening_now)
        self._hypothetical = _Cues(urgent.hypothetical)
        self._topic_cues = [(topic.topic, _Cues(topic.keywords)) for topic in knowledge.out_of_scope]
        self._decisive: list[tuple[OutOfScopeTopic, _Cues, _Cues]] = [
            (topic, _Cues(topic.keywords), _Cues(topic.unless)) for topic in knowledge.out_of_scope if topic.decisive
        ]
        self._whole_social = whole_message_courtesies(knowledge)
        # Greeting and thanks phrases, longest first ("안녕하세요" before "안녕").
        courtesies = {
            unicodedata.normalize("NFKC", phrase).lower().strip()
            for name in SOCIAL_INTENTS if name in knowledge.intents
            for phrase in (*knowledge.intents[name].phrases, *knowledge.intents[name].keywords)
        }
        self._courtesy_phrases = sorted((c for c in courtesies if c), key=len, reverse=True)
        own = knowledge.own_surgery
        self._own_surgery = tuple(_Cues(words) for words in (own.cues, own.since, own.operations, own.unless))
        self._settled = _Cues(urgent.settled)
        self._worsening = _Cues(urgent.worsening)
        self._cached = lru_cache(maxsize=NGRAM_CACHE)(self._explain)

    def _several_questions(self, text: str, match: Match, rule: str) -> tuple[Match, str]:
        """Several questions in one message ("흉터 남아요? 회복은요? 목도 돼요?"), each read alone
        by the classifier: the answer stands with the others offered beside it, or, when the
        whole message left the classifier unsure, the surest question is answered."""
        assert self.model is not None
        # Only what ends with a question mark asks: a story's sentences ("수술 후 6개월이 지났는데도
        #부기가...") name topics without asking about them.
        clauses = [c for c in _QUESTION.findall(text) if len(squeeze(c)) >= MIN_CLAUSE_CHARS]
        if len(clauses) < 2:
            return match, rule
        # In the order asked.
        sure = [(p, label) for clause in clauses for p, label in self.model.probabilities(clause)[:1] if p >= MODEL_ANSWER and not label.startswith("@")]
        if match.intent != "faq":
            if not sure:
                return match, rule
            p, label = max(sure)
            match, rule = Match("faq", faq_id=label, score=round(100 * p, 1)), f"the surest of several questions: {label}"
        others = tuple(dict.fromkeys(label for _, label in sure if label != match.faq_id))
        if others:
            match = replace(match, also_asked=others[0], more_asked=others[1:])
        return match, rule

    def _tells_of_own_surgery(self, squeezed: str, heads: frozenset[str]) -> bool:
        """An operation the patient has had (see OwnSurgeryVocabulary)."""
        cues, since, operations, unless = (bool(c.found_in(squeezed, heads)) for c in self._own_surgery)
        return (cues or (since and operations)) and not unless

    def _urgent(self, squeezed: str, heads: frozenset[str]) -> tuple[str, ...]:
        """The cues that make a message urgent, or nothing.

        Like the English rules, without their personal words: patients writing these
        languages often leave out "I" and "my", and a clinic's patient describing a
        red flag (bleeding that won't stop, a face that won't move) is told what to
        do at once. A common symptom needs an intensifier and a post-op or
        happening-now context. A question about a risk ("수술하면 피가 나요?") is not urgent.
        """
        if found := self._urgent_phrases.found_in(squeezed, heads):
            return found
        now = self._now.found_in(squeezed, heads)
        if self._hypothetical.found_in(squeezed, heads) and not now:
            return ()
        if flags := self._red_flags.found_in(squeezed, heads):
            return flags
        symptoms, intensifiers = self._symptoms.found_in(squeezed, heads), self._intensifiers.found_in(squeezed, heads)
        if self._settled.found_in(squeezed, heads) and not self._worsening.found_in(squeezed, heads):
            return ()  # weeks after the operation, a common symptom is for staff
        context = self._post_op.found_in(squeezed, heads) + now
        return symptoms + intensifiers + context if symptoms and intensifiers and context else ()

    def _vector(self, counts: Counter[str]) -> dict[str, float]:
        """Sublinear TF-IDF, L2-normalised; n-grams too common to tell anything are left out."""
        vector = {g: (1.0 + math.log(n)) * idf for g, n in counts.items() if (idf := self._idf.get(g)) is not None}
        norm = math.sqrt(sum(w * w for w in vector.values()))
        return {g: w / norm for g, w in vector.items()} if norm else {}

    def rank(self, text: str) -> list[Scored]:
        """Every candidate sharing an n-gram with ``text``, best first."""
        vector = self._vector(char_ngrams(text, self.sizes))
        nearest: dict[int, float] = defaultdict(float)
        for g, w in vector.items():
            for index, pw in self._postings.get(g, ()):
                nearest[index] += w * pw
        best_phrasing: dict[int, tuple[float, int]] = {}
        for index, score in nearest.items():
            candidate = self._phrasing_candidate[index]
            if score > best_phrasing.get(candidate, (0.0, -1))[0]:
                best_phrasing[candidate] = (score, index)
        centroid: dict[int, float] = defaultdict(float)
        for g, w in vector.items():
            for candidate, cw in self._centroid_postings.get(g, ()):
                centroid[candidate] += w * cw
        scored = []
        for candidate, c_score in centroid.items():
            n_score, index = best_phrasing.get(candidate, (0.0, -1))
            scored.append(
                Scored(
                    self.candidates[candidate],
                    NEAREST_SHARE * n_score + (1 - NEAREST_SHARE) * c_score,
                    n_score,
                    c_score,
                    self._phrasing_text[index] if index >= 0 else "",
                    index >= 0 and self._phrasing_taught[index],
                )
            )
        scored.sort(key=lambda s: -s.score)
        return scored

    def match(self, text: str) -> Match:
        """Classify one patient message."""
        return self.explain(text).match

    def explain(self, text: str) -> NgramExplanation:
        """The decision with everything that led to it."""
        return self._cached(text) if len(text) <= NGRAM_CACHE_CHARS else self._explain(text)

    def _past_courtesy(self, text: str) -> NgramExplanation | None:
        """What a message asks after its greeting or thanks ("안녕하세요, 흉터 많이 남나요?"),
        when that is a question or a request; None when the courtesy is all it says.

        The classifier learns no courtesy, and in its training "안녕하세요" opens many
        questions the document cannot answer, so read whole it leans to the fallback."""
        rest = unicodedata.normalize("NFKC", text).lower()
        for phrase in self._courtesy_phrases:
            rest = rest.replace(phrase, " ")
        if len(squeeze(rest)) < MIN_CLAUSE_CHARS:
            return None
        asked = self._explain(rest, past_courtesy=True)
        intent = asked.match.intent
        return asked if intent in ("faq", "booking", "human", "urgent") or (intent == "clarify" and "?" in text) else None

    def _explain(self, text: str, past_courtesy: bool = False) -> NgramExplanation:
        squeezed = squeeze(text)
        if courtesy := self._whole_social.get(bare(text)):
            return NgramExplanation(squeezed, (bare(text),), (), f"the whole message is a {courtesy} phrase", Match(courtesy, score=100.0))  # type: ignore[arg-type]
        if not squeezed:
            return NgramExplanation("", (), (), "empty", Match("fallback", empty=not text.strip()))
        heads = word_heads(text)
        urgent = self._urgent(squeezed, heads)
        if urgent:
            return NgramExplanation(squeezed, urgent, (), "urgent cues", Match("urgent", score=100.0))
        ranking = tuple(self.rank(text))
        for topic, cues, unless in self._decisive:
            found = cues.found_in(squeezed, heads)
            if found and not unless.found_in(squeezed, heads):
                return NgramExplanation(squeezed, found, ranking[:8], f"decisive subject: {topic.topic}", Match("fallback", topic=topic.topic, score=100.0))
        decided = self._decide(squeezed, ranking)
        match, rule = decided.match, decided.rule
        if self.model is not None and match.intent in ("faq", "clarify", "fallback", "booking", "human", "greeting", "thanks"):
            match = with_model(self.model, text, match)
            rule = f"{match.reason} (ranking said: {rule})"
        if match.intent in SOCIAL_INTENTS and not past_courtesy and (asked := self._past_courtesy(text)) is not None:
            return replace(asked, normalised=squeezed, rule=f"{match.intent}, then: {asked.rule}")
        if match.intent in ("faq", "clarify") and self._tells_of_own_surgery(squeezed, heads):
            match, rule = Match("fallback", score=match.score, topic="own-surgery"), "the patient's own operation: for staff"
        if self.model is not None and match.intent in ("faq", "clarify", "fallback"):
            match, rule = self._several_questions(text, match, rule)
        if match.intent == "fallback":
            if named := next((topic for topic, cues in self._topic_cues if cues.found_in(squeezed, heads)), None):
                match = replace(match, topic=named)
        return NgramExplanation(squeezed, decided.cues, ranking[:8], rule, match)

    def _decide(self, squeezed: str, ranking: tuple[Scored, ...]) -> NgramExplanation:
        def explained(rule: str, match: Match) -> NgramExplanation:
            return NgramExplanation(squeezed, (), ranking[:8], rule, match)

        if not ranking or ranking[0].score < NGRAM_SUGGEST:
            return explained("nothing close enough", Match("fallback", score=100 * ranking[0].score if ranking else 0.0))
        best = ranking[0]
        runner_up = ranking[1].score if len(ranking) > 1 else 0.0
        score = round(100 * best.score, 1)
        clearly = best.score >= NGRAM_ANSWER and best.score - runner_up >= NGRAM_MARGIN
        if best.candidate.kind == "out_of_scope" and best.score >= NGRAM_ANSWER:
            return explained("nearest to a subject the document does not answer", Match("fallback", topic=best.candidate.key, score=score))
        if clearly and best.candidate.kind == "intent":
            return explained("an intent clearly ahead", Match(best.candidate.key, score=score))  # type: ignore[arg-type]
        if clearly:
            return explained("an FAQ entry clearly ahead", Match("faq", faq_id=best.candidate.key, score=score, taught=best.taught))
        suggestions = tuple(s.candidate.key for s in ranking if s.candidate.kind == "faq" and s.score >= NGRAM_SUGGEST)[:MAX_SUGGESTIONS]
        if best.candidate.kind == "intent" and best.score >= NGRAM_ANSWER and best.candidate.key not in SOCIAL_INTENTS:
            return explained("a request ahead of the topics", Match(best.candidate.key, score=score))  # type: ignore[arg-type]
        if suggestions:
            return explained("close to several: did you mean", Match("clarify", suggestions=suggestions, score=score))
        return explained("nothing close enough", Match("fallback", score=score))
