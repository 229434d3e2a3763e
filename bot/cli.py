"""Command line: ``python -m bot [run|chat|ask|explain|faq check|eval|train|unanswered|report|backup|restore|health]``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from bot.config import ConfigError
from bot.knowledge_files import KnowledgeError, load_knowledge, read_knowledge
from bot.service import EXIT_ALREADY_RUNNING, EXIT_CONFIG
from bot.adapters.sqlite.store import StoreError


def _build_dialogue(faq_path: str | None, clinic=None):  # noqa: ANN001, ANN202 - imported lazily to keep `faq check` light
    from bot.core.dialogue import Dialogue
    from bot.core.knowledge import ClinicFacts

    return Dialogue(load_knowledge(faq_path), clinic=clinic or ClinicFacts())


def cmd_ask(args: argparse.Namespace) -> int:
    from bot.adapters.console.chat import render_reply
    from bot.core.dialogue import PatientText, SessionState

    dialogue = _build_dialogue(args.faq)
    if args.jsonl:
        for line in sys.stdin:
            text = line.rstrip("\r\n")
            step = dialogue.handle(SessionState(), PatientText(text))
            print(json.dumps(_jsonl_record(step), ensure_ascii=False), flush=True)
        return 0
    if args.message is None:
        print("ask: give a message, or --jsonl to read messages from standard input", file=sys.stderr)
        return 2
    step = dialogue.handle(SessionState(), PatientText(args.message))
    print("\n\n".join(render_reply(r) for r in step.replies))
    return 0


def _jsonl_record(step) -> dict[str, object]:  # noqa: ANN001
    """The evaluation contract: one object per message, exactly these keys."""
    match = step.match
    if match is None:  # not reachable for text, kept for type safety
        return {"intent": "fallback", "faq_id": None, "suggestions": [], "score": 0.0, "answer": "", "lang": step.state.lang or "en"}
    if match.intent == "clarify":
        suggestions = list(match.suggestions)
    elif match.intent == "faq":
        suggestions = [b.data.split(":", 1)[1] for r in step.replies for b in r.buttons if b.data.startswith("faq:")]
    else:
        suggestions = []
    return {
        "intent": match.intent,
        "faq_id": match.faq_id if match.intent == "faq" else None,
        "suggestions": suggestions,
        "score": float(match.score),
        "answer": "\n\n".join(r.text for r in step.replies),
        "lang": step.state.lang or "en",
    }


def cmd_chat(args: argparse.Namespace) -> int:
    """The console chat: the same desk as Telegram, from the same config (clinic facts, staff hours)."""
    from dataclasses import replace
    from zoneinfo import ZoneInfo

    from bot.adapters.console.chat import run_console
    from bot.app import build_desk

    config = _config_or_none(args, require_staff=False)
    if config is None:
        return EXIT_CONFIG
    if args.faq is not None:
        config = replace(config, faq_path=Path(args.faq))
    try:
        desk = build_desk(config)
    except ConfigError as exc:
        print(f"Configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    interactive = sys.stdin.isatty()

    def prompt() -> None:
        if interactive:
            print("> ", end="", flush=True)

    read = 0

    def lines():  # noqa: ANN202
        nonlocal read
        for line in sys.stdin:
            read += 1
            yield line

    try:
        run_console(desk, lines(), sys.stdout, prompt, clinic_time=ZoneInfo(config.timezone))
    except KeyboardInterrupt:
        print()
    if not interactive and read == 0:
        # Started as a service by mistake (stdin is /dev/null): say so instead of a silent exit 0.
        print("The console chat got no input (stdin is empty or closed), so it ended. "
              "To run in Telegram, set telegram.token and use `python -m bot run`.", file=sys.stderr)
        return 1
    return 0


def _config_or_none(args: argparse.Namespace, *, require_staff: bool = True):  # noqa: ANN202 - bot.config is imported lazily
    """The configuration, or None after printing what is wrong with it."""
    from bot.config import ConfigError, load_config

    try:
        return load_config(args.config, require_staff=require_staff)
    except ConfigError as exc:
        print(f"Configuration error: {exc}", file=sys.stderr)
        return None


def cmd_start(args: argparse.Namespace) -> int:
    """`python -m bot` alone: Telegram when a token is configured, the console chat otherwise."""
    from bot.app import NO_TOKEN_NOTICE, run_telegram

    config = _config_or_none(args)
    if config is None:
        return EXIT_CONFIG
    if not config.has_token:
        print(NO_TOKEN_NOTICE, file=sys.stderr)
        return cmd_chat(args)
    return run_telegram(config)


def cmd_run(args: argparse.Namespace) -> int:
    """Run in Telegram, as a service does: without a token that is an error, not a console chat."""
    from bot.app import run_telegram

    config = _config_or_none(args)
    if config is None:
        return EXIT_CONFIG
    if not config.has_token:
        where = config.source or "config.yaml (none found; --config or BOT_CONFIG names one)"
        print(
            f"Configuration error: {where}: telegram.token: must be set to run in Telegram "
            "(or set TELEGRAM_BOT_TOKEN). For the console chat, run `python -m bot chat`.",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    return run_telegram(config)


def cmd_whoami(args: argparse.Namespace) -> int:
    """The bot behind the token and the groups that wrote to it (to find staff_chat_id)."""
    import asyncio

    from bot.app import whoami

    config = _config_or_none(args, require_staff=False)
    if config is None:
        return EXIT_CONFIG
    if not config.has_token:
        print("Configuration error: telegram.token: must be set (or TELEGRAM_BOT_TOKEN) to ask Telegram.", file=sys.stderr)
        return EXIT_CONFIG
    return asyncio.run(whoami(config, sys.stdout))


def cmd_backup(args: argparse.Namespace) -> int:
    """A consistent copy of the live database, taken while the bot runs."""
    from bot.service import ServiceError, backup_database

    config = _config_or_none(args)
    if config is None:
        return EXIT_CONFIG
    target = Path(args.path)
    try:
        backup_database(config.storage_path, target)
    except ServiceError as exc:
        print(f"Backup failed: {exc}", file=sys.stderr)
        return 1
    print(f"Backed up {config.storage_path} to {target} ({target.stat().st_size:,} bytes)")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    """Put a backup in place of the database (the bot must be stopped)."""
    from bot.service import AlreadyRunning, ServiceError, restore_database

    config = _config_or_none(args)
    if config is None:
        return EXIT_CONFIG
    try:
        kept = restore_database(Path(args.path), config.storage_path)
    except AlreadyRunning as exc:
        print(f"Restore refused: {exc}", file=sys.stderr)
        return EXIT_ALREADY_RUNNING
    except ServiceError as exc:
        print(f"Restore refused: {exc}", file=sys.stderr)
        return 1
    print(f"Restored {args.path} to {config.storage_path}.")
    if kept is not None:
        print(f"The database it replaced is kept at {kept}.")
    print("Start the bot again; it brings the schema up to date as it starts.")
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    """Whether the running bot is alive, polling and sending; non-zero when not."""
    from bot.service import current_health
    from bot.adapters.sqlite.store import SCHEMA_VERSION, Store

    config = _config_or_none(args)
    if config is None:
        return EXIT_CONFIG
    if not config.storage_path.is_file():
        print(f"unhealthy: {config.storage_path}: no database (the bot has never run with this storage.path)")
        return 1
    store = Store(config.storage_path, migrate=False)
    try:
        if store.schema_version < SCHEMA_VERSION:
            print(f"unhealthy: {config.storage_path}: the bot has not run with this version yet (schema {store.schema_version})")
            return 1
        health = current_health(store)
    finally:
        store.close()
    if args.json:
        print(json.dumps({"healthy": health.healthy, "problems": list(health.problems), **health.figures}))
    else:
        print("healthy" if health.healthy else "unhealthy: " + "; ".join(health.problems))
        for name, value in health.figures.items():
            print(f"  {name:<26} {'-' if value is None else value}")
    return 0 if health.healthy else 1


def _config_with_database(args: argparse.Namespace):  # noqa: ANN202 - bot.config is imported lazily
    """The configuration when its database exists; else None and the exit code (after saying why)."""
    config = _config_or_none(args)
    if config is None:
        return None, 2
    if not config.storage_path.exists():
        print(f"No conversations stored yet ({config.storage_path} does not exist).")
        return None, 0
    return config, 0


def cmd_report(args: argparse.Namespace) -> int:
    """Handoffs, time to staff's first reply, ratings and unanswered questions over a period."""
    import time

    from bot.adapters.sqlite.store import Store

    config, problem = _config_with_database(args)
    if config is None:
        return problem
    import sqlite3

    store = Store(config.storage_path, migrate=False)  # (a running bot's database: read only)
    try:
        report = store.report(time.time() - args.days * 86_400)
    except sqlite3.OperationalError as exc:
        print(f"{config.storage_path}: cannot be read for a report ({exc}); a database from an older "
              "version is upgraded when the bot starts.", file=sys.stderr)
        return 1
    finally:
        store.close()
    if args.json:
        print(json.dumps(dataclasses.asdict(report), ensure_ascii=False))
        return 0
    waits = report.first_reply_seconds
    print(f"The last {args.days} day(s):")
    print(f"  handed to staff: {sum(report.handoffs.values())}"
          + (f" ({', '.join(f'{reason} {n}' for reason, n in sorted(report.handoffs.items()))})" if report.handoffs else ""))
    if waits:
        median, slowest = waits[len(waits) // 2], waits[-1]
        p90 = waits[min(len(waits) - 1, int(0.9 * len(waits)))]
        print(f"  staff's first reply: median {_duration(median)}, 90% within {_duration(p90)}, slowest {_duration(slowest)}")
    print(f"  still waiting for staff's first reply: {report.still_waiting}; ended before staff replied: {report.closed_unanswered}")
    rated = report.helpful + report.unhelpful
    print(f"  ratings after staff closed: {report.helpful} helpful, {report.unhelpful} not helpful"
          + (f" ({report.helpful / rated:.0%} helpful)" if rated else ""))
    if report.unanswered:
        print("  questions the FAQ did not answer, most asked first:")
        for question, count in report.unanswered:
            print(f"    {count:4d}  {question}")
    return 0


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5_400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3_600:.1f} h"


