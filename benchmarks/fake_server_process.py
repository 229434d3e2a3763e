"""The fake Telegram Bot API server (``tests/fake_bot_api.FakeBotApi``) in a process of its own,
with a small HTTP control interface for ``bench_e2e.py``.

Running the server in its own process keeps its CPU time off the bot's and the load
driver's: the bot under test competes only with the server, as it would with the
network in production. Two ports on 127.0.0.1, both chosen free at start-up:

- the Bot API (what the bots talk to), and
- the control API (what the driver talks to), served by the same event loop.

On start-up one JSON line goes to stdout: ``{"api_port", "control_port", "token",
"base_url", "staff_chat_id", "pid"}``. The process stops on SIGTERM/SIGINT or when its
standard input is closed (so it never outlives a crashed driver).

Control API (JSON in, JSON out):

``POST /push`` ``{"messages": [[chat_id, text], ...]}``
    Builds one private text update per pair, then queues them all in one synchronous
    loop, so no getUpdates can be answered in between. Answers ``{"queued_at"}``: the
    server's ``time.monotonic()`` right after the last one was queued, the moment the
    whole batch became visible to getUpdates, plus the update id range.
``GET /calls?from=N``
    Answered Bot API calls from index N of ``api.calls`` (getUpdates left out), each
    ``{"i", "method", "chat_id", "text", "time", "status", "description"}``, where
    ``time`` is the server's ``time.monotonic()`` when the request arrived; ``next``
    is the index to ask from next time (the first call still in flight, if any).
``GET /pending``
    ``{"pending_updates": n}``: updates queued and not yet confirmed by a getUpdates.
``POST /drop``
    Drops every pending update (through the fake's own ``deleteWebhook
    drop_pending_updates=true``), so one bot's leftovers never reach the next one.

Both clocks are the server's, so latencies never mix two processes' clocks.

    python benchmarks/fake_server_process.py [--limits]

With ``--limits`` the server keeps Telegram's flood limits (``tests.fake_bot_api.TelegramLimits``):
sends past them are answered 429 with ``retry_after``, as Telegram answers them.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

from aiohttp import ClientSession, web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fake_bot_api import FakeBotApi  # noqa: E402


def _call_record(index: int, call) -> dict:  # noqa: ANN001
    params = call.params if isinstance(call.params, dict) else {}
    text = params.get("text")
    return {
        "i": index,
        "method": call.method,
        "chat_id": params.get("chat_id"),
        "text": text if isinstance(text, str) else None,
        "time": call.time,
        "status": call.status,
        "description": call.description,
    }


def control_app(api: FakeBotApi) -> web.Application:
    routes = web.RouteTableDef()

    @routes.post("/push")
    async def push(request: web.Request) -> web.Response:
        body = await request.json()
        started = time.monotonic()
        updates = [api.private_text(int(chat_id), str(text)) for chat_id, text in body["messages"]]
        built = time.monotonic()
        ids = [api.push_update(update) for update in updates]  # no await in here: one batch
        queued_at = time.monotonic()
        return web.json_response(
            {
                "queued_at": queued_at,
                "build_seconds": built - started,
                "push_seconds": queued_at - built,
                "first_update_id": ids[0] if ids else None,
                "last_update_id": ids[-1] if ids else None,
            }
        )

    @routes.get("/calls")
    async def calls(request: web.Request) -> web.Response:
        start = int(request.query.get("from", "0"))
        records = []
        next_index = len(api.calls)
        for index in range(start, len(api.calls)):
            call = api.calls[index]
            if call.method == "getUpdates":
                continue
            if call.status is None:  # still in flight: report it next time
                next_index = index
                break
            records.append(_call_record(index, call))
        return web.json_response({"calls": records, "next": next_index, "total": len(api.calls)})

    @routes.get("/pending")
    async def pending(request: web.Request) -> web.Response:
        return web.json_response({"pending_updates": len(api.pending_updates)})

    @routes.post("/drop")
    async def drop(request: web.Request) -> web.Response:
        async with ClientSession() as session:
            url = f"{api.base_url}{api.token}/deleteWebhook"
            async with session.post(url, json={"drop_pending_updates": True}) as response:
                ok = response.status == 200
        return web.json_response({"ok": ok, "pending_updates": len(api.pending_updates)})

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.add_routes(routes)
    return app


async def serve() -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    def watch_stdin() -> None:
        try:
            sys.stdin.buffer.read()
        finally:
            loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch_stdin, daemon=True).start()

    async with FakeBotApi() as api:
        if "--limits" in sys.argv[1:]:
            api.enforce_limits()  # Telegram's flood limits: 429 with retry_after past them
        runner = web.AppRunner(control_app(api), access_log=None)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        sock.setblocking(False)
        control_port = sock.getsockname()[1]
        await web.SockSite(runner, sock).start()
        ready = {
            "api_port": api.port,
            "control_port": control_port,
            "token": api.token,
            "base_url": api.base_url,
            "staff_chat_id": api.staff_chat_id,
            "pid": os.getpid(),
        }
        print(json.dumps(ready), flush=True)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()


def main() -> None:
    asyncio.run(serve())


if __name__ == "__main__":
    main()
