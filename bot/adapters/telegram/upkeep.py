"""What the running bot does besides conversations: its heartbeat, housekeeping and /healthz."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from typing import Any

from bot.adapters.sqlite.store import Store
from bot.config import Config
from bot.service import HEARTBEAT_SECONDS, current_health

log = logging.getLogger(__name__)

# Telegram keeps unconfirmed updates for 24 hours; ids handled longer ago cannot come back.
JOURNAL_KEEP_SECONDS = 2 * 86_400
HOUSEKEEPING_SECONDS = 3_600


class Upkeep:
    """The heartbeat `python -m bot health` reads, hourly housekeeping (journal, retention),
    and GET /healthz on health.port while polling (webhook mode serves it on its own port)."""

    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.store = store
        self.polling: Any = None  # the getUpdates request (its last answer's time), set by build_application
        self._started_at = time.time()
        self._tasks: list[asyncio.Task[None]] = []
        self._health_server: Any = None

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._heartbeat(), name="heartbeat"),
            asyncio.create_task(self._housekeeping(), name="housekeeping"),
        ]
        if self.config.health_port and self.config.telegram.mode == "polling":
            from bot.adapters.telegram.webhook import HealthServer

            self._health_server = HealthServer(lambda: current_health(self.store))
            await self._health_server.start(self.config.health_listen, self.config.health_port)

    async def stop(self) -> None:
        if self._health_server is not None:
            await self._health_server.stop()
            self._health_server = None
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self._beat("stopped")

    def _beat(self, mode: str) -> None:
        last_poll = self.polling.last_answer_at if self.polling is not None else None
        self.store.beat(pid=os.getpid(), mode=mode, started_at=self._started_at, last_poll_at=last_poll)

    async def _heartbeat(self) -> None:
        """For `python -m bot health` (another process): alive, in which mode, last getUpdates answered."""
        while True:
            try:
                self._beat(self.config.telegram.mode)
            except sqlite3.Error as exc:  # a busy or full disk must not end the heartbeat task
                log.warning("Heartbeat not recorded: %s", exc)
            await asyncio.sleep(HEARTBEAT_SECONDS)

    async def _housekeeping(self) -> None:
        """Hourly: forget handled update ids Telegram can no longer re-send, apply the retention setting."""
        while True:
            now = time.time()
            self.store.prune_journal(now - JOURNAL_KEEP_SECONDS)
            if self.config.retention_days:
                removed = self.store.delete_older_than(now - self.config.retention_days * 86_400)
                if removed:
                    log.info("Retention: deleted %d rows of personal data older than %d days", removed, self.config.retention_days)
            await asyncio.sleep(HOUSEKEEPING_SECONDS)
