"""The one source of truth for conversations: SQLite, with a schema version and migrations.

Patient sessions (mode, booking draft), handoffs (patient <-> staff topic),
message links, bookings, the transcript and the questions the bot could not
answer all live here, so a restart in the middle of a booking or a handoff
loses nothing. Calls are synchronous: each is a few hundred microseconds in WAL
mode, well below the cost of the Telegram request around it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bot.core.booking import Booking
from bot.core.desk import Handoff
from bot.core.dialogue import SessionState
from bot.core.dialogue import Button
from bot.core.outgoing import (
    SEND_KINDS,
    CardToTopic,
    CloseTopic,
    CorrectedCaptionToPatient,
    CorrectedTextToPatient,
    DeleteTopic,
    NoticeToGeneral,
    NoticeToTopic,
    PatientMessageToTopic,
    Send,
    StaffMessageToPatient,
    TextToPatient,
    decode,
    encode,
)

# Each entry migrates the schema from version N to N+1; never edit a released one, append.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE patients (
        chat_id     INTEGER PRIMARY KEY,
        first_name  TEXT NOT NULL DEFAULT '',
        last_name   TEXT NOT NULL DEFAULT '',
        username    TEXT NOT NULL DEFAULT '',
        updated_at  REAL NOT NULL
    );
    CREATE TABLE sessions (
        chat_id     INTEGER PRIMARY KEY,
        state       TEXT NOT NULL,
        updated_at  REAL NOT NULL
    );
    CREATE TABLE handoffs (
        chat_id     INTEGER PRIMARY KEY,
        thread_id   INTEGER,
        status      TEXT NOT NULL CHECK (status IN ('open', 'closed')),
        urgent      INTEGER NOT NULL DEFAULT 0,
        reason      TEXT NOT NULL DEFAULT '',
        opened_at   REAL NOT NULL,
        closed_at   REAL
    );
    CREATE UNIQUE INDEX handoffs_thread ON handoffs (thread_id) WHERE thread_id IS NOT NULL;
    CREATE TABLE message_links (
        id                  INTEGER PRIMARY KEY,
        chat_id             INTEGER NOT NULL,
        patient_message_id  INTEGER NOT NULL,
        staff_message_id    INTEGER NOT NULL,
        direction           TEXT NOT NULL CHECK (direction IN ('to_staff', 'to_patient')),
        created_at          REAL NOT NULL
    );
    CREATE INDEX message_links_staff ON message_links (staff_message_id);
    CREATE INDEX message_links_patient ON message_links (chat_id, patient_message_id);
    CREATE TABLE bookings (
        id          INTEGER PRIMARY KEY,
        chat_id     INTEGER NOT NULL,
        name        TEXT NOT NULL,
        phone       TEXT NOT NULL,
        preferred   TEXT NOT NULL,
        note        TEXT NOT NULL,
        created_at  REAL NOT NULL
    );
    CREATE TABLE transcript (
        id          INTEGER PRIMARY KEY,
        chat_id     INTEGER NOT NULL,
        role        TEXT NOT NULL CHECK (role IN ('patient', 'bot', 'staff')),
        text        TEXT NOT NULL,
        created_at  REAL NOT NULL
    );
    CREATE INDEX transcript_chat ON transcript (chat_id, id);
    CREATE TABLE unanswered (
        id          INTEGER PRIMARY KEY,
        chat_id     INTEGER NOT NULL,
        question    TEXT NOT NULL,
        created_at  REAL NOT NULL
    );
    """,
    # 2: the inbox journals every update before Telegram considers it delivered;
    # the outbox holds every send until Telegram has accepted it.
    """
    CREATE TABLE inbox (
        update_id   INTEGER PRIMARY KEY,
        chat_id     INTEGER,
        payload     TEXT NOT NULL,
        status      TEXT NOT NULL CHECK (status IN ('pending', 'done')),
        received_at REAL NOT NULL
    );
    CREATE INDEX inbox_pending ON inbox (status, update_id);
    CREATE TABLE outbox (
        id          INTEGER PRIMARY KEY,
        chat_id     INTEGER NOT NULL,
        kind        TEXT NOT NULL,
        payload     TEXT NOT NULL,
        status      TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
        attempts    INTEGER NOT NULL DEFAULT 0,
        last_error  TEXT NOT NULL DEFAULT '',
        created_at  REAL NOT NULL,
        done_at     REAL
    );
    CREATE INDEX outbox_pending ON outbox (status, chat_id, id);
    CREATE TABLE forgotten_topics (
        thread_id    INTEGER PRIMARY KEY,
        forgotten_at REAL NOT NULL
    );
    """,
    # 3: the running bot's heartbeat, read by `python -m bot health` from another process.
    """
    CREATE TABLE heartbeat (
        id           INTEGER PRIMARY KEY CHECK (id = 1),
        pid          INTEGER NOT NULL,
        mode         TEXT NOT NULL,
        started_at   REAL NOT NULL,
        beat_at      REAL NOT NULL,
        last_poll_at REAL
    );
    """,
    # 4: the patients' ratings of staff's help, and each handoff's moments, for `report`.
    """
    CREATE TABLE ratings (
        id          INTEGER PRIMARY KEY,
        chat_id     INTEGER NOT NULL,
        helpful     INTEGER NOT NULL,
        created_at  REAL NOT NULL
    );
    CREATE TABLE handoff_events (
        id          INTEGER PRIMARY KEY,
        chat_id     INTEGER NOT NULL,
        kind        TEXT NOT NULL CHECK (kind IN ('opened', 'staff_replied', 'closed')),
        reason      TEXT NOT NULL DEFAULT '',
        created_at  REAL NOT NULL
    );
    CREATE INDEX handoff_events_chat ON handoff_events (chat_id, id);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

Role = Literal["patient", "bot", "staff"]


class StoreError(Exception):
    """The database file cannot be opened or used; the message names it and says what to do."""


@dataclass(frozen=True)
class Patient:
    chat_id: int
    first_name: str = ""
    last_name: str = ""
    username: str = ""

    @property
    def display_name(self) -> str:
        name = " ".join(p for p in (self.first_name, self.last_name) if p).strip()
        return name or (f"@{self.username}" if self.username else f"Patient {self.chat_id}")


@dataclass(frozen=True)
class ServiceStatus:
    """The running bot as its database tells it (Unix times; None: never recorded)."""

    pid: int | None
    mode: str | None  # polling, webhook, stopped
    started_at: float | None
    beat_at: float | None
    last_poll_at: float | None  # the last getUpdates Telegram answered (polling)
    last_update_at: float | None
    pending_sends: int
    oldest_pending_at: float | None
    failed_sends: int


@dataclass(frozen=True)
class Report:
    """`python -m bot report`: what the clinic's coordinators and the assistant did in a period."""

    handoffs: dict[str, int]  # opened, by reason
    first_reply_seconds: list[float]  # from handing off to staff's first message, sorted
    still_waiting: int  # handed off, no staff reply yet
    closed_unanswered: int  # ended (or handed off again) before staff wrote
    helpful: int
    unhelpful: int
    unanswered: list[tuple[str, int]]  # questions the FAQ did not answer, most asked first


