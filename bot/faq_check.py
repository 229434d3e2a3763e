"""``python -m bot faq check``: errors that stop the bot, and warnings about phrasings that confuse it."""

from __future__ import annotations

from pathlib import Path

import yaml

from bot.core.knowledge import KnowledgeBase
from bot.core.matcher import Matcher
from bot.evaluation import Case, Outcome
from bot.core.model import fresh_examples, is_current
from bot.knowledge_files import EXAMPLES_FILE, MODEL_FILE, YAML_LOADER, Problem, read_knowledge, resolve_faq_paths


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
    warnings += _unlearnt_examples(knowledge, matcher, faq_path.parent / EXAMPLES_FILE)
    warnings += _model_warnings(knowledge, faq_path.parent)
    return [], warnings


def _model_warnings(knowledge: KnowledgeBase, folder: Path) -> list[Problem]:
    """A language without a trained classifier, or with one older than its files, answers
    by the similarity ranking alone until `python -m bot train` runs again."""
    warnings = []
    for code in knowledge.languages:
        translated = knowledge.in_language(code)
        path = (folder if code == knowledge.code else folder / code) / MODEL_FILE
        if translated.model is None:
            message = "no trained classifier: run `python -m bot train` (needs pip install -e '.[train]')"
        elif not is_current(translated.model, translated):
            message = (
                "the classifier was trained before the last edit of this language's questions, intents or subjects:"
                " run `python -m bot train` (meanwhile it answers without the edits, which the similarity ranking knows)"
            )
        elif fresh := sum(len(m) for m in fresh_examples(translated, translated.model).values()):
            message = (
                f"{fresh} example(s) are not learnt by the classifier yet (the similarity ranking already"
                " knows them): run `python -m bot train`"
            )
        else:
            continue
        warnings.append(Problem(path, 1, f"({code} model)", message))
    return warnings


def _unlearnt_examples(knowledge: KnowledgeBase, matcher: Matcher, path: Path) -> list[Problem]:
    """Examples the bot would still not lead to their label, even as a "did you mean".

    An example is itself indexed, so this means another rule wins (a price named
    beside the topic sends it to staff) or other examples outweigh it: the
    operator who added it should know it taught nothing.
    """
    if not knowledge.examples:
        return []
    lines = _example_lines(path)
    warnings = []
    for label, messages in knowledge.examples.items():
        for index, message in enumerate(messages):
            outcome = Outcome(Case(message, (label,)), matcher.match(message))
            if not outcome.reached:
                warnings.append(Problem(path, lines.get((label, index), 1), f"examples.{label}[{index}]",
                                        f"{message!r} still gets {outcome.label}, not {label}"))
    return warnings


def _example_lines(path: Path) -> dict[tuple[str, int], int]:
    """Line number of each example, by (label, index)."""
    root = yaml.compose(path.read_text(encoding="utf-8"), Loader=YAML_LOADER)
    lines: dict[tuple[str, int], int] = {}
    for key_node, value_node in root.value:
        if key_node.value == "examples" and isinstance(value_node, yaml.MappingNode):
            for label_node, messages in value_node.value:
                for index, node in enumerate(getattr(messages, "value", ())):
                    lines[(label_node.value, index)] = node.start_mark.line + 1
    return lines


def _question_lines(faq_path: Path) -> dict[tuple[str, int], int]:
    """Line number of each question, by (entry id, index), for pointing warnings at the right line."""
    root = yaml.compose(faq_path.read_text(encoding="utf-8"), Loader=YAML_LOADER)
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
