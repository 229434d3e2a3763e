"""Running the bot as a service: one instance per database, backups, and health (no Telegram here).

The running bot records a heartbeat in its database (see FrontDesk); `python -m bot
health` reads it from another process, so a container's HEALTHCHECK or a monitoring
script needs nothing but the database file.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from bot.adapters.sqlite.store import SCHEMA_VERSION, ServiceStatus, Store

# How often the running bot records that it is alive.
HEARTBEAT_SECONDS = 30.0
# Four missed beats: the process is gone or its event loop is stuck.
STALE_HEARTBEAT_SECONDS = 120.0
# getUpdates long-polls for about 10 s and python-telegram-bot retries failures with a
# backoff of up to 30 s: two minutes without an answer means Telegram is out of reach.
STALE_POLL_SECONDS = 120.0
# A send is retried for about a minute before it is marked failed (staff are told):
# one still pending after five means the sender is stuck.
STUCK_SEND_SECONDS = 300.0

# Exit codes a service manager can act on: a configuration error or a second instance
# will not be cured by restarting (deploy/deus-smas-bot.service does not restart on them).
EXIT_CONFIG = 2
EXIT_ALREADY_RUNNING = 3


class ServiceError(Exception):
    """An operator's command cannot be carried out; the message says why and names the file."""


class AlreadyRunning(ServiceError):
    """Another bot process holds the database."""


class InstanceLock:
    """One bot per database: an exclusive lock on ``<database>.lock``, held while the bot runs.

    The kernel releases it when the process ends, however it ends (SIGKILL included), so
    a crash never leaves a stale lock behind. Two processes polling one bot would each
    receive part of the updates and answer from diverging state.
    """

    def __init__(self, database: Path) -> None:
        self.database = database
        self.path = database.with_name(database.name + ".lock")
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        import fcntl  # POSIX only: the bot runs on Linux servers

        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise AlreadyRunning(
                f"{self.database}: another bot process (pid {holder}) is using this database. "
                "Stop it first; two processes would each get part of the updates."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the descriptor releases the lock
            self._file = None

    def __enter__(self) -> InstanceLock:
        self.acquire()
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


BACKUP_STEP_PAGES = 4_096  # 16 MB at a time: the bot's own writes go on between steps


def backup_database(database: Path, target: Path, *, progress: Callable[[int, int, int], object] | None = None) -> None:
    """A consistent copy of ``database`` at ``target``, safe while the bot writes to it.

    SQLite's online backup API copies a snapshot page by page; the copy is written
    beside ``target`` and renamed into place only once complete and checked, so an
    interrupted backup (even SIGKILL) never leaves a half-written file under the name.
    """
    if not database.is_file():
        raise ServiceError(f"{database}: no database here (storage.path in the config says where it is)")
    if target.is_dir():
        raise ServiceError(f"{target}: is a folder; give the backup's file name, e.g. {target / 'bot-backup.sqlite3'}")
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    source = sqlite3.connect(str(database))
    try:
        copy = sqlite3.connect(str(partial))
        try:
            source.backup(copy, pages=BACKUP_STEP_PAGES, progress=progress)
            # The copy stands alone: one file, no -wal beside it.
            copy.execute("PRAGMA journal_mode=DELETE")
            problem = _integrity_problem(copy)
        finally:
            copy.close()
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        raise ServiceError(f"{database}: cannot be copied ({exc})") from None
    finally:
        source.close()
    if problem:
        partial.unlink(missing_ok=True)
        raise ServiceError(f"{database}: the copy failed SQLite's integrity check ({problem})")
    os.chmod(partial, 0o600)  # a copy of patients' data: the bot's user only
    with open(partial, "rb") as written:
        os.fsync(written.fileno())
    os.replace(partial, target)


def restore_database(backup: Path, database: Path) -> Path | None:
    """Replace ``database`` with ``backup`` while no bot runs on it; return where the
    replaced database was kept (None when there was none). Migrations run at the next start."""
    version = backup_schema_version(backup)
    if version > SCHEMA_VERSION:
        raise ServiceError(
            f"{backup}: made by a newer version of the bot (schema {version}, this one knows {SCHEMA_VERSION}); "
            "restore it with that version"
        )
    with InstanceLock(database):
        kept = None
        if database.is_file():
            kept = database.with_name(database.name + ".before-restore")
            backup_database(database, kept)
        if not database.exists():
            os.close(os.open(database, os.O_CREAT | os.O_WRONLY, 0o600))
        source = sqlite3.connect(str(backup))
        try:
            live = sqlite3.connect(str(database))
            try:
                source.backup(live)
            finally:
                live.close()
        finally:
            source.close()
    return kept


def backup_schema_version(backup: Path) -> int:
    """The schema version of a backup file, after checking that it is a sound backup of this bot."""
    if not backup.is_file():
        raise ServiceError(f"{backup}: no such file")
    try:
        db = sqlite3.connect(f"file:{backup}?mode=ro", uri=True)
        try:
            problem = _integrity_problem(db)
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise ServiceError(f"{backup}: not an SQLite database ({exc})") from None
    if problem:
        raise ServiceError(f"{backup}: damaged ({problem})")
    if not {"patients", "sessions", "handoffs"} <= tables or version < 1:
        raise ServiceError(f"{backup}: not a backup of this bot's database (its tables are missing)")
    return version


def _integrity_problem(db: sqlite3.Connection) -> str | None:
    result = db.execute("PRAGMA integrity_check").fetchone()[0]
    return None if result == "ok" else str(result)


@dataclass(frozen=True)
class Health:
    """The verdict of `python -m bot health`: healthy or not, the problems, and the figures."""

    healthy: bool
    problems: tuple[str, ...]
    figures: dict[str, float | int | str | None]


def current_health(store: Store) -> Health:
    """The verdict on the bot whose database ``store`` is, as of now."""
    return assess(store.service_status(), time.time())


def assess(status: ServiceStatus, now: float) -> Health:
    """Judge a running bot by what its database says (see the thresholds above)."""

    def age(moment: float | None) -> float | None:
        return None if moment is None else round(max(0.0, now - moment), 1)

    figures: dict[str, float | int | str | None] = {
        "mode": status.mode,
        "pid": status.pid,
        "heartbeat_age_s": age(status.beat_at),
        "uptime_s": age(status.started_at),
        "last_poll_age_s": age(status.last_poll_at),
        "last_update_age_s": age(status.last_update_at),
        "pending_sends": status.pending_sends,
        "oldest_pending_send_age_s": age(status.oldest_pending_at),
        "failed_sends": status.failed_sends,
    }
    problems: list[str] = []
    heartbeat = age(status.beat_at)
    if heartbeat is None:
        problems.append("the bot has not run on this database yet")
    elif status.mode == "stopped":
        problems.append(f"the bot stopped {heartbeat:.0f} s ago")
    elif heartbeat > STALE_HEARTBEAT_SECONDS:
        problems.append(f"no heartbeat for {heartbeat:.0f} s: the process is gone or stuck")
    elif status.mode == "polling":
        polled = age(status.last_poll_at) if status.last_poll_at is not None else age(status.started_at)
        if polled is not None and polled > STALE_POLL_SECONDS:
            problems.append(f"Telegram has not answered getUpdates for {polled:.0f} s (network or token)")
    pending = age(status.oldest_pending_at)
    if pending is not None and pending > STUCK_SEND_SECONDS:
        problems.append(f"a send has waited {pending:.0f} s ({status.pending_sends} pending): the sender is stuck")
    return Health(not problems, tuple(problems), figures)
