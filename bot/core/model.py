"""A learned classifier of patient messages: what it reads, and how it scores (pure; numpy only).

Trained where it is cheap (``python -m bot train``, with scikit-learn, on the FAQ
phrasings, the intents, the subjects the document does not answer and patients'
labelled messages), it is answered where it is light: the bot loads the weights
and scores a message with a few dictionary look-ups and one small matrix sum.

The model is a multinomial logistic regression over TF-IDF features of
character n-grams (they survive typos, spacing slips and Korean particles) and
words (they carry meaning across longer phrases). Its probabilities are
calibrated by a temperature chosen in training (see bot.train.calibrate), so one
threshold means the same in every language (bot.core.matcher.MODEL_ANSWER).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from bot.core.knowledge import KnowledgeBase

# Inverse regularisation of the logistic regression. Five-fold cross-validation over the
# Korean examples put the right label first as often with 10 as with 30 (92%); the
# probabilities are calibrated afterwards (bot/train.py), so their scale does not hinge on it.
REGULARISATION_C = 10.0
# A feature must occur in this many training texts to be kept: rarer ones are
# mostly one patient's typo, and dropping them halves the model's size.
MIN_TEXTS_PER_FEATURE = 2
# Labels the model learns besides entries and the fallback; anything else (greeting,
# thanks, urgent) is decided by rules, which must never be learnt wrong.
LEARNT_INTENTS = ("booking", "human")

# Everything but letters and digits of any script ends a word.
_NOT_WORD = re.compile(r"[\W_]+")


@dataclass(frozen=True)
class FeatureSpec:
    """Which features a language's model reads (from its language.yaml)."""

    char_sizes: tuple[int, ...] = (2, 3, 4, 5)
    # Character n-grams inside each word (English) or across the text with spaces
    # removed (Korean: spacing slips must not matter).
    chars_across_spaces: bool = False
    word_sizes: tuple[int, ...] = (1, 2)

    def to_list(self) -> list[int]:
        """A compact form to store beside the weights."""
        return [int(self.chars_across_spaces), len(self.char_sizes), *self.char_sizes, *self.word_sizes]

    @classmethod
    def from_list(cls, values: list[int]) -> FeatureSpec:
        across, count = bool(values[0]), values[1]
        return cls(tuple(values[2 : 2 + count]), across, tuple(values[2 + count :]))


def normalise(text: str) -> str:
    """Lowercase words of letters and digits, single-spaced."""
    return " ".join(_NOT_WORD.sub(" ", unicodedata.normalize("NFKC", text).lower()).split())


