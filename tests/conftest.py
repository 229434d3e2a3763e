"""Shared fixtures: the real FAQ, loaded once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

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


@pytest.fixture()
async def api() -> AsyncIterator[Any]:
    """The fake Telegram Bot API server on 127.0.0.1."""
    from tests.fake_bot_api import FakeBotApi

    async with FakeBotApi() as server:
        yield server


@pytest.fixture()
async def bot(api: Any, tmp_path: Path) -> AsyncIterator[Any]:
    """The real bot (python-telegram-bot Application, store, outbox) polling the fake server."""
    from tests.bot_harness import BotHarness

    harness = BotHarness(api, tmp_path)
    await harness.start()
    yield harness
    await harness.stop()
