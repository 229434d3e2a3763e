"""The bot as a real process: start-up, clean SIGTERM stop, and logs that never show the token."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

aiohttp = pytest.importorskip("aiohttp")

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


async def stop_within_five_seconds(process: asyncio.subprocess.Process) -> int:
    """SIGTERM, as systemd and docker stop send it; the exit code (the bot must be done in 5 s)."""
    process.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(process.wait(), timeout=5)


async def kill_if_running(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.kill()
        await process.wait()


async def test_sigterm_stops_cleanly_within_five_seconds_and_logs_hide_the_token(api: FakeBotApi, tmp_path: Path) -> None:
    log = tmp_path / "bot.log"
    process = await start_bot(write_process_config(tmp_path, api, log_level="DEBUG"), log)
    try:
        api.push_update(api.private_text(PATIENT, "does it leave a scar"))
        await api.wait_for_message(PATIENT, timeout=30)  # up and answering (start-up includes imports)
        api.push_update(api.private_text(PATIENT, "my private worry: connect me to a person please"))
        await api.wait_for_message(api.staff_chat_id, lambda m: "private worry" in (m.get("text") or ""), timeout=30)
        code = await stop_within_five_seconds(process)
    finally:
        await kill_if_running(process)
    assert code == 0
    text = log.read_text()
    assert "getUpdates" in text  # DEBUG logging really ran: request URLs were logged...
    assert "<redacted>" in text and api.token not in text  # ...without the token
    assert api.token.split(":", 1)[1] not in text
    assert "private worry" not in text and "leave a scar" not in text  # patients' words: never, even at DEBUG


async def test_a_misconfigured_staff_group_stops_with_a_plain_message(api: FakeBotApi, tmp_path: Path) -> None:
    api.bot_can_manage_topics = False
    log = tmp_path / "bot.log"
    process = await start_bot(write_process_config(tmp_path, api, log_level="DEBUG"), log)
    code = await asyncio.wait_for(process.wait(), timeout=30)
    assert code == 2
    assert "Manage topics" in log.read_text()
    assert api.token not in log.read_text()
    assert "Traceback" not in log.read_text() and "Unclosed" not in log.read_text(), log.read_text()


async def test_a_rejected_token_says_so(api: FakeBotApi, tmp_path: Path) -> None:
    log = tmp_path / "bot.log"
    process = await start_bot(write_process_config(tmp_path, api, log_level="DEBUG"), log, env={"TELEGRAM_BOT_TOKEN": "999:wrong-token"})
    code = await asyncio.wait_for(process.wait(), timeout=30)
    assert code == 2
    assert "telegram.token: Telegram rejected the token" in log.read_text()
    assert "999:wrong-token" not in log.read_text()


def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """A `python -m bot` command beside the running bot, as an operator or a health check runs it."""
    import subprocess

    result = subprocess.run(
        [sys.executable, "-m", "bot", *args], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "TELEGRAM_BOT_TOKEN": "", **(env or {})},
    )
    return result.returncode, result.stdout + result.stderr


async def test_an_operator_can_check_health_back_up_and_not_start_a_second_bot(api: FakeBotApi, tmp_path: Path) -> None:
    config = write_process_config(tmp_path, api)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        health_port = sock.getsockname()[1]
    config.write_text(config.read_text() + f"health: {{port: {health_port}}}\n")
    process = await start_bot(config, tmp_path / "bot.log")
    try:
        api.push_update(api.private_text(PATIENT, "does it leave a scar"))
        await api.wait_for_message(PATIENT, timeout=30)

        code, out = await asyncio.to_thread(run_cli, "health", "--config", str(config))
        assert code == 0 and out.startswith("healthy"), out
        assert "polling" in out
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{health_port}/healthz") as resp:
            assert resp.status == 200 and (await resp.json())["mode"] == "polling"  # for an uptime monitor

        second = await start_bot(config, tmp_path / "second.log")
        assert await asyncio.wait_for(second.wait(), timeout=30) == 3  # refused, not a second poller
        assert "another bot process" in (tmp_path / "second.log").read_text()

        backup = tmp_path / "backup.sqlite3"
        code, out = await asyncio.to_thread(run_cli, "backup", str(backup), "--config", str(config))
        assert code == 0, out
        code, out = await asyncio.to_thread(run_cli, "restore", str(backup), "--config", str(config))
        assert code == 3 and "another bot process" in out, out  # never under a running bot

        assert await stop_within_five_seconds(process) == 0
    finally:
        await kill_if_running(process)
    code, out = await asyncio.to_thread(run_cli, "health", "--config", str(config))
    assert code == 1 and "stopped" in out, out
    code, out = await asyncio.to_thread(run_cli, "restore", str(backup), "--config", str(config))
    assert code == 0 and "kept at" in out, out


def test_run_without_a_token_is_an_error_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("storage: {path: bot.sqlite3}\n")
    code, out = run_cli("run", "--config", str(config))
    assert code == 2
    assert f"{config}: telegram.token: must be set" in out and "python -m bot chat" in out


async def test_whoami_shows_the_staff_group_id_without_taking_the_bots_updates(api: FakeBotApi, tmp_path: Path) -> None:
    # The operator has the token, added the bot to the group and sent /start there; the
    # config does not name the group yet (that is what they are looking for).
    config = tmp_path / "config.yaml"
    config.write_text(f"telegram: {{token: '{api.token}', api_base_url: {api.base_url}}}\n")
    api.push_update(api.group_message(api.staff_chat_id, "/start"))
    code, out = await asyncio.to_thread(run_cli, "whoami", "--config", str(config))
    assert code == 0, out
    assert f"{api.staff_chat_id}" in out and "supergroup with topics" in out
    assert len(api.pending_updates) == 1  # nothing confirmed: the bot will still get it


async def wait_for_text(path: Path, text: str, timeout: float = 30) -> str:
    """The log once it holds ``text`` (polled: the bot writes it from another process)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while text not in (log := path.read_text() if path.exists() else ""):
        assert asyncio.get_running_loop().time() < deadline, f"{text!r} never logged:\n{log}"
        await asyncio.sleep(0.1)
    return log


async def test_a_bot_started_before_the_network_waits_for_telegram_then_answers(tmp_path: Path) -> None:
    api = FakeBotApi()
    await api.start()
    config = write_process_config(tmp_path, api)
    await api.stop()  # Telegram is out of reach while the server boots
    log = tmp_path / "bot.log"
    process = await start_bot(config, log)
    try:
        await wait_for_text(log, "Telegram is out of reach")
        await api.start()  # the network comes up, on the same address
        api.push_update(api.private_text(PATIENT, "does it leave a scar"))
        await api.wait_for_message(PATIENT, timeout=30)
        assert await stop_within_five_seconds(process) == 0
    finally:
        await kill_if_running(process)
        await api.stop()
    text = log.read_text()
    assert "Traceback" not in text and "Unclosed" not in text, text


def test_a_damaged_database_is_named_with_what_to_do_not_a_traceback(tmp_path: Path) -> None:
    database = tmp_path / "bot.sqlite3"
    database.write_bytes(b"this is not an SQLite database " * 1000)
    config = tmp_path / "config.yaml"
    config.write_text(f"telegram: {{token: '1:abc', staff_chat_id: -100}}\nstorage: {{path: {database}}}\n")
    for command in ("run", "health"):
        code, out = run_cli(command, "--config", str(config))
        assert code == 1, out
        assert f"{database}: cannot be used as the bot's database" in out and "python -m bot restore" in out
        assert "Traceback" not in out