def features(text: str, spec: FeatureSpec) -> list[str]:
    """The feature strings of a message: character n-grams, then ``w:`` word n-grams."""
    normal = normalise(text)
    words = normal.split()
    found: list[str] = []
    if spec.chars_across_spaces:
        squeezed = normal.replace(" ", "")
        for n in spec.char_sizes:
            found += [squeezed[i : i + n] for i in range(len(squeezed) - n + 1)]
    else:
        for word in words:
            padded = f" {word} "
            for n in spec.char_sizes:
                found += [padded[i : i + n] for i in range(len(padded) - n + 1)]
    for n in spec.word_sizes:
        found += ["w:" + " ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
    return found


@dataclass(frozen=True)
class LinearModel:
    """Trained weights: label probabilities for any text."""

    labels: tuple[str, ...]  # FAQ ids, "@booking", "@human", "@fallback"...
    index: dict[str, int]  # feature -> row of ``weights``
    idf: np.ndarray  # per feature
    weights: np.ndarray  # features x labels
    bias: np.ndarray  # per label
    spec: FeatureSpec
    fingerprint: str = ""  # of the FAQ it was trained on, examples aside (see is_current)
    temperature: float = 1.0  # calibration, already divided into weights and bias (for reports)
    learnt_examples: frozenset[int] = frozenset()  # example_key of every example it learnt from

    def probabilities(self, text: str) -> list[tuple[float, str]]:
        """Every label with its probability, most likely first."""
        counts = Counter(f for f in features(text, self.spec) if f in self.index)
        if not counts:
            scores = self.bias
        else:
            rows = np.array([self.index[f] for f in counts], dtype=np.int64)
            tf = 1.0 + np.log(np.array(list(counts.values()), dtype=np.float64))
            values = tf * self.idf[rows]
            values /= math.sqrt(float(values @ values))
            scores = values @ self.weights[rows] + self.bias
        exp = np.exp(scores - scores.max())
        probs = exp / exp.sum()
        order = np.argsort(-probs)
        return [(float(probs[i]), self.labels[i]) for i in order]


def training_set(knowledge: KnowledgeBase, *, examples: bool = True) -> list[tuple[str, str]]:
    """(text, label) pairs from one language's knowledge, in a stable order; the examples last."""
    pairs: list[tuple[str, str]] = []
    for entry in knowledge.entries:
        pairs += [(text, entry.id) for text in (*entry.questions, *entry.keywords, entry.title)]
    for name in LEARNT_INTENTS:
        if (intent := knowledge.intents.get(name)) is not None:
            pairs += [(text, "@" + name) for text in (*intent.phrases, *intent.keywords)]
    for topic in knowledge.out_of_scope:
        pairs += [(text, "@fallback") for text in (*topic.phrases, *topic.keywords)]
    if examples:
        for label, messages in knowledge.examples.items():
            pairs += [(message, label) for message in messages]
    return pairs


def spec_of(knowledge: KnowledgeBase) -> FeatureSpec:
    """The features a language reads: its language.yaml's n-gram settings, or English's defaults."""
    language = knowledge.language
    if language.ngram_sizes:
        return FeatureSpec(char_sizes=language.ngram_sizes, chars_across_spaces=language.script != "LATIN", word_sizes=(1,))
    return FeatureSpec()


def fingerprint(knowledge: KnowledgeBase) -> str:
    """The FAQ a model learns from, examples aside, in 16 hex digits (the same FAQ, the same digits).

    Examples are left out: one an operator adds is known to the similarity ranking at
    once (see fresh_examples), and only an edit of entries, intents or subjects makes a
    model out of date.
    """
    spec = spec_of(knowledge)
    curated = sorted(training_set(knowledge, examples=False))
    digest = hashlib.sha256(json.dumps([spec.to_list(), REGULARISATION_C, MIN_TEXTS_PER_FEATURE, curated], ensure_ascii=False).encode())
    return digest.hexdigest()[:16]


def is_current(model: LinearModel, knowledge: KnowledgeBase) -> bool:
    """Whether ``model`` was trained on this FAQ (an operator may have edited it since)."""
    return model.fingerprint == fingerprint(knowledge)


def usable(model: LinearModel | None, knowledge: KnowledgeBase) -> LinearModel | None:
    """``model`` if every label it gives still exists, else None.

    An edit since training (a new phrasing, a changed intent) leaves the model a little
    behind, and `faq check` says to retrain; dropping it would answer far worse meanwhile
    (on real questions, 18% wrong instead of 4%), while the similarity ranking knows the
    edit at once. A removed or renamed entry is another matter: the model could answer it.
    """
    if model is None:
        return None
    known = {e.id for e in knowledge.entries} | {"@" + name for name in LEARNT_INTENTS} | {"@fallback"}
    return model if set(model.labels) <= known else None


def example_key(text: str) -> int:
    """A stable 64-bit key of an example's text, its case and spacing aside."""
    return int.from_bytes(hashlib.blake2b(normalise(text).encode(), digest_size=8).digest(), "big")


def fresh_examples(knowledge: KnowledgeBase, model: LinearModel | None) -> dict[str, tuple[str, ...]]:
    """The examples ``model`` has not learnt (all of them without a model): what the
    similarity ranking must index so that an operator's new example works before retraining."""
    if model is None:
        return knowledge.examples
    fresh = {label: tuple(m for m in messages if example_key(m) not in model.learnt_examples) for label, messages in knowledge.examples.items()}
    return {label: messages for label, messages in fresh.items() if messages}
