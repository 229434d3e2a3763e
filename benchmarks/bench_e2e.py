"""End-to-end throughput and latency of the bot through the fake Telegram Bot API server.

Three kinds of process, so none steals the others' CPU time inside one event loop:

- the fake Bot API server, ``benchmarks/fake_server_process.py`` (``tests/fake_bot_api``
  plus a small control API: push a batch of updates, read the calls it received);
- the bot under test, started as deployed, ``python -m bot run --config CONFIG`` (a black
  box: only its command line and its Bot API traffic are used), then the reference,
  ``benchmarks/echo_bot.py``, a bare python-telegram-bot echo bot with default settings,
  both against the same server, one after the other;
- this driver, which starts them, pushes the load through the control API, waits, and
  computes the figures. It sleeps between polls of the control API.

For each bot:

1. Warm-up (not counted): each of the FAQ questions below goes to a chat of its own;
   once every one is answered (plus a second of quiet), the reply to each is known.
   Questions that got more or fewer than one message, or the same reply as another
   question, are left out, so every reply identifies its question.
2. Load: ``--chats`` chats each ask ``--per-chat`` different questions (chat ``c`` asks
   questions ``c, c+1, ...`` of the list), all queued in the server at once, in
   round-robin order (every chat's first question, then every chat's second, ...).
3. The driver waits until every question has its reply (``--timeout``). A reply is a
   successful sendMessage to the chat whose text is the question's known reply; it
   is assigned to the earliest question of that chat still waiting for that text.

Figures (all times from the server's own clock):

- throughput: questions answered / (arrival of the last reply - queueing);
- latency p50/p99/max: from queueing to the arrival at the server of the
  sendMessage that answers the question (each FAQ answer is one message, so the
  first reply is the full answer);
- per-chat order: kept when, in every chat, the i-th reply answers the i-th question;
  "out of place" counts the replies that do not;
- peak RSS: the bot process's VmHWM from /proc at the end (Linux), over its lifetime;
  RSS after warm-up is VmRSS just before the load;
- CPU seconds of the bot and of the fake server while the load ran (if the server's is
  close to the elapsed time, the server was the bottleneck, not the bot).

Prints figures and asserts nothing; the exit status is 1 only when the run could not
complete (a timeout, a process that died), 0 otherwise, broken order included.

    python benchmarks/bench_e2e.py [--chats 200] [--per-chat 10] [--quick] [--timeout 300]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON = sys.executable

#: Real patient questions, each answered by a different FAQ entry.
QUESTIONS = [
    "does it leave a scar",
    "how long is recovery",
    "will my neck be lifted as well",
    "what is the smas mini lift",
    "how is it different from a simple lift",
    "why does my face sag",
    "what is the deep plane technique",
    "do you do fat grafting with it",
    "will it look natural",
    "do i need a consultation first",
    "how do i choose a clinic",
    "am i a good candidate",
]

POLL_SECONDS = 0.05
WARM_UP_TIMEOUT = 120.0
WARM_UP_QUIET = 1.0
STOP_TIMEOUT = 20.0


class BenchError(RuntimeError):
    """The benchmark could not run (a process died, a timeout during start-up, ...)."""


# ----------------------------------------------------------------------------- helpers


def http_json(url: str, body: Any = None, timeout: float = 60.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def proc_status_kib(pid: int, key: str) -> int | None:
    """A ``kB`` field of /proc/<pid>/status (VmHWM: peak resident set, VmRSS: current)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def proc_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (/proc/<pid>/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop_process(process: subprocess.Popen, timeout: float = STOP_TIMEOUT) -> int | None:
    """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


# ----------------------------------------------------------------------------- the server


class FakeServer:
    """``fake_server_process.py`` running in a child process."""

    def __init__(self, workdir: Path) -> None:
        self.log_path = workdir / "fake_server.log"
        self.process = subprocess.Popen(
            [PYTHON, str(HERE / "fake_server_process.py")],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log_path.open("wb"),
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # blocks until the server is up (or has died)
        if not line:
            raise BenchError(f"the fake server did not start:\n{log_tail(self.log_path)}")
        self.info: dict[str, Any] = json.loads(line)
        self.control = f"http://127.0.0.1:{self.info['control_port']}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def push(self, messages: list[tuple[int, str]]) -> dict[str, Any]:
        return http_json(f"{self.control}/push", {"messages": messages})

    def calls(self, start: int) -> dict[str, Any]:
        return http_json(f"{self.control}/calls?from={start}")

    def drop_pending(self) -> None:
        http_json(f"{self.control}/drop", {})

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()  # the server stops when its stdin closes
        stop_process(self.process, timeout=5)


class CallFeed:
    """The server's answered calls, read incrementally (in arrival order)."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.cursor = server.calls(0)["total"]  # only what arrives from now on

    def poll(self) -> list[dict[str, Any]]:
        answer = self.server.calls(self.cursor)
        self.cursor = answer["next"]
        return answer["calls"]


# ----------------------------------------------------------------------------- the bots


@dataclass
class BotSpec:
    name: str
    label: str
    chat_base: int

    def command(self, server: FakeServer, workdir: Path) -> list[str]:
        info = server.info
        if self.name == "echo":
            return [PYTHON, str(HERE / "echo_bot.py"), "--token", info["token"], "--base-url", info["base_url"]]
        config = workdir / "config.yaml"
        config.write_text(
            f"""telegram:
  token: "{info['token']}"
  api_base_url: {info['base_url']}
  staff_chat_id: {info['staff_chat_id']}
  rate_limit: {{overall_per_second: 0, group_per_minute: 0, chat_per_second: 0}}
storage: {{path: {json.dumps(str(workdir / 'bench.sqlite3'))}}}
faq: {{path: {json.dumps(str(ROOT / 'faq'))}}}
logging: {{level: WARNING}}
"""
        )
        return [PYTHON, *(["-m", "cProfile", "-o", os.environ["BENCH_PROFILE"]] if os.environ.get("BENCH_PROFILE") else []), "-m", "bot", "run", "--config", str(config)]


@dataclass
class ChatTrack:
    """One chat of the load: its questions' expected replies and when each arrived."""

    expected: list[str]
    answered_at: list[float | None] = field(default_factory=list)
    arrival: list[int] = field(default_factory=list)  # question indices in reply order

    def __post_init__(self) -> None:
        self.answered_at = [None] * len(self.expected)

    def take(self, text: str | None, at: float) -> bool:
        for index, expected in enumerate(self.expected):
            if self.answered_at[index] is None and expected == text:
                self.answered_at[index] = at
                self.arrival.append(index)
                return True
        return False

    @property
    def done(self) -> bool:
        return len(self.arrival) == len(self.expected)

    @property
    def out_of_place(self) -> int:
        return sum(1 for position, index in enumerate(self.arrival) if position != index)


@dataclass
class Result:
    label: str
    questions: int = 0
    answered: int = 0
    elapsed: float | None = None
    latencies: list[float] = field(default_factory=list)
    out_of_place: int = 0
    chats_out_of_order: int = 0
    peak_rss_kib: int | None = None
    warm_rss_kib: int | None = None
    bot_cpu: float | None = None
    server_cpu: float | None = None
    other_calls: Counter = field(default_factory=Counter)
    failed_calls: Counter = field(default_factory=Counter)
    push_info: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    note: str = ""

    @property
    def throughput(self) -> float | None:
        if not self.elapsed or not self.answered:
            return None
        return self.answered / self.elapsed

    @property
    def order_kept(self) -> bool:
        return self.out_of_place == 0 and self.chats_out_of_order == 0


def check_alive(process: subprocess.Popen, log_path: Path, what: str) -> None:
    if process.poll() is not None:
        raise BenchError(f"{what} exited with code {process.returncode}:\n{log_tail(log_path)}")


def warm_up(
    server: FakeServer, process: subprocess.Popen, log_path: Path, spec: BotSpec, questions: list[str]
) -> tuple[dict[str, list[str]], float | None]:
    """Ask each question in a chat of its own (queued before the bot is up); returns every reply
    text per question, and when the first reply came."""
    first_reply: float | None = None
    feed = CallFeed(server)
    chats = {spec.chat_base + 900_000 + n: q for n, q in enumerate(questions)}
    server.push(list(chats.items()))
    replies: dict[int, list[str]] = {chat: [] for chat in chats}
    deadline = time.monotonic() + WARM_UP_TIMEOUT
    quiet_until: float | None = None
    while True:
        check_alive(process, log_path, spec.label)
        for call in feed.poll():
            if call["method"] == "sendMessage" and call["status"] == 200 and call["chat_id"] in replies:
                replies[call["chat_id"]].append(call["text"])
                first_reply = first_reply or time.monotonic()
                if quiet_until is not None:
                    quiet_until = time.monotonic() + WARM_UP_QUIET
        now = time.monotonic()
        if quiet_until is None and all(replies.values()):
            quiet_until = now + WARM_UP_QUIET
        if quiet_until is not None and now >= quiet_until:
            return {chats[chat]: texts for chat, texts in replies.items()}, first_reply
        if now > deadline:
            missing = [chats[c] for c, texts in replies.items() if not texts]
            raise BenchError(f"{spec.label}: no warm-up reply within {WARM_UP_TIMEOUT:.0f}s to {missing}:\n{log_tail(log_path)}")
        time.sleep(POLL_SECONDS)


def usable_questions(replies: dict[str, list[str]]) -> tuple[list[str], dict[str, str], list[str]]:
    """Questions answered by exactly one message, distinct from every other question's."""
    counts = Counter(texts[0] for texts in replies.values() if len(texts) == 1)
    usable = [q for q, texts in replies.items() if len(texts) == 1 and counts[texts[0]] == 1]
    dropped = [q for q in replies if q not in usable]
    return usable, {q: replies[q][0] for q in usable}, dropped


def run_bot(spec: BotSpec, server: FakeServer, workroot: Path, args: argparse.Namespace, questions: list[str]) -> tuple[Result, list[str]]:
    workdir = workroot / spec.name
    workdir.mkdir()
    log_path = workdir / "bot.log"
    result = Result(spec.label)
    server.drop_pending()  # nothing left over from a previous bot
    env = {k: v for k, v in os.environ.items() if k != "LOG_LEVEL"}
    env["TELEGRAM_BOT_TOKEN"] = ""
    process = subprocess.Popen(
        spec.command(server, workdir), cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log_path.open("wb"), stderr=subprocess.STDOUT
    )
    try:
        started = time.monotonic()
        replies, first_reply = warm_up(server, process, log_path, spec, questions)
        if first_reply is not None:
            print(f"  {spec.label}: first answer {first_reply - started:.2f}s after the process started (imports and FAQ included)")
        questions, answer_of, dropped = usable_questions(replies)
        if dropped:
            print(f"  {spec.label}: left out of the load (not exactly one distinct reply): {dropped}")
        if len(questions) < 2:
            raise BenchError(f"{spec.label}: fewer than two questions with a distinct single reply: {replies}")
        print(f"  {spec.label}: up and warmed up in {time.monotonic() - started:.1f}s; {len(questions)} questions in the load")

        tracks: dict[int, ChatTrack] = {}
        order: list[tuple[int, str]] = []
        for c in range(args.chats):
            chat_id = spec.chat_base + c + 1
            asked = [questions[(c + i) % len(questions)] for i in range(args.per_chat)]
            tracks[chat_id] = ChatTrack([answer_of[q] for q in asked])
        for i in range(args.per_chat):  # round-robin: every chat's i-th question, then the (i+1)-th
            for c in range(args.chats):
                order.append((spec.chat_base + c + 1, questions[(c + i) % len(questions)]))
        result.questions = len(order)

        feed = CallFeed(server)
        result.warm_rss_kib = proc_status_kib(process.pid, "VmRSS")
        bot_cpu0, server_cpu0 = proc_cpu_seconds(process.pid), proc_cpu_seconds(server.pid)
        result.push_info = server.push(order)
        queued_at = result.push_info["queued_at"]
        deadline = time.monotonic() + args.timeout
        waiting = set(tracks)
        while waiting:
            check_alive(process, log_path, spec.label)
            for call in feed.poll():
                track = tracks.get(call["chat_id"])
                if track is None:
                    continue
                if call["status"] != 200:
                    result.failed_calls[f"{call['method']} {call['status']} {call['description']}"] += 1
                elif call["method"] != "sendMessage" or not track.take(call["text"], call["time"]):
                    result.other_calls[call["method"]] += 1
                elif track.done:
                    waiting.discard(call["chat_id"])
            if waiting and time.monotonic() > deadline:
                result.note = f"timed out after {args.timeout:.0f}s"
                break
            if waiting:
                time.sleep(POLL_SECONDS)
        result.peak_rss_kib = proc_status_kib(process.pid, "VmHWM")
        bot_cpu1, server_cpu1 = proc_cpu_seconds(process.pid), proc_cpu_seconds(server.pid)
        if bot_cpu0 is not None and bot_cpu1 is not None:
            result.bot_cpu = bot_cpu1 - bot_cpu0
        if server_cpu0 is not None and server_cpu1 is not None:
            result.server_cpu = server_cpu1 - server_cpu0

        times = [t for track in tracks.values() for t in track.answered_at if t is not None]
        result.answered = len(times)
        result.latencies = [t - queued_at for t in times]
        if times:
            result.elapsed = max(times) - queued_at
        result.out_of_place = sum(track.out_of_place for track in tracks.values())
        result.chats_out_of_order = sum(1 for track in tracks.values() if track.out_of_place)
    finally:
        result.exit_code = stop_process(process)
    if result.exit_code not in (0, None):
        result.note = (result.note + "; " if result.note else "") + f"exit code {result.exit_code}"
        print(f"  {spec.label} log tail:\n{log_tail(log_path)}")
    return result, questions


# ----------------------------------------------------------------------------- report


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:,.0f} ms"


