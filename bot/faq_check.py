"""``python -m bot faq check``: errors that stop the bot, and warnings about phrasings that confuse it."""

from __future__ import annotations

from pathlib import Path

import yaml

from bot.core.matcher import Matcher
from bot.knowledge_files import Problem, read_knowledge, resolve_faq_paths


def check(path: Path | str | None = None) -> tuple[list[Problem], list[Problem]]:
    """Return (errors, warnings) for the FAQ folder or file at ``path``."""
    knowledge, errors = read_knowledge(path)
    if knowledge is None:
        return errors, []
    faq_path = resolve_faq_paths(path)[0]
    lines = _question_lines(faq_path)
    matcher = Matcher(knowledge)
    warnings: list[Problem] = []
    for entry in knowledge.entries:
        for index, question in enumerate(entry.questions):
            ranked = matcher.rank(question)
            best = ranked.best()
            if best is None:
                warnings.append(Problem(faq_path, lines.get((entry.id, index), 1), f"{entry.id}.questions[{index}]",
                                        f"{question!r} has no word the matcher can use"))
                continue
            winner = matcher.candidates[best[1]]
            if winner.key != entry.id:
                own = next((s for s, i in ranked.scores if matcher.candidates[i].key == entry.id), 0.0)
                warnings.append(Problem(
                    faq_path, lines.get((entry.id, index), 1), f"{entry.id}.questions[{index}]",
                    f"{question!r} matches {winner.kind} {winner.key!r} better ({best[0]:.0f}) than its own entry ({own:.0f})",
                ))
    return [], warnings


def _question_lines(faq_path: Path) -> dict[tuple[str, int], int]:
    """Line number of each question, by (entry id, index), for pointing warnings at the right line."""
    root = yaml.compose(faq_path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    lines: dict[tuple[str, int], int] = {}
    for key_node, value_node in root.value:
        if key_node.value != "entries":
            continue
        for entry_node in value_node.value:
            items = {k.value: v for k, v in entry_node.value}
            entry_id = items.get("id")
            questions = items.get("questions")
            if entry_id is None or not isinstance(questions, yaml.SequenceNode):
                continue
            for index, q in enumerate(questions.value):
                lines[(entry_id.value, index)] = q.start_mark.line + 1
    return lines
