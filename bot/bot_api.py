"""A lean Bot API client for the outbox: one JSON POST per send, raw results, Telegram's limits.

python-telegram-bot stays in charge of receiving updates; sending through it
builds request parameters, wraps the rate limiter and parses every answer into
objects the bot never looks at. Under a burst that was most of the bot's CPU.
Errors are raised as python-telegram-bot's exceptions, so callers handle one
vocabulary. The URL contains the token: nothing here logs it.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import json
from typing import Any

import aiohttp
from aiolimiter import AsyncLimiter
from telegram.error import BadRequest, ChatMigrated, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError, TimedOut


class RetryLater(RetryAfter):
    """A 429 answer; ``seconds`` is how long Telegram asks us to wait."""

    def __init__(self, seconds: float) -> None:
        super().__init__(dtm.timedelta(seconds=seconds))
        self.seconds = seconds


class BotApi:
    """Sends Bot API requests under Telegram's limits: overall per second, and per group per minute."""

    def __init__(
        self,
        base_url: str,
        *,
        overall_per_second: float = 30.0,
        group_per_minute: float = 20.0,
        connections: int = 128,
        timeout: float = 15.0,
    ) -> None:
        self._base_url = base_url.rstrip("/")  # ends with the token: …/bot<token>
        self._overall = AsyncLimiter(overall_per_second, 1) if overall_per_second else None
        self._group_rate = group_per_minute
        self._groups: dict[int, AsyncLimiter] = {}  # only group chats (negative ids): a handful
        self._connections = connections
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections, limit_per_host=self._connections), timeout=self._timeout
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(self, method: str, **params: Any) -> Any:
        """POST ``method`` with ``params`` (None values left out); the raw ``result``, or a TelegramError."""
        if self._session is None:
            await self.start()
        assert self._session is not None
        body = {k: v for k, v in params.items() if v is not None}
        chat_id = body.get("chat_id")
        if self._group_rate and isinstance(chat_id, int) and chat_id < 0:
            limiter = self._groups.setdefault(chat_id, AsyncLimiter(self._group_rate, 60))
            async with limiter:
                return await self._post(method, body)
        return await self._post(method, body)

    async def _post(self, method: str, body: dict[str, Any]) -> Any:
        assert self._session is not None
        if self._overall is not None:
            await self._overall.acquire()
        try:
            async with self._session.post(f"{self._base_url}/{method}", json=body) as response:
                status = response.status
                raw = await response.read()
        except asyncio.TimeoutError as exc:
            raise TimedOut from exc
        except aiohttp.ClientError as exc:
            raise NetworkError(f"aiohttp.{type(exc).__name__}") from exc
        try:
            answer = json.loads(raw)
        except ValueError:
            raise NetworkError(f"HTTP {status}: answer is not JSON") from None
        if answer.get("ok"):
            return answer.get("result")
        raise _error(status, answer)


def _error(status: int, answer: dict[str, Any]) -> TelegramError:
    """python-telegram-bot's exception for a Bot API error answer."""
    description = str(answer.get("description") or f"HTTP {status}")
    parameters = answer.get("parameters") or {}
    if "retry_after" in parameters:
        return RetryLater(float(parameters["retry_after"]))
    if "migrate_to_chat_id" in parameters:
        return ChatMigrated(int(parameters["migrate_to_chat_id"]))
    if status == 403:
        return Forbidden(description)
    if status in (401, 404):
        return InvalidToken(description)
    if status == 400:
        return BadRequest(description)
    return NetworkError(description)  # 5xx and anything unexpected: worth retrying
