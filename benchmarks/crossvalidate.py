"""Cross-validate one language's understanding on labelled messages that are among its examples.

Each fifth of the messages is measured by a bot whose classifier was trained without
them (and whose ranking does not index them), so the figures are honest for messages
the bot learns from: the way thresholds in bot/core/matcher.py were chosen. Needs
scikit-learn (the [train] extra); trains five models, a minute or two each.

    python benchmarks/crossvalidate.py en data/real_en_training.yaml ../shared/eval/real_en.yaml
    python benchmarks/crossvalidate.py ko data/ko_written_training.yaml
    python benchmarks/crossvalidate.py en data/real_en_training.yaml MODEL_ANSWER=0.6   # try a constant
"""

from __future__ import annotations

import argparse
import random
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bot.core.matcher as matcher_module  # noqa: E402
from bot.core.matcher import Matcher  # noqa: E402
from bot.core.ngram_matcher import NgramMatcher  # noqa: E402
from bot.evaluation import Outcome, Report, load_cases  # noqa: E402
from bot.knowledge_files import load_knowledge  # noqa: E402

FOLDS = 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("lang", help="language code (en, ko...)")
    parser.add_argument("cases", nargs="+", help="YAML case files; NAME=VALUE overrides a constant of bot/core/matcher.py")
    parser.add_argument("--misses", action="store_true", help="list what was missed")
    args = parser.parse_args()
    from bot.train import train

    for override in (a for a in args.cases if "=" in a):
        name, value = override.split("=", 1)
        setattr(matcher_module, name, float(value))
    cases = [c for path in args.cases if "=" not in path for c in load_cases(path)]
    everything = load_knowledge()
    knowledge = everything.in_language(args.lang)
    order = list(range(len(cases)))
    random.Random(7).shuffle(order)
    outcomes = []
    for fold in range(FOLDS):
        held = [cases[i] for i in order[fold::FOLDS]]
        unseen = {" ".join(c.question.lower().split()) for c in held}
        examples = {label: tuple(m for m in ms if " ".join(m.lower().split()) not in unseen) for label, ms in knowledge.examples.items()}
        without = replace(knowledge, examples=examples, model=None, translations={})
        trained = replace(without, model=train(without))
        # The default language has its own matcher; the others are read by n-grams (see Understanding).
        reader = Matcher(trained) if args.lang == everything.code else NgramMatcher(trained)
        outcomes += [Outcome(case, reader.match(case.question), args.lang) for case in held]
        print(f"fold {fold + 1}/{FOLDS} done", file=sys.stderr)
    report = Report(outcomes)
    lines = report.render().split("\n")
    print("\n".join(lines if args.misses else lines[:8]))


if __name__ == "__main__":
    main()
