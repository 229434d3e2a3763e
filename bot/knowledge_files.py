"""Read and validate the FAQ folder (``smas_mini_lift.yaml``, ``intents.yaml``, ``language.yaml``,
``examples.yaml``).

Every problem is reported with the file, the line and the key, so an operator
who broke the YAML knows exactly where to look. Validation walks PyYAML's node
tree (which keeps line numbers) rather than the plain loaded data.
"""

from __future__ import annotations

import os
import re
import string
import unicodedata
import zipfile
from functools import lru_cache
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

import numpy as np
import yaml

from bot.core.dialogue import FAQ_PREFIX
from bot.core.model import FeatureSpec, LinearModel
from bot.core.knowledge import (
    EXAMPLE_INTENT_LABELS,
    INTENT_NAMES,
    BookingVocabulary,
    REQUIRED_TEXTS,
    TEXT_PLACEHOLDERS,
    FaqEntry,
    IntentVocabulary,
    KnowledgeBase,
    Language,
    OutOfScopeTopic,
    UNANSWERED_EXAMPLES,
    UrgentVocabulary,
    OwnSurgeryVocabulary,
)

FAQ_FILE = "smas_mini_lift.yaml"
INTENTS_FILE = "intents.yaml"
LANGUAGE_FILE = "language.yaml"
COMMON_WORDS_FILE = "common_words.txt"  # optional, beside language.yaml
EXAMPLES_FILE = "examples.yaml"  # optional, beside the FAQ
MODEL_FILE = "model.npz"  # optional, beside the FAQ: the trained classifier (python -m bot train)
DEFAULT_FAQ_DIR = Path(__file__).resolve().parent.parent / "faq"

_KEBAB = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_TITLE_MAX = 32  # fits one Telegram inline button on a phone without truncation
# Telegram's own limits, checked here so that `faq check` refuses what Telegram would
# refuse in front of a patient: a message's text, and a button's callback data (which
# carries FAQ_PREFIX and the entry id).
_MESSAGE_MAX = 4_096
_CALLBACK_DATA_MAX_BYTES = 64
# libyaml's parser when PyYAML has it (its wheels do): the examples file holds
# thousands of messages, which the pure-Python parser takes a second to read.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or suspicious) in a knowledge file."""

    path: Path
    line: int
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.key}: {self.message}"


