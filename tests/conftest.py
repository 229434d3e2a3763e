"""Shared fixtures: the real FAQ, loaded once."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core.dialogue import Dialogue
from bot.core.knowledge import KnowledgeBase
from bot.core.matcher import Matcher
from bot.knowledge_files import DEFAULT_FAQ_DIR, load_knowledge

ROOT = Path(__file__).resolve().parent.parent
FAQ_DIR = DEFAULT_FAQ_DIR


@pytest.fixture(scope="session")
def knowledge() -> KnowledgeBase:
    return load_knowledge(FAQ_DIR)


@pytest.fixture(scope="session")
def matcher(knowledge: KnowledgeBase) -> Matcher:
    return Matcher(knowledge)


@pytest.fixture(scope="session")
def dialogue(knowledge: KnowledgeBase, matcher: Matcher) -> Dialogue:
    return Dialogue(knowledge, matcher)
