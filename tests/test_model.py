"""The trained classifier: the bot's light scoring is scikit-learn's, and training gives a model the bot uses."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.core.dialogue import Dialogue, PatientText, SessionState
from bot.core.knowledge import KnowledgeBase
from bot.core.model import example_key, fresh_examples, is_current, spec_of, training_set, usable

sklearn = pytest.importorskip("sklearn")  # the [train] extra, part of [test]


@pytest.fixture(scope="module")
def small(knowledge: KnowledgeBase) -> KnowledgeBase:
    """English without most examples: a model trains in a second or two."""
    kept = {label: messages[:15] for label, messages in knowledge.examples.items()}
    return replace(knowledge, examples=kept, model=None, translations={})


def test_the_bots_scoring_is_the_trained_models(small: KnowledgeBase) -> None:
    from bot.train import as_model, fit

    pairs = training_set(small)
    vectorizer, classifier = fit([t for t, _ in pairs], [label for _, label in pairs], spec_of(small))
    model = as_model(vectorizer, classifier, small, temperature=1.0)
    for text in ("does it leave a scar", "how much is it?", "흉터", "", "I had my lift 3 weeks ago, is this swelling normal?"):
        expected = dict(zip(classifier.classes_, classifier.predict_proba(vectorizer.transform([text]))[0]))
        for probability, label in model.probabilities(text):
            assert probability == pytest.approx(expected[label], abs=1e-5), (text, label)


def test_a_trained_model_is_current_knows_its_examples_and_answers(small: KnowledgeBase) -> None:
    from bot.train import train

    model = train(small)
    assert model.labels == tuple(sorted({label for _, label in training_set(small)}))
    assert is_current(model, small) and fresh_examples(small, model) == {}
    trained = replace(small, model=model)
    step = Dialogue(trained).handle(SessionState(), PatientText("will people see a scar in front of my ear?"))
    assert step.match is not None and (step.match.intent, step.match.faq_id) == ("faq", "scars")
    # A new example is fresh (indexed by the ranking) without making the model stale...
    taught = replace(trained, examples={**small.examples, "neck": (*small.examples["neck"], "pelican pouch fixed too?")})
    assert is_current(model, taught) and fresh_examples(taught, model) == {"neck": ("pelican pouch fixed too?",)}
    assert example_key("Pelican  pouch fixed too?") == example_key("pelican pouch fixed too?")
    # ...but a removed entry makes it unusable: it could answer with it.
    removed = replace(taught, entries=tuple(e for e in taught.entries if e.id != "neck"))
    assert usable(model, removed) is None
