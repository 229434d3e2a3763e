"""What patients feel under Telegram's real limits, when many write at once.

The fake Bot API server runs in its own process with Telegram's flood limits
(``fake_server_process.py --limits``: about 30 messages a second per bot, a
burst of 3 and then about one a second into one chat, 20 in any minute into a
group; past them, 429 with ``retry_after``). Each bot, in turn, started as
deployed (``python -m bot run``; then the reference, ``echo_bot.py
--rate-limiter``: python-telegram-bot with its ``AIORateLimiter``):

1. is warmed up (bench_e2e's warm-up: each question once, in a chat of its own);
2. gets a burst of ``--chats`` x ``--per-chat`` questions queued at once (60 x 10);
3. 3 s in, a patient asks for a person (our bot only: the echo bot has no staff);
4. 5 s in, a new patient asks one question.

Figures (server clock): sends delivered per second while the backlog lasted, as a
share of the 30/s limit; 429s provoked; the new patient's wait for their first
reply; the handed-off patient's wait for their reply and for their card in the
staff group; p50/p95 of every chat's first reply; order kept in every chat;
nothing lost; peak RSS. Prints figures, asserts nothing.

    pip install -e '.[bench]'   # the reference needs python-telegram-bot's rate limiter
    python benchmarks/bench_limits.py [--chats 60] [--per-chat 10] [--bots ours,echo]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_e2e import (  # noqa: E402
    PYTHON,
    QUESTIONS,
    ROOT,
    BenchError,
    CallFeed,
    ChatTrack,
    FakeServer,
    check_alive,
    log_tail,
    percentile,
    proc_status_kib,
    stop_process,
    usable_questions,
    warm_up,
)

LIMIT_PER_SECOND = 30.0
SENDS = ("sendMessage", "copyMessage", "createForumTopic")
ASK_FOR_A_PERSON_AT = 3.0
NEW_PATIENT_AT = 5.0
HANDOFF_CHAT, NEW_CHAT = 7_000_001, 7_000_002
POLL_SECONDS = 0.05


class LimitedServer(FakeServer):
    """The fake server with Telegram's limits on."""

    def __init__(self, workdir: Path) -> None:
        self.log_path = workdir / "fake_server.log"
        self.process = subprocess.Popen(
            [PYTHON, str(HERE / "fake_server_process.py"), "--limits"],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log_path.open("wb"), text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise BenchError(f"the fake server did not start:\n{log_tail(self.log_path)}")
        import json

        self.info = json.loads(line)
        self.control = f"http://127.0.0.1:{self.info['control_port']}"


@dataclass
class Figures:
    label: str
    questions: int = 0
    answered: int = 0
    backlog_seconds: float | None = None
    delivered: int = 0
    refused: int = 0
    new_patient_wait: float | None = None
    handoff_reply_wait: float | None = None
    handoff_card_wait: float | None = None
    first_replies: list[float] = field(default_factory=list)
    out_of_place: int = 0
    peak_rss_kib: int | None = None
    note: str = ""


def command(name: str, server: FakeServer, workdir: Path) -> list[str]:
    info = server.info
    if name == "echo":
        return [PYTHON, str(HERE / "echo_bot.py"), "--token", info["token"], "--base-url", info["base_url"], "--rate-limiter"]
    config = workdir / "config.yaml"
    config.write_text(
        f"""telegram:
  token: "{info['token']}"
  api_base_url: {info['base_url']}
  staff_chat_id: {info['staff_chat_id']}
storage: {{path: "{workdir / 'bench.sqlite3'}"}}
faq: {{path: "{ROOT / 'faq'}"}}
logging: {{level: WARNING}}
"""
    )
    return [PYTHON, "-m", "bot", "run", "--config", str(config)]


def run(name: str, label: str, base: int, server: FakeServer, workroot: Path, args: argparse.Namespace) -> Figures:
    from bench_e2e import BotSpec

    workdir = workroot / name
    workdir.mkdir()
    log_path = workdir / "bot.log"
    figures = Figures(label)
    server.drop_pending()
    env = {**os.environ, "TELEGRAM_BOT_TOKEN": ""}
    process = subprocess.Popen(command(name, server, workdir), cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                               stdout=log_path.open("wb"), stderr=subprocess.STDOUT)
    try:
        replies, _ = warm_up(server, process, log_path, BotSpec(name, label, base), list(QUESTIONS))
        questions, answer_of, _ = usable_questions(replies)
        time.sleep(1.5)  # the warm-up's sends leave the one-second windows
        tracks = {base + c + 1: ChatTrack([answer_of[questions[(c + i) % len(questions)]] for i in range(args.per_chat)])
                  for c in range(args.chats)}
        order = [(base + c + 1, questions[(c + i) % len(questions)]) for i in range(args.per_chat) for c in range(args.chats)]
        figures.questions = len(order)
        feed = CallFeed(server)
        queued_at = server.push(order)["queued_at"]
        started = time.monotonic()
        asked: dict[int, float] = {}
        first_reply: dict[int, float] = {}
        deadline = started + args.timeout
        waiting = set(tracks)
        last_reply = queued_at
        while waiting or len(first_reply) < len(asked) or (name == "ours" and figures.handoff_card_wait is None and HANDOFF_CHAT in asked):
            check_alive(process, log_path, label)
            elapsed = time.monotonic() - started
            if name == "ours" and HANDOFF_CHAT not in asked and elapsed >= ASK_FOR_A_PERSON_AT:
                asked[HANDOFF_CHAT] = server.push([(HANDOFF_CHAT, "/human")])["queued_at"]
            if NEW_CHAT not in asked and elapsed >= NEW_PATIENT_AT:
                asked[NEW_CHAT] = server.push([(NEW_CHAT, questions[0])])["queued_at"]
            for call in feed.poll():
                chat, ok = call["chat_id"], call["status"] == 200
                if call["status"] == 429:
                    figures.refused += 1
                if call["method"] in SENDS and ok:
                    figures.delivered += 1
                if not ok:
                    continue
                if chat in asked and chat not in first_reply and call["method"] == "sendMessage":
                    first_reply[chat] = call["time"]
                if chat == server.info["staff_chat_id"] and str(HANDOFF_CHAT) in (call["text"] or "") and HANDOFF_CHAT in asked:
                    figures.handoff_card_wait = figures.handoff_card_wait or call["time"] - asked[HANDOFF_CHAT]
                track = tracks.get(chat)
                if track is not None and call["method"] == "sendMessage" and track.take(call["text"], call["time"]):
                    figures.first_replies.append(call["time"] - queued_at) if len(track.arrival) == 1 else None
                    last_reply = max(last_reply, call["time"])
                    if track.done:
                        waiting.discard(chat)
            if time.monotonic() > deadline:
                figures.note = f"timed out after {args.timeout:.0f}s"
                break
            time.sleep(POLL_SECONDS)
        figures.answered = sum(len(t.arrival) for t in tracks.values())
        figures.backlog_seconds = last_reply - queued_at
        figures.out_of_place = sum(t.out_of_place for t in tracks.values())
        if NEW_CHAT in first_reply:
            figures.new_patient_wait = first_reply[NEW_CHAT] - asked[NEW_CHAT]
        if HANDOFF_CHAT in first_reply:
            figures.handoff_reply_wait = first_reply[HANDOFF_CHAT] - asked[HANDOFF_CHAT]
        figures.peak_rss_kib = proc_status_kib(process.pid, "VmHWM")
    finally:
        stop_process(process)
    return figures


def report(results: list[Figures]) -> str:
    def s(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f} s"

    rows = [["", *(r.label for r in results)]]
    add = rows.append
    add(["answered (nothing lost)", *(f"{r.answered}/{r.questions}" for r in results)])
    add(["backlog lasted", *(s(r.backlog_seconds) for r in results)])
    add(["delivered/s, share of 30/s", *(
        "-" if not r.backlog_seconds else f"{r.delivered / r.backlog_seconds:.1f} ({r.delivered / r.backlog_seconds / LIMIT_PER_SECOND:.0%})"
        for r in results)])
    add(["429s provoked", *(str(r.refused) for r in results)])
    add(["new patient (5 s in): first reply", *(s(r.new_patient_wait) for r in results)])
    add(["asks for a person (3 s in): reply", *(s(r.handoff_reply_wait) for r in results)])
    add(["  ...card in the staff topic", *(s(r.handoff_card_wait) for r in results)])
    add(["first replies p50", *(s(percentile(r.first_replies, 0.5)) if r.first_replies else "-" for r in results)])
    add(["first replies p95", *(s(percentile(r.first_replies, 0.95)) if r.first_replies else "-" for r in results)])
    add(["order kept in every chat", *("yes" if not r.out_of_place else f"NO ({r.out_of_place} out of place)" for r in results)])
    add(["peak RSS", *("-" if r.peak_rss_kib is None else f"{r.peak_rss_kib / 1024:.0f} MiB" for r in results)])
    if any(r.note for r in results):
        add(["note", *(r.note or "-" for r in results)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)) for row in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=60)
    parser.add_argument("--per-chat", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--bots", default="ours,echo")
    args = parser.parse_args(argv)
    labels = {"ours": ("our bot", 100_000_000), "echo": ("PTB + AIORateLimiter", 200_000_000)}
    workroot = Path(tempfile.mkdtemp(prefix="bench_limits_"))
    print(f"{args.chats} chats x {args.per_chat} questions queued at once, under Telegram's limits; {os.cpu_count()} CPUs")
    results = []
    server = LimitedServer(workroot)
    try:
        for name in [n.strip() for n in args.bots.split(",") if n.strip()]:
            label, base = labels[name]
            results.append(run(name, label, base, server, workroot, args))
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        server.close()
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
