"""While one chat floods the bot, how fast do other patients get their first reply?

One chat sends 300 messages spread over 10 seconds; meanwhile 100 other
patients each ask one question at a random moment of those 10 seconds. Prints
the p50/p95/max time from each patient's question to the bot's first reply,
what the flooder received, and what reached the staff group. Runs the real
bot against the fake Bot API server (in-process here; the figures are
latencies under load, not CPU throughput, see bench_e2e.py for that).

    python benchmarks/bench_flood.py
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.config import RateLimitConfig  # noqa: E402
from tests.bot_harness import BotHarness  # noqa: E402
from tests.fake_bot_api import FakeBotApi  # noqa: E402

FLOODER = 1
PATIENTS = range(1_000, 1_100)
FLOOD_MESSAGES = 300
FLOOD_SECONDS = 10.0


async def main() -> None:
    rng = random.Random(3)
    async with FakeBotApi() as api:
        # Telegram's real limits (30 a second, 20 a minute per group): the staff group is the bottleneck.
        bot = BotHarness(api, Path(tempfile.mkdtemp()), rate_limit=RateLimitConfig(30, 20))
        await bot.start()
        await bot.say(FLOODER, "/human")  # the flooder is with staff: the worst case for the staff group
        staff_before = len(api.sent_messages(bot.staff_chat_id))
        asked_at: dict[int, float] = {}
        events = [(i * FLOOD_SECONDS / FLOOD_MESSAGES, FLOODER, f"flood {i}") for i in range(FLOOD_MESSAGES)]
        events += [(rng.uniform(0, FLOOD_SECONDS), chat, "does it leave a scar") for chat in PATIENTS]
        events.sort()
        start = time.monotonic()
        for at, chat, text in events:
            delay = start + at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # a benchmark paces its load; tests never sleep
            if chat != FLOODER:
                asked_at[chat] = time.monotonic()
            api.push_update(api.private_text(chat, text))
        latencies = []
        for chat in PATIENTS:
            await api.wait_for_message(chat, timeout=60)
        for call in api.calls_to("sendMessage"):
            chat = call.params.get("chat_id")
            if chat in asked_at and chat not in [c for c, _ in latencies]:
                latencies.append((chat, call.time - asked_at[chat]))
        await bot.barrier()
        values = sorted(v for _, v in latencies)
        p95 = values[int(0.95 * (len(values) - 1))]
        flooder_got = [m.get("text", "") for m in bot.sent_to(FLOODER)]
        staff = api.sent_messages(bot.staff_chat_id)[staff_before:]
        print(f"{FLOOD_MESSAGES} messages from one chat over {FLOOD_SECONDS:.0f} s, {len(PATIENTS)} other patients asking meanwhile")
        print(f"  other patients, question -> first reply: p50 {statistics.median(values) * 1000:.0f} ms, "
              f"p95 {p95 * 1000:.0f} ms, max {values[-1] * 1000:.0f} ms")
        print(f"  the flooder received {len(flooder_got)} message(s) from the bot "
              f"({sum(t == bot.dialogue.texts['flood_notice'] for t in flooder_got)} flood notice)")
        print(f"  staff group received {len(staff)} message(s) carrying the flooder's {FLOOD_MESSAGES} texts")
        await bot.stop()


if __name__ == "__main__":
    asyncio.run(main())
