"""The bot as a real process: start-up, clean SIGTERM stop, and logs that never show the token."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

pytest.importorskip("aiohttp")

from tests.bot_harness import write_process_config  # noqa: E402
from tests.conftest import ROOT  # noqa: E402
from tests.fake_bot_api import FakeBotApi  # noqa: E402

PATIENT = 4242


@pytest.fixture()
async def api() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as server:
        yield server


async def start_bot(config: Path, log: Path, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", "--config", str(config),
        cwd=ROOT, stdout=log.open("wb"), stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "TELEGRAM_BOT_TOKEN": "", **(env or {})},
    )


async def test_sigterm_stops_cleanly_within_five_seconds_and_logs_hide_the_token(api: FakeBotApi, tmp_path: Path) -> None:
    log = tmp_path / "bot.log"
    process = await start_bot(write_process_config(tmp_path, api, log_level="DEBUG"), log)
    try:
        api.push_update(api.private_text(PATIENT, "does it leave a scar"))
        await api.wait_for_message(PATIENT, timeout=30)  # up and answering (start-up includes imports)
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), timeout=5)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert code == 0
    text = log.read_text()
    assert "getUpdates" in text  # DEBUG logging really ran: request URLs were logged...
    assert "<redacted>" in text and api.token not in text  # ...without the token
    assert api.token.split(":", 1)[1] not in text


async def test_a_misconfigured_staff_group_stops_with_a_plain_message(api: FakeBotApi, tmp_path: Path) -> None:
    api.bot_can_manage_topics = False
    log = tmp_path / "bot.log"
    process = await start_bot(write_process_config(tmp_path, api, log_level="DEBUG"), log)
    code = await asyncio.wait_for(process.wait(), timeout=30)
    assert code == 2
    assert "Manage topics" in log.read_text()
    assert api.token not in log.read_text()


async def test_a_rejected_token_says_so(api: FakeBotApi, tmp_path: Path) -> None:
    log = tmp_path / "bot.log"
    process = await start_bot(write_process_config(tmp_path, api, log_level="DEBUG"), log, env={"TELEGRAM_BOT_TOKEN": "999:wrong-token"})
    code = await asyncio.wait_for(process.wait(), timeout=30)
    assert code == 2
    assert "telegram.token: Telegram rejected the token" in log.read_text()
    assert "999:wrong-token" not in log.read_text()
