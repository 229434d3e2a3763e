"""The reference for ``bench_e2e.py``: a bare python-telegram-bot echo bot with default settings.

Nothing is tuned: ``ApplicationBuilder().token(...).base_url(...).build()`` (so PTB's
defaults apply: updates handled one at a time, an HTTPX pool of 256 connections for
requests and 1 for getUpdates) and ``run_polling()`` with its default arguments. Every
text message is answered with its own text.

    python benchmarks/echo_bot.py --token TOKEN --base-url http://127.0.0.1:PORT/bot [--rate-limiter]

``--rate-limiter`` is the plain way to respect Telegram's limits with python-telegram-bot
(``bench_limits.py``'s reference): its ``AIORateLimiter`` with default settings, and updates
handled concurrently (one at a time, every 429 wait would stop the whole bot).
"""

from __future__ import annotations

import argparse
import logging

from telegram import Update
from telegram.ext import AIORateLimiter, ApplicationBuilder, ContextTypes, MessageHandler, filters


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message is not None and update.message.text is not None
    await update.message.reply_text(update.message.text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--token", required=True)
    parser.add_argument("--base-url", required=True, help="Bot API base URL; PTB appends '<token>/<method>'")
    parser.add_argument("--rate-limiter", action="store_true", help="PTB's AIORateLimiter, updates handled concurrently")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    builder = ApplicationBuilder().token(args.token).base_url(args.base_url)
    if args.rate_limiter:
        builder = builder.rate_limiter(AIORateLimiter()).concurrent_updates(True)
    application = builder.build()
    application.add_handler(MessageHandler(filters.TEXT, echo))
    application.run_polling()


if __name__ == "__main__":
    main()