class KnowledgeError(Exception):
    """The FAQ folder cannot be used; ``problems`` lists every error found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def resolve_faq_paths(path: Path | str | None) -> tuple[Path, Path, Path]:
    """Accept the FAQ folder or the FAQ file; the intents and language files sit beside it.
    A language's folder (``faq/ko``) or file means the FAQ it translates: a translation is
    read, and checked, only beside the entries it follows."""
    base = Path(path) if path is not None else DEFAULT_FAQ_DIR
    folder = base if base.is_dir() else base.parent
    if (folder / FAQ_FILE).exists() and (folder.parent / FAQ_FILE).exists():
        base = folder.parent
    if base.is_dir():
        return base / FAQ_FILE, base / INTENTS_FILE, base / LANGUAGE_FILE
    return base, base.parent / INTENTS_FILE, base.parent / LANGUAGE_FILE


def load_knowledge(path: Path | str | None = None) -> KnowledgeBase:
    """Load and validate the knowledge files; raise :class:`KnowledgeError` listing every error."""
    knowledge, problems = read_knowledge(path)
    if knowledge is None:
        raise KnowledgeError(problems)
    return knowledge


def read_knowledge(path: Path | str | None = None) -> tuple[KnowledgeBase | None, list[Problem]]:
    """Load the knowledge files, collecting problems instead of stopping at the first.

    The folder holds the default language (English); each subfolder holding its own
    ``smas_mini_lift.yaml`` (``faq/ko/``) is another language, named by the folder:
    the same entry ids with their own titles, answers, phrasings, intents and texts.
    """
    faq_path, intents_path, language_path = resolve_faq_paths(path)
    reader = _Reader()
    knowledge = _read_language(reader, faq_path, intents_path, language_path, code="en", default=None)
    if knowledge is None or reader.problems:
        return None, reader.problems
    translations: dict[str, KnowledgeBase] = {}
    for folder in sorted(p for p in faq_path.parent.iterdir() if p.is_dir() and (p / FAQ_FILE).exists()):
        translated = _read_language(
            reader, folder / FAQ_FILE, folder / INTENTS_FILE, folder / LANGUAGE_FILE, code=folder.name, default=knowledge
        )
        if translated is not None:
            translations[folder.name] = translated
    if reader.problems:
        return None, reader.problems
    return replace(knowledge, translations=translations), []


def _read_language(
    reader: _Reader, faq_path: Path, intents_path: Path, language_path: Path, *, code: str, default: KnowledgeBase | None
) -> KnowledgeBase | None:
    """One language's files; ``default`` is the knowledge a translation follows (ids, follow-ups)."""
    faq_root = reader.parse(faq_path)
    intents_root = reader.parse(intents_path)
    # A translation needs language.yaml for its script: without it, its patients' messages
    # would be taken for English.
    if default is not None and not language_path.exists():
        reader.problems.append(Problem(language_path, 1, "script", "missing: each language names its script here (e.g. `script: HANGUL`)"))
        return None
    language_root = reader.parse(language_path)
    entries = reader.entries(faq_path, faq_root, default=default) if faq_root is not None else ()
    language = reader.language(language_path, language_root) if language_root is not None else Language()
    language = replace(language, code=code, dictionary=reader.common_words(language_path.parent / COMMON_WORDS_FILE))
    intents_part = reader.intents_file(intents_path, intents_root) if intents_root is not None else None
    if reader.problems or intents_part is None:
        return None
    intents, urgent, out_of_scope, texts, booking = intents_part
    examples: dict[str, tuple[str, ...]] = {}
    examples_path = faq_path.parent / EXAMPLES_FILE
    if examples_path.exists():
        examples_root = reader.parse(examples_path, may_be_empty=True)
        if examples_root is not None:
            examples = reader.examples(examples_path, examples_root, {e.id for e in entries})
        if reader.problems:
            return None
    model = None
    model_path = faq_path.parent / MODEL_FILE
    if model_path.exists():
        try:
            model = load_model(model_path)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
            reader.problems.append(Problem(model_path, 1, "(file)", f"cannot be read ({exc}); run `python -m bot train` to rebuild it"))
            return None
    return KnowledgeBase(
        entries=entries,
        intents=intents,
        urgent=urgent,
        out_of_scope=out_of_scope,
        texts=texts,
        language=language,
        booking=booking,
        examples=examples,
        model=model,
        own_surgery=reader.own_surgery,
    )