def cmd_unanswered(args: argparse.Namespace) -> int:
    """What patients asked that the FAQ did not answer, most asked first."""
    from bot.knowledge_files import EXAMPLES_FILE, resolve_faq_paths
    from bot.adapters.sqlite.store import Store

    config, problem = _config_with_database(args)
    if config is None:
        return problem
    store = Store(config.storage_path)
    rows = store.unanswered(args.limit)
    store.close()
    if not rows:
        print("Every question so far was answered from the FAQ.")
    for question, count in rows:
        print(f"{count:5d}  {question}")
    if rows:
        # The operator's next step: these are exactly what faq/examples.yaml teaches.
        # faq.path may name the folder or the FAQ file; the examples sit beside the FAQ.
        examples = resolve_faq_paths(config.faq_path)[0].parent / EXAMPLES_FILE
        print(f"\nTo teach the bot one of these, add it to {examples} under the entry that answers it")
        print(f"(or under @fallback if the document does not), then run: python -m bot faq check {config.faq_path}")
    return 0


def cmd_faq_check(args: argparse.Namespace) -> int:
    from bot.faq_check import check

    errors, warnings = check(args.path)
    for problem in warnings:
        print(f"warning: {problem}")
    for problem in errors:
        print(f"error: {problem}")
    if errors:
        print(f"{len(errors)} error(s), {len(warnings)} warning(s)")
        return 1
    knowledge, _ = read_knowledge(args.path)
    assert knowledge is not None
    phrasings = sum(len(e.questions) for e in knowledge.entries)
    examples = sum(len(messages) for messages in knowledge.examples.values())
    languages = f"{len(knowledge.languages)} languages ({', '.join(knowledge.languages)})"
    print(f"ok: {len(knowledge.entries)} entries in {languages}, {phrasings} phrasings, {examples} examples, {len(warnings)} warning(s)")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from bot.core.understanding import Understanding
    from bot.evaluation import evaluate, load_cases

    understanding = Understanding(load_knowledge(args.faq))
    for index, cases in enumerate(args.cases):
        if len(args.cases) > 1:
            print(("\n" if index else "") + f"== {cases}")
        print(evaluate(understanding, load_cases(cases)).render())
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train every language's classifier from the FAQ folder (needs scikit-learn)."""
    from bot.knowledge_files import resolve_faq_paths

    try:
        from bot.train import train_folder
        import sklearn  # noqa: F401 - only to say clearly what is missing
    except ImportError:
        print("train needs scikit-learn: pip install -e '.[train]'", file=sys.stderr)
        return 2
    knowledge = load_knowledge(args.faq)
    base = resolve_faq_paths(args.faq)[0].parent
    train_folder(knowledge, {code: base if code == knowledge.code else base / code for code in knowledge.languages})
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """How one message was understood: language, cues, candidates and the deciding rule."""
    from bot.core.explain import explain

    dialogue = _build_dialogue(args.faq)
    print(explain(dialogue.understanding, args.message))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from bot.evaluation import DEFAULT_CASES

    parser = argparse.ArgumentParser(prog="python -m bot", description="Deus Plastic Surgery SMAS Mini Lift assistant")
    parser.add_argument("--faq", help="FAQ folder or file (default: faq/ of this project)")
    sub = parser.add_subparsers(dest="command")

    ask = sub.add_parser("ask", help="answer one message as the patient would see it")
    ask.add_argument("message", nargs="?", help="the patient's message")
    ask.add_argument("--jsonl", action="store_true", help="read one message per line on stdin, write one JSON object per line")
    ask.set_defaults(func=cmd_ask)

    chat = sub.add_parser("chat", help="talk to the bot in the console (the config's clinic facts and staff hours apply)")
    chat.add_argument("--config", help="config file (default: $BOT_CONFIG, else config.yaml beside the project, if present)")
    chat.set_defaults(func=cmd_chat)

    config_help = "config file (default: $BOT_CONFIG, else config.yaml beside the project, if present)"
    run = sub.add_parser("run", help="run the bot in Telegram (a service's command: without a token it is an error)")
    run.add_argument("--config", help=config_help)
    run.set_defaults(func=cmd_run)

    start = sub.add_parser("start", help="Telegram when a token is configured, else the console chat (what `python -m bot` does)")
    start.add_argument("--config", help=config_help)
    start.set_defaults(func=cmd_start)

    whoami = sub.add_parser("whoami", help="the bot behind the token and the groups that wrote to it (finds staff_chat_id)")
    whoami.add_argument("--config", help=config_help)
    whoami.set_defaults(func=cmd_whoami)

    backup = sub.add_parser("backup", help="copy the live database to PATH, safely while the bot runs")
    backup.add_argument("path", help="the backup file to write")
    backup.add_argument("--config", help=config_help)
    backup.set_defaults(func=cmd_backup)

    restore = sub.add_parser("restore", help="replace the database with the backup at PATH (stop the bot first)")
    restore.add_argument("path", help="the backup file to restore")
    restore.add_argument("--config", help=config_help)
    restore.set_defaults(func=cmd_restore)

    health = sub.add_parser("health", help="is the running bot alive, polling and sending? exits 1 when not")
    health.add_argument("--config", help=config_help)
    health.add_argument("--json", action="store_true", help="one JSON object, for monitoring")
    health.set_defaults(func=cmd_health)

    faq = sub.add_parser("faq", help="FAQ tools")
    faq_sub = faq.add_subparsers(dest="faq_command", required=True)
    check = faq_sub.add_parser("check", help="validate the FAQ, intents and language files")
    check.add_argument("path", nargs="?", help="FAQ folder or FAQ file (default: faq/)")
    check.set_defaults(func=cmd_faq_check)

    report = sub.add_parser("report", help="handoffs, staff's reply times, ratings and unanswered questions over a period")
    report.add_argument("--config", help="config file (its storage.path is read)")
    report.add_argument("--days", type=int, default=30, help="how many days back (default 30)")
    report.add_argument("--json", action="store_true", help="one JSON object instead of text")
    report.set_defaults(func=cmd_report)

    unanswered = sub.add_parser("unanswered", help="questions patients asked that the FAQ did not answer")
    unanswered.add_argument("--config", help="config file (its storage.path is read)")
    unanswered.add_argument("--limit", type=int, default=50, help="how many to show (default 50)")
    unanswered.set_defaults(func=cmd_unanswered)

    ev = sub.add_parser("eval", help="measure answers on labelled messages")
    ev.add_argument("cases", nargs="*", default=[str(DEFAULT_CASES)], help=f"YAML case files, any language (default: {DEFAULT_CASES})")
    ev.set_defaults(func=cmd_eval)

    tr = sub.add_parser("train", help="train each language's classifier from the FAQ folder (needs scikit-learn)")
    tr.set_defaults(func=cmd_train)

    ex = sub.add_parser("explain", help="show how a message is understood: language, cues, candidates, the deciding rule")
    ex.add_argument("message", help="the patient's message")
    ex.set_defaults(func=cmd_explain)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args([*(argv or []), "start"])
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"Configuration error: {exc}", file=sys.stderr)
        return 2
    except KnowledgeError as exc:
        print("The FAQ files have errors:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        print("Run `python -m bot faq check` after fixing them.", file=sys.stderr)
        return 1
    except StoreError as exc:
        print(f"Database error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
