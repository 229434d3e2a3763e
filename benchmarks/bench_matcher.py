"""Matcher speed: per-message median and p99, and load-and-index time.

Measured on the real FAQ and on synthetic FAQs of 1,000 and 10,000 entries,
with a plain ``rapidfuzz.process.extractOne`` over every phrasing as the
baseline in the same run. Prints figures; asserts nothing.

    python benchmarks/bench_matcher.py [--quick]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

from rapidfuzz import fuzz, process

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.core.knowledge import FaqEntry, KnowledgeBase  # noqa: E402
from bot.core.matcher import Matcher  # noqa: E402
from bot.core.text import words  # noqa: E402
from bot.evaluation import DEFAULT_CASES, load_cases  # noqa: E402
from bot.knowledge_files import load_knowledge  # noqa: E402

PATIENTS = Path(__file__).resolve().parent.parent / "tests" / "eval" / "patients.yaml"


def synthetic_knowledge(base: KnowledgeBase, size: int, seed: int = 7) -> KnowledgeBase:
    """The real FAQ plus ``size`` made-up entries whose phrasings mix real words with invented topic words.

    Word frequencies follow a Zipf-like law, as in real text, so common words
    have long posting lists, which is what makes a naive index slow.
    """
    rng = random.Random(seed)
    real_words = sorted({w for e in base.entries for q in e.questions for w in words(q)})
    invented = ["".join(rng.choice("bcdfghjklmnprstvz") + rng.choice("aeiou") for _ in range(rng.randint(2, 4))) for _ in range(size * 2)]
    vocabulary = real_words + invented
    weights = [1 / (rank + 1) ** 0.9 for rank in range(len(vocabulary))]
    entries = list(base.entries)
    for n in range(size):
        topic = rng.sample(invented, 3)
        questions = tuple(
            " ".join(rng.sample(topic, 2) + rng.choices(vocabulary, weights, k=rng.randint(3, 7))) for _ in range(10)
        )
        entries.append(FaqEntry(id=f"synthetic-{n}", title=f"Topic {n}", questions=questions, answer="A synthetic answer."))
    return replace(base, entries=tuple(entries))


def messages_for(knowledge: KnowledgeBase, count: int, seed: int = 11) -> list[str]:
    """Real patient messages plus typo'd versions of FAQ phrasings."""
    rng = random.Random(seed)
    real = [c.question for path in (DEFAULT_CASES, PATIENTS) if path.exists() for c in load_cases(path)]
    phrasings = [q for e in knowledge.entries for q in e.questions]
    out = list(real)
    while len(out) < count:
        q = list(rng.choice(phrasings))
        if len(q) > 4:
            i = rng.randrange(len(q) - 1)
            q[i], q[i + 1] = q[i + 1], q[i]  # a swapped-letter typo
        out.append("".join(q))
    rng.shuffle(out)
    return out[:count]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def time_each(function, messages: list[str]) -> list[float]:  # noqa: ANN001
    timings = []
    for message in messages:
        start = time.perf_counter()
        function(message)
        timings.append(time.perf_counter() - start)
    return timings


def report(label: str, timings: list[float]) -> None:
    print(f"  {label:<34} median {statistics.median(timings) * 1e6:9.1f} µs   p99 {percentile(timings, 0.99) * 1e6:9.1f} µs")


def bench(name: str, knowledge: KnowledgeBase, messages: list[str]) -> None:
    start = time.perf_counter()
    matcher = Matcher(knowledge)
    index_seconds = time.perf_counter() - start
    # The baseline searches the same texts ours indexes: the FAQ's phrasings and the examples.
    phrasings = [q for e in knowledge.entries for q in e.questions] + [m for ms in knowledge.examples.values() for m in ms]
    print(
        f"{name}: {len(knowledge.entries)} entries, {len(phrasings)} phrasings and examples; index built in {index_seconds * 1000:.0f} ms"
    )
    matcher.match(messages[0])  # warm-up
    # The uncached path: the bot also keeps the last few thousand results, which would flatter repeats.
    report("our matcher (uncached)", time_each(matcher._match, messages))
    report("baseline extractOne(WRatio)", time_each(lambda m: process.extractOne(m, phrasings, scorer=fuzz.WRatio), messages))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages (for a smoke run)")
    args = parser.parse_args()
    count = 200 if args.quick else 2_000

    start = time.perf_counter()
    knowledge = load_knowledge()
    Matcher(knowledge)
    print(f"start-up (load FAQ files + build index): {(time.perf_counter() - start) * 1000:.0f} ms")

    bench("real FAQ", knowledge, messages_for(knowledge, count))
    for size in (1_000, 10_000):
        synthetic = synthetic_knowledge(knowledge, size)
        bench(f"synthetic FAQ +{size:,}", synthetic, messages_for(synthetic, count // (2 if size > 1000 else 1)))


if __name__ == "__main__":
    main()