class _Reader:
    """Walks YAML node trees, turning them into knowledge objects and recording problems."""

    def __init__(self) -> None:
        self.own_surgery = OwnSurgeryVocabulary()  # of the intents file read last
        self.problems: list[Problem] = []
        self._path = Path()

    # -- generic helpers -------------------------------------------------
    def problem(self, node: yaml.Node | None, key: str, message: str) -> None:
        line = node.start_mark.line + 1 if node is not None else 1
        self.problems.append(Problem(self._path, line, key, message))

    def parse(self, path: Path, *, may_be_empty: bool = False) -> yaml.Node | None:
        """The file's YAML node tree; None (and a problem, unless empty and allowed) when unusable."""
        self._path = path
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self.problems.append(Problem(path, 1, "(file)", "file not found"))
            return None
        except (OSError, UnicodeDecodeError) as exc:
            self.problems.append(Problem(path, 1, "(file)", f"cannot be read: {exc}"))
            return None
        try:
            root = yaml.compose(text, Loader=YAML_LOADER)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else 1
            self.problems.append(Problem(path, line, "(yaml)", f"not valid YAML: {exc.problem or exc}"))
            return None
        except yaml.YAMLError as exc:
            self.problems.append(Problem(path, 1, "(yaml)", f"not valid YAML: {exc}"))
            return None
        if root is None and may_be_empty:
            return None  # an empty or all-comment optional file: nothing in it yet
        if not isinstance(root, yaml.MappingNode):
            self.problems.append(Problem(path, 1, "(top level)", "must be a mapping of keys to values"))
            return None
        return root

    def mapping(self, node: yaml.Node, key: str) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
        """The mapping's items by key name (key node, value node); reports duplicates and non-mappings."""
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, key, f"must be a mapping, found {_kind(node)}")
            return None
        items: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            name = str(key_node.value)
            if name in items:
                self.problem(key_node, f"{key}.{name}" if key else name, "duplicate key (the later one would silently win)")
            items[name] = (key_node, value_node)
        return items

    def text(self, node: yaml.Node, key: str, *, allow_empty: bool = False) -> str | None:
        if not isinstance(node, yaml.ScalarNode) or node.tag == "tag:yaml.org,2002:null":
            if allow_empty and node.tag == "tag:yaml.org,2002:null":
                return ""
            self.problem(node, key, f"must be text, found {_kind(node)}")
            return None
        value = str(node.value).strip()
        if not value and not allow_empty:
            self.problem(node, key, "is empty")
            return None
        return value

    def flag(self, node: yaml.Node, key: str) -> bool | None:
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:bool":
            return str(node.value).lower() in ("true", "yes", "on")
        self.problem(node, key, f"must be true or false, found {_kind(node)}")
        return None

    def text_list(self, node: yaml.Node, key: str, *, min_items: int = 0) -> tuple[str, ...] | None:
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, key, f"must be a list, found {_kind(node)}")
            return None
        values: list[str] = []
        for index, item in enumerate(node.value):
            value = self.text(item, f"{key}[{index}]")
            if value is not None:
                values.append(value)
        if len(values) < min_items:
            self.problem(node, key, f"needs at least {min_items} items, has {len(values)}")
        return tuple(values)

    def required(self, items: dict[str, tuple[yaml.Node, yaml.Node]], owner: yaml.Node, key: str, name: str) -> yaml.Node | None:
        if name not in items:
            self.problem(owner, f"{key}.{name}" if key else name, "missing")
            return None
        return items[name][1]

    def unknown_keys(self, items: dict[str, tuple[yaml.Node, yaml.Node]], allowed: set[str], key: str) -> None:
        for name, (key_node, _) in items.items():
            if name not in allowed:
                self.problem(key_node, f"{key}.{name}" if key else name, f"unknown key (expected one of: {', '.join(sorted(allowed))})")

    # -- smas_mini_lift.yaml -----------------------------------------------
    def entries(self, path: Path, root: yaml.Node, *, default: KnowledgeBase | None = None) -> tuple[FaqEntry, ...]:
        """FAQ entries; in a translation (``default`` given) the same ids, with follow-ups and section optional."""
        self._path = path
        top = self.mapping(root, "")
        if top is None:
            return ()
        entries_node = self.required(top, root, "", "entries")
        if entries_node is None:
            return ()
        if not isinstance(entries_node, yaml.SequenceNode) or not entries_node.value:
            self.problem(entries_node, "entries", "must be a non-empty list of entries")
            return ()
        entries: list[FaqEntry] = []
        id_lines: dict[str, int] = {}
        follow_up_refs: list[tuple[yaml.Node, str, str]] = []
        allowed = {"id", "title", "section", "questions", "keywords", "answer", "follow_ups"}
        for index, node in enumerate(entries_node.value):
            key = f"entries[{index}]"
            if isinstance(node, yaml.MappingNode):
                # Name the entry by its id in every message about it, so "(neck)" finds it.
                raw_id = next((v.value for k, v in node.value if k.value == "id" and isinstance(v, yaml.ScalarNode)), None)
                if raw_id:
                    key = f"entries[{index}] ({raw_id})"
            items = self.mapping(node, key)
            if items is None:
                continue
            self.unknown_keys(items, allowed, key)
            id_node = self.required(items, node, key, "id")
            entry_id = self.text(id_node, f"{key}.id") if id_node is not None else None
            if entry_id is not None:
                if not _KEBAB.match(entry_id):
                    self.problem(id_node, f"{key}.id", f"{entry_id!r} is not kebab-case (lowercase words joined by '-')")
                elif len((FAQ_PREFIX + entry_id).encode()) > _CALLBACK_DATA_MAX_BYTES:
                    limit = _CALLBACK_DATA_MAX_BYTES - len(FAQ_PREFIX)
                    self.problem(id_node, f"{key}.id", f"is {len(entry_id)} characters; Telegram's buttons carry at most {limit}")
                if entry_id in id_lines:
                    self.problem(id_node, f"{key}.id", f"duplicate id {entry_id!r} (first used on line {id_lines[entry_id]})")
                else:
                    id_lines[entry_id] = id_node.start_mark.line + 1
            questions_node = self.required(items, node, key, "questions")
            questions = self.text_list(questions_node, f"{key}.questions", min_items=1) if questions_node is not None else None
            answer_node = self.required(items, node, key, "answer")
            answer = self.text(answer_node, f"{key}.answer") if answer_node is not None else None
            if answer is not None and len(answer) > _MESSAGE_MAX:
                self.problem(answer_node, f"{key}.answer", f"is {len(answer):,} characters; Telegram sends at most {_MESSAGE_MAX:,} in one message")
            original = default.entry(entry_id) if default is not None and entry_id is not None else None
            if default is not None and entry_id is not None and original is None:
                self.problem(id_node, f"{key}.id", f"{entry_id!r} is not an entry of the default language ({default.code})")
            follow_node = self.required(items, node, key, "follow_ups") if default is None or "follow_ups" in items else None
            follow_ups: tuple[str, ...] | None = original.follow_ups if original is not None else ()
            if follow_node is not None and follow_node.tag != "tag:yaml.org,2002:null":
                follow_ups = self.text_list(follow_node, f"{key}.follow_ups")
                if follow_ups is not None and entry_id is not None:
                    for ref_index, ref in enumerate(follow_ups):
                        follow_up_refs.append((follow_node.value[ref_index], f"{key}.follow_ups[{ref_index}]", ref))
                        if ref == entry_id:
                            self.problem(follow_node.value[ref_index], f"{key}.follow_ups[{ref_index}]", "an entry cannot follow up itself")
            keywords: tuple[str, ...] | None = ()
            if "keywords" in items:
                keywords = self.text_list(items["keywords"][1], f"{key}.keywords")
            title = None
            if "title" in items:
                title = self.text(items["title"][1], f"{key}.title")
                if title is not None and len(title) > _TITLE_MAX:
                    self.problem(items["title"][1], f"{key}.title", f"is {len(title)} characters; keep it within {_TITLE_MAX} so it fits a button")
            section = self.text(items["section"][1], f"{key}.section", allow_empty=True) if "section" in items else ""
            if original is not None and not section:
                section = original.section
            if None in (entry_id, questions, answer, follow_ups, keywords):
                continue
            assert entry_id is not None and questions is not None and answer is not None
            entries.append(
                FaqEntry(
                    id=entry_id,
                    title=title or entry_id.replace("-", " ").capitalize(),
                    questions=questions,
                    answer=" ".join(answer.split()),
                    follow_ups=follow_ups or (),
                    keywords=keywords or (),
                    section=section or "",
                )
            )
        for node, key, ref in follow_up_refs:
            if ref not in id_lines:
                self.problem(node, key, f"follows up {ref!r}, which is not an entry id")
        if default is not None:
            for missing in (e.id for e in default.entries if e.id not in id_lines):
                self.problem(entries_node, "entries", f"{missing!r} has no text in this language (every entry needs one)")
        return tuple(entries)

    # -- intents.yaml --------------------------------------------------------
    def intents_file(
        self, path: Path, root: yaml.Node
    ) -> tuple[dict[str, IntentVocabulary], UrgentVocabulary, tuple[OutOfScopeTopic, ...], dict[str, str], BookingVocabulary] | None:
        self._path = path
        top = self.mapping(root, "")
        if top is None:
            return None
        self.unknown_keys(top, {"intents", "out_of_scope", "booking", "texts", "own_surgery"}, "")
        self.own_surgery = OwnSurgeryVocabulary()
        if "own_surgery" in top:
            node = top["own_surgery"][1]
            items = self.mapping(node, "own_surgery")
            if items is not None:
                lists = ("cues", "since", "operations", "unless")
                self.unknown_keys(items, set(lists), "own_surgery")
                values = {name: self.text_list(items[name][1], f"own_surgery.{name}") if name in items else () for name in lists}
                if all(v is not None for v in values.values()):
                    self.own_surgery = OwnSurgeryVocabulary(**values)  # type: ignore[arg-type]
        intents: dict[str, IntentVocabulary] = {}
        urgent: UrgentVocabulary | None = None
        intents_node = self.required(top, root, "", "intents")
        intent_items = self.mapping(intents_node, "intents") if intents_node is not None else None
        if intent_items is not None:
            for name in INTENT_NAMES:
                if name not in intent_items:
                    self.problem(intents_node, f"intents.{name}", "missing")
            self.unknown_keys(intent_items, set(INTENT_NAMES), "intents")
            for name, (_, node) in intent_items.items():
                if name not in INTENT_NAMES:
                    continue
                key = f"intents.{name}"
                items = self.mapping(node, key)
                if items is None:
                    continue
                if name == "urgent":
                    urgent = self._urgent(node, items, key)
                    continue
                self.unknown_keys(items, {"phrases", "keywords"}, key)
                phrases_node = self.required(items, node, key, "phrases")
                phrases = self.text_list(phrases_node, f"{key}.phrases", min_items=1) if phrases_node is not None else None
                keywords = self.text_list(items["keywords"][1], f"{key}.keywords") if "keywords" in items else ()
                if phrases is not None and keywords is not None:
                    intents[name] = IntentVocabulary(name=name, phrases=phrases, keywords=keywords)
        topics: list[OutOfScopeTopic] = []
        if "out_of_scope" in top:
            node = top["out_of_scope"][1]
            if not isinstance(node, yaml.SequenceNode):
                self.problem(node, "out_of_scope", f"must be a list of topics, found {_kind(node)}")
            else:
                for index, topic_node in enumerate(node.value):
                    key = f"out_of_scope[{index}]"
                    items = self.mapping(topic_node, key)
                    if items is None:
                        continue
                    self.unknown_keys(items, {"topic", "keywords", "phrases", "decisive", "unless"}, key)
                    topic_name_node = self.required(items, topic_node, key, "topic")
                    topic = self.text(topic_name_node, f"{key}.topic") if topic_name_node is not None else None
                    if topic == UNANSWERED_EXAMPLES:
                        self.problem(topic_name_node, f"{key}.topic", f"{topic!r} is reserved for the @fallback examples")
                        topic = None
                    kw_node = self.required(items, topic_node, key, "keywords")
                    keywords = self.text_list(kw_node, f"{key}.keywords", min_items=1) if kw_node is not None else None
                    phrases = self.text_list(items["phrases"][1], f"{key}.phrases") if "phrases" in items else ()
                    decisive = self.flag(items["decisive"][1], f"{key}.decisive") if "decisive" in items else False
                    unless = self.text_list(items["unless"][1], f"{key}.unless") if "unless" in items else ()
                    if "unless" in items and decisive is False:
                        self.problem(items["unless"][1], f"{key}.unless", "only a decisive topic can have exceptions")
                    if topic and keywords is not None and phrases is not None and decisive is not None and unless is not None:
                        topics.append(OutOfScopeTopic(topic=topic, keywords=keywords, phrases=phrases, decisive=decisive, unless=unless))
        texts: dict[str, str] = {}
        texts_node = self.required(top, root, "", "texts")
        text_items = self.mapping(texts_node, "texts") if texts_node is not None else None
        if text_items is not None:
            for name in REQUIRED_TEXTS:
                if name not in text_items:
                    self.problem(texts_node, f"texts.{name}", "missing")
            for name, (_, node) in text_items.items():
                value = self.text(node, f"texts.{name}")
                if value is not None:
                    texts[name] = value.strip()
                    self._placeholders(node, name, texts[name])
                    if len(texts[name]) > _MESSAGE_MAX:
                        self.problem(node, f"texts.{name}", f"is {len(texts[name]):,} characters; Telegram sends at most {_MESSAGE_MAX:,} in one message")
        booking = BookingVocabulary()
        if "booking" in top:
            node = top["booking"][1]
            items = self.mapping(node, "booking")
            if items is not None:
                self.unknown_keys(items, {"time_options", "yes_words", "no_words"}, "booking")
                lists = {
                    name: self.text_list(items[name][1], f"booking.{name}") if name in items else ()
                    for name in ("time_options", "yes_words", "no_words")
                }
                for index, option in enumerate(lists["time_options"] or ()):
                    if len(option) > _TITLE_MAX:
                        self.problem(items["time_options"][1].value[index], f"booking.time_options[{index}]", f"keep it within {_TITLE_MAX} characters so it fits a button")
                booking = BookingVocabulary(
                    time_options=lists["time_options"] or (),
                    yes_words=frozenset(w.lower() for w in lists["yes_words"] or ()),
                    no_words=frozenset(w.lower() for w in lists["no_words"] or ()),
                )
        if urgent is None or intent_items is None or text_items is None:
            return None
        return intents, urgent, tuple(topics), texts, booking

    def _placeholders(self, node: yaml.Node, name: str, text: str) -> None:
        """A text the code fills must use only the {placeholders} it fills (TEXT_PLACEHOLDERS);
        other texts are sent as they are, braces and all."""
        allowed = TEXT_PLACEHOLDERS.get(name)
        if allowed is None:
            return
        try:
            used = {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}
        except ValueError as exc:
            self.problem(node, f"texts.{name}", f"has a stray brace ({exc}); write {{{{ or }}}} for a literal one")
            return
        if unknown := sorted(used - allowed):
            expected = ", ".join("{" + p + "}" for p in sorted(allowed))
            self.problem(node, f"texts.{name}", f"uses {{{unknown[0]}}}, which is never filled; it may use {expected}")

    def _urgent(self, node: yaml.Node, items: dict[str, tuple[yaml.Node, yaml.Node]], key: str) -> UrgentVocabulary | None:
        lists = ("red_flags", "symptoms", "intensifiers", "post_op")
        optional = ("hypothetical", "happening_now", "phrases", "settled", "worsening")
        self.unknown_keys(items, set(lists) | set(optional), key)
        values: dict[str, tuple[str, ...] | None] = {}
        for name in lists:
            list_node = self.required(items, node, key, name)
            values[name] = self.text_list(list_node, f"{key}.{name}", min_items=1) if list_node is not None else None
        for name in optional:
            values[name] = self.text_list(items[name][1], f"{key}.{name}") if name in items else ()
        if any(v is None for v in values.values()):
            return None
        return UrgentVocabulary(**values)  # type: ignore[arg-type]

    def common_words(self, path: Path) -> frozenset[str]:
        """One word per line, ``#`` comments; a missing file means no dictionary."""
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return frozenset()
        except (OSError, UnicodeDecodeError) as exc:
            self.problems.append(Problem(path, 1, "(file)", f"cannot be read: {exc}"))
            return frozenset()
        return frozenset(word for line in lines if (word := line.strip().lower()) and not word.startswith("#"))

    # -- examples.yaml ---------------------------------------------------------
    def examples(self, path: Path, root: yaml.Node, entry_ids: set[str]) -> dict[str, tuple[str, ...]]:
        """Labelled patient messages; every label must name an entry or an example intent."""
        self._path = path
        top = self.mapping(root, "")
        if top is None:
            return {}
        self.unknown_keys(top, {"examples"}, "")
        examples_node = self.required(top, root, "", "examples")
        if examples_node is None or examples_node.tag == "tag:yaml.org,2002:null":
            return {}  # "examples:" with nothing under it yet
        items = self.mapping(examples_node, "examples")
        examples: dict[str, tuple[str, ...]] = {}
        labelled: dict[str, str] = {}  # message (as compared) -> its label
        for label, (label_node, value_node) in (items or {}).items():
            key = f"examples.{label}"
            if label not in entry_ids and label not in EXAMPLE_INTENT_LABELS:
                known = ", ".join(EXAMPLE_INTENT_LABELS)
                self.problem(label_node, key, f"{label!r} is neither an FAQ entry id nor one of {known}")
                continue
            if not isinstance(value_node, yaml.SequenceNode):
                self.problem(value_node, key, f"must be a list of messages, found {_kind(value_node)}")
                continue
            messages: list[str] = []
            for index, item in enumerate(value_node.value):
                message = self.text(item, f"{key}[{index}]")
                if message is None:
                    continue
                # Compared without case and spacing: the same message under two labels
                # teaches the matcher both, a contradiction only an operator can settle.
                same = " ".join(message.lower().split())
                if same in labelled:
                    where = "is listed twice" if labelled[same] == label else f"is already listed under {labelled[same]!r}"
                    self.problem(item, f"{key}[{index}]", where)
                    continue
                labelled[same] = label
                messages.append(message)
            examples[label] = tuple(messages)
        return examples

    # -- language.yaml ---------------------------------------------------------
    def language(self, path: Path, root: yaml.Node) -> Language:
        self._path = path
        top = self.mapping(root, "")
        if top is None:
            return Language()
        self.unknown_keys(
            top, {"shorthand", "synonyms", "stopwords", "personal", "others", "question_starters", "relative_pronouns", "script", "ngram_sizes"}, ""
        )
        script = self.text(top["script"][1], "script") if "script" in top else "LATIN"
        if script is not None and script.upper() not in _COMMON_SCRIPTS and script.upper() not in _unicode_scripts():
            self.problem(top["script"][1], "script", f"{script!r} is not a Unicode script name (like LATIN, HANGUL, CYRILLIC, CJK)")
        sizes: list[int] = []
        if "ngram_sizes" in top:
            node = top["ngram_sizes"][1]
            values = node.value if isinstance(node, yaml.SequenceNode) else [node]
            for index, item in enumerate(values):
                if isinstance(item, yaml.ScalarNode) and item.value.isdigit() and 1 <= int(item.value) <= 6:
                    sizes.append(int(item.value))
                else:
                    self.problem(item, f"ngram_sizes[{index}]", "must be a whole number from 1 to 6")
        shorthand: dict[str, str] = {}
        if "shorthand" in top:
            items = self.mapping(top["shorthand"][1], "shorthand")
            for name, (_, value_node) in (items or {}).items():
                value = self.text(value_node, f"shorthand.{name}")
                if value is not None:
                    shorthand[name.lower()] = value.lower()
        synonyms: dict[str, tuple[str, ...]] = {}
        if "synonyms" in top:
            items = self.mapping(top["synonyms"][1], "synonyms")
            seen: dict[str, str] = {}
            for name, (_, value_node) in (items or {}).items():
                variants = self.text_list(value_node, f"synonyms.{name}", min_items=1)
                if variants is None:
                    continue
                for index, variant in enumerate(variants):
                    lowered = variant.lower()
                    if lowered in seen and seen[lowered] != name:
                        self.problem(value_node.value[index], f"synonyms.{name}[{index}]", f"{variant!r} is already a synonym of {seen[lowered]!r}")
                    seen[lowered] = name
                synonyms[name.lower()] = tuple(v.lower() for v in variants)
        stopwords = self.text_list(top["stopwords"][1], "stopwords") if "stopwords" in top else ()
        personal = self.text_list(top["personal"][1], "personal") if "personal" in top else ()
        others = self.text_list(top["others"][1], "others") if "others" in top else ()
        starters = self.text_list(top["question_starters"][1], "question_starters") if "question_starters" in top else ()
        relatives = self.text_list(top["relative_pronouns"][1], "relative_pronouns") if "relative_pronouns" in top else ()
        return Language(
            shorthand=shorthand,
            synonyms=synonyms,
            stopwords=frozenset(w.lower() for w in stopwords or ()),
            personal=frozenset(w.lower() for w in personal or ()),
            others=frozenset(w.lower() for w in others or ()),
            question_starters=frozenset(w.lower() for w in starters or ()),
            relative_pronouns=frozenset(w.lower() for w in relatives or ()),
            script=(script or "LATIN").upper(),
            ngram_sizes=tuple(sizes),
        )


