"""Measure the matcher on labelled patient messages (``python -m bot eval``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bot.core.knowledge import INTENT_NAMES
from bot.core.matcher import Match
from bot.core.understanding import Understanding

DEFAULT_CASES = Path(__file__).resolve().parent.parent.parent / "shared" / "eval" / "dev.yaml"
INTENT_LABELS = frozenset("@" + name for name in INTENT_NAMES)


@dataclass(frozen=True)
class Case:
    """One labelled message: the labels that count as a correct reply, main label first."""

    question: str
    expect: tuple[str, ...]


@dataclass(frozen=True)
class Outcome:
    case: Case
    match: Match
    lang: str = "en"  # the language the message was read (and would be answered) in

    @property
    def label(self) -> str:
        """What the bot did, as a label comparable with ``expect``."""
        if self.match.intent == "faq":
            return self.match.faq_id or "?"
        if self.match.intent == "clarify":
            return "clarify"
        return "@" + self.match.intent

    @property
    def correct(self) -> bool:
        return self.label in self.case.expect

    @property
    def reached(self) -> bool:
        """Correct directly, or the right entry was among the "did you mean" suggestions."""
        return self.correct or (self.match.intent == "clarify" and any(s in self.case.expect for s in self.match.suggestions))

    @property
    def urgent_reply(self) -> bool:
        return self.match.intent == "urgent"

    @property
    def wrong_answer(self) -> bool:
        """An FAQ answer the patient did not ask about: the worst outcome."""
        return self.match.intent == "faq" and not self.correct


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)

    def _share(self, selected: list[Outcome], attribute: str, *, if_none: float = 100.0) -> float:
        """Percentage of ``selected`` with ``attribute``; ``if_none`` when there is nothing to count."""
        return 100.0 * sum(getattr(o, attribute) for o in selected) / len(selected) if selected else if_none

    @property
    def in_scope(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.case.expect[0].startswith("@")]

    @property
    def intents(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.case.expect[0] in INTENT_LABELS]

    @property
    def out_of_scope(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.case.expect[0] == "@fallback"]

    @property
    def direct_accuracy(self) -> float:
        return self._share(self.in_scope, "correct")

    @property
    def reached_accuracy(self) -> float:
        return self._share(self.in_scope, "reached")

    @property
    def wrong_answer_rate(self) -> float:
        return self._share(self.outcomes, "wrong_answer", if_none=0.0)

    @property
    def intent_accuracy(self) -> float:
        return self._share(self.intents, "correct")

    @property
    def answered_out_of_scope_rate(self) -> float:
        return self._share(self.out_of_scope, "wrong_answer", if_none=0.0)  # none asked, none answered

    @property
    def urgent_recall(self) -> float:
        """Share of messages whose main label is @urgent that got the urgent reply."""
        urgent = [o for o in self.outcomes if o.case.expect[0] == "@urgent"]
        return self._share(urgent, "urgent_reply")

    def language_share(self, lang: str) -> float:
        """Share of messages read (and so answered) in ``lang``."""
        return 100.0 * sum(o.lang == lang for o in self.outcomes) / len(self.outcomes) if self.outcomes else 100.0

    def misses(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.correct]

    def render(self) -> str:
        lines = [
            f"cases:                         {len(self.outcomes)}"
            f" ({len(self.in_scope)} FAQ, {len(self.intents)} intents, {len(self.out_of_scope)} not in the document)",
            f"direct accuracy (FAQ):         {self.direct_accuracy:5.1f}%",
            f"reached incl. suggestions:     {self.reached_accuracy:5.1f}%",
            f"wrong answers (all cases):     {self.wrong_answer_rate:5.1f}%",
            f"intent accuracy:               {self.intent_accuracy:5.1f}%",
            f"answered where @fallback:      {self.answered_out_of_scope_rate:5.1f}%",
            f"urgent replies to @urgent:     {self.urgent_recall:5.1f}%",
            "answered in:                   "
            + ", ".join(f"{lang} {self.language_share(lang):.1f}%" for lang in sorted({o.lang for o in self.outcomes})),
        ]
        misses = self.misses()
        if misses:
            lines.append(f"\nmisses ({len(misses)}):")
            for o in misses:
                extra = f" suggestions={list(o.match.suggestions)}" if o.match.suggestions else ""
                mark = "WRONG" if o.wrong_answer else ("near " if o.reached else "miss ")
                lines.append(f"  {mark} got {o.label:<30} want {'|'.join(o.case.expect):<40} {o.match.score:5.1f}{extra}  {o.case.question!r}")
        return "\n".join(lines)


def load_cases(path: Path | str) -> list[Case]:
    """Read an evaluation file: a YAML list of ``{q: str, expect: [labels]}``."""
    path = Path(path)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of cases with 'q' and 'expect'")
    cases: list[Case] = []
    for index, item in enumerate(data):
        if not isinstance(item, dict) or "q" not in item or not item.get("expect"):
            raise ValueError(f"{path}: case {index} needs 'q' and a non-empty 'expect' list")
        expect = item["expect"]
        cases.append(Case(str(item["q"]), tuple(expect if isinstance(expect, list) else [expect])))
    return cases


def evaluate(understanding: Understanding, cases: list[Case]) -> Report:
    """Read every case as a patient's first message (its language detected) and compare."""
    outcomes = []
    for case in cases:
        understood = understanding.understand(case.question)
        outcomes.append(Outcome(case, understood.match, understood.lang))
    return Report(outcomes)
