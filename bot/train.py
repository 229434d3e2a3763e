"""Train each language's classifier from its FAQ folder (``python -m bot train``).

Needs scikit-learn (``pip install -e '.[train]'``), which the running bot does
not: importing it costs about a second and 120 MB, so the bot only loads the
weights written here (``model.npz`` beside each language's FAQ file).

What it learns from, all in the FAQ folder an operator edits:
- every entry's questions, keywords and title, under the entry's id;
- the booking and staff intents' phrases, as ``@booking`` and ``@human``;
- the phrases and keywords of subjects the document does not answer, as ``@fallback``;
- patients' labelled messages (``examples.yaml``), real questions among them.
Greetings, thanks and urgent problems are left to rules: they must never be
learnt wrong ("I'd appreciate any advice" is no thanks).

The model records a fingerprint of what it learnt from; ``faq check`` warns
when the FAQ has changed since, and the bot then still answers, with the
similarity ranking alone for what the model has not seen.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bot.core.knowledge import KnowledgeBase
from bot.core.model import (
    MIN_TEXTS_PER_FEATURE,
    REGULARISATION_C,
    FeatureSpec,
    LinearModel,
    example_key,
    features,
    fingerprint,
    spec_of,
    training_set,
)
from bot.knowledge_files import MODEL_FILE, save_model
# Calibration (see calibrate): folds, and the temperatures tried.
CALIBRATION_FOLDS = 5
TEMPERATURES = tuple(round(0.2 + 0.05 * i, 2) for i in range(57))  # 0.2 ... 3.0


def fit(texts: list[str], labels: list[str], spec: FeatureSpec):  # noqa: ANN202 - scikit-learn objects
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(analyzer=lambda text: features(text, spec), sublinear_tf=True, min_df=MIN_TEXTS_PER_FEATURE)
    classifier = LogisticRegression(C=REGULARISATION_C, max_iter=3000)
    classifier.fit(vectorizer.fit_transform(texts), labels)
    return vectorizer, classifier


def calibrate(pairs: list[tuple[str, str]], spec: FeatureSpec, labels: tuple[str, ...], examples: set[str]) -> float:
    """The temperature that makes the model's confidence match how often it is right.

    A regularised model trained on short phrasings is under-confident on patients'
    messages (right 92% of the time at 70% confidence on Korean ones), and how much
    differs by language. Five-fold predictions on patients' messages (``examples``)
    choose the temperature with the least log loss, so one probability threshold
    means the same in every language.
    """
    from sklearn.model_selection import StratifiedKFold

    texts = [text for text, _ in pairs]
    targets = [label for _, label in pairs]
    column = {label: i for i, label in enumerate(labels)}
    held_scores: list[np.ndarray] = []
    held_truth: list[int] = []
    folds = StratifiedKFold(n_splits=CALIBRATION_FOLDS, shuffle=True, random_state=0)
    for train_rows, test_rows in folds.split(texts, targets):
        vectorizer, classifier = fit([texts[i] for i in train_rows], [targets[i] for i in train_rows], spec)
        test_rows = [i for i in test_rows if texts[i] in examples]
        if not test_rows:
            continue
        fold_scores = classifier.decision_function(vectorizer.transform([texts[i] for i in test_rows]))
        scores = np.full((len(test_rows), len(labels)), -1e9)
        for j, label in enumerate(classifier.classes_):
            scores[:, column[label]] = fold_scores[:, j]
        held_scores.append(scores)
        held_truth += [column[targets[i]] for i in test_rows]
    if not held_scores:
        return 1.0
    scores = np.vstack(held_scores)
    truth = np.array(held_truth)

    def log_loss(temperature: float) -> float:
        scaled = scores / temperature
        scaled -= scaled.max(axis=1, keepdims=True)
        log_probs = scaled - np.log(np.exp(scaled).sum(axis=1, keepdims=True))
        return float(-log_probs[np.arange(len(truth)), truth].mean())

    return min(TEMPERATURES, key=log_loss)


def train(knowledge: KnowledgeBase) -> LinearModel:
    """Fit the classifier for one language (scikit-learn is imported here only)."""
    pairs = training_set(knowledge)
    spec = spec_of(knowledge)
    vectorizer, classifier = fit([text for text, _ in pairs], [label for _, label in pairs], spec)
    labels = tuple(str(label) for label in classifier.classes_)
    examples = {message for messages in knowledge.examples.values() for message in messages}
    return as_model(vectorizer, classifier, knowledge, calibrate(pairs, spec, labels, examples))


def as_model(vectorizer, classifier, knowledge: KnowledgeBase, temperature: float) -> LinearModel:  # noqa: ANN001 - scikit-learn objects
    """The weights the bot scores with, from the fitted scikit-learn objects."""
    vocabulary = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.__getitem__)
    # Scores divided by the temperature are the same as weights divided by it.
    return LinearModel(
        labels=tuple(str(label) for label in classifier.classes_),
        index={feature: row for row, feature in enumerate(vocabulary)},
        idf=vectorizer.idf_.astype(np.float32),
        weights=(classifier.coef_.T / temperature).astype(np.float32),
        bias=(classifier.intercept_ / temperature).astype(np.float32),
        spec=spec_of(knowledge),
        fingerprint=fingerprint(knowledge),
        temperature=temperature,
        learnt_examples=frozenset(example_key(m) for messages in knowledge.examples.values() for m in messages),
    )


def train_folder(knowledge: KnowledgeBase, folders: dict[str, Path], out: callable = print) -> None:  # type: ignore[valid-type]
    """Train and save every language's model; ``folders``: language code -> its FAQ folder."""
    for code in knowledge.languages:
        started = time.perf_counter()
        model = train(knowledge.in_language(code))
        path = folders[code] / MODEL_FILE
        save_model(model, path)
        out(
            f"{code}: {len(model.labels)} labels, {len(model.index)} features, temperature {model.temperature:g},"
            f" {time.perf_counter() - started:.1f} s -> {path}"
        )