# Checked first, so that loading a Korean folder does not scan Unicode (0.1 s) at every start.
_COMMON_SCRIPTS = frozenset({"LATIN", "HANGUL", "CJK", "CYRILLIC", "GREEK", "ARABIC", "HEBREW", "THAI", "HIRAGANA", "KATAKANA", "DEVANAGARI"})


@lru_cache(maxsize=1)
def _unicode_scripts() -> frozenset[str]:
    """The first words of Unicode letters' names (LATIN, HANGUL, CJK...): what a script is called."""
    found = set()
    for code_point in range(0x30000):
        ch = chr(code_point)
        if ch.isalpha() and (name := unicodedata.name(ch, "")):
            found.add(name.split(" ", 1)[0])
    return frozenset(found)


def _kind(node: yaml.Node | None) -> str:
    if node is None:
        return "nothing"
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag == "tag:yaml.org,2002:null":
        return "nothing (null)"
    return f"{node.value!r}"


# -- model.npz -------------------------------------------------------------------
def save_model(model: LinearModel, path: Path) -> None:
    """Write a trained classifier (see bot.train) as compressed arrays, no pickles; an
    interrupted write leaves the old file whole (a new one replaces it at the end)."""
    vocabulary = sorted(model.index, key=model.index.__getitem__)
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as out:
        _write_arrays(out, model, vocabulary)
    os.replace(partial, path)