@dataclass(frozen=True)
class OutboxEntry:
    """One send waiting for Telegram, in the conversation of ``chat_id``; ``send`` is None when
    the stored row cannot be read (``problem`` says why)."""

    id: int
    chat_id: int
    send: Send | None
    attempts: int
    problem: str = ""


@dataclass(frozen=True)
class TranscriptLine:
    role: Role
    text: str
    created_at: float


class Store:
    """SQLite-backed storage. One instance per process; not shared across threads."""

    def __init__(self, path: Path | str, clock: Callable[[], float] = time.time, *, migrate: bool = True) -> None:
        """Open (creating if need be) the database; ``migrate=False`` only reads what is there
        (`health`, from another process, must not change a running bot's schema)."""
        self.path = Path(path)
        self._clock = clock
        try:
            if str(path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
                if not self.path.exists():
                    # Patients' names, phones and messages: readable by the bot's user only.
                    # SQLite gives the -wal and -shm files the database file's permissions.
                    os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            self._db = sqlite3.connect(str(path), isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a booking confirmed to a patient survives a power cut, not only a crash
            # (NORMAL in WAL mode may lose the last transactions on power loss).
            self._db.execute("PRAGMA synchronous=FULL")
            # Deleted rows (/forget, retention) are overwritten, not left readable in the file.
            self._db.execute("PRAGMA secure_delete=ON")
            self._db.execute("PRAGMA foreign_keys=ON")
            if migrate:
                self.migrate()
        except (sqlite3.DatabaseError, OSError) as exc:
            raise StoreError(
                f"{self.path}: cannot be used as the bot's database ({exc}). If it is damaged, move it away "
                "and restore a backup (python -m bot restore PATH); if it is read-only, give the bot's user write access"
            ) from None

    # -- schema -------------------------------------------------------------------
    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> None:
        """Bring the schema up to date, one migration per transaction."""
        current = self.schema_version
        if current > len(MIGRATIONS):
            raise RuntimeError(f"{self.path}: schema version {current} is newer than this code ({len(MIGRATIONS)})")
        for version in range(current, len(MIGRATIONS)):
            with self.transaction():
                for statement in _statements(MIGRATIONS[version]):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {version + 1}")

    def transaction(self) -> _Transaction:
        """Group writes so they land together or not at all (e.g. a handled update and its sends)."""
        return _Transaction(self._db)

    def close(self) -> None:
        self._db.close()

    # -- patients and sessions ----------------------------------------------------
    def save_patient(self, patient: Patient) -> None:
        self._db.execute(
            "INSERT INTO patients (chat_id, first_name, last_name, username, updated_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (chat_id) DO UPDATE SET first_name = excluded.first_name, last_name = excluded.last_name, "
            "username = excluded.username, updated_at = excluded.updated_at",
            (patient.chat_id, _text(patient.first_name), _text(patient.last_name), _text(patient.username), self._clock()),
        )

    def patient(self, chat_id: int) -> Patient:
        row = self._db.execute("SELECT * FROM patients WHERE chat_id = ?", (chat_id,)).fetchone()
        if row is None:
            return Patient(chat_id)
        return Patient(chat_id, row["first_name"], row["last_name"], row["username"])

    def load_session(self, chat_id: int) -> SessionState:
        row = self._db.execute("SELECT state FROM sessions WHERE chat_id = ?", (chat_id,)).fetchone()
        if row is None:
            return SessionState()
        try:
            return SessionState.from_dict(json.loads(row["state"]))
        except (ValueError, TypeError):
            return SessionState()

    def save_session(self, chat_id: int, state: SessionState) -> None:
        self._db.execute(
            "INSERT INTO sessions (chat_id, state, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (chat_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
            (chat_id, json.dumps(state.to_dict()), self._clock()),
        )

    # -- handoffs -------------------------------------------------------------------
    def handoff(self, chat_id: int) -> Handoff | None:
        row = self._db.execute("SELECT * FROM handoffs WHERE chat_id = ?", (chat_id,)).fetchone()
        return _handoff(row) if row else None

    def handoff_by_thread(self, thread_id: int) -> Handoff | None:
        row = self._db.execute("SELECT * FROM handoffs WHERE thread_id = ?", (thread_id,)).fetchone()
        return _handoff(row) if row else None

    def save_handoff(self, handoff: Handoff) -> None:
        """Store the desk's decision; opening and closing times are stamped when the status changes."""
        now = self._clock()
        self._db.execute(
            "INSERT INTO handoffs (chat_id, thread_id, status, urgent, reason, opened_at, closed_at) "
            "VALUES (?, ?, ?, ?, ?, ?, CASE WHEN ? = 'closed' THEN ? END) "
            "ON CONFLICT (chat_id) DO UPDATE SET thread_id = excluded.thread_id, status = excluded.status, "
            "urgent = excluded.urgent, reason = excluded.reason, "
            "opened_at = CASE WHEN excluded.status = 'open' AND handoffs.status != 'open' THEN excluded.opened_at "
            "ELSE handoffs.opened_at END, "
            "closed_at = CASE WHEN excluded.status = 'open' THEN NULL "
            "WHEN handoffs.status != 'closed' THEN excluded.opened_at ELSE handoffs.closed_at END",
            (handoff.chat_id, handoff.thread_id, handoff.status, int(handoff.urgent), handoff.reason, now, handoff.status, now),
        )

    def record_topic(self, chat_id: int, thread_id: int | None, *, reason: str = "") -> None:
        """Remember (or forget, with None) the patient's staff topic, creating the row if needed."""
        self._db.execute(
            "INSERT INTO handoffs (chat_id, thread_id, status, urgent, reason, opened_at) VALUES (?, ?, 'closed', 0, ?, ?) "
            "ON CONFLICT (chat_id) DO UPDATE SET thread_id = excluded.thread_id",
            (chat_id, thread_id, reason, self._clock()),
        )

    # -- message links -----------------------------------------------------------
    def link_messages(self, chat_id: int, patient_message_id: int, staff_message_id: int, direction: str) -> None:
        self._db.execute(
            "INSERT INTO message_links (chat_id, patient_message_id, staff_message_id, direction, created_at) VALUES (?, ?, ?, ?, ?)",
            (chat_id, patient_message_id, staff_message_id, direction, self._clock()),
        )

    def patient_copy_of(self, staff_message_id: int) -> int | None:
        """The id of the patient's copy of a staff message, if it reached them."""
        row = self._db.execute(
            "SELECT patient_message_id FROM message_links WHERE staff_message_id = ? AND direction = 'to_patient' ORDER BY id DESC LIMIT 1",
            (staff_message_id,),
        ).fetchone()
        return int(row[0]) if row else None

    # -- bookings, transcript, unanswered -----------------------------------------------
    def add_booking(self, chat_id: int, booking: Booking) -> int:
        cursor = self._db.execute(
            "INSERT INTO bookings (chat_id, name, phone, preferred, note, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (chat_id, _text(booking.name), booking.phone, _text(booking.when), _text(booking.note), self._clock()),
        )
        return int(cursor.lastrowid or 0)

    def bookings(self, chat_id: int) -> list[Booking]:
        rows = self._db.execute("SELECT * FROM bookings WHERE chat_id = ? ORDER BY id", (chat_id,)).fetchall()
        return [Booking(r["name"], r["phone"], r["preferred"], r["note"]) for r in rows]

    def add_transcript(self, chat_id: int, role: Role, text: str) -> None:
        self._db.execute(
            "INSERT INTO transcript (chat_id, role, text, created_at) VALUES (?, ?, ?, ?)", (chat_id, role, _text(text), self._clock())
        )

    def recent_transcript(self, chat_id: int, limit: int) -> list[TranscriptLine]:
        rows = self._db.execute(
            "SELECT role, text, created_at FROM transcript WHERE chat_id = ? ORDER BY id DESC LIMIT ?", (chat_id, limit)
        ).fetchall()
        return [TranscriptLine(r["role"], r["text"], r["created_at"]) for r in reversed(rows)]

    def add_unanswered(self, chat_id: int, question: str) -> None:
        self._db.execute(
            "INSERT INTO unanswered (chat_id, question, created_at) VALUES (?, ?, ?)", (chat_id, _text(question), self._clock())
        )

    def unanswered(self, limit: int = 100) -> list[tuple[str, int]]:
        """Questions the bot could not answer, most frequent first, with their counts."""
        rows = self._db.execute(
            "SELECT question, COUNT(*) AS n FROM unanswered GROUP BY lower(trim(question)) ORDER BY n DESC, MAX(id) DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [(r["question"], int(r["n"])) for r in rows]


    # -- inbox: updates journaled before Telegram is told they were received -----------
    def journal_updates(self, rows: list[tuple[int, int | None, str]]) -> None:
        """Record fetched updates (update_id, chat_id, JSON) as pending; ids already known are left alone."""
        now = self._clock()
        with self.transaction():
            self._db.executemany(
                "INSERT OR IGNORE INTO inbox (update_id, chat_id, payload, status, received_at) VALUES (?, ?, ?, 'pending', ?)",
                [(update_id, chat_id, payload, now) for update_id, chat_id, payload in rows],
            )

    def update_done(self, update_id: int) -> bool:
        row = self._db.execute("SELECT status FROM inbox WHERE update_id = ?", (update_id,)).fetchone()
        return row is not None and row[0] == "done"

    def mark_update_done(self, update_id: int) -> None:
        # The payload is not needed once handled; dropping it keeps patients' words out of the journal.
        self._db.execute("UPDATE inbox SET status = 'done', payload = '' WHERE update_id = ?", (update_id,))

    def prune_journal(self, cutoff: float) -> None:
        self._db.execute("DELETE FROM inbox WHERE status = 'done' AND received_at < ?", (cutoff,))
        self._db.execute("DELETE FROM outbox WHERE status = 'sent' AND done_at < ?", (cutoff,))

    def pending_updates(self) -> list[tuple[int, str]]:
        rows = self._db.execute("SELECT update_id, payload FROM inbox WHERE status = 'pending' ORDER BY update_id").fetchall()
        return [(int(r[0]), r[1]) for r in rows]

    # -- outbox: sends kept until Telegram accepted them -------------------------------------
    def enqueue(self, chat_id: int, send: Send) -> int:
        kind, payload = encode(send)
        cursor = self._db.execute(
            "INSERT INTO outbox (chat_id, kind, payload, status, created_at) VALUES (?, ?, ?, 'pending', ?)",
            (chat_id, kind, payload, self._clock()),
        )
        return int(cursor.lastrowid or 0)

    def chats_with_pending_sends(self) -> list[int]:
        rows = self._db.execute("SELECT DISTINCT chat_id FROM outbox WHERE status = 'pending'").fetchall()
        return [int(r[0]) for r in rows]

    def pending_sends(
        self, chat_id: int, limit: int = 50, *, kinds: tuple[str, ...] = (), other_kinds: bool = False
    ) -> list[OutboxEntry]:
        """The chat's first ``limit`` pending sends, in order; with ``kinds``, only those kinds
        (``other_kinds``: all but those), so a lane reads only its own rows."""
        where = ""
        if kinds:
            where = f" AND kind {'NOT IN' if other_kinds else 'IN'} ({', '.join('?' * len(kinds))})"
        rows = self._db.execute(
            "SELECT id, chat_id, kind, payload, attempts FROM outbox WHERE status = 'pending' AND chat_id = ?"  # noqa: S608 - placeholders only
            f"{where} ORDER BY id LIMIT ?",
            (chat_id, *kinds, limit),
        ).fetchall()
        return [_outbox_entry(int(r[0]), int(r[1]), r[2], r[3], int(r[4])) for r in rows]

    def mark_sent(self, entry_ids: list[int]) -> None:
        self._db.executemany(
            "UPDATE outbox SET status = 'sent', payload = '{}', done_at = ? WHERE id = ?", [(self._clock(), i) for i in entry_ids]
        )

    def mark_failed(self, entry_ids: list[int], reason: str) -> None:
        self._db.executemany(
            "UPDATE outbox SET status = 'failed', last_error = ?, done_at = ? WHERE id = ?",
            [(reason, self._clock(), i) for i in entry_ids],
        )

    def count_attempt(self, entry_ids: list[int], reason: str) -> None:
        self._db.executemany("UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?", [(reason, i) for i in entry_ids])

    def failed_sends(self) -> list[tuple[int, str, str]]:
        rows = self._db.execute("SELECT chat_id, kind, last_error FROM outbox WHERE status = 'failed' ORDER BY id").fetchall()
        return [(int(r[0]), r[1], r[2]) for r in rows]

    # -- the service's own state -----------------------------------------------------------------
    def beat(self, *, pid: int, mode: str, started_at: float, last_poll_at: float | None) -> None:
        """Record that the bot is alive (``mode``: polling, webhook or stopped)."""
        self._db.execute(
            "INSERT INTO heartbeat (id, pid, mode, started_at, beat_at, last_poll_at) VALUES (1, ?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET pid = excluded.pid, mode = excluded.mode, started_at = excluded.started_at, "
            "beat_at = excluded.beat_at, last_poll_at = excluded.last_poll_at",
            (pid, mode, started_at, self._clock(), last_poll_at),
        )

    def service_status(self) -> ServiceStatus:
        """What `python -m bot health` reports: the heartbeat, the last update, the outbox."""
        beat = self._db.execute("SELECT pid, mode, started_at, beat_at, last_poll_at FROM heartbeat WHERE id = 1").fetchone()
        last_update = self._db.execute("SELECT MAX(received_at) FROM inbox").fetchone()[0]
        pending, oldest = self._db.execute("SELECT COUNT(*), MIN(created_at) FROM outbox WHERE status = 'pending'").fetchone()
        failed = self._db.execute("SELECT COUNT(*) FROM outbox WHERE status = 'failed'").fetchone()[0]
        return ServiceStatus(
            pid=beat["pid"] if beat else None,
            mode=beat["mode"] if beat else None,
            started_at=beat["started_at"] if beat else None,
            beat_at=beat["beat_at"] if beat else None,
            last_poll_at=beat["last_poll_at"] if beat else None,
            last_update_at=last_update,
            pending_sends=int(pending),
            oldest_pending_at=oldest,
            failed_sends=int(failed),
        )

    # -- ratings and the handoffs' moments, for `report` -----------------------------------------
    def add_rating(self, chat_id: int, *, helpful: bool) -> None:
        self._db.execute("INSERT INTO ratings (chat_id, helpful, created_at) VALUES (?, ?, ?)", (chat_id, int(helpful), self._clock()))

    def log_handoff(self, chat_id: int, kind: str, reason: str = "") -> None:
        self._db.execute(
            "INSERT INTO handoff_events (chat_id, kind, reason, created_at) VALUES (?, ?, ?, ?)", (chat_id, kind, reason, self._clock())
        )

    def report(self, since: float) -> Report:
        """What happened since ``since`` (a Unix time): handoffs, first staff replies, ratings, unanswered questions."""
        db = self._db
        opened = {r[0]: int(r[1]) for r in db.execute(
            "SELECT reason, COUNT(*) FROM handoff_events WHERE kind = 'opened' AND created_at >= ? GROUP BY reason", (since,))}
        waits: list[float] = []
        unanswered_handoffs = 0
        events = db.execute(
            "SELECT chat_id, kind, created_at FROM handoff_events WHERE created_at >= ? ORDER BY chat_id, id", (since,)
        ).fetchall()
        waiting_since: dict[int, float] = {}
        for chat_id, kind, at in events:
            if kind == "opened":
                if chat_id in waiting_since:
                    unanswered_handoffs += 1
                waiting_since[chat_id] = at
            elif chat_id in waiting_since:
                opened_at = waiting_since.pop(chat_id)
                if kind == "staff_replied":
                    waits.append(at - opened_at)
                else:
                    unanswered_handoffs += 1  # closed before anyone wrote to the patient
        ratings = dict(db.execute(
            "SELECT helpful, COUNT(*) FROM ratings WHERE created_at >= ? GROUP BY helpful", (since,)).fetchall())
        questions = db.execute(
            "SELECT LOWER(question), COUNT(*) AS n FROM unanswered WHERE created_at >= ? GROUP BY LOWER(question) "
            "ORDER BY n DESC, LOWER(question) LIMIT 20", (since,)).fetchall()
        return Report(
            handoffs=opened, first_reply_seconds=sorted(waits), still_waiting=len(waiting_since),
            closed_unanswered=unanswered_handoffs, helpful=int(ratings.get(1, 0)), unhelpful=int(ratings.get(0, 0)),
            unanswered=[(q, int(n)) for q, n in questions],
        )

    # -- privacy ---------------------------------------------------------------------------------
    def forget(self, chat_id: int) -> None:
        """Delete everything stored about a patient, queued sends included (a message waiting
        for their staff topic must not open a new one). Their topic is remembered only as
        forgotten."""
        with self.transaction():
            handoff = self.handoff(chat_id)
            if handoff is not None and handoff.thread_id is not None:
                self._db.execute(
                    "INSERT OR REPLACE INTO forgotten_topics (thread_id, forgotten_at) VALUES (?, ?)", (handoff.thread_id, self._clock())
                )
            for table in ("sessions", "patients", "handoffs", "message_links", "bookings", "transcript", "unanswered", "ratings", "handoff_events"):
                self._db.execute(f"DELETE FROM {table} WHERE chat_id = ?", (chat_id,))  # noqa: S608 - fixed table names
            self._db.execute("UPDATE inbox SET payload = '' WHERE chat_id = ?", (chat_id,))
            self._db.execute("DELETE FROM outbox WHERE chat_id = ?", (chat_id,))

    def is_forgotten_topic(self, thread_id: int) -> bool:
        return self._db.execute("SELECT 1 FROM forgotten_topics WHERE thread_id = ?", (thread_id,)).fetchone() is not None

    def delete_older_than(self, cutoff: float) -> int:
        """Retention: every kind of personal data older than ``cutoff`` (a Unix time) goes:
        transcript lines, unanswered questions, bookings, closed handoffs and their message
        pairs, handled updates and finished sends, and patients (names, sessions) not
        heard from since, unless a conversation with staff is still open. Returns the
        number of rows deleted."""
        removed = 0
        with self.transaction():
            open_chats = "SELECT chat_id FROM handoffs WHERE status = 'open'"
            for statement in (
                "DELETE FROM transcript WHERE created_at < ?",
                "DELETE FROM unanswered WHERE created_at < ?",
                "DELETE FROM ratings WHERE created_at < ?",
                "DELETE FROM handoff_events WHERE created_at < ?",
                "DELETE FROM bookings WHERE created_at < ?",
                "DELETE FROM message_links WHERE created_at < ?",
                "DELETE FROM handoffs WHERE status = 'closed' AND COALESCE(closed_at, opened_at) < ?",
                f"DELETE FROM sessions WHERE updated_at < ? AND chat_id NOT IN ({open_chats})",  # noqa: S608 - fixed SQL
                f"DELETE FROM patients WHERE updated_at < ? AND chat_id NOT IN ({open_chats})",  # noqa: S608 - fixed SQL
                "DELETE FROM inbox WHERE status = 'done' AND received_at < ?",
                "DELETE FROM outbox WHERE status != 'pending' AND created_at < ?",
                "DELETE FROM forgotten_topics WHERE forgotten_at < ?",
            ):
                removed += self._db.execute(statement, (cutoff,)).rowcount
        return int(removed)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error); nested uses join the outer transaction."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._outer = False

    def __enter__(self) -> None:
        self._outer = not self._db.in_transaction
        if self._outer:
            self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        if self._outer:
            self._db.execute("ROLLBACK" if exc_type else "COMMIT")


def _text(value: str) -> str:
    """Text safe for SQLite: lone surrogates (which Telegram JSON can carry) become U+FFFD."""
    return value.encode("utf-8", "replace").decode("utf-8") if not value.isascii() else value


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _outbox_entry(entry_id: int, chat_id: int, kind: str, payload: str, attempts: int) -> OutboxEntry:
    try:
        send = decode(kind, payload) if kind in SEND_KINDS else _legacy_send(kind, json.loads(payload))
    except (ValueError, TypeError, KeyError) as exc:
        return OutboxEntry(entry_id, chat_id, None, attempts, f"cannot be read ({exc})")
    return OutboxEntry(entry_id, chat_id, send, attempts)


def _legacy_send(kind: str, payload: dict[str, Any]) -> Send:
    """A send queued by a version before typed sends (an upgrade with sends still pending)."""
    if kind == "patient_text":
        markup = payload.get("markup") or {}
        buttons = tuple(Button(row[0]["text"], row[0]["callback_data"]) for row in markup.get("inline_keyboard", []))
        keyboard = tuple(row[0]["text"] for row in markup.get("keyboard", []))
        contact = any(row[0].get("request_contact") for row in markup.get("keyboard", []))
        return TextToPatient(payload["text"], buttons, keyboard, contact, bool(markup.get("remove_keyboard")))
    if kind == "patient_copy":
        return StaffMessageToPatient(payload["message_id"])
    if kind == "patient_edit":
        entities = json.dumps(payload.get("entities") or [])
        if payload.get("text") is not None:
            return CorrectedTextToPatient(payload["message_id"], payload["text"], entities)
        return CorrectedCaptionToPatient(payload["message_id"], payload.get("caption") or "", entities)
    if kind == "staff_copy":
        return PatientMessageToTopic(payload["message_id"], payload.get("text"))
    if kind == "staff_card":
        return CardToTopic(payload["text"], "Close conversation")
    if kind == "staff_notice":
        if payload.get("general"):
            return NoticeToGeneral(payload["text"])
        return NoticeToTopic(payload["text"], payload.get("thread_id"))
    if kind == "staff_topic_delete":
        return DeleteTopic(payload["thread_id"])
    if kind == "staff_topic_close":
        return CloseTopic(payload["thread_id"])
    raise ValueError(f"unknown kind of send {kind!r}")


def _handoff(row: sqlite3.Row) -> Handoff:
    return Handoff(row["chat_id"], row["thread_id"], row["status"], bool(row["urgent"]), row["reason"])
