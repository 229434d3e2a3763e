"""Running as a service: one instance per database, backups an operator can restore, health verdicts."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bot.core.booking import Booking
from bot.service import (
    STALE_HEARTBEAT_SECONDS,
    STALE_POLL_SECONDS,
    STUCK_SEND_SECONDS,
    AlreadyRunning,
    InstanceLock,
    ServiceError,
    assess,
    backup_database,
    restore_database,
)
from bot.adapters.sqlite.store import SCHEMA_VERSION, ServiceStatus, Store

NOW = 1_800_000_000.0


def status(**changes: object) -> ServiceStatus:
    """A bot polling for an hour, beating and answered by Telegram a few seconds ago."""
    values: dict[str, object] = {
        "pid": 77, "mode": "polling", "started_at": NOW - 3_600, "beat_at": NOW - 5, "last_poll_at": NOW - 3,
        "last_update_at": NOW - 600, "pending_sends": 0, "oldest_pending_at": None, "failed_sends": 0,
    }
    return ServiceStatus(**{**values, **changes})  # type: ignore[arg-type]


def test_a_polling_bot_with_a_fresh_heartbeat_is_healthy_even_when_no_patient_writes() -> None:
    health = assess(status(last_update_at=NOW - 86_400), NOW)  # a quiet night is not an outage
    assert health.healthy and not health.problems
    assert health.figures["heartbeat_age_s"] == 5 and health.figures["last_update_age_s"] == 86_400


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"beat_at": None, "mode": None, "started_at": None}, "has not run"),
        ({"mode": "stopped"}, "stopped"),
        ({"beat_at": NOW - STALE_HEARTBEAT_SECONDS - 1}, "no heartbeat"),
        ({"last_poll_at": NOW - STALE_POLL_SECONDS - 1}, "getUpdates"),
        ({"pending_sends": 4, "oldest_pending_at": NOW - STUCK_SEND_SECONDS - 1}, "sender is stuck"),
    ],
)
def test_each_kind_of_outage_is_unhealthy_and_named(changes: dict[str, object], problem: str) -> None:
    health = assess(status(**changes), NOW)
    assert not health.healthy
    assert any(problem in p for p in health.problems), health.problems


def test_a_webhook_bot_is_not_judged_by_polling() -> None:
    assert assess(status(mode="webhook", last_poll_at=None), NOW).healthy


def test_a_second_process_on_the_same_database_is_refused_until_the_first_lets_go(tmp_path: Path) -> None:
    database = tmp_path / "bot.sqlite3"
    first = InstanceLock(database)
    first.acquire()
    with pytest.raises(AlreadyRunning, match="another bot process"):
        InstanceLock(database).acquire()
    first.release()
    with InstanceLock(database):  # free again
        pass


def test_a_backup_restores_what_was_stored_and_keeps_the_database_it_replaced(tmp_path: Path) -> None:
    database, backup = tmp_path / "bot.sqlite3", tmp_path / "backups" / "monday.sqlite3"
    backup.parent.mkdir()
    store = Store(database)
    store.add_booking(42, Booking("Ana", "+821012345678", "Saturday", ""))
    backup_database(database, backup)  # while the store is open, as while the bot runs
    store.add_booking(43, Booking("Min", "+821098765432", "Monday", ""))
    store.close()

    kept = restore_database(backup, database)

    restored = Store(database)
    assert restored.bookings(42) == [Booking("Ana", "+821012345678", "Saturday", "")]
    assert restored.bookings(43) == []  # the database is as it was at the backup
    restored.close()
    assert kept is not None and Store(kept).bookings(43)  # what was replaced is not lost


def test_restore_is_refused_while_a_bot_runs_on_the_database(tmp_path: Path) -> None:
    database, backup = tmp_path / "bot.sqlite3", tmp_path / "backup.sqlite3"
    Store(database).close()
    backup_database(database, backup)
    with InstanceLock(database), pytest.raises(AlreadyRunning):
        restore_database(backup, database)


def test_restore_refuses_a_file_that_is_not_a_backup_of_this_bot(tmp_path: Path) -> None:
    database = tmp_path / "bot.sqlite3"
    text = tmp_path / "notes.txt"
    text.write_text("not a database " * 100)
    with pytest.raises(ServiceError, match="not an SQLite database"):
        restore_database(text, database)
    other = tmp_path / "other.sqlite3"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(ServiceError, match="not a backup of this bot"):
        restore_database(other, database)
    assert not database.exists()  # nothing was touched


def test_restore_refuses_a_backup_from_a_newer_version(tmp_path: Path) -> None:
    database, backup = tmp_path / "bot.sqlite3", tmp_path / "backup.sqlite3"
    Store(backup).close()
    db = sqlite3.connect(backup)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(ServiceError, match="newer version"):
        restore_database(backup, database)


def test_a_failed_backup_leaves_the_previous_backup_whole(tmp_path: Path) -> None:
    database, backup = tmp_path / "bot.sqlite3", tmp_path / "backup.sqlite3"
    Store(database).close()
    backup_database(database, backup)
    before = backup.read_bytes()
    with pytest.raises(ServiceError, match="no database here"):
        backup_database(tmp_path / "missing.sqlite3", backup)
    database.write_bytes(b"garbage" * 1000)  # the live file damaged
    with pytest.raises(ServiceError):
        backup_database(database, backup)
    assert backup.read_bytes() == before
    assert not backup.with_name(backup.name + ".partial").exists()


def test_a_backup_killed_halfway_leaves_the_database_and_the_last_backup_whole(tmp_path: Path) -> None:
    import subprocess
    import sys

    from bot.service import BACKUP_STEP_PAGES
    from tests.conftest import ROOT

    database, backup = tmp_path / "bot.sqlite3", tmp_path / "backup.sqlite3"
    store = Store(database)
    with store.transaction():
        for n in range(3 * BACKUP_STEP_PAGES):  # a database of several backup steps
            store.add_transcript(n, "patient", f"message {n} " + "x" * 1_500)
    store.close()
    backup_database(database, backup)
    before = backup.read_bytes()
    # The backup process is killed (SIGKILL: nothing runs after it) once the first step is copied.
    killed = subprocess.run(
        [sys.executable, "-c",
         "import os, signal, sys; from pathlib import Path; from bot.service import backup_database;"
         "backup_database(Path(sys.argv[1]), Path(sys.argv[2]), progress=lambda *_: os.kill(os.getpid(), signal.SIGKILL))",
         str(database), str(backup)],
        cwd=ROOT, capture_output=True, timeout=60,
    )
    assert killed.returncode == -9
    assert backup.with_name(backup.name + ".partial").exists()  # it was halfway...
    assert backup.read_bytes() == before  # ...and the backup under the name is the last whole one
    live = Store(database)
    assert live.recent_transcript(5, 1)[0].text.startswith("message 5 ")
    assert sqlite3.connect(database).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    live.close()
    backup_database(database, backup)  # the next backup starts afresh
    assert not backup.with_name(backup.name + ".partial").exists()
    assert sqlite3.connect(backup).execute("SELECT COUNT(*) FROM transcript").fetchone()[0] == 3 * BACKUP_STEP_PAGES


def test_deleted_rows_do_not_stay_readable_in_the_file(tmp_path: Path) -> None:
    database = tmp_path / "bot.sqlite3"
    store = Store(database)
    store.add_transcript(42, "patient", "my secret question about my chin " * 20)
    store.forget(42)
    store.close()
    for path in tmp_path.iterdir():
        assert b"my secret question" not in path.read_bytes(), path.name


def test_the_database_and_its_backups_are_private_to_the_bots_user(tmp_path: Path) -> None:
    database, backup = tmp_path / "bot.sqlite3", tmp_path / "backup.sqlite3"
    store = Store(database)
    store.add_transcript(42, "patient", "hello")
    backup_database(database, backup)
    for path in (database, database.with_name("bot.sqlite3-wal"), backup):
        assert path.stat().st_mode & 0o077 == 0, f"{path.name}: {oct(path.stat().st_mode)}"
    store.close()
