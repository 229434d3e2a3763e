"""The SQLite store: schema versioning, and nothing lost across a restart."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from bot.core.booking import Booking, BookingDraft
from bot.core.dialogue import SessionState
from bot.core.desk import Handoff
from bot.adapters.sqlite.store import MIGRATIONS, Patient, Store


def test_a_new_database_gets_the_latest_schema(tmp_path: Path) -> None:
    store = Store(tmp_path / "bot.db")
    assert store.schema_version == len(MIGRATIONS)


def test_a_database_from_newer_code_is_refused_not_damaged(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(RuntimeError, match="newer than this code"):
        Store(path)


def test_sessions_handoffs_and_bookings_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    store = Store(path)
    state = SessionState(mode="bot", booking=BookingDraft(step="when", name="Ana", phone="+821012345678"))
    store.save_patient(Patient(42, "Ana", "Kim", "ana_k"))
    store.save_session(42, state)
    store.save_handoff(Handoff(7, 1001, "open", urgent=True, reason="urgent"))
    store.add_booking(42, Booking("Ana", "+821012345678", "Saturday", ""))
    store.add_transcript(42, "patient", "hello")
    store.close()

    again = Store(path)
    assert again.load_session(42) == state
    assert again.patient(42).display_name == "Ana Kim"
    handoff = again.handoff_by_thread(1001)
    assert handoff is not None and handoff.chat_id == 7 and handoff.status == "open" and handoff.urgent
    assert again.bookings(42) == [Booking("Ana", "+821012345678", "Saturday", "")]
    assert [line.text for line in again.recent_transcript(42, 5)] == ["hello"]


def test_two_patients_can_never_share_a_topic(tmp_path: Path) -> None:
    store = Store(tmp_path / "bot.db")
    store.record_topic(1, 500)
    with pytest.raises(sqlite3.IntegrityError):
        store.record_topic(2, 500)


def test_unanswered_questions_are_grouped_for_operators(tmp_path: Path) -> None:
    store = Store(tmp_path / "bot.db")
    for question in ("Price?", "price?", "is there parking"):
        store.add_unanswered(1, question)
    assert {(q.lower(), n) for q, n in store.unanswered()} == {("price?", 2), ("is there parking", 1)}
    assert store.unanswered()[0][1] == 2  # most asked first


def test_sends_queued_by_the_previous_version_are_still_delivered_after_an_upgrade(tmp_path: Path) -> None:
    from bot.core.dialogue import Button
    from bot.core.outgoing import NoticeToGeneral, TextToPatient

    store = Store(tmp_path / "bot.db")
    markup = {"inline_keyboard": [[{"text": "Scars", "callback_data": "faq:scars"}]]}
    with sqlite3.connect(tmp_path / "bot.db") as db:  # rows as the previous version wrote them
        db.execute("INSERT INTO outbox (chat_id, kind, payload, status, created_at) VALUES (5, 'patient_text', ?, 'pending', 0)",
                   (json.dumps({"text": "Hello", "markup": markup}),))
        db.execute("INSERT INTO outbox (chat_id, kind, payload, status, created_at) VALUES (5, 'staff_notice', ?, 'pending', 0)",
                   (json.dumps({"text": "Gone", "general": True}),))
        db.execute("INSERT INTO outbox (chat_id, kind, payload, status, created_at) VALUES (5, 'mystery', '{}', 'pending', 0)")
    first, second, third = store.pending_sends(5)
    assert first.send == TextToPatient("Hello", (Button("Scars", "faq:scars"),))
    assert second.send == NoticeToGeneral("Gone")
    assert third.send is None and "mystery" in third.problem  # reported and dropped, not a crash


def test_the_report_counts_handoffs_first_replies_ratings_and_unanswered_questions(tmp_path: Path) -> None:
    now = [1_000.0]
    store = Store(tmp_path / "bot.db", clock=lambda: now[0])
    store.log_handoff(1, "opened", "urgent")
    now[0] += 120
    store.log_handoff(1, "staff_replied")  # two minutes to the first reply
    store.log_handoff(2, "opened", "requested")
    now[0] += 600
    store.log_handoff(2, "staff_replied")
    store.log_handoff(3, "opened", "requested")
    store.log_handoff(3, "closed")  # the patient left before staff wrote
    store.log_handoff(4, "opened", "unanswered")  # still waiting
    store.add_rating(1, helpful=True)
    store.add_rating(2, helpful=False)
    store.add_unanswered(5, "Is there parking?")
    store.add_unanswered(6, "is there parking?")
    report = store.report(since=0)
    assert report.handoffs == {"urgent": 1, "requested": 2, "unanswered": 1}
    assert report.first_reply_seconds == [120.0, 600.0]
    assert (report.still_waiting, report.closed_unanswered) == (1, 1)
    assert (report.helpful, report.unhelpful) == (1, 1)
    assert report.unanswered == [("is there parking?", 2)]
    assert store.report(since=now[0] + 1).handoffs == {}  # only the period asked
    store.forget(1)
    assert store.report(since=0).helpful == 0  # a forgotten patient's rating goes too