def fmt_mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:,.1f} MiB"


def fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f} s"


def report(results: list[Result]) -> str:
    def row(name: str, cell) -> list[str]:  # noqa: ANN001
        return [name, *(cell(r) for r in results)]

    rows = [
        ["", *(r.label for r in results)],
        row("questions answered", lambda r: f"{r.answered:,}/{r.questions:,}"),
        row("queue -> last reply", lambda r: fmt_s(r.elapsed)),
        row("throughput (answered/s)", lambda r: "-" if r.throughput is None else f"{r.throughput:,.1f}"),
        row("latency p50", lambda r: fmt_ms(percentile(r.latencies, 0.50)) if r.latencies else "-"),
        row("latency p99", lambda r: fmt_ms(percentile(r.latencies, 0.99)) if r.latencies else "-"),
        row("latency max", lambda r: fmt_ms(max(r.latencies)) if r.latencies else "-"),
        row(
            "per-chat order kept",
            lambda r: "yes" if r.order_kept else f"NO: {r.out_of_place} out of place in {r.chats_out_of_order} chats",
        ),
        row("peak RSS (VmHWM)", lambda r: fmt_mib(r.peak_rss_kib)),
        row("RSS after warm-up", lambda r: fmt_mib(r.warm_rss_kib)),
        row("bot CPU during load", lambda r: fmt_s(r.bot_cpu)),
        row("bot CPU per answered message", lambda r: "-" if not r.bot_cpu or not r.answered else f"{r.bot_cpu / r.answered * 1000:.2f} ms"),
        row("fake server CPU during load", lambda r: fmt_s(r.server_cpu)),
        row("other calls to the chats", lambda r: ", ".join(f"{k} x{v}" for k, v in r.other_calls.items()) or "none"),
        row("failed calls", lambda r: "; ".join(f"{k} x{v}" for k, v in r.failed_calls.items()) or "none"),
    ]
    if any(r.note for r in results):
        rows.append(row("note", lambda r: r.note or "-"))
    widths = [max(len(str(line[i])) for line in rows) for i in range(len(rows[0]))]
    out = []
    for n, line in enumerate(rows):
        out.append("  ".join(str(cell).ljust(widths[i]) if i == 0 else str(cell).rjust(widths[i]) for i, cell in enumerate(line)))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=None, help="chats asking at once (default 200; 20 with --quick)")
    parser.add_argument("--per-chat", type=int, default=None, help="questions per chat (default 10; 5 with --quick)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 chats x 5 questions")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for all replies (default 300)")
    parser.add_argument("--bots", default="ours,echo", help="which bots to run, in order: ours,echo (default both)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (configs, SQLite, logs)")
    args = parser.parse_args(argv)
    args.chats = args.chats if args.chats is not None else (20 if args.quick else 200)
    args.per_chat = args.per_chat if args.per_chat is not None else (5 if args.quick else 10)
    if args.chats < 1 or args.per_chat < 1:
        parser.error("--chats and --per-chat must be at least 1")
    specs = {
        "ours": BotSpec("ours", "our bot", 100_000_000),
        "echo": BotSpec("echo", "PTB echo (defaults)", 200_000_000),
    }
    names = [n.strip() for n in args.bots.split(",") if n.strip()]
    if not names or any(n not in specs for n in names):
        parser.error("--bots takes a comma-separated list of: ours, echo")

    workroot = Path(tempfile.mkdtemp(prefix="bench_e2e_"))
    print(
        f"{args.chats} chats x {args.per_chat} questions = {args.chats * args.per_chat:,} questions queued at once; "
        f"{os.cpu_count()} CPUs; Python {sys.version.split()[0]}; work folder {workroot}"
    )
    results: list[Result] = []
    server = FakeServer(workroot)
    try:
        print(f"  fake Bot API server: pid {server.pid}, {server.info['base_url']}")
        questions = list(QUESTIONS)
        for name in names:
            # Later bots get the questions the first one could use, so all see the same load.
            result, questions = run_bot(specs[name], server, workroot, args, questions)
            results.append(result)
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        if results:
            print(report(results))
        return 1
    finally:
        server.close()
        if not args.keep:
            import shutil

            shutil.rmtree(workroot, ignore_errors=True)

    print()
    print(report(results))
    by_name = dict(zip(names, results))
    if "ours" in by_name and "echo" in by_name:
        ours, echo = by_name["ours"].throughput, by_name["echo"].throughput
        if ours and echo:
            print(f"\nthroughput ratio ours / echo: {ours / echo:.2f}")
    complete = all(r.answered == r.questions for r in results)
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