def _write_arrays(out: BinaryIO, model: LinearModel, vocabulary: list[str]) -> None:
    np.savez_compressed(
        out,
        labels=np.array(model.labels),
        vocabulary=np.array(vocabulary),
        idf=model.idf,
        weights=model.weights,
        bias=model.bias,
        spec=np.array(model.spec.to_list()),
        fingerprint=np.array(model.fingerprint),
        temperature=np.array(model.temperature),
        learnt_examples=np.array(sorted(model.learnt_examples), dtype=np.uint64),
    )


def load_model(path: Path) -> LinearModel:
    """Weights written by :func:`save_model`."""
    with np.load(path, allow_pickle=False) as data:
        vocabulary = data["vocabulary"].tolist()
        return LinearModel(
            labels=tuple(data["labels"].tolist()),
            index={feature: row for row, feature in enumerate(vocabulary)},
            idf=data["idf"].astype(np.float64),
            weights=data["weights"].astype(np.float64),
            bias=data["bias"].astype(np.float64),
            spec=FeatureSpec.from_list([int(v) for v in data["spec"].tolist()]),
            fingerprint=str(data["fingerprint"]),
            temperature=float(data["temperature"]) if "temperature" in data else 1.0,
            learnt_examples=frozenset(int(k) for k in data["learnt_examples"].tolist()) if "learnt_examples" in data else frozenset(),
        )
