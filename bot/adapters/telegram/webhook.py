"""Webhook mode's HTTP server (aiohttp): Telegram's POSTs in, the Application's update queue out.

python-telegram-bot's own server compares the secret with ``!=``, buffers any body
(tornado allows 100 MB), and answers an update it cannot read with HTTP 400 after
logging the whole update, patient's words included. This one compares in constant
time, refuses a body over MAX_BODY_BYTES before reading it, and skips an unreadable
update like polling does (see bot.adapters.telegram.journal.parse_update). It also answers
``GET /healthz`` for a load balancer or an uptime monitor.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web
from telegram.ext import Application

from bot.config import WebhookConfig
from bot.service import Health
from bot.adapters.telegram.app import ALLOWED_UPDATES
from bot.adapters.telegram.journal import parse_update

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# Telegram's updates are a few kilobytes (a long message with entities: ~30 KB).
MAX_BODY_BYTES = 1_000_000


class HealthServer:
    """``GET /healthz``: 200 when healthy, 503 with the reasons when not (for a polling bot
    whose config names health.port; the webhook server below serves it too)."""

    def __init__(self, health: Callable[[], Health] | None, *, max_body: int = 1024) -> None:
        self._health = health
        self.app = web.Application(client_max_size=max_body)
        self.app.router.add_get("/healthz", self._healthz)
        self._runner = web.AppRunner(self.app, access_log=None)

    async def start(self, host: str, port: int) -> None:
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def _healthz(self, _request: web.Request) -> web.Response:
        if self._health is None:
            return web.json_response({"healthy": True})
        verdict = self._health()
        body = {"healthy": verdict.healthy, "problems": list(verdict.problems), **verdict.figures}
        return web.json_response(body, status=200 if verdict.healthy else 503)


class WebhookServer(HealthServer):
    """Serves ``POST /<path>`` for Telegram, and ``GET /healthz``."""

    def __init__(
        self,
        application: Application[Any, Any, Any, Any, Any, Any],
        *,
        path: str,
        secret_token: str,
        health: Callable[[], Health] | None = None,
    ) -> None:
        super().__init__(health, max_body=MAX_BODY_BYTES)
        self.application = application
        self._secret = secret_token.encode()
        self.app.router.add_post(f"/{path.strip('/')}", self._receive)

    async def _receive(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, self._secret):
            return web.Response(status=403)
        if request.content_length is None or request.content_length > MAX_BODY_BYTES:
            return web.Response(status=413)  # refused before a byte of it is read
        try:
            data = json.loads(await request.read())
        except (ValueError, web.HTTPRequestEntityTooLarge):
            return web.Response(status=400)
        if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
            return web.Response(status=400)
        # Queued (and so journaled, see JournalingQueue) before Telegram hears 200.
        await self.application.update_queue.put(parse_update(data, self.application.bot))
        return web.Response(status=200)


async def open_webhook(
    application: Application[Any, Any, Any, Any, Any, Any], webhook: WebhookConfig, *, health: Callable[[], Health] | None = None
) -> WebhookServer:
    """Listen, then tell Telegram where to deliver (the same updates polling asks for)."""
    server = WebhookServer(application, path=webhook.path, secret_token=webhook.secret_token, health=health)
    await server.start(webhook.listen, webhook.port)
    await application.bot.set_webhook(webhook.url, secret_token=webhook.secret_token, allowed_updates=ALLOWED_UPDATES)
    return server
